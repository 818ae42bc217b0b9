import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC
import IommufdTestSupervisor

#if canImport(Glibc)
import Glibc
#endif

/// A restart of `iommufdd --backend kernel` on the real kernel, under `Supervisor` (systemd's
/// side of the fd-store protocol; the guest has no systemd): the daemon builds a VM's worth of state — an owner, an IOAS
/// with a memfd mapping and an edu device on it, a second IOAS with a dirty-tracked mock device
/// and a page it dirtied — is killed with SIGKILL, and comes back over the fds the supervisor
/// kept (the iommufd, the device cdevs, the memfds, the journal) with every object under the same
/// ID, the dirty bit still set, and the edu device still DMAing into the memfd: the kernel
/// objects lived on while no daemon ran.
final class RestartChecks {
    let run: CheckRunner
    let supervisor: Supervisor
    var client: DaemonClient?

    static let owner = "vm-restart"
    static let mib = DaemonChecks.mib
    static let page = DaemonChecks.page

    /// The state built before the kill.
    let state = VMState(owner: RestartChecks.owner)

    init(run: CheckRunner, supervisor: Supervisor) {
        self.run = run
        self.supervisor = supervisor
    }

    static func runAll(run: CheckRunner) -> Bool {
        let directory = FileManager.default.currentDirectoryPath
        let configPath = directory + "/iommufdd.toml"
        let supervisor: Supervisor
        do {
            let controlPath = directory + "/control.sock"
            try DaemonProcess.config(socketPath: controlPath).write(toFile: configPath, atomically: true, encoding: .utf8)
            supervisor = try Supervisor(
                daemonPath: DaemonProcess.executablePath(), arguments: ["--config", configPath, "--backend", "kernel"],
                directory: directory, logPath: directory + "/iommufdd.log")
        } catch {
            print("FAIL  \(run.suite): cannot set up the supervisor: \(error)")
            return false
        }
        let checks = RestartChecks(run: run, supervisor: supervisor)
        checks.runChecks()
        print("--- iommufdd log (both lives)")
        print(supervisor.logTail(lines: 400))
        print("---")
        supervisor.shutdown()
        return true
    }

    func connected() throws -> DaemonClient {
        guard let client else { throw CheckFailure(description: "no connection to the daemon (an earlier check failed)") }
        return client
    }

    func runChecks() {
        run.check("start-under-supervisor") { try startFirst() }
        run.check("dmabuf-mapping-before-kill") { try dmabufBeforeKill() }  // p2p
        run.check("build-state") { try buildState() }
        run.check("fault-queue-before-kill") { try queueBeforeKill() }  // queues
        run.check("pasid-before-kill") { try pasidBeforeKill() }  // pasid
        run.check("hwqueue-before-kill") { try hwQueueBeforeKill() }  // hwqueue3
        run.check("nested-veventq-before-kill") { try nestedBeforeKill() }  // i14audit
        run.check("sigkill-fds-stay-in-store") { try killAndInspectStore() }
        run.check("dma-while-daemon-dead") { try dmaWhileDead() }
        run.check("restart-ready") { try restart() }
        run.check("same-objects-same-ids") { try state.expectSameObjects(try connected()) }
        run.check("dirty-bitmap-survives") { try state.expectDirtyBitmapSame(try connected()) }
        run.check("recovery-clean") { try recoveryClean() }
        run.check("fault-queue-after-restart") { try queueAfterRestart() }  // queues
        run.check("pasid-after-restart") { try pasidAfterRestart() }  // pasid
        run.check("hwqueue-after-restart") { try hwQueueAfterRestart() }  // hwqueue3
        run.check("nested-veventq-after-restart") { try nestedAfterRestart() }  // i14audit
        run.check("dma-after-restart") { try dmaAfterRestart() }
        run.check("dmabuf-mapping-after-restart") { try dmabufAfterRestart() }  // p2p
        run.check("owner-release") { try ownerRelease() }
        run.check("nothing-left-for-the-next-owner") { try nothingLeft() }
        run.check("stop-on-sigterm") {
            client?.rpc.close()
            client = nil
            let status = supervisor.stop()
            try expect(status == 0, "iommufdd exited with \(status.map(String.init) ?? "a signal or SIGKILL after 30 s") on SIGTERM, not 0")
        }
        state.closeVMMDevice()
    }

    // MARK: Before the kill

    func startDaemon() throws {
        let (pid, names) = try supervisor.start()
        print("      started \(supervisor.daemonPath) \(supervisor.arguments.joined(separator: " ")) as pid \(pid) with LISTEN_FDNAMES=\(names.joined(separator: ":"))")
    }

    func startFirst() throws {
        try startDaemon()
        try supervisor.waitReady(count: 1)
        client = try DaemonClient(path: supervisor.controlPath)
        let (info, _) = try connected().json("daemon.info")
        try expect(info["backend"]?.stringValue == "kernel", "backend \(info["backend"] ?? nil)")
        try expect(info["restart_keeps_objects"] == .bool(true), "restart_keeps_objects \(info["restart_keeps_objects"] ?? nil) under a supervisor with an fd store; warnings \(info["warnings"] ?? nil)")
        print("      fd store: \(info["fd_store"] ?? nil); stored \(supervisor.storedNames)")
        try expect(supervisor.storedNames.contains("iommufd"), "the daemon did not store its iommufd: \(supervisor.storedNames)")
    }

