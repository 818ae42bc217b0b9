import Foundation
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real `iommufdd` under a make-believe systemd: a NOTIFY_SOCKET the test listens on,
/// signals, WATCHDOG_USEC, and socket activation through `systemd-socket-activate`.
@Suite("End to end: systemd integration of the real binary")
struct DaemonSystemdE2ETests {
    /// Waits for the next datagram of `daemon` that contains `field` (skipping others, e.g. the
    /// periodic STATUS= updates); fails the test on timeout.
    func expectDatagram(_ notify: NotifySocketFixture, from daemon: DaemonProcess, containing field: String,
                        sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            guard let text = try notify.receive(from: daemon.pid, timeout: 5) else {
                if !daemon.isRunning { break }
                continue
            }
            let lines = text.split(separator: "\n").map(String.init)
            if lines.contains(where: { $0 == field || $0.hasPrefix(field) }) { return lines }
        }
        Issue.record("no \(field) from iommufdd (\(daemon.describeExit())). Log:\n\(daemon.log)", sourceLocation: sourceLocation)
        throw TestFailure("no \(field)")
    }

    @Test func readyWithStatusThenStoppingOnSIGTERM() throws {
        let notify = try NotifySocketFixture()
        let daemon = try DaemonProcess(environment: ["NOTIFY_SOCKET": notify.path], waitReady: false)
        let ready = try expectDatagram(notify, from: daemon, containing: "READY=1")
        let status = try #require(ready.first { $0.hasPrefix("STATUS=") })
        #expect(status.contains("sim backend") && status.contains("owners"), "\(status)")
        // READY=1 means serving: the very first connection is answered, no retry needed.
        let c = try daemon.client()
        #expect(try c.call("daemon.ping") == "pong")

        daemon.signal(SIGTERM)
        let stopping = try expectDatagram(notify, from: daemon, containing: "STOPPING=1")
        #expect(stopping.contains("STOPPING=1"))
        #expect(daemon.waitForExit(timeout: 60) != nil && daemon.exitCode == 0, "\(daemon.describeExit())")
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath), "the socket is removed on a clean stop")
    }

    @Test func reloadOnSIGHUPAndABadConfigKeepsTheOldOne() throws {
        let notify = try NotifySocketFixture()
        var config = TestConfig(allow: ["sim-pci0"])
        let daemon = try DaemonProcess(config: config, environment: ["NOTIFY_SOCKET": notify.path], waitReady: false)
        _ = try expectDatagram(notify, from: daemon, containing: "READY=1")
        let c = try daemon.client()
        try c.call("owner.create", ["name": "vm-reload"])
        let ioas = try #require(try c.call("ioas.create", ["owner": "vm-reload"])["ioas"]?.int)
        let refused = try c.error("device.attach", ["owner": "vm-reload", "device": "sim-pci1", "ioas": .int(ioas)])
        #expect(refused.name == ErrorName.permissionDenied)

        let subscriber = try daemon.client()
        try subscriber.call("events.subscribe", [:])

        // A good new config: RELOADING=1 with MONOTONIC_USEC (now-ish), then READY=1.
        config.allow = ["sim-pci0", "sim-pci1"]
        try config.text.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let before = monotonicMicroseconds()
        daemon.signal(SIGHUP)
        let reloading = try expectDatagram(notify, from: daemon, containing: "RELOADING=1")
        let usec = try #require(reloading.first { $0.hasPrefix("MONOTONIC_USEC=") }.flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) })
        #expect(usec >= before && usec <= monotonicMicroseconds(), "MONOTONIC_USEC=\(usec) is CLOCK_MONOTONIC at the reload")
        _ = try expectDatagram(notify, from: daemon, containing: "READY=1")
        try c.call("device.attach", ["owner": "vm-reload", "device": "sim-pci1", "ioas": .int(ioas)])
        var reloadedEvent = false
        while !reloadedEvent, let n = try subscriber.nextNotification(timeout: .seconds(60)) {
            reloadedEvent = n.method == "event.config_reloaded"
        }
        #expect(reloadedEvent, "subscribers hear of the reload")

        // A bad config: the reload is refused, the daemon stays ready, the old rules hold.
        try "[devices]\nallow = [\"sim-pci2\"\n".write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        _ = try expectDatagram(notify, from: daemon, containing: "RELOADING=1")
        _ = try expectDatagram(notify, from: daemon, containing: "READY=1")
        #expect(daemon.isRunning)
        #expect(try c.call("device.list", [:])["devices"]?.arrayValue?.first { $0["name"] == "sim-pci1" }?["allowed"] == true)
        #expect(try c.call("device.list", [:])["devices"]?.arrayValue?.first { $0["name"] == "sim-pci2" }?["allowed"] == false)
        #expect(daemon.log.contains("old configuration stays in force"), "the log says why: \(daemon.log)")
        #expect(daemon.log.contains("iommufdd.toml:2"), "the log names the file and line")
        #expect(daemon.stop() == 0, "\(daemon.log)")
    }

    /// SIGTERM while a client has 300 requests in flight: whatever the daemon answers comes
    /// whole and in order, nothing after the close is half a line, and the exit is clean. New
    /// connections are refused once stopping.
    @Test func gracefulStopWithRequestsInFlight() throws {
        let daemon = try DaemonProcess()
        let c = try daemon.client()
        try c.call("owner.create", ["name": "vm-stop"])
        var text = ""
        for i in 1...300 { text += #"{"jsonrpc":"2.0","method":"ioas.create","params":{"owner":"vm-stop"},"id":\#(i)}"# + "\n" }
        try c.sendRaw(Array(text.utf8))
        daemon.signal(SIGTERM)
        var ids: [Int64] = []
        while true {
            do {
                guard let line = try c.receiveLine(timeout: .seconds(60)) else { break }
                let reply = try JSONValue.parse(line.bytes, maxDepth: 64)
                #expect(reply["result"]?["ioas"] != nil, "\(reply)")
                ids.append(reply["id"]?.int ?? -1)
            } catch let e as RPCTransportError where e.kind == .disconnected {
                break
            }
        }
        // 1..<count+1, not 1...count: no answer at all (SIGTERM before the daemon read the
        // lines) is a valid outcome and must not trap on an empty closed range.
        #expect(ids == Array(1..<(Int64(ids.count) + 1)), "answers in order, none skipped")
        #expect(daemon.waitForExit(timeout: 60) != nil && daemon.exitCode == 0, "\(daemon.describeExit())")
        #expect((try? daemon.client()) == nil, "nothing listens any more")
    }

    @Test func watchdogPingsWhenWatchdogUSecIsSet() throws {
        let notify = try NotifySocketFixture()
        let daemon = try DaemonProcess(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"], waitReady: false)
        _ = try expectDatagram(notify, from: daemon, containing: "READY=1")
        _ = try expectDatagram(notify, from: daemon, containing: "WATCHDOG=1")
        _ = try expectDatagram(notify, from: daemon, containing: "WATCHDOG=1")
        #expect(daemon.stop() == 0, "\(daemon.log)")
    }

    @Test func badConfigAtStartIsRefusedWithTheLine() throws {
        let daemon = try DaemonProcess(config: TestConfig(extra: "[policy]\ndirty_tracking = \"sometimes\"\n"), waitReady: false)
        #expect(daemon.waitForExit(timeout: 60) != nil)
        #expect(daemon.exitCode == 78, "EX_CONFIG: \(daemon.describeExit())")
        #expect(daemon.log.contains("iommufdd.toml:") && daemon.log.contains("dirty_tracking"), "\(daemon.log)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate")))
    func socketActivation() throws {
        let directory = try TemporaryDirectory("iommufdd-activate", mode: 0o755)
        defer { directory.remove() }
        let listenPath = directory.path + "/activated.sock"
        let daemon = try DaemonProcess(
            socketFlag: false,
            wrapper: ["/usr/bin/systemd-socket-activate", "-l", listenPath, "--fdname=control"]
                + DaemonProcess.sanitizerVariables.flatMap { ["-E", $0] },
            waitReady: false)
        var client: RPCClient?
        let deadline = Date().addingTimeInterval(120)
        while client == nil, Date() < deadline, daemon.isRunning {
            if let c = try? RPCClient(path: listenPath), (try? c.call("daemon.ping")) == "pong" { client = c } else { usleep(50_000) }
        }
        let c = try #require(client, "no answer on the activated socket: \(daemon.log)")
        let info = try c.call("daemon.info")
        #expect(info["socket"] == .string(listenPath), "the daemon reports the socket it adopted")
        #expect(info["pid"]?.int == Int64(daemon.pid), "systemd-socket-activate exec'd iommufdd in place")
        #expect(daemon.stop() == 0, "\(daemon.log)")
    }
}
