import CIommufd
import Foundation
import IommufdCore
import IommufdRPC
import TestProcesses

#if canImport(Glibc)
import Glibc
#endif

/// Uids the tests connect as. None exists in /etc/passwd: the daemon knows them only from the
/// temporary config's [[access]] entries, and an unlisted uid is refused at accept.
enum TestUID {
    static let managerA: UInt32 = 60001
    static let managerB: UInt32 = 60002
    static let reader: UInt32 = 60003
    static let unlisted: UInt32 = 60004
    /// A manager without `trusted_vmm`.
    static let untrustedManager: UInt32 = 60005
}

/// The real `iommufdd` binary on the simulator backend, in a temporary directory of its own
/// (a `LaunchedDaemon`): `iommufdd --backend sim --socket DIR/control.sock --config
/// DIR/iommufdd.toml`. Its log goes to DIR/daemon.log, printed when the daemon dies unexpectedly.
final class DaemonUnderTest {
    let daemon: LaunchedDaemon
    var directory: String { daemon.directory.path }
    var socketPath: String { daemon.socketPath }
    var configPath: String { daemon.configPath }
    var logPath: String { daemon.logPath }
    var pid: Int32 { daemon.pid }
    private var stopped = false

    /// The test configuration: every role of `TestUID`, the simulated devices `a0 a1 b0 b1`
    /// (allow-listed) and `out0` (not), all behind one IOMMU with dirty tracking and nesting.
    static func config(limits: String = "") -> String {
        """
        [daemon]
        socket_mode = "0666"
        log_level = "warning"

        [limits]
        \(limits)

        [policy]
        dirty_tracking = "off"

        [devices]
        allow = ["a0", "a1", "a2", "b0", "b1", "c0", "v0", "n0", "p0"]

        [[access]]
        user = 0
        role = "admin"
        trusted_vmm = true

        [[access]]
        user = \(TestUID.managerA)
        role = "manager"
        trusted_vmm = true

        [[access]]
        user = \(TestUID.managerB)
        role = "manager"
        trusted_vmm = true

        [[access]]
        user = \(TestUID.reader)
        role = "reader"

        [[access]]
        user = \(TestUID.untrustedManager)
        role = "manager"

        [sim]
        # sim.dma: a device writes guest memory (a method of its own, so it has its own row).
        test_hooks = true

        [[sim.iommu]]
        name = "nest0"
        dirty_tracking = true
        nesting = true

        # vIOMMUs: Intel VT-d (nest0) has none, an ARM SMMUv3 has.
        [[sim.iommu]]
        name = "smmu0"
        driver = "arm-smmuv3"
        nesting = true

        # Nested HWPTs: the kernel's selftest mock driver, the one the simulator nests.
        [[sim.iommu]]
        name = "mock0"
        driver = "selftest-mock"
        nesting = true

        [[sim.device]]
        name = "n0"
        iommu = "mock0"

        # PASID attachments: 20-bit PASIDs, like MOCK_FLAGS_DEVICE_PASID.
        [[sim.device]]
        name = "p0"
        iommu = "mock0"
        pasid_width = 20

        [[sim.device]]
        name = "a0"
        iommu = "nest0"
        [[sim.device]]
        name = "a1"
        iommu = "nest0"
        [[sim.device]]
        name = "a2"
        iommu = "nest0"
        [[sim.device]]
        name = "b0"
        iommu = "nest0"
        [[sim.device]]
        name = "b1"
        iommu = "nest0"
        [[sim.device]]
        name = "c0"
        iommu = "nest0"
        [[sim.device]]
        name = "v0"
        iommu = "smmu0"
        [[sim.device]]
        name = "out0"
        iommu = "nest0"
        pci_address = "0000:00:1f.0"
        """
    }

