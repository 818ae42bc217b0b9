import Dispatch
import Foundation
import IommufdBroker
import IommufdContract

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `test.stall_main_queue {seconds}`: blocks the daemon's main queue for `seconds`, as a wedged
/// daemon would. The main queue sends the `WATCHDOG=1` pings (`WatchdogTimer`), `STATUS=` and
/// handles SIGTERM and SIGHUP, so with `WatchdogSec=` set the service manager kills the daemon
/// (SIGABRT) once the stall outlasts it and restarts it — which is what the real-systemd test of
/// the watchdog needs to see. TEST ONLY: served only when the config turns test hooks on for the
/// backend in use (`[sim] test_hooks` or `[kernel] test_hooks`); absent from `rpc.discover`
/// otherwise. The answer comes first: the stall begins after it is queued.
public struct StallMainQueueParams: Codable, Hashable, Sendable {
    public var seconds: Double
    public init(seconds: Double) { self.seconds = seconds }
}

public struct StallMainQueueResult: Codable, Hashable, Sendable {
    public var seconds: Double
    /// The `WatchdogSec=` systemd gave this process, nil when the watchdog is off.
    public var watchdogSeconds: Double?
    enum CodingKeys: String, CodingKey {
        case seconds
        case watchdogSeconds = "watchdog_seconds"
    }
}

extension DaemonService {
    /// The longest stall asked for; past WatchdogSec= the daemon is dead anyway.
    static let maxStallSeconds = 3600.0

    /// Registers `test.stall_main_queue`; the daemon calls this only when test hooks are on.
    func addWatchdogStallHook(mainQueue: DispatchQueue = .main) {
        let logger = self.logger
        table.add(
            "test.stall_main_queue",
            "TEST ONLY ([sim] or [kernel] test_hooks): block the main queue (watchdog pings, STATUS=, signals) for some seconds",
            access: .write, params: StallMainQueueParams.self
        ) { caller, p, _ in
            guard caller.role == .admin else {
                throw BrokerError(.permissionDenied, "test.stall_main_queue stalls the whole daemon; only an admin may call it, and \(caller.identity) is a \(caller.role.rawValue)")
            }
            guard p.seconds > 0, p.seconds <= Self.maxStallSeconds else {
                throw BrokerError(.invalidParams, "seconds must be more than 0 and at most \(Int(Self.maxStallSeconds)), not \(p.seconds)")
            }
            let watchdog = WatchdogTimer.configuredTimeout().map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
            logger.warning("test hook: the main queue stalls now; no watchdog ping, STATUS= or signal is handled until it ends", metadata: [
                "stall.seconds": "\(p.seconds)", "watchdog.seconds": "\(watchdog.map { "\($0)" } ?? "off")",
            ])
            let micros = useconds_t(p.seconds * 1_000_000)
            mainQueue.async {
                // usleep takes at most about 4295 s; maxStallSeconds keeps below that.
                var left = micros
                while left > 0 {
                    let step = min(left, 1_000_000)
                    usleep(step)
                    left -= step
                }
            }
            return StallMainQueueResult(seconds: p.seconds, watchdogSeconds: watchdog)
        }
    }
}
