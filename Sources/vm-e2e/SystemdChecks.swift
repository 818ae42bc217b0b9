import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC

#if canImport(Glibc)
import Glibc
#endif

/// iommufdd installed by scripts/install and run by the real systemd (Debian's, as PID 1 of the
/// guest's second boot), driven only with systemctl: socket activation on the first connection;
/// Type=notify readiness and STATUS=; systemctl reload; the watchdog killing and restarting a
/// stalled daemon; systemctl restart and systemctl kill -s KILL while the edu device DMAs through
/// a daemon mapping (every object back under the same ID, no round trip lost); and what a stop
/// then start keeps on this systemd.
final class SystemdChecks {
    let run: CheckRunner
    let state = VMState(owner: "vm-systemd")
    var client: DaemonClient?
    var version = 0

    static let service = "iommufdd.service"
    static let socketUnit = "iommufdd.socket"
    static let socketPath = "/run/iommufdd/control.sock"
    static let configPath = "/etc/iommufdd/iommufdd.toml"
    static let prefix = "/usr/local"

    init(run: CheckRunner) {
        self.run = run
    }

    static func runAll(run: CheckRunner) -> Bool {
        let checks = SystemdChecks(run: run)
        checks.runChecks()
        print("--- journalctl -u iommufdd.service -u iommufdd.socket (this boot)")
        if let log = try? checks.command("/usr/bin/journalctl", ["-b", "--no-pager", "-o", "short-monotonic", "-u", service, "-u", socketUnit]) {
            print(log.output.split(separator: "\n").suffix(300).joined(separator: "\n"))
        }
        print("---")
        return true
    }

    func runChecks() {
        run.check("installed-for-this-systemd") { try installed() }
        run.check("socket-activation") { try socketActivation() }
        run.check("notify-ready-status") { try notifyReadyStatus() }
        run.check("two-queues-of-one-owner") { try twoQueuesBeforeRestarts() }
        run.check("build-state") { try state.build(try connected()) }
        run.check("fd-store-filled") { try fdStoreFilled() }
        run.check("reload") { try reload() }
        run.check("restart-while-dma") { try restartWhileDMA() }
        run.check("kill-9-while-dma") { try killWhileDMA() }
        run.check("two-queues-after-restarts") { try twoQueuesAfterRestarts() }
        run.check("watchdog-restarts-stalled-daemon") { try watchdog() }
        run.check("stop-then-start") { try stopThenStart() }
        run.check("stop") {
            client?.rpc.close()
            client = nil
            _ = try systemctl(["stop", Self.service, Self.socketUnit])
            try expect(try show(Self.socketUnit, ["ActiveState"])["ActiveState"] == "inactive", "the socket unit did not stop")
            try expect(!FileManager.default.fileExists(atPath: Self.socketPath), "\(Self.socketPath) remains after the socket unit stopped (RemoveOnStop=yes)")
        }
    }

    func connected() throws -> DaemonClient {
        guard let client else { throw CheckFailure(description: "no connection to the daemon (an earlier check failed)") }
        return client
    }

    // MARK: systemctl

