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
    let directory: String
    let socketPath: String
    let logPath: String
    private let process: SpawnedProcess
    private var stopped = false
    private var exitStatus: Int32?

    /// Simulated devices of the daemon's default topology, all on the allow-list here.
    static let devices = ["sim-pci0", "sim-pci1", "sim-pci2", "sim-mdev0"]

    /// `config` is appended to a base config: root is admin (64 MiB quota), uid 65534 is a
    /// reader, the socket is world-connectable so that access control is the daemon's.
    init(extraConfig: String = "", quota: String = "64MiB") throws {
        var template = Array("/tmp/iommuctl-e2e-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw CtlError(.localIO, "mkdtemp: \(String(cString: strerror(errno)))") }
        directory = path(fromTemplate: template)
        chmod(directory, 0o755)
        socketPath = directory + "/control.sock"
        logPath = directory + "/iommufdd.log"
        let config = """
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

            # The default topology, spelled out: sim-pci2 is behind the IOMMU without dirty
            # tracking and must not claim it.
            [[sim.iommu]]
            name = "sim-iommu0"
            dirty_tracking = true
            nesting = true

            [[sim.iommu]]
            name = "sim-iommu1"

            [[sim.device]]
            name = "sim-pci0"
            iommu = "sim-iommu0"
            pci_address = "0000:00:02.0"

            [[sim.device]]
            name = "sim-pci1"
            iommu = "sim-iommu0"
            pci_address = "0000:00:03.0"

            [[sim.device]]
            name = "sim-pci2"
            iommu = "sim-iommu1"
            pci_address = "0000:00:04.0"
            dirty_tracking = false

            [[sim.device]]
            name = "sim-mdev0"
            mdev = true
            \(extraConfig)
            """
        let configPath = directory + "/iommufdd.toml"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)

        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "NOTIFY_SOCKET")
        env.removeValue(forKey: "LISTEN_FDS")
        env.removeValue(forKey: "LISTEN_PID")
        process = try SpawnedProcess.start(
            Binary.path("iommufdd"), ["--config", configPath, "--socket", socketPath, "--backend", "sim"],
            output: logPath, environment: env)

        // Ready once daemon.ping answers; gone if the process exits first.
        for _ in 0..<3000 {
            if !process.isRunning {
                stopped = true
                throw CtlError(.noDaemon, "iommufdd exited (\(process.wait())) before serving: \(self.log)")
            }
            if let client = try? RPCClient(path: socketPath), (try? client.call("daemon.ping", timeout: .seconds(5))) != nil {
                return
            }
            usleep(10_000)
        }
        throw CtlError(.noDaemon, "iommufdd did not answer daemon.ping on \(socketPath): \(self.log)")
    }

    var log: String { readTextFile(logPath) }

    /// The daemon must stop cleanly: a sanitizer's report at its exit (a leak, a race) makes
    /// the status non-zero and fails the test that started it.
    deinit {
        let status = stop()
        if status != 0 {
            Issue.record("iommufdd did not stop cleanly (status \(status.map(String.init) ?? "none: killed after 60 s")). Its log:\n\(log)")
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// SIGTERM (a graceful stop), then SIGKILL if it is still there after 60 s. The exit
    /// status (128 + signal for a signal), nil when it had to be killed.
    @discardableResult
    func stop() -> Int32? {
        guard !stopped else { return exitStatus }
        stopped = true
        process.signal(SIGTERM)
        exitStatus = process.wait(timeout: 60)
        if exitStatus == nil {
            process.signal(SIGKILL)
            process.wait()
        }
        return exitStatus
    }

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