    func buildState() throws {
        try state.build(try connected())
    }

    // MARK: The kill

    func killAndInspectStore() throws {
        client?.rpc.close()
        client = nil
        let pid = supervisor.daemonPID
        supervisor.kill9()
        try expect(kill(pid, 0) != 0, "iommufdd pid \(pid) still exists after SIGKILL")
        let names = supervisor.storedNames
        print("      killed pid \(pid); the store holds \(names)")
        try expect(names.contains("iommufd"), "no iommufd in the store: \(names)")
        try expect(names.contains { $0.hasPrefix("device.") }, "no device fd in the store: \(names)")
        try expect(names.contains { $0.hasPrefix("mem.") }, "no memory file in the store: \(names)")
        try expect(names.contains { $0.hasPrefix("journal.") }, "no journal in the store: \(names)")
    }

    /// No daemon runs, but the iommufd is open in the supervisor: the mapping is still there.
    func dmaWhileDead() throws {
        let (edu, memory) = try state.vmmEdu()
        try DaemonChecks.expectRoundTrip(edu, memory, iova: DaemonChecks.iova, seed: 0x62)
    }

    // MARK: After the restart

    func restart() throws {
        let start = Date()
        try startDaemon()
        try supervisor.waitReady(count: 2)
        print("      READY=1 after \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        client = try DaemonClient(path: supervisor.controlPath)
    }

    func recoveryClean() throws {
        let (info, _) = try connected().json("daemon.info")
        print("      recovery: \(info["recovery"] ?? nil)")
        try expect(info["restart_keeps_objects"] == .bool(true), "restart_keeps_objects \(info["restart_keeps_objects"] ?? nil)")
        try expect(info["recovery"]?["restarted"] == .bool(true), "recovery.restarted \(info["recovery"]?["restarted"] ?? nil)")
        let problems = info["recovery"]?["journal"]?["problems"]?.arrayValue ?? []
        try expect(problems.isEmpty, "journal problems: \(problems)")
        let backend = info["recovery"]?["backend_problems"]?.arrayValue ?? []
        try expect(backend.isEmpty, "backend problems: \(backend)")
    }

    /// The VMM's device fd from before the kill, and one the new daemon hands out, both DMA
    /// into the memfd through the surviving mapping; unmapped through the new daemon, blocked.
    func dmaAfterRestart() throws {
        let (vmmEdu, memory) = try state.vmmEdu()
        let c = try connected()
        try DaemonChecks.expectRoundTrip(vmmEdu, memory, iova: DaemonChecks.iova, seed: 0x63)
        let (_, fd) = try c.deviceFD("vfio0")
        defer { close(fd) }
        let edu = try EduDevice(fd: fd)
        try DaemonChecks.expectRoundTrip(edu, memory, iova: DaemonChecks.iova, seed: 0x64)
        let unmapped: IOASUnmapResult = try c.call("ioas.unmap", IOASUnmapParams(ioas: state.ioas, iova: DaemonChecks.iova, length: Self.mib))
        try expect(unmapped.unmappedBytes == Self.mib, "unmap of the mapping from before the restart: \(unmapped)")
        try DaemonChecks.expectBlocked(edu, memory, iova: DaemonChecks.iova, offset: 0x2000)
    }

    /// Whatever owner.release left (a device the restarted daemon could not take back), freed
    /// the way recovery's report says — device.detach, device.release, then owner.release — so the kernel is
    /// clean for the next owner: every device binds and attaches again.
    func nothingLeft() throws {
        let c = try connected()
        let owners: OwnerListResult = try c.call("owner.list", NoParams())
        if owners.owners.contains(where: { $0.name == Self.owner }) {
            for method in ["device.detach", "device.release"] {
                do {
                    let (result, _) = try c.json(method, try JSONValueEncoder().encode(DeviceNameParams(device: "mock0")))
                    print("      \(method) mock0: \(result)")
                } catch {
                    print("      \(method) mock0: \(error)")
                }
            }
            try c.release(Self.owner)
        }
        defer { _ = try? c.release("vm-next") }
        _ = try c.call("owner.create", OwnerCreateParams(name: "vm-next"), as: OwnerInfo.self)
        let next: IOASCreateResult = try c.call("ioas.create", IOASCreateParams(owner: "vm-next"))
        for device in ["vfio0", "mock0"] {
            _ = try c.call("device.attach", DeviceAttachParams(owner: "vm-next", device: device, ioas: next.ioas), as: DeviceAttachResult.self)
        }
    }

    func ownerRelease() throws {
        state.closeVMMDevice()
        let c = try connected()
        try c.release(Self.owner)
        let (info, _) = try c.json("daemon.info")
        for key in ["owners", "ioas", "hwpts", "mappings", "devices_leased", "devices_attached"] {
            try expect(info["counts"]?[key]?.int64Value == 0, "after owner.release, \(key) = \(info["counts"]?[key] ?? nil)")
        }
        // FDSTOREREMOVE datagrams reach the supervisor's thread after the answer: wait for them.
        _ = supervisor.waitForStore { names in !names.contains { $0.hasPrefix("mem.") || $0.hasPrefix("device.") } }
        let leftovers = supervisor.storedNames.filter { $0.hasPrefix("mem.") || $0.hasPrefix("device.") }
        try expect(leftovers.isEmpty, "fds left in the store 30 s after owner.release: \(leftovers)")
    }
}
