import CSystemd
import Dispatch
import Foundation

/// Pings the service manager's watchdog (`WATCHDOG=1`) at half of `WatchdogSec=`, as
/// sd_watchdog_enabled(3) recommends, from a queue the caller chooses: run it on the daemon's
/// main queue, so a wedged main queue stops the pings and systemd restarts the daemon.
public final class WatchdogTimer: @unchecked Sendable {
    private let timer: DispatchSourceTimer
    /// The time between pings.
    public let interval: Duration

    /// The `WatchdogSec=` systemd set for this process (`WATCHDOG_USEC`, for our `WATCHDOG_PID`),
    /// or nil when the watchdog is off.
    public static func configuredTimeout() -> Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(clamping: usec))
    }

    /// Starts pinging through `notifier` when systemd enabled the watchdog; nil when it did not.
    public static func startIfEnabled(notifier: SystemdNotifier, queue: DispatchQueue) -> WatchdogTimer? {
        guard let timeout = configuredTimeout() else { return nil }
        return WatchdogTimer(interval: timeout / 2, queue: queue) { _ = try? notifier.watchdog() }
    }

    /// Calls `ping` on `queue` every `interval`, first after one interval.
    public init(interval: Duration, queue: DispatchQueue, ping: @escaping @Sendable () -> Void) {
        self.interval = interval
        let (seconds, attoseconds) = interval.components
        let nanoseconds = Int(clamping: seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(
            deadline: .now() + .nanoseconds(nanoseconds), repeating: .nanoseconds(nanoseconds),
            leeway: .nanoseconds(nanoseconds / 10))
        timer.setEventHandler(handler: ping)
        timer.resume()
    }

    public func cancel() { timer.cancel() }

    deinit { timer.cancel() }
}