    /// The built `iommufdd` next to this test bundle (same build directory, whatever the
    /// scratch path), or `$IOMMUFDD_BINARY`.
    static var binaryPath: String {
        if let path = ProcessInfo.processInfo.environment["IOMMUFDD_BINARY"] { return path }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // An .xctest bundle directory on some toolchains: step out of it.
        while dir.path.contains(".xctest") { dir = dir.deletingLastPathComponent() }
        return dir.appendingPathComponent("iommufdd").path
    }

    init(config: String = DaemonUnderTest.config()) throws {
        // Other test uids must reach the socket inside.
        daemon = try LaunchedDaemon(
            binary: Self.binaryPath, directoryPrefix: "iommufdd-sec", directoryMode: 0o711, config: { _ in config })
        // A daemon that never serves fails within 20 s.
        do {
            try daemon.waitUntilServing(timeout: 20) { socketPath in
                guard let client = try? RPCClient(path: socketPath) else { return false }
                return (try? client.call("daemon.ping")) != nil
            }
        } catch {
            stopped = true
            throw DaemonTestError("\(error)")
        }
    }

    var log: String { daemon.log }

    /// A connection as root (admin in the test config).
    func connect() throws -> RPCClient { try RPCClient(path: socketPath) }

    /// A connection whose SO_PEERCRED says `uid` (gid = uid, no supplementary groups).
    ///
    /// The kernel records the peer credentials at `connect(2)`. So a child process is forked
    /// that drops to `uid` and connects a socket the parent created; the parent keeps the
    /// connected socket. The child runs only async-signal-safe syscalls on memory prepared
    /// before the fork, then `_exit`s.
    func connect(as uid: UInt32) throws -> RPCClient {
        if uid == 0 { return try connect() }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Errno.current }
        let address = UnsafeMutablePointer<sockaddr_un>.allocate(capacity: 1)
        defer { address.deallocate() }
        address.initialize(to: sockaddr_un())
        address.pointee.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.pointee.sun_path) { buffer in
            for (i, byte) in socketPath.utf8.prefix(buffer.count - 1).enumerated() { buffer[i] = byte }
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let child = fork()
        if child == 0 {
            // As root, setgid/setuid set the real, effective and saved ids.
            guard setgroups(0, nil) == 0, setgid(uid) == 0, setuid(uid) == 0 else { _exit(10) }
            let rc = address.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
            _exit(rc == 0 ? 0 : 11)
        }
        guard child > 0 else {
            let e = Errno.current
            close(fd)
            throw e
        }
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        let code = (status >> 8) & 0xff
        guard (status & 0x7f) == 0, code == 0 else {
            close(fd)
            throw DaemonTestError("connecting as uid \(uid) failed in the child (exit \(code): 10 = could not drop to the uid, 11 = connect failed)")
        }
        return RPCClient(adopting: fd)
    }

    /// The daemon's open fds and what each is (`readlink` of /proc/PID/fd/N: a path,
    /// `socket:[inode]`, `anon_inode:[eventfd]`...), for messages that say which fd differs.
    func openFDs() -> [Int: String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { return [:] }
        var fds: [Int: String] = [:]
        for name in names {
            guard let n = Int(name) else { continue }
            fds[n] = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(name)")) ?? "?"
        }
        return fds
    }

    /// What differs between two `openFDs()` listings, fd by fd ("+5 socket:[123]", "-7 ...").
    static func fdDifference(_ before: [Int: String], _ after: [Int: String]) -> String {
        var lines: [String] = []
        for (n, what) in before.sorted(by: { $0.key < $1.key }) where after[n] != what { lines.append("-\(n) \(what)") }
        for (n, what) in after.sorted(by: { $0.key < $1.key }) where before[n] != what { lines.append("+\(n) \(what)") }
        return lines.isEmpty ? "(same fds)" : lines.joined(separator: ", ")
    }

    /// The daemon's open fds that an fd-leak check counts: all of `openFDs()` but the ones
    /// `isTransientLookup` names (one listing, so a count and its table agree).
    func countedFDs() -> [Int: String] {
        openFDs().filter { !Self.isTransientLookup($0.value) }
    }

    /// A file the daemon's libraries open by path for a moment and close again, not something a
    /// client's request holds open: a regular file under /usr/share (Foundation reading
    /// /usr/share/zoneinfo/Etc/UTC for the local time zone once made a count one too high), or
    /// an fd that was gone before its link could be read ("?": nothing that leaked is gone).
    /// Sockets, pipes, anonymous inodes (eventfd, iommufd queues) and memfds are all counted.
    static func isTransientLookup(_ target: String) -> Bool {
        target == "?" || target.hasPrefix("/usr/share/")
    }

    /// The daemon's open fds (entries of /proc/PID/fd).
    func openFDCount() -> Int {
        guard let dir = opendir("/proc/\(pid)/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            // The name read in place (a copy of the 256-byte d_name would read past the record).
            let name = (UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \dirent.d_name)!).assumingMemoryBound(to: CChar.self)
            if strcmp(name, ".") != 0 && strcmp(name, "..") != 0 { count += 1 }
        }
        return count
    }

    /// SIGTERM and wait for the exit; the directory is removed. Returns the exit status: 0 for
    /// a clean stop (a sanitizer build of the daemon exits non-zero after a report; -1 when it
    /// had to be killed after 60 s), and keeps the log in `finalLog`.
    @discardableResult
    func stop() -> Int32 {
        guard !stopped else { return exitStatus }
        stopped = true
        exitStatus = daemon.stop() ?? -1
        finalLog = log
        daemon.directory.remove()
        return exitStatus
    }

    private(set) var exitStatus: Int32 = -1
    private(set) var finalLog = ""

    deinit { stop() }
}

