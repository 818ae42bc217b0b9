#if canImport(Glibc)
import Glibc
#endif
import CIommufd
import IommufdCore
import IommufdRPC
import Synchronization
import TestProcesses
import Testing

@testable import IommuctlKit

/// A temporary file of `size` bytes that starts with `marker`.
func temporaryFile(size: Int, marker: String) throws -> String {
    var template = Array("/tmp/iommuctl-mem-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    try #require(fd >= 0)
    defer { close(fd) }
    try #require(ftruncate(fd, off_t(size)) == 0)
    let bytes = Array(marker.utf8)
    try #require(pwrite(fd, bytes, bytes.count, 0) == bytes.count)
    return path(fromTemplate: template)
}

/// What a handler saw of an fd it received.
struct ReceivedFile: Sendable, Equatable {
    var size: UInt64
    var accessMode: Int32
    var prefix: String
}

func inspect(_ fd: Int32, prefixLength: Int) -> ReceivedFile {
    var st = stat()
    _ = fstat(fd, &st)
    var buffer = [UInt8](repeating: 0, count: prefixLength)
    let n = pread(fd, &buffer, prefixLength, 0)
    return ReceivedFile(size: UInt64(st.st_size), accessMode: fcntl(fd, F_GETFL) & O_ACCMODE,
                        prefix: String(decoding: buffer.prefix(max(0, n)), as: UTF8.self))
}

@Suite("ioas map passes the file's descriptor")
struct IOASMapTests {
    /// A daemon whose ioas.map takes the fd named in params and reports what it got.
    func mapDaemon() throws -> (FakeDaemon, Recorder<ReceivedFile>) {
        let daemon = try FakeDaemon()
        let seen = Recorder<ReceivedFile>()
        daemon.on("ioas.map") { [seen] call in
            let fd = try call.fds.take(reference: call.params?["fd"])
            defer { close(fd) }
            seen.append(inspect(fd, prefixLength: 6))
            let iova = call.params?["iova"]?.uint64Value ?? 0x4000_0000
            let length = call.params?["length"]?.uint64Value ?? 0
            return RPCResult(["ioas": call.params?["ioas"] ?? .null, "iova": .unsigned(iova), "length": .unsigned(length), "owner_pinned_bytes": .unsigned(length)])
        }
        return (daemon, seen)
    }

    @Test("a regular file goes read-write with SCM_RIGHTS; length defaults to the rest of the file")
    func regularFile() throws {
        let (daemon, seen) = try mapDaemon()
        let path = try temporaryFile(size: 2 << 20, marker: "GUEST!")
        defer { unlink(path) }
        let run = daemon.run(["ioas", "map", "3", path, "--offset", "1M", "--iova", "0x100000"])
        #expect(run.code == 0, "\(run.error)")
        #expect(seen.all == [ReceivedFile(size: 2 << 20, accessMode: O_RDWR, prefix: "GUEST!")])
        #expect(daemon.params(of: "ioas.map") == [[
            "ioas": 3, "fd": ["fd": 0], "offset": 1_048_576, "length": 1_048_576, "iova": 1_048_576,
            "readable": true, "writeable": true,
        ]])
        #expect(run.output == "mapped 1 MiB of \(path) at IOVA 0x100000-0x1fffff in IOAS 3 (read-write; the owner now pins 1 MiB)")
    }

    @Test("--read-only opens the file read-only and asks for a read-only mapping")
    func readOnly() throws {
        let (daemon, seen) = try mapDaemon()
        let path = try temporaryFile(size: 4096, marker: "RDONLY")
        defer { unlink(path) }
        let run = daemon.run(["ioas", "map", "3", path, "--read-only", "--json"])
        #expect(run.code == 0, "\(run.error)")
        #expect(seen.all.first?.accessMode == O_RDONLY)
        #expect(daemon.params(of: "ioas.map").first??["writeable"] == false)
        #expect(try JSONValue.parse(run.output)["length"] == 4096)
    }

    @Test("--memfd maps a fresh memfd of the given size")
    func memfd() throws {
        let (daemon, seen) = try mapDaemon()
        let run = daemon.run(["ioas", "map", "3", "--memfd", "64K"])
        #expect(run.code == 0, "\(run.error)")
        #expect(seen.all.first?.size == 64 << 10)
        #expect(daemon.params(of: "ioas.map").first??["length"] == 65536)
        #expect(run.output.hasPrefix("mapped 64 KiB of a new 64 KiB memfd at IOVA 0x40000000-0x4000ffff"))
    }

    @Test("a missing file fails locally with exit 11 and sends nothing")
    func missingFile() throws {
        let (daemon, _) = try mapDaemon()
        let run = daemon.run(["ioas", "map", "3", "/nonexistent/ram"])
        #expect(run.code == CtlExit.localIO.rawValue)
        #expect(run.error.contains("cannot open /nonexistent/ram read-write: ENOENT"))
        #expect(daemon.methodsCalled.isEmpty)
    }

    @Test("an offset past the end, or an empty file, is a usage error")
    func pastEnd() throws {
        let (daemon, _) = try mapDaemon()
        let path = try temporaryFile(size: 4096, marker: "x")
        defer { unlink(path) }
        #expect(daemon.run(["ioas", "map", "3", path, "--offset", "8K"]).code == CtlExit.usage.rawValue)
        #expect(daemon.run(["ioas", "map", "3", path, "--offset", "4K"]).code == CtlExit.usage.rawValue)
        let empty = try temporaryFile(size: 0, marker: "")
        defer { unlink(empty) }
        #expect(daemon.run(["ioas", "map", "3", empty]).code == CtlExit.usage.rawValue)
        #expect(daemon.run(["ioas", "map", "3", "/tmp"]).code == CtlExit.localIO.rawValue)  // a directory
        #expect(daemon.methodsCalled.isEmpty)
    }
}

