import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC

#if canImport(Glibc)
import Glibc
#endif

/// `vm-e2e qemu-guest`: a real VMM on the daemon. QEMU built with the patch series of
/// integrations/qemu (scripts/build-qemu) runs a bare-metal guest (integrations/qemu/guest)
/// with the edu device passed through, its DMA going through mappings the daemon made.
///
/// This harness plays libvirt over JSON-RPC: the owner, its IOAS, the edu device leased and
/// attached, a delegated channel, and QEMU started with the channel inherited (its number on
/// QEMU's command line, `-object iommufdd,channel-fd=N,ioas=ID`). QEMU maps guest RAM over the
/// channel by memfd and offset and takes the device fd over it (`-device
/// vfio-pci,iommufdd=d0,iommufdd-device=vfio0`); it never holds the iommufd. Checked: QEMU
/// refuses guest RAM that is not memfd-backed, with a message that says what to use; with
/// memfd RAM, the IOAS holds the guest's RAM and nothing else while the guest is paused; the
/// guest's DMA lands (its own check, on the serial port and isa-debug-exit); after QEMU
/// exits, owner.release leaves nothing and the device can be leased again.
enum QEMUGuestChecks {
    static let owner = "vm-qemu"
    static let device = "vfio0"
    static let ramBytes: UInt64 = 64 << 20
    /// The pc machine's RAM with 64 MiB: everything in [0, 64 MiB) but the windows the first MiB
    /// gives to ROMs (which of 0xa0000-0xfffff is RAM depends on the PAM and SMRAM state); at
    /// least 0-640 KiB and 1 MiB to the end are RAM.
    static let ramLayout: [(UInt64, UInt64)] = [(0, 0xa0000), (0x100000, 64 << 20)]
    /// isa-debug-exit statuses of the guest: (0x10 << 1) | 1 and (0x11 << 1) | 1.
    static let guestPassed: Int32 = 33
    static let guestFailed: Int32 = 35

    static func besideMe(_ name: String, env: String) -> String {
        if let path = ProcessInfo.processInfo.environment[env], !path.isEmpty { return path }
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return ((me as NSString).deletingLastPathComponent as NSString).appendingPathComponent(name)
    }

    static var qemuPath: String { besideMe("qemu-system-x86_64", env: "QEMU") }
    static var guestPath: String { besideMe("edu-dma-guest.bin", env: "QEMU_GUEST") }

    static func runAll(run: CheckRunner) -> Bool {
        DaemonProcess.withDaemon(run: run) { _, client, directory in
            var ioas: ObjectID = 0
            run.check("lease") {
                _ = try client.call("owner.create", OwnerCreateParams(name: owner), as: OwnerInfo.self)
                ioas = try client.call("ioas.create", IOASCreateParams(owner: owner), as: IOASCreateResult.self).ioas
                let attached: DeviceAttachResult = try client.call("device.attach", DeviceAttachParams(owner: owner, device: device, ioas: ioas))
                print("      owner \(owner): IOAS \(ioas), \(device) attached (device ID \(attached.deviceID))")
            }
            run.check("refuses-anonymous-ram") { try refusesAnonymousRAM(client: client, ioas: ioas, directory: directory) }
            run.check("guest-dma") { try guestDMA(client: client, ioas: ioas, directory: directory) }
            run.check("released-and-leased-again") { try releasedAndLeasedAgain(client: client) }
            _ = try? client.release(owner)
        }
    }

    /// A channel for one QEMU run (the caller closes it).
    static func delegate(_ client: DaemonClient) throws -> Int32 {
        let (result, fds) = try client.json("owner.delegate", ["name": .string(owner)])
        guard fds.count == 1 else {
            for fd in fds { close(fd) }
            throw CheckFailure(description: "owner.delegate answered \(result) with \(fds.count) fds, not 1")
        }
        return fds[0]
    }

    static func qemuArguments(channel: Int32, ioas: ObjectID, directory: String, memfdRAM: Bool) -> [String] {
        var machine = "pc"
        var ram: [String] = []
        if memfdRAM {
            machine += ",memory-backend=mem0"
            ram = ["-object", "memory-backend-memfd,id=mem0,size=\(ramBytes >> 20)M,share=on"]
        }
        return ["-machine", machine, "-accel", "tcg", "-m", "\(ramBytes >> 20)M"] + ram + [
            "-nodefaults", "-display", "none", "-no-reboot",
            "-bios", guestPath,
            "-serial", "file:\(directory)/guest-serial.log",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-object", "iommufdd,id=d0,channel-fd=\(channel),ioas=\(ioas)",
            "-device", "vfio-pci,iommufdd=d0,iommufdd-device=\(device),addr=04.0",
            "-S", "-monitor", "unix:\(directory)/qemu-monitor.sock,server=on,wait=off",
        ]
    }