struct DaemonTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What a call came back with, in the terms of the access checks.
enum Outcome: Hashable, CustomStringConvertible {
    case ok
    /// `iommufdd.PermissionDenied`.
    case denied
    /// `iommufdd.NotFound`: the object is not visible to this caller.
    case notFound
    case conflict
    /// Passed every access check, but the simulator cannot do it (`device.fd`: no cdev).
    case unsupported
    case invalidParams
    /// Another error: its name or code and message.
    case other(String)

    var description: String {
        switch self {
        case .ok: "ok"
        case .denied: "PermissionDenied"
        case .notFound: "NotFound"
        case .conflict: "Conflict"
        case .unsupported: "Unsupported"
        case .invalidParams: "InvalidParams"
        case .other(let s): s
        }
    }

    static func of(_ body: () throws -> Void) -> Outcome {
        do {
            try body()
            return .ok
        } catch let e as RPCError {
            switch e.name {
            case "iommufdd.PermissionDenied": return .denied
            case "iommufdd.NotFound": return .notFound
            case "iommufdd.Conflict": return .conflict
            case "iommufdd.Unsupported": return .unsupported
            default:
                if e.code == RPCError.Code.invalidParams { return .invalidParams }
                return .other("\(e.name ?? "code \(e.code)"): \(e.message)")
            }
        } catch {
            return .other("transport: \(error)")
        }
    }
}

extension RPCClient {
    /// Calls and closes any fds that came back.
    @discardableResult
    func value(_ method: String, _ params: JSONValue? = nil, fds: [Int32] = []) throws -> JSONValue {
        let (result, received) = try call(method, params: params, fds: fds, timeout: .seconds(30))
        for fd in received { Glibc.close(fd) }
        return result
    }
}

extension JSONValue {
    /// An integer member (an object ID) of a result, or a test failure.
    func id(_ key: String) throws -> Int64 {
        guard let v = self[key]?.int64Value else { throw DaemonTestError("no integer '\(key)' in \(self)") }
        return v
    }
}

extension JSONValue {
    static func id(_ v: Int64) -> JSONValue { .int(v) }
}