@Suite("dirty read: runs and bitmaps")
struct DirtyReadTests {
    static let runsAnswer: JSONValue = [
        "ioas": 2, "iova": 0, "length": 1_048_576, "page_size": 4096, "cleared": true, "format": "runs", "dirty_pages": 3,
        "runs": [["iova": 0, "length": 8192], ["iova": 0x8_0000, "length": 4096]],
    ]

    @Test("runs are listed with a summary of pages, bytes and share")
    func runs() throws {
        let daemon = try FakeDaemon()
        daemon.answer("dirty.read", Self.runsAnswer)
        let run = daemon.run(["dirty", "read", "2", "--iova", "0", "--length", "1M"])
        #expect(run.code == 0, "\(run.error)")
        #expect(run.output == """
            IOVA     LAST     PAGES   SIZE
            0x0      0x1fff       2  8 KiB
            0x80000  0x80fff      1  4 KiB
            3 dirty pages (12 KiB) of 256 (1.172%) in 0x0-0xfffff at 4 KiB pages, cleared
            """)
        #expect(daemon.params(of: "dirty.read") == [["ioas": 2, "iova": 0, "length": 1_048_576, "format": "runs"]])
        let summary = daemon.run(["dirty", "read", "2", "--iova", "0", "--length", "1M", "--summary"])
        #expect(summary.output == "3 dirty pages (12 KiB) of 256 (1.172%) in 0x0-0xfffff at 4 KiB pages, cleared")
    }

    @Test("a truncated answer says where to resume")
    func resume() throws {
        let daemon = try FakeDaemon()
        var answer = Self.runsAnswer.objectValue ?? [:]
        answer["resume_iova"] = 0x8_0000
        answer["runs"] = [["iova": 0, "length": 8192]]
        answer["dirty_pages"] = 2
        daemon.answer("dirty.read", .object(answer))
        let run = daemon.run(["dirty", "read", "2", "--iova", "0", "--length", "1M", "--max-runs", "1", "--page-size", "4K"])
        #expect(run.output.hasSuffix("""
            cut short at 0x80000: nothing from there on was cleared or shown; read the rest with --iova 0x80000 --length 0x80000
            """), "\(run.output)")
        #expect(daemon.params(of: "dirty.read").first??["max_runs"] == 1)
        #expect(daemon.params(of: "dirty.read").first??["page_size"] == 4096)
    }

    @Test("a failed clearing read is a warning: what was read is shown, the rest comes again")
    func clearFailure() throws {
        let daemon = try FakeDaemon()
        var answer = Self.runsAnswer.objectValue ?? [:]
        answer["clear_failures"] = [["hwpt": 7, "error": "clearing read of the dirty bitmap of HWPT 7 failed: ENOMEM"]]
        daemon.answer("dirty.read", .object(answer))
        let run = daemon.run(["dirty", "read", "2", "--iova", "0", "--length", "1M", "--summary"])
        #expect(run.code == 0, "\(run.error)")
        #expect(run.output == """
            3 dirty pages (12 KiB) of 256 (1.172%) in 0x0-0xfffff at 4 KiB pages, cleared
            warning: HWPT 7 was not cleared (clearing read of the dirty bitmap of HWPT 7 failed: ENOMEM); its pages stay dirty and come again in the next read
            """)
    }

    /// 128 pages of 4 KiB at 0x100000: pages 0, 1 and 65 dirty.
    static let bitmap: [UInt8] = [0x03, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0]

    @Test("--bitmap receives the memfd, writes it to the file, and counts its runs")
    func bitmapFile() throws {
        let daemon = try FakeDaemon()
        daemon.on("dirty.read") { call in
            let fd = ifd_memfd_create("bitmap", 0)
            _ = Self.bitmap.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            return RPCResult([
                "ioas": 2, "iova": 0x10_0000, "length": 0x8_0000, "page_size": 4096, "cleared": false, "format": "bitmap",
                "dirty_pages": 3, "bitmap": ["fd": 0], "bitmap_bytes": 16,
            ], fds: [fd])
        }
        var template = Array("/tmp/iommuctl-bitmap-XXXXXX".utf8CString)
        let tmp = mkstemp(&template)
        close(tmp)
        let out = path(fromTemplate: template)
        defer { unlink(out) }
        let run = daemon.run(["dirty", "read", "2", "--iova", "1M", "--length", "512K", "--no-clear", "--bitmap", out])
        #expect(run.code == 0, "\(run.error)")
        #expect(daemon.params(of: "dirty.read") == [["ioas": 2, "iova": 0x10_0000, "length": 0x8_0000, "clear": false, "format": "bitmap"]])
        let fd = open(out, O_RDONLY)
        var written = [UInt8](repeating: 0xFF, count: 32)
        let n = read(fd, &written, 32)
        close(fd)
        #expect(Array(written.prefix(max(0, n))) == Self.bitmap)
        #expect(run.output == """
            IOVA      LAST      PAGES   SIZE
            0x100000  0x101fff      2  8 KiB
            0x141000  0x141fff      1  4 KiB
            3 dirty pages (12 KiB) of 128 (2.344%) in 0x100000-0x17ffff at 4 KiB pages, not cleared
            bitmap written to \(out) (16 B)
            """)
    }

    @Test("an answer that names a bitmap fd it did not send is an error, not a crash")
    func bitmapMissing() throws {
        let daemon = try FakeDaemon()
        daemon.answer("dirty.read", [
            "ioas": 2, "iova": 0, "length": 0x8_0000, "page_size": 4096, "cleared": true, "format": "bitmap",
            "dirty_pages": 0, "bitmap": ["fd": 0], "bitmap_bytes": 16,
        ])
        let run = daemon.run(["dirty", "read", "2", "--iova", "0", "--length", "512K", "--bitmap", "/tmp/iommuctl-never-written"])
        #expect(run.code == CtlExit.failure.rawValue)
        #expect(run.error.contains("without the bitmap memfd"))
        #expect(access("/tmp/iommuctl-never-written", F_OK) != 0)
    }
}

@Suite("Errors: one line with the name, an exit code per kind")
struct ErrorTests {
    @Test("daemon errors map to their exit codes", arguments: [
        (RPCError.domain("iommufdd.NotFound", "IOAS 99 not found"), CtlExit.notFound),
        (.domain("iommufdd.PermissionDenied", "owner.release changes state, and identity 'monitor' has the reader role"), .permissionDenied),
        (.domain("iommufdd.Busy", "IOAS 2 has 1 HWPT"), .busy),
        (.domain("iommufdd.QuotaExceeded", "would pin 2 GiB over the 1 GiB quota"), .quota),
        (.domain("iommufdd.PolicyRefused", "sim1 cannot track dirty pages (dirty=required)"), .unsupported),
        (RPCError(IommuError(.EINVAL, "IOMMU_IOAS_MAP_FILE")), .kernel),
        (.invalidParams("params.iova: not aligned"), .invalidParams),
    ])
    func mapped(error: RPCError, exit: CtlExit) throws {
        let daemon = try FakeDaemon()
        daemon.fail("ioas.info", error)
        let run = daemon.run(["ioas", "info", "99"])
        #expect(run.code == exit.rawValue)
        let first = run.error.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("iommuctl: error: \(error.message) ["))
        if let name = error.name { #expect(first.contains(name)) }
        #expect(run.output.isEmpty)
        let json = daemon.run(["ioas", "info", "99", "--json"])
        #expect(json.code == exit.rawValue)
        let printed = try JSONValue.parse(json.output)
        #expect(printed["error"] == error.json)
        #expect(printed["exit_code"] == .int(Int64(exit.rawValue)))
    }

    @Test("kernel errors show errno and ioctl")
    func kernel() throws {
        let daemon = try FakeDaemon()
        daemon.fail("hwpt.alloc", RPCError(IommuError(.EOPNOTSUPP, "IOMMU_HWPT_ALLOC")))
        let run = daemon.run(["hwpt", "alloc", "--ioas", "1", "--device", "sim1", "--dirty-tracking"])
        #expect(run.code == CtlExit.kernel.rawValue)
        #expect(run.error.contains("[iommufdd.Kernel, errno EOPNOTSUPP, ioctl IOMMU_HWPT_ALLOC]"))
    }

    @Test("no daemon: a missing socket is exit 3 with what to do")
    func noDaemon() {
        let (terminal, captured) = Terminal.capturing()
        let code = IommuCtl.run(arguments: ["status"], terminal: terminal, environment: ["IOMMUFDD_SOCKET": "/tmp/iommuctl-none/control.sock"])
        #expect(code == CtlExit.noDaemon.rawValue)
        #expect(captured.error.contains("no daemon at /tmp/iommuctl-none/control.sock: is iommufdd running?"))
        #expect(captured.error.contains("hint: start it"))
    }

    @Test("a stale socket (nothing listening) is exit 3 too")
    func staleSocket() throws {
        let dir = try TemporaryDirectory("iommuctl-stale")
        defer { dir.remove() }
        let path = dir.path + "/control.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0)
        let (terminal, captured) = Terminal.capturing()
        #expect(IommuCtl.run(arguments: ["devices", "--socket", path], terminal: terminal, environment: [:]) == CtlExit.noDaemon.rawValue)
        #expect(captured.error.contains("ECONNREFUSED"))
    }

    @Test("a caller the daemon refuses at accept (no role) gets exit 4")
    func refusedRole() throws {
        let daemon = try FakeDaemon(accept: { peer in
            .domain("iommufdd.PermissionDenied", "uid \(peer.uid) has no role in /etc/iommufdd/iommufdd.toml")
        })
        daemon.answer("daemon.info", Fixtures.daemonInfo)
        let run = daemon.run(["status"])
        #expect(run.code == CtlExit.permissionDenied.rawValue)
        #expect(run.error.contains("has no role"))
        #expect(run.error.contains("iommufdd.PermissionDenied"))
    }

    @Test("a partial owner release prints what failed and exits 6")
    func partialRelease() throws {
        let daemon = try FakeDaemon()
        daemon.answer("owner.release", [
            "name": "vm1", "released": false, "destroyed": ["mapping": 2], "refunded_bytes": 8192,
            "failures": ["destroying HWPT 3: IOMMU_DESTROY returned EBUSY"],
        ])
        let run = daemon.run(["owner", "release", "vm1"])
        #expect(run.code == CtlExit.busy.rawValue)
        #expect(run.output.contains("owner vm1 partly released: destroyed 2 mappings; 8 KiB unpinned"))
        #expect(run.output.contains("failed: destroying HWPT 3: IOMMU_DESTROY returned EBUSY"))
        #expect(run.error.contains("run `iommuctl owner release vm1` again"))
        let json = daemon.run(["owner", "release", "vm1", "--compact"])
        #expect(json.code == CtlExit.busy.rawValue)
        #expect(try JSONValue.parse(json.output)["released"] == false)  // one JSON document only
    }

    @Test("an answer of the wrong shape is reported, and --json still shows it")
    func wrongShape() throws {
        let daemon = try FakeDaemon()
        daemon.answer("ioas.info", ["surprise": true])
        let run = daemon.run(["ioas", "info", "1"])
        #expect(run.code == CtlExit.failure.rawValue)
        #expect(run.error.contains("--json"))
        #expect(daemon.run(["ioas", "info", "1", "--json"]).code == 0)
    }
}

@Suite("watch, call and fallbacks")
struct StreamingTests {
    @Test("watch subscribes and prints each event as a sentence until --count")
    func watch() throws {
        let daemon = try FakeDaemon()
        daemon.on("events.subscribe") { call in
            _ = call.connection.notify(method: "event.object_created", params: ["owner": "vm1", "kind": "ioas", "id": 3])
            _ = call.connection.notify(method: "event.device_attached", params: ["owner": "vm1", "device": "sim0", "ioas": 3, "pt": 4])
            _ = call.connection.notify(method: "event.config_reloaded")
            return RPCResult(["subscription": 7])
        }
        let run = daemon.run(["watch", "--owner", "vm1", "--count", "3"])
        #expect(run.code == 0, "\(run.error)")
        #expect(daemon.params(of: "events.subscribe") == [["owner": "vm1"]])
        let events = run.output.split(separator: "\n").map { String($0.dropFirst(10)) }  // "HH:MM:SS  "
        #expect(events == ["vm1: IOAS 3 created", "vm1: sim0 attached to HWPT 4 of IOAS 3", "daemon configuration reloaded"])
        #expect(run.error.contains("subscription 7"))

        let json = daemon.run(["watch", "--count", "1", "--json"])
        #expect(json.code == 0)
        #expect(try JSONValue.parse(json.output) == ["method": "event.object_created", "params": ["owner": "vm1", "kind": "ioas", "id": 3]])
    }

    @Test("every event kind reads as a sentence")
    func eventWords() {
        #expect(Watch.render(method: "event.owner_created", params: ["owner": "vm1"]) == "owner vm1 created")
        #expect(Watch.render(method: "event.owner_released", params: ["owner": "vm1", "complete": false]) == "owner vm1 released (partly: some objects remain)")
        #expect(Watch.render(method: "event.object_destroyed", params: ["owner": "vm1", "kind": "viommu", "id": 5]) == "vm1: vIOMMU 5 destroyed")
        #expect(Watch.render(method: "event.object_created", params: ["owner": "vm1", "kind": "hw_queue", "id": 21]) == "vm1: HW queue 21 created")  // hwqueue3
        #expect(Watch.render(method: "event.device_attached", params: ["owner": "vm1", "device": "m", "ioas": 3, "pt": 3]) == "vm1: m attached to IOAS 3 directly")
        #expect(Watch.render(method: "event.device_detached", params: ["owner": "vm1", "device": "m", "pt": 3]) == "vm1: m detached from page table 3")
        #expect(Watch.render(method: "event.device_released", params: ["owner": "vm1", "device": "m"]) == "vm1: m released")
        #expect(Watch.render(method: "event.dirty_tracking_started", params: ["owner": "vm1", "ioas": 2]) == "vm1: dirty tracking started on IOAS 2")
        #expect(Watch.render(method: "event.dirty_tracking_stopped", params: ["owner": "vm1", "ioas": 2]) == "vm1: dirty tracking stopped on IOAS 2")
        #expect(Watch.render(method: "event.new_kind", params: ["x": 1]) == #"event.new_kind {"x":1}"#)
    }

    @Test("call sends raw params and fds, prints the answer as JSON")
    func call() throws {
        let daemon = try FakeDaemon()
        let seen = Recorder<ReceivedFile>()
        daemon.on("ioas.map") { [seen] call in
            let fd = try call.fds.take(1)
            defer { close(fd) }
            seen.append(inspect(fd, prefixLength: 3))
            return RPCResult(["ok": true, "fds": .int(Int64(call.fds.count))])
        }
        let a = try temporaryFile(size: 4096, marker: "AAA")
        let b = try temporaryFile(size: 8192, marker: "BBB")
        defer { unlink(a); unlink(b) }
        let run = daemon.run(["call", "ioas.map", #"{"ioas": 1, "fd": {"fd": 1}, "length": 8192}"#, "--fd", a, "--fd", b, "--compact"])
        #expect(run.code == 0, "\(run.error)")
        #expect(run.output == #"{"fds":2,"ok":true}"#)
        #expect(daemon.params(of: "ioas.map") == [["ioas": 1, "fd": ["fd": 1], "length": 8192]])
        #expect(seen.all == [ReceivedFile(size: 8192, accessMode: O_RDWR, prefix: "BBB")])
    }

    @Test("call refuses params that are not a JSON object, before connecting")
    func callBadJSON() throws {
        let daemon = try FakeDaemon()
        for params in ["{not json", "42", #""s""#, "[1]"] {
            let run = daemon.run(["call", "daemon.info", params])
            #expect(run.code == CtlExit.usage.rawValue, "\(params)")
        }
        #expect(daemon.methodsCalled.isEmpty)
        #expect(daemon.run(["call", "no.such.method"]).code == CtlExit.unsupported.rawValue)
    }

    @Test("viommu list falls back to owner.list on a daemon without viommu.list")
    func viommuFallback() throws {
        let daemon = try FakeDaemon()
        daemon.answer("owner.list", Fixtures.ownerList)
        let run = daemon.run(["viommu", "list"])
        #expect(run.code == 0, "\(run.error)")
        #expect(run.output == "VIOMMU  OWNER\n     5  vm1")
        #expect(daemon.methodsCalled == ["owner.list"])  // viommu.list was answered -32601 by the router
    }
}