    static func refusesAnonymousRAM(client: DaemonClient, ioas: ObjectID, directory: String) throws {
        let channel = try delegate(client)
        defer { close(channel) }
        let log = directory + "/qemu-anonymous-ram.log"
        let qemu = try QEMUProcess(qemuPath, qemuArguments(channel: channel, ioas: ioas, directory: directory, memfdRAM: false),
                                   inherit: [channel], log: log)
        let status = qemu.wait(seconds: 120)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        print(output.split(separator: "\n").map { "  qemu| " + $0 }.joined(separator: "\n"))
        try expect(status != nil && status != 0 && status != guestPassed, "QEMU with anonymous guest RAM exited with \(status.map(String.init) ?? "nothing (killed after 120 s)"), not an error")
        try expect(output.contains("not backed by a file descriptor") && output.contains("memory-backend-memfd"),
                   "QEMU's error does not say that guest RAM must be memory-backend-memfd,share=on")
        let info: IOASInfo = try client.call("ioas.info", IOASInfoParams(ioas: ioas))
        try expect(info.mappingCount == 0, "IOAS \(ioas) keeps \(info.mappingCount) mappings after the refused start")
    }

    static func guestDMA(client: DaemonClient, ioas: ObjectID, directory: String) throws {
        let channel = try delegate(client)
        defer { close(channel) }
        let log = directory + "/qemu.log"
        let serial = directory + "/guest-serial.log"
        unlink(directory + "/qemu-monitor.sock")
        let started = Date()
        let qemu = try QEMUProcess(qemuPath, qemuArguments(channel: channel, ioas: ioas, directory: directory, memfdRAM: true),
                                   inherit: [channel], log: log)
        var status: Int32?
        defer {
            if status == nil { qemu.kill() }
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if !output.isEmpty { print(output.split(separator: "\n").map { "  qemu| " + $0 }.joined(separator: "\n")) }
            let guest = (try? String(contentsOfFile: serial, encoding: .utf8)) ?? ""
            print(guest.split(separator: "\n").map { "  guest| " + $0 }.joined(separator: "\n"))
        }

        // -S: QEMU answers its monitor once the machine is built (devices realized, guest RAM
        // mapped) and the guest has not run an instruction.
        let monitor = try HMP(path: directory + "/qemu-monitor.sock", seconds: 120, alive: { qemu.running })
        defer { monitor.close() }
        let state = try monitor.command("info status")
        try expect(state.contains("paused"), "QEMU is not paused before the guest runs: \(state)")
        let ready = Date().timeIntervalSince(started)

        // What the daemon reports for the owner: its IOAS holds the guest's RAM, nothing else.
        let info: IOASInfo = try client.call("ioas.info", IOASInfoParams(ioas: ioas))
        for m in info.mappings {
            print("      mapping iova 0x\(String(m.iova, radix: 16)) +0x\(String(m.length, radix: 16)) \(m.readable ? "r" : "-")\(m.writeable ? "w" : "-") \(m.source)")
        }
        print("      IOAS \(ioas): \(info.mappingCount) mappings, \(info.pinnedBytes) bytes pinned, devices \(info.devices)")
        try expect(info.mappings.count == info.mappingCount, "ioas.info listed \(info.mappings.count) of \(info.mappingCount) mappings")
        try expect(info.mappings.allSatisfy { $0.source == "file" && $0.readable && $0.writeable },
                   "a mapping is not a read-write mapping of guest RAM's memfd (IOMMU_IOAS_MAP_FILE)")
        let covered = merge(info.mappings.map { ($0.iova, $0.iova + $0.length) })
        let text = { (r: [(UInt64, UInt64)]) in r.map { "[0x\(String($0.0, radix: 16)), 0x\(String($0.1, radix: 16)))" }.joined(separator: " ") }
        print("      mapped: \(text(covered)); guest RAM: [0x0, 0x\(String(ramBytes, radix: 16))), at least \(text(ramLayout))")
        try expect(covered.allSatisfy { $0.1 <= ramBytes }, "the IOAS maps \(text(covered)), beyond the guest's \(ramBytes >> 20) MiB of RAM")
        try expect(ramLayout.allSatisfy { r in covered.contains { $0.0 <= r.0 && r.1 <= $0.1 } },
                   "the IOAS maps \(text(covered)), which leaves out guest RAM of \(text(ramLayout))")
        let mapped = info.mappings.reduce(0) { $0 + $1.length }
        try expect(info.pinnedBytes == mapped, "\(info.pinnedBytes) bytes pinned for IOAS \(ioas), not the \(mapped) mapped")
        try expect(info.devices == [device], "IOAS \(ioas) has devices \(info.devices), not [\(device)]")

        _ = try monitor.command("cont")
        let resumed = Date()
        status = qemu.wait(seconds: 300)
        let guestSeconds = Date().timeIntervalSince(resumed)
        print(String(format: "      QEMU: machine built and RAM mapped in %.1f s; the guest ran %.1f s; %.1f s in all",
                     ready, guestSeconds, Date().timeIntervalSince(started)))
        let guest = (try? String(contentsOfFile: serial, encoding: .utf8)) ?? ""
        try expect(status != nil, "QEMU did not exit within 300 s of the guest's start (killed)")
        try expect(status == guestPassed, "QEMU exited with \(status!) (the guest passes with \(guestPassed), fails with \(guestFailed))")
        try expect(guest.contains("edu-dma-guest: PASS") && guest.contains("landed and match"), "the guest did not report its DMA on the serial port")
    }

