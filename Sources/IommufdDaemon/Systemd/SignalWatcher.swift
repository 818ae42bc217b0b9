import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Delivers signals as events on a DispatchQueue instead of in async-signal context.
///
/// The signals' default action is replaced by SIG_IGN while watched (otherwise SIGTERM would
/// still kill the process before the source sees it); `cancel()` restores SIG_DFL.
public final class SignalWatcher: @unchecked Sendable {
    private let sources: [DispatchSourceSignal]
    public let signals: [Int32]

    public init(signals: [Int32], queue: DispatchQueue, handler: @escaping @Sendable (Int32) -> Void) {
        self.signals = signals
        sources = signals.map { signo in
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: queue)
            source.setEventHandler { handler(signo) }
            source.resume()
            return source
        }
    }

    public func cancel() {
        for source in sources { source.cancel() }
        for signo in signals { signal(signo, SIG_DFL) }
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
