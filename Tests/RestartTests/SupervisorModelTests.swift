import CIommufd
import Foundation
import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdRPC
import IommufdTestSupervisor
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The test supervisor behaves as the real systemd was seen to (systemd 252 as PID 1 of the test
/// VM, `vm-e2e systemd`), for the units as scripts/install-units installs them: a restart keeps
/// the fd store, a stop closes it below 254 (no FileDescriptorStorePreserve=) and keeps it from
/// 254 on, and an fd that systemd's same_fd() takes for a stored one is not stored twice.
@Suite("The test supervisor models systemd", .serialized)
struct SupervisorModelTests {
    static func simConfig() throws -> String {
        let config = NSTemporaryDirectory() + "iommufdd-supervisor-model-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).toml"
        try "[daemon]\nbackend = \"sim\"\nlog_level = \"warning\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        return config
    }

    /// Creates an owner with an IOAS; `restart()` keeps it; `stop()` + `start()` keeps it only
    /// when the units preserve the store.
    @Test("systemctl restart keeps the store; stop closes it below 254 and keeps it from 254", arguments: [252, 254])
    func restartAndStop(systemdVersion: Int) throws {
        let config = try Self.simConfig()
        defer { try? FileManager.default.removeItem(atPath: config) }
        let sup = try Supervisor(daemonPath: try daemonBinary(), arguments: ["--config", config], systemdVersion: systemdVersion)
        defer { sup.shutdown() }
        try sup.start()
        try sup.waitReady(count: 1)
        var c = try Client(path: sup.controlPath)
        let info = try c.raw("daemon.info", NoParams())
        #expect(info["restart_keeps_objects"] == .bool(true), "systemd \(systemdVersion): \(info["warnings"] ?? .null)")
        _ = try c.call("owner.create", OwnerCreateParams(name: "vm1"), as: OwnerInfo.self)
        let ioas = try c.call("ioas.create", IOASCreateParams(owner: "vm1"), as: IOASCreateResult.self).ioas
        c.rpc.close()

        let restarted = try sup.restart()
        #expect(restarted.status == 0, "exit status on SIGTERM")
        try sup.waitReady(count: 2)
        c = try Client(path: sup.controlPath)
        let afterRestart = try c.call("ioas.list", IOASListParams(), as: IOASListResult.self)
        #expect(afterRestart.ioas.map(\.ioas) == [ioas], "systemd \(systemdVersion): after restart \(afterRestart)")
        c.rpc.close()

        #expect(sup.stop() == 0)
        #expect(sup.storedNames.isEmpty == !sup.preservesStoreOnStop, "systemd \(systemdVersion): stored after stop \(sup.storedNames)")
        try sup.start()
        try sup.waitReady(count: 3)
        c = try Client(path: sup.controlPath)
        defer { c.rpc.close() }
        let owners = try c.call("owner.list", NoParams(), as: OwnerListResult.self)
        let recovered = try c.raw("daemon.info", NoParams())["recovery"]?["restarted"]
        if systemdVersion >= 254 {
            #expect(owners.owners.map(\.name) == ["vm1"], "systemd \(systemdVersion) preserves the store across a stop: \(owners)")
            #expect(recovered == .bool(true))
        } else {
            #expect(owners.owners.isEmpty, "systemd \(systemdVersion) closes the store on stop: \(owners)")
            #expect(recovered == .bool(false))
        }
    }

    /// FDSTORE=1 with an fd that is the same open file as a stored one (a dup) adds nothing; the
    /// same file opened again with the same flags is another open file, which systemd 257 tells
    /// apart (F_DUPFD_QUERY) and systemd 252 without kcmp does not (same inode, same flags:
    /// SystemdSameFD).
    @Test(arguments: [252, 257])
    func sameOpenFileIsStoredOnce(systemdVersion: Int) throws {
        let sup = try Supervisor(daemonPath: "/bin/false", arguments: [], systemdVersion: systemdVersion, kernel: .withoutKcmp)
        defer { sup.shutdown() }
        let sock = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(sock >= 0)
        defer { close(sock) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in sup.notifyPath.utf8.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(sock, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(rc == 0, "connect to \(sup.notifyPath): errno \(errno)")
        func store(_ fd: Int32, _ name: String) {
            let message = Array("FDSTORE=1\nFDNAME=\(name)\nFDPOLL=0".utf8)
            var fds = [fd]
            _ = ciommufd_send_with_fds(sock, message, message.count, &fds, 1, 0)
        }
        let path = NSTemporaryDirectory() + "supervisor-same-fd-\(getpid())"
        FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
        defer { unlink(path) }
        let first = open(path, O_RDONLY | O_CLOEXEC)
        let other = open(path, O_RDONLY | O_CLOEXEC)
        let dup = fcntl(first, F_DUPFD_CLOEXEC, 0)
        defer { close(first); close(other); close(dup) }
        store(first, "a")
        store(dup, "b")
        store(first, "c")
        store(other, "d")
        let marker = ifd_eventfd()
        defer { close(marker) }
        store(marker, "e")
        #expect(sup.waitForStore(timeout: 10) { $0.contains("e") }, "the store: \(sup.storedNames)")
        #expect(sup.storedNames == (systemdVersion >= 257 ? ["a", "d", "e"] : ["a", "e"]), "systemd \(systemdVersion) without kcmp")
    }
}
