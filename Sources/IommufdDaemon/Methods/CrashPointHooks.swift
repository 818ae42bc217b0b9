import Foundation
import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdRPC
import IommufdSim
import Logging

/// TEST ONLY: what the crash-point sweep (issue 17 item 3, `CrashPoints`) needs from a daemon
/// with test hooks on. Never reachable in production: both need the config's test hooks for the
/// backend in use, and the sweep's switch needs the environment variable as well.
extension Daemon {
    /// Arms `CrashPoints` when test hooks are on and `IOMMUFDD_TEST_CRASH_POINT=N` is set (N > 0);
    /// called once recovery is done and before anything is served. The value is refused with a
    /// clear error when it is not a positive number; without test hooks it is ignored and logged.
    static func armCrashPoints(testHooks: Bool, environment: [String: String], status: DaemonStatus, logger: Logger) throws(DaemonStartError) {
        guard let raw = environment[CrashPoints.environmentVariable] else { return }
        guard testHooks else {
            logger.warning("\(CrashPoints.environmentVariable) is ignored: it is honoured only with the backend's test_hooks on (test-only)")
            return
        }
        guard let n = Int(raw), n > 0 else {
            throw DaemonStartError(
                description: "iommufdd: \(CrashPoints.environmentVariable)=\(raw) is not a crash point number (1, 2, 3, ...); unset it, or give the number of the point to die at",
                exitCode: DaemonExitCode.config.rawValue)
        }
        CrashPoints.arm(at: n)
        status.warn("TEST ONLY: \(CrashPoints.environmentVariable)=\(n): the daemon kills itself (SIGKILL) at the \(n)th crash point (before or after a backend call or a journal write)")
        logger.warning("test hook: crash point armed", metadata: ["crash.point": "\(n)"])
    }
}

public struct SimInventoryParams: Codable, Hashable, Sendable {
    public init() {}
}

extension DaemonService {
    /// `test.sim_inventory`: everything the simulator holds (objects, mapped areas, attachments,
    /// dirty tracking), its own view rather than the broker's, for tests that compare the two
    /// after a crash and a restart. Admin only; registered only with `[sim] test_hooks`.
    func addSimInventoryHook() {
        let sim: SimBackend
        if let persistent = backend as? PersistentSimBackend {
            sim = persistent.sim
        } else if let plain = backend as? SimBackend {
            sim = plain
        } else {
            return
        }
        table.add(
            "test.sim_inventory", "TEST ONLY ([sim] test_hooks): everything the simulator holds, by object ID",
            access: .read, params: SimInventoryParams.self
        ) { caller, _, _ in
            guard caller.role == .admin else {
                throw BrokerError(.permissionDenied, "test.sim_inventory shows every owner's objects; only an admin may call it, and \(caller.identity) is a \(caller.role.rawValue)")
            }
            return sim.inventory()
        }
    }
}
