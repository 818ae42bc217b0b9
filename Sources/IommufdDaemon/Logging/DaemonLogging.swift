import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The daemon's logging setup: swift-log bootstrapped once with `JournalLogHandler`.
public enum DaemonLogging {
    private static let state = BootstrapState()

    /// The shared level: `DaemonLogging.levels.level = config.daemon.logLevel` after a reload.
    public static var levels: LogLevelControl { state.levels }

    /// Installs the handler for every `Logger` of the process. Only the first call bootstraps
    /// (swift-log allows one bootstrap per process); later calls only set the level.
    /// - Parameters:
    ///   - level: the initial level, usually `config.daemon.logLevel`.
    ///   - style: nil picks `.journal` when stderr goes to journald or is not a terminal,
    ///     `.terminal` on a terminal.
    public static func bootstrap(level: Logger.Level, style: JournalLogHandler.Style? = nil) {
        state.levels.level = level
        let chosen = style ?? detectStyle()
        state.once {
            let levels = state.levels
            LoggingSystem.bootstrap { label in
                JournalLogHandler(label: label, style: chosen, levels: levels)
            }
        }
    }

    /// `.journal` if `JOURNAL_STREAM` names stderr (systemd sets it for services logging to the
    /// journal) or stderr is not a terminal (a pipe is read by a program); else `.terminal`.
    public static func detectStyle(environment: [String: String] = ProcessInfo.processInfo.environment) -> JournalLogHandler.Style {
        if let stream = environment["JOURNAL_STREAM"] {
            var st = stat()
            if fstat(2, &st) == 0, stream == "\(st.st_dev):\(st.st_ino)" { return .journal }
        }
        return isatty(2) == 1 ? .terminal : .journal
    }

    private final class BootstrapState: @unchecked Sendable {
        let levels = LogLevelControl(.info)
        private let lock = NSLock()
        private var done = false

        func once(_ body: () -> Void) {
            lock.lock()
            defer { lock.unlock() }
            guard !done else { return }
            done = true
            body()
        }
    }
}
