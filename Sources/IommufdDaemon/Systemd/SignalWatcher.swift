import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Delivers signals as events on a DispatchQueue instead of in async-signal context.
///
/// A signal whose action is still the default one is set to SIG_IGN first, so SIGTERM cannot
/// kill the process before the source is armed. On Linux, libdispatch arms a source
/// asynchronously, on its manager thread, by installing a handler of its own, and installs it
/// once per signal per process; a signal arriving before that is dropped. `init` waits until
/// every handler is in place, so a signal sent after it returns is delivered. The handler stays
/// after `cancel()` (removing it would break later watchers of the same signal), so cancelled
/// signals are caught and dropped: cancel only when the daemon is exiting.
public final class SignalWatcher: @unchecked Sendable {
    private let sources: [DispatchSourceSignal]
    public let signals: [Int32]

    public init(signals: [Int32], queue: DispatchQueue, handler: @escaping @Sendable (Int32) -> Void) {
        self.signals = signals
        sources = signals.map { signo in
            if Self.disposition(signo) == unsafeBitCast(SIG_DFL, to: Int.self) { signal(signo, SIG_IGN) }
            let source = DispatchSource.makeSignalSource(signal: signo, queue: queue)
            source.setEventHandler { handler(signo) }
            source.resume()
            return source
        }
        #if os(Linux)
        for signo in signals { Self.waitUntilArmed(signo) }
        #endif
    }

    /// Polls the disposition until it is no longer SIG_IGN (at most about 2 s; libdispatch
    /// takes microseconds).
    private static func waitUntilArmed(_ signo: Int32) {
        let ignore = unsafeBitCast(SIG_IGN, to: Int.self)
        for _ in 0..<2000 {
            if disposition(signo) != ignore { return }
            usleep(1000)
        }
    }

    public func cancel() {
        for source in sources { source.cancel() }
    }

    /// The current handler as a number (SIG_DFL is 0, SIG_IGN 1); -1 if it cannot be read.
    private static func disposition(_ signo: Int32) -> Int {
        var current = sigaction()
        guard sigaction(signo, nil, &current) == 0 else { return -1 }
        return unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self)
    }

    /// The daemon's signals: SIGTERM and SIGINT stop it, SIGHUP reloads the configuration.
    /// Also ignores SIGPIPE (see `ignoreSIGPIPE`).
    public static func daemonSignals(
        queue: DispatchQueue, terminate: @escaping @Sendable (Int32) -> Void, reload: @escaping @Sendable () -> Void
    ) -> SignalWatcher {
        ignoreSIGPIPE()
        return SignalWatcher(signals: [SIGTERM, SIGINT, SIGHUP], queue: queue) { signo in
            if signo == SIGHUP { reload() } else { terminate(signo) }
        }
    }

    /// A client that disconnects while we write to it must give EPIPE, not kill the daemon.
    public static func ignoreSIGPIPE() {
        signal(SIGPIPE, SIG_IGN)
    }
}