    static func releasedAndLeasedAgain(client: DaemonClient) throws {
        // QEMU has exited: the device is still the owner's (the manager detaches, not QEMU).
        let before: DeviceInfo = try client.call("device.info", DeviceInfoParams(device: device))
        try expect(before.owner == owner, "\(device) belongs to \(before.owner ?? "nobody") after QEMU exited, not \(owner)")
        let released = try client.release(owner)
        print("      owner.release \(owner): destroyed \(released.destroyed), refunded \(released.refundedBytes) bytes")
        let owners: OwnerListResult = try client.call("owner.list", NoParams())
        try expect(!owners.owners.contains { $0.name == owner }, "\(owner) is still listed after owner.release")
        let after: DeviceInfo = try client.call("device.info", DeviceInfoParams(device: device))
        try expect(after.owner == nil && after.ioas == nil, "\(device) after owner.release: owner \(after.owner ?? "none"), IOAS \(after.ioas.map(String.init) ?? "none")")

        let next = owner + "-next"
        defer { _ = try? client.release(next) }
        _ = try client.call("owner.create", OwnerCreateParams(name: next), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: next))
        let attached: DeviceAttachResult = try client.call("device.attach", DeviceAttachParams(owner: next, device: device, ioas: ioas.ioas))
        try expect(attached.ioas == ioas.ioas, "\(device) leased again to \(next) but attached to IOAS \(attached.ioas), not \(ioas.ioas)")
        print("      \(device) leased again: owner \(next), IOAS \(ioas.ioas)")
        try client.release(next)
    }

    /// Sorted, adjacent ranges joined.
    static func merge(_ ranges: [(UInt64, UInt64)]) -> [(UInt64, UInt64)] {
        var out: [(UInt64, UInt64)] = []
        for r in ranges.sorted(by: { $0.0 < $1.0 }) {
            if let last = out.last, r.0 <= last.1 {
                out[out.count - 1].1 = max(last.1, r.1)
            } else {
                out.append(r)
            }
        }
        return out
    }
}

/// QEMU as a child: the fds of `inherit` open in it at the same numbers, stdout and stderr to
/// `log`.
final class QEMUProcess {
    let pid: pid_t
    private(set) var status: Int32?

    init(_ path: String, _ arguments: [String], inherit: [Int32], log: String) throws {
        let out = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard out >= 0 else { throw IommuError(.current, "open", detail: log) }
        defer { close(out) }
        for fd in inherit { _ = fcntl(fd, F_SETFD, 0) }
        defer { for fd in inherit { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out, 1)
        posix_spawn_file_actions_adddup2(&actions, out, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        print("      $ \(([path] + arguments).joined(separator: " "))")
        fflush(nil)
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard rc == 0 else { throw IommuError(Errno(rc), "posix_spawn", detail: path) }
        self.pid = pid
    }

    var running: Bool { reap(WNOHANG) == nil }

    /// The exit status (128 + signal when killed), or nil while it runs.
    @discardableResult
    private func reap(_ flags: Int32) -> Int32? {
        if let status { return status }
        var raw: Int32 = 0
        var got: pid_t
        repeat { got = waitpid(pid, &raw, flags) } while got < 0 && errno == EINTR
        guard got == pid else { return nil }
        status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        return status
    }

    /// Waits up to `seconds` for QEMU to exit: its status, or nil (still running).
    func wait(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let s = reap(WNOHANG) { return s }
            usleep(50_000)
        }
        return reap(WNOHANG)
    }

    func kill() {
        guard status == nil else { return }
        _ = Glibc.kill(pid, SIGKILL)
        reap(0)
    }
}

/// QEMU's human monitor on a Unix socket: one command at a time, its answer up to the prompt.
final class HMP {
    private let fd: Int32
    private static let prompt = "(qemu) "

    init(path: String, seconds: Double, alive: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        var connected: Int32 = -1
        while connected < 0 {
            guard alive() else { throw CheckFailure(description: "QEMU exited before its monitor answered (see its log)") }
            guard Date() < deadline else { throw CheckFailure(description: "QEMU's monitor \(path) did not answer within \(Int(seconds)) s") }
            let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard s >= 0 else { throw IommuError(.current, "socket", detail: path) }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                let bytes = Array(path.utf8.prefix(raw.count - 1))
                raw.copyBytes(from: bytes + [0])
            }
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if rc == 0 { connected = s } else { _ = Glibc.close(s); usleep(100_000) }
        }
        fd = connected
        var tv = timeval(tv_sec: 120, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = try readToPrompt()  // the banner
    }

    private func readToPrompt() throws -> String {
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !text.hasSuffix(Self.prompt) {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw CheckFailure(description: "QEMU's monitor closed or timed out; so far: \(text)") }
            text += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        return text
    }

    func command(_ line: String) throws -> String {
        let bytes = Array((line + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw IommuError(.current, "write", detail: "QEMU monitor") }
        return try readToPrompt()
    }

    func close() { _ = Glibc.close(fd) }
}
