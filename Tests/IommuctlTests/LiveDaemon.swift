#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdRPC
import TestProcesses
import Testing

@testable import IommuctlKit

/// A real `iommufdd` started from the build directory on a temporary socket with the simulator
/// backend and a test config, for end-to-end runs of the real `iommuctl`.
final class LiveDaemon {
    private let daemon: LaunchedDaemon
    var directory: String { daemon.directory.path }
    var socketPath: String { daemon.socketPath }
    var logPath: String { daemon.logPath }

    /// Simulated devices of the daemon's default topology (`DaemonConfig.Sim.defaultDevices`,
    /// used here as it is: the walkthrough shows that topology), all on the allow-list here.
    static let devices = ["sim-pci0", "sim-pci1", "sim-pci2", "sim-pci3", "sim-mdev0"]

    /// `config` is appended to a base config: root is admin (64 MiB quota), uid 65534 is a
    /// reader, the socket is world-connectable so that access control is the daemon's.
    init(extraConfig: String = "", quota: String = "64MiB") throws {
        daemon = try LaunchedDaemon(
            binary: Binary.path("iommufdd"), directoryPrefix: "iommuctl-e2e", logName: "iommufdd.log"
        ) { socketPath in
            """
            [daemon]
            socket_path = "\(socketPath)"
            socket_mode = "0666"
            backend = "sim"
            log_level = "info"

            [policy]
            dirty_tracking = "preferred"

            [devices]
            allow = [\(Self.devices.map { "\"\($0)\"" }.joined(separator: ", "))]

            [[access]]
            user = 0
            role = "admin"
            pinned_bytes_quota = "\(quota)"

            [[access]]
            user = 65534
            role = "reader"

            # sim.dma: simulated device writes, so dirty tracking has something to report.
            [sim]
            test_hooks = true

            \(extraConfig)
            """
        }
        // Ready once daemon.ping answers; gone if the process exits first.
        do {
            try daemon.waitUntilServing(timeout: 30) { socketPath in
                guard let client = try? RPCClient(path: socketPath) else { return false }
                return (try? client.call("daemon.ping", timeout: .seconds(5))) != nil
            }
        } catch {
            throw CtlError(.noDaemon, "\(error)")
        }
    }

    var log: String { daemon.log }

    /// The daemon must stop cleanly: a sanitizer's report at its exit (a leak, a race) makes
    /// the status non-zero and fails the test that started it.
    deinit {
        if let report = daemon.uncleanStopReport() { Issue.record("\(report)") }
    }

    /// SIGTERM (a graceful stop), then SIGKILL if it is still there after 60 s. The exit
    /// status (128 + signal for a signal), nil when it had to be killed.
    @discardableResult
    func stop() -> Int32? { daemon.stop() }

    /// Runs the real iommuctl against this daemon (socket from IOMMUFDD_SOCKET, as a user would).
    func ctl(_ arguments: [String], asUID uid: UInt32? = nil) throws -> Binary.Result {
        try Binary.run(arguments, asUID: uid, environment: ["IOMMUFDD_SOCKET": socketPath])
    }

    /// Runs iommuctl with `--json` and returns the parsed answer; a non-zero exit is an error.
    func json(_ arguments: [String]) throws -> JSONValue {
        let run = try ctl(arguments + ["--json"])
        guard run.code == 0 else {
            throw CtlError(.failure, "iommuctl \(arguments.joined(separator: " ")) exited \(run.code): \(run.error)")
        }
        return try JSONValue.parse(run.output)
    }
}
