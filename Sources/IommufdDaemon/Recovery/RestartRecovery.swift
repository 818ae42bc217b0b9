import Foundation
import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdKernel
import IommufdSim
import Logging

/// Restart without losing DMA (BRIEF section 7, issue 6): at start, the fds systemd's fd store
/// gave back in `LISTEN_FDS` are sorted out — the backend takes its iommufd (the kernel's, or the
/// simulator's operation log), the broker its journal, memory files and device fds — and every
/// object is checked against the backend before the daemon reports READY.
enum RestartRecovery {
    /// What the daemon says about restarts in `daemon.info`.
    struct Outcome {
        var store: SystemdFDStore?
        /// Why there is no fd store.
        var noStoreReason: String?
        var recovery: RecoveryInfo?
    }

    /// The backend, opened over the stored iommufd when there is one. Returns the stored fds it
    /// did not take (for the broker) and what its own recovery found.
    static func openBackend(
        _ config: DaemonConfig, stored: [SocketActivation.PassedFD], useStore: Bool, logger: Logger
    ) throws(BackendFactory.OpenError) -> (backend: any IommuBackend, rest: [SocketActivation.PassedFD], notes: [String], adopted: Bool) {
        guard useStore else { return (try BackendFactory.open(config), stored, [], false) }
        switch BackendFactory.resolve(config.daemon.backend) {
        case .sim:
            let sim: SimBackend
            do {
                sim = try SimBackend(topology: BackendFactory.simTopology(config.sim), pinNanosecondsPerPage: config.sim.pinNsPerPage)
            } catch {
                throw BackendFactory.OpenError(description: "cannot start the simulator: \(error)")
            }
            let logs = stored.filter { $0.name == PersistentSimBackend.fdStoreName }
            var rest = stored.filter { $0.name != PersistentSimBackend.fdStoreName }
            guard let log = logs.first else {
                do {
                    return (try PersistentSimBackend(sim), rest, [], false)
                } catch {
                    throw BackendFactory.OpenError(description: "cannot create the simulator's iommufd memfd: \(error)")
                }
            }
            do {
                try PersistentSimBackend.checkFormat(of: log.fd)
            } catch {
                throw BackendFactory.OpenError(description: "\(log.name): \(error)")
            }
            var notes: [String] = []
            for extra in logs.dropFirst() {
                notes.append("the fd store held a second \(extra.name) (fd \(extra.fd)); ignored")
                rest.append(extra)
            }
            // Memory files by (st_dev, st_ino), as the simulator's log names them.
            var files: [String: Int32] = [:]
            for passed in rest {
                if let key = StoredFDName.parseMemory(passed.name) { files["\(key.device).\(key.inode)"] = passed.fd }
            }
            var report = PersistentSimBackend.ReplayReport()
            do {
                let backend = try PersistentSimBackend(sim, adopting: log.fd, resolveFile: { files["\($0).\($1)"] }, report: &report)
                logger.info("simulator state replayed from the fd store", metadata: ["sim.operations": "\(report.operations)"])
                if report.tornBytes > 0 {
                    notes.append("the simulator's log ended in a torn record (\(report.tornBytes) bytes), an operation the old daemon was killed in; it did not happen")
                }
                return (backend, rest, notes + report.problems.map { "simulator replay: \($0)" }, true)
            } catch {
                throw BackendFactory.OpenError(description: "the simulator's state in the fd store (\(log.name)) cannot be read: \(error); stop the service, clear its fd store (systemctl clean --what=fdstore iommufdd) and start it again")
            }
        case .kernel:
            let iommufds = stored.filter { $0.name == KernelBackend.fdStoreName }
            guard let first = iommufds.first else {
                return (try BackendFactory.open(config), stored, [], false)
            }
            var options = KernelBackendOptions()
            if config.kernel.allowMockDevices {
                options.mockDevices = config.kernel.mockDevices.map { MockDeviceSpec(name: $0.name, noDirty: $0.noDirty, pasid: $0.pasid) }
            }
            do {
                let backend = try KernelBackend(options: options, adoptingIommufd: first.fd)
                let rest = stored.filter { $0.name != KernelBackend.fdStoreName } + iommufds.dropFirst()
                return (backend, rest, [], true)
            } catch {
                throw BackendFactory.OpenError(description: "cannot take over the iommufd from the fd store: \(error)")
            }
        }
    }
}

/// The `recovery` section of `daemon.info`.
public struct RecoveryInfo: Codable, Sendable {
    /// Whether objects were taken over from a previous daemon (false on a first start).
    public var restarted: Bool
    /// How long recovery took, from the start of the process to READY's preparation.
    public var seconds: Double
    public var journal: JournalRecovery
    /// Problems of the backend's own recovery (the simulator's replay).
    public var backendProblems: [String]

    enum CodingKeys: String, CodingKey {
        case restarted, seconds, journal
        case backendProblems = "backend_problems"
    }
}