    func command(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let error = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output, error)
    }

    /// `systemctl ARGS`, which must succeed.
    @discardableResult
    func systemctl(_ arguments: [String]) throws -> String {
        let r = try command("/usr/bin/systemctl", arguments)
        print("      systemctl \(arguments.joined(separator: " ")) -> \(r.status)")
        try expect(r.status == 0, "systemctl \(arguments.joined(separator: " ")) exited \(r.status): \(r.error)\(r.output)")
        return r.output
    }

    func show(_ unit: String, _ properties: [String]) throws -> [String: String] {
        let r = try command("/usr/bin/systemctl", ["show", unit] + properties.flatMap { ["-p", $0] })
        try expect(r.status == 0, "systemctl show \(unit): \(r.error)")
        var out: [String: String] = [:]
        for line in r.output.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            out[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return out
    }

    func mainPID() throws -> Int32 { Int32(try show(Self.service, ["MainPID"])["MainPID"] ?? "") ?? 0 }
    func restarts() throws -> Int { Int(try show(Self.service, ["NRestarts"])["NRestarts"] ?? "") ?? -1 }

    /// Polls until the service runs a main process other than `old` and is active (the waits
    /// here are for systemd's work, not assertions on how long it takes).
    func waitForNewMainPID(other old: Int32, seconds: Double) throws -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: String] = [:]
        while Date() < deadline {
            last = try show(Self.service, ["ActiveState", "SubState", "MainPID"])
            if last["ActiveState"] == "active", let pid = Int32(last["MainPID"] ?? ""), pid != 0, pid != old { return pid }
            usleep(200_000)
        }
        throw CheckFailure(description: "iommufdd.service did not come back with a new main process within \(Int(seconds)) s: \(last)")
    }

    /// Polls until the service reaches `final`, failing if it shows a state not in `passing`.
    func waitForState(_ passing: Set<String>, final: String, seconds: Double = 60) throws -> [String: String] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: String] = [:]
        while Date() < deadline {
            last = try show(Self.service, ["ActiveState", "SubState", "MainPID", "TriggeredBy"])
            let state = last["ActiveState"] ?? ""
            if state == final { return last }
            try expect(passing.contains(state), "iommufdd.service went \(state) on its way to \(final): \(last)")
            usleep(100_000)
        }
        throw CheckFailure(description: "iommufdd.service did not become \(final) within \(Int(seconds)) s: \(last)")
    }

    func reconnect() throws {
        client?.rpc.close()
        client = try DaemonClient(path: Self.socketPath)
    }

    static func config(tolerateMissing: Bool) -> String {
        DaemonProcess.config(socketPath: socketPath) + "\n[policy]\nunmap_tolerate_missing = \(tolerateMissing)\n"
    }

    // MARK: the checks

    /// scripts/install put the units for this systemd in place: no FileDescriptorStorePreserve=
    /// before 254, the $FDSTORE drop-in instead; systemd reads both.
    func installed() throws {
        let text = try systemctl(["--version"])
        version = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        print("      \(text.split(separator: "\n").first ?? "")")
        try expect(version > 0, "cannot read the systemd version from: \(text)")
        let unitDir = Self.prefix + "/lib/systemd/system"
        for file in ["/bin/iommufdd", "/bin/iommuctl", "/lib/systemd/system/iommufdd.service", "/lib/systemd/system/iommufdd.socket", "/share/man/man8/iommufdd.8", "/share/iommufdd/install-manifest"] {
            try expect(FileManager.default.fileExists(atPath: Self.prefix + file), "scripts/install did not install \(Self.prefix + file)")
        }
        let preserve = FileManager.default.fileExists(atPath: unitDir + "/iommufdd.service.d/fdstore-preserve.conf")
        let variable = FileManager.default.fileExists(atPath: unitDir + "/iommufdd.service.d/fdstore-variable.conf")
        try expect(preserve == (version >= 254) && variable == (version < 254), "systemd \(version): fdstore-preserve.conf \(preserve), fdstore-variable.conf \(variable)")
        let props = try show(Self.service, ["FragmentPath", "DropInPaths", "Environment", "FileDescriptorStoreMax", "Type", "NotifyAccess", "WatchdogUSec", "Restart", "LoadState"])
        for (k, v) in props.sorted(by: { $0.key < $1.key }) { print("      \(k)=\(v)") }
        try expect(props["LoadState"] == "loaded", "iommufdd.service: \(props)")
        try expect(props["FragmentPath"] == unitDir + "/iommufdd.service", "FragmentPath \(props["FragmentPath"] ?? "-")")
        let max = props["FileDescriptorStoreMax"] ?? ""
        try expect(max == "4096", "FileDescriptorStoreMax=\(max)")
        if version < 254 {
            try expect(props["Environment"]?.split(separator: " ").contains("FDSTORE=\(max)") == true, "Environment=\(props["Environment"] ?? "-") lacks FDSTORE=\(max)")
        }
        let socket = try show(Self.socketUnit, ["ActiveState"])
        try expect(socket["ActiveState"] == "inactive", "iommufdd.socket is \(socket) before anything started it")
    }

    /// The socket unit listens; the service starts on the first connection, not before.
    func socketActivation() throws {
        try Self.config(tolerateMissing: false).write(toFile: Self.configPath, atomically: true, encoding: .utf8)
        try systemctl(["start", Self.socketUnit])
        try expect(try show(Self.socketUnit, ["ActiveState"])["ActiveState"] == "active", "iommufdd.socket did not become active")
        let before = try show(Self.service, ["ActiveState", "MainPID"])
        try expect(before["ActiveState"] == "inactive" && before["MainPID"] == "0", "iommufdd.service ran before any connection: \(before)")
        var st = stat()
        try expect(stat(Self.socketPath, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK && st.st_mode & 0o777 == 0o660, "\(Self.socketPath): mode \(String(st.st_mode, radix: 8))")
        client = try DaemonClient(path: Self.socketPath)
        let (pong, _) = try connected().json("daemon.ping")
        print("      daemon.ping on the first connection: \(pong)")
        // The daemon serves as soon as it listens; systemd counts it active once it has read
        // READY=1 from the notify socket, which can be a moment after the answer.
        let after = try waitForState(["activating", "active"], final: "active")
        print("      then iommufdd.service: \(after)")
        try expect((Int32(after["MainPID"] ?? "") ?? 0) > 0 && after["TriggeredBy"] == Self.socketUnit, "the connection did not start iommufdd.service: \(after)")
    }

    /// Type=notify: systemd counts the service active only after READY=1, and shows STATUS=.
    /// The daemon found the fd store through the unit's $FDSTORE.
    func notifyReadyStatus() throws {
        let props = try show(Self.service, ["Type", "StatusText", "NotifyAccess", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic"])
        print("      \(props)")
        try expect(props["Type"] == "notify", "Type=\(props["Type"] ?? "-")")
        try expect(props["StatusText"]?.hasPrefix("kernel backend; ") == true, "StatusText is \(props["StatusText"] ?? "-"), not the daemon's STATUS= line")
        let (info, _) = try connected().json("daemon.info")
        print("      daemon.info fd_store: \(info["fd_store"] ?? nil); warnings: \(info["warnings"] ?? nil)")
        try expect(info["restart_keeps_objects"] == .bool(true), "restart_keeps_objects \(info["restart_keeps_objects"] ?? nil) under systemd \(version) with the installed units; warnings \(info["warnings"] ?? nil)")
        try expect(info["recovery"]?["restarted"] == .bool(false), "a first start reports recovery \(info["recovery"] ?? nil)")
    }

    /// systemd holds what the daemon stored: the iommufd, the device fds, memfds, the journal.
    func fdStoreFilled() throws {
        let props = try show(Self.service, ["NFileDescriptorStore"])
        print("      NFileDescriptorStore=\(props["NFileDescriptorStore"] ?? "(not shown by this systemd)")")
        let (info, _) = try connected().json("daemon.info")
        let stored = info["fd_store"]?["stored"]?.int64Value ?? -1
        try expect(stored >= 5, "daemon.info says the store holds \(stored) fds: \(info["fd_store"] ?? nil)")
        if let n = props["NFileDescriptorStore"], !n.isEmpty {
            try expect(Int64(n) == stored, "systemd holds \(n) fds, the daemon stored \(stored)")
        }
    }

    /// systemctl reload: SIGHUP, the new config in force for what comes next (an owner created
    /// after it gets unmap_tolerate_missing), same process, same objects; a bad file leaves the
    /// config in force.
    func reload() throws {
        let c = try connected()
        let pid = try mainPID()
        func probeTolerates() throws -> Bool {
            let probe: OwnerInfo = try c.call("owner.create", OwnerCreateParams(name: "reload-probe"))
            try c.release("reload-probe")
            return probe.policy.tolerateMissing
        }
        try expect(try !probeTolerates(), "before the reload, a new owner already tolerates missing unmaps")
        try Self.config(tolerateMissing: true).write(toFile: Self.configPath, atomically: true, encoding: .utf8)
        try systemctl(["reload", Self.service])
        try expect(try probeTolerates(), "after systemctl reload, a new owner does not get unmap_tolerate_missing = true")
        try "[daemon]\nno_such_key = 1\n".write(toFile: Self.configPath, atomically: true, encoding: .utf8)
        try systemctl(["reload", Self.service])
        try expect(try probeTolerates(), "a reload with a bad file changed the configuration in force")
        try Self.config(tolerateMissing: true).write(toFile: Self.configPath, atomically: true, encoding: .utf8)
        let props = try show(Self.service, ["ActiveState", "MainPID", "StatusText"])
        try expect(props["ActiveState"] == "active" && Int32(props["MainPID"] ?? "") == pid, "after two reloads: \(props), main pid was \(pid)")
        try state.expectSameObjects(c)
    }

    /// Runs `body` (which replaces the daemon) while the edu device DMAs through the VMM's fd;
    /// every round trip lands. Then the new daemon has every object under the same ID.
    func whileDMA(_ what: String, _ body: () throws -> Void) throws {
        let (edu, memory) = try state.vmmEdu()
        client?.rpc.close()
        client = nil
        let loop = DMALoop(edu: edu, memory: memory, iova: DaemonChecks.iova)
        try expect(loop.waitLanded(1), "the edu device's first round trip did not land before \(what)")
        let failed: Error?
        do {
            try body()
            failed = nil
        } catch {
            failed = error
        }
        // A few more round trips with the new daemon serving.
        let more = loop.landed + 2
        _ = loop.waitLanded(more)
        let (landed, failures) = loop.stop()
        print("      edu round trips during \(what): \(landed) landed, \(failures.count) failed")
        if let failed { throw failed }
        try expect(failures.isEmpty, "DMA was blocked or failed during \(what): \(failures)")
        try expect(landed >= more, "only \(landed) round trips landed during \(what)")
        try reconnect()
        let c = try connected()
        try state.expectSameObjects(c)
        try state.expectDirtyBitmapSame(c)
        let (info, _) = try c.json("daemon.info")
        try expect(info["recovery"]?["restarted"] == .bool(true), "after \(what), recovery \(info["recovery"] ?? nil)")
        let problems = (info["recovery"]?["journal"]?["problems"]?.arrayValue ?? []) + (info["recovery"]?["backend_problems"]?.arrayValue ?? [])
        try expect(problems.isEmpty, "after \(what), recovery problems: \(problems)")
    }

    /// The LISTEN_FDNAMES systemd gave the daemon (the daemon unsets it; /proc keeps the
    /// original environment block).
    func listenFDNames(_ pid: Int32) -> String {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return "(unreadable)" }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.first { $0.hasPrefix("LISTEN_FDNAMES=") } ?? "(none)"
    }

    func restartWhileDMA() throws {
        let old = try mainPID()
        try whileDMA("systemctl restart") {
            try systemctl(["restart", Self.service])
        }
        let new = try mainPID()
        try expect(new != old && new > 0, "systemctl restart kept main pid \(old)")
        print("      main pid \(old) -> \(new); \(listenFDNames(new))")
    }

    func killWhileDMA() throws {
        let old = try mainPID()
        let restartsBefore = try restarts()
        try whileDMA("systemctl kill -s KILL") {
            try systemctl(["kill", "-s", "KILL", Self.service])
            let new = try waitForNewMainPID(other: old, seconds: 120)
            print("      main pid \(old) killed; Restart=on-failure started \(new)")
        }
        let restartsAfter = try restarts()
        try expect(restartsAfter == restartsBefore + 1, "NRestarts \(restartsBefore) -> \(restartsAfter) after SIGKILL")
    }

    /// A daemon whose main queue stalls sends no WATCHDOG=1: systemd kills it (SIGABRT) after
    /// WatchdogSec= and Restart=on-failure starts it again, objects and DMA intact.
    func watchdog() throws {
        let props = try show(Self.service, ["WatchdogUSec"])
        let old = try mainPID()
        let restartsBefore = try restarts()
        try whileDMA("a watchdog kill") {
            let c = try DaemonClient(path: Self.socketPath)
            let (answer, _) = try c.json("test.stall_main_queue", .object(["seconds": .unsigned(3000)]))
            c.rpc.close()
            print("      test.stall_main_queue: \(answer); WatchdogUSec=\(props["WatchdogUSec"] ?? "-")")
            try expect(answer["watchdog_seconds"] != nil && answer["watchdog_seconds"] != .null, "the daemon was not given a watchdog: \(answer)")
            let new = try waitForNewMainPID(other: old, seconds: 240)
            print("      main pid \(old) stalled; systemd restarted it as \(new)")
        }
        try expect(try restarts() == restartsBefore + 1, "NRestarts did not grow by one after the watchdog kill")
        let log = try command("/usr/bin/journalctl", ["-b", "--no-pager", "-o", "cat", "-u", Self.service])
        let line = log.output.split(separator: "\n").first { $0.contains("Watchdog timeout") }
        print("      journal: \(line.map(String.init) ?? "(no 'Watchdog timeout' line)")")
        try expect(line != nil, "systemd logged no watchdog timeout for iommufdd.service; the restart had another cause")
    }

    /// systemd 252 and 253 have no FileDescriptorStorePreserve=: a stop closes the store, and
    /// with it every object; the next start is a first start. (254 and later keep it with the
    /// installed drop-in.) The VM shuts down first: a VMM's dup of a device fd would keep its
    /// binding, and so the old iommufd, alive.
    func stopThenStart() throws {
        state.closeVMMDevice()
        client?.rpc.close()
        client = nil
        try systemctl(["stop", Self.service])
        let stopped = try show(Self.service, ["ActiveState", "NFileDescriptorStore", "ExecMainStatus"])
        print("      after stop: \(stopped)")
        try expect(stopped["ActiveState"] == "inactive", "after systemctl stop: \(stopped)")
        try expect(stopped["ExecMainStatus"] == "0", "iommufdd exited \(stopped["ExecMainStatus"] ?? "-") on SIGTERM, not 0")
        try systemctl(["start", Self.service])
        try reconnect()
        let c = try connected()
        let (info, _) = try c.json("daemon.info")
        print("      after start: recovery \(info["recovery"] ?? nil); counts \(info["counts"] ?? nil)")
        let owners: OwnerListResult = try c.call("owner.list", NoParams())
        if version >= 254 {
            try expect(info["recovery"]?["restarted"] == .bool(true), "systemd \(version) with FileDescriptorStorePreserve=yes: recovery \(info["recovery"] ?? nil)")
            try expect(owners.owners.contains { $0.name == state.owner }, "systemd \(version): \(state.owner) did not survive the stop")
            try c.release(state.owner)
        } else {
            try expect(info["recovery"]?["restarted"] == .bool(false), "systemd \(version) kept objects across a stop: recovery \(info["recovery"] ?? nil)")
            try expect(owners.owners.isEmpty, "systemd \(version): owners after stop + start: \(owners)")
        }
        // The kernel let go of everything: vfio0 binds and attaches for a new owner.
        _ = try c.call("owner.create", OwnerCreateParams(name: "vm-next"), as: OwnerInfo.self)
        let next: IOASCreateResult = try c.call("ioas.create", IOASCreateParams(owner: "vm-next"))
        _ = try c.call("device.attach", DeviceAttachParams(owner: "vm-next", device: "vfio0", ioas: next.ioas), as: DeviceAttachResult.self)
        try c.release("vm-next")
    }
}
