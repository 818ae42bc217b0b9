import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A swift-log handler that writes one line per record, for journald or a terminal.
///
/// Under systemd, stderr is a stream to journald, which reads a leading `<N>` as the record's
/// syslog priority (sd-daemon(3)); journald adds the timestamp and unit, so the line carries
/// only the priority, the logger's label, the message and the metadata as `key=value`
/// (nested metadata flattened to dotted keys). On a terminal the priority is spelled as a
/// word instead. Newlines inside a record are escaped, so a record is always one line.
public struct JournalLogHandler: LogHandler {
    public enum Style: Sendable {
        /// `<6>iommufdd: message key=value`
        case journal
        /// `info iommufdd: message key=value`
        case terminal
    }

    public let label: String
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let style: Style
    let output: LogOutput
    let levels: LogLevelControl
    /// A level set on this logger instance (`logger.logLevel = ...`); otherwise the shared one.
    private var ownLevel: Logger.Level?

    public init(
        label: String, style: Style, output: LogOutput = .standardError, levels: LogLevelControl,
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        self.label = label
        self.style = style
        self.output = output
        self.levels = levels
        self.metadataProvider = metadataProvider
    }

    public var logLevel: Logger.Level {
        get { ownLevel ?? levels.level }
        set { ownLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        output.write(Self.format(level: event.level, label: label, message: "\(event.message)", metadata: merged, style: style))
    }

    /// The syslog priority journald understands for each level.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7  // LOG_DEBUG
        case .info: 6  // LOG_INFO
        case .notice: 5  // LOG_NOTICE
        case .warning: 4  // LOG_WARNING
        case .error: 3  // LOG_ERR
        case .critical: 2  // LOG_CRIT
        }
    }

    /// One record as one line, newline included.
    public static func format(
        level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, style: Style
    ) -> String {
        var line: String
        switch style {
        case .journal: line = "<\(priority(level))>"
        case .terminal: line = "\(level.rawValue) "
        }
        line += label + ": " + escapeNewlines(message)
        var pairs: [(String, String)] = []
        flatten(metadata, prefix: "", into: &pairs)
        for (key, value) in pairs.sorted(by: { $0.0 < $1.0 }) {
            line += " " + key + "=" + quoteIfNeeded(value)
        }
        return line + "\n"
    }

    static func flatten(_ metadata: Logger.Metadata, prefix: String, into pairs: inout [(String, String)]) {
        for (key, value) in metadata {
            let name = prefix.isEmpty ? key : prefix + "." + key
            switch value {
            case .dictionary(let nested):
                if nested.isEmpty { pairs.append((name, "{}")) } else { flatten(nested, prefix: name, into: &pairs) }
            case .array(let items):
                pairs.append((name, "[" + items.map { render($0) }.joined(separator: ",") + "]"))
            case .string(let s):
                pairs.append((name, s))
            case .stringConvertible(let c):
                pairs.append((name, c.description))
            }
        }
    }

    static func render(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): s
        case .stringConvertible(let c): c.description
        case .array(let items): "[" + items.map { render($0) }.joined(separator: ",") + "]"
        case .dictionary(let d):
            "{" + d.sorted { $0.key < $1.key }.map { "\($0.key)=\(render($0.value))" }.joined(separator: ",") + "}"
        }
    }

    static func escapeNewlines(_ s: String) -> String {
        guard s.contains(where: { $0 == "\n" || $0 == "\r" }) else { return s }
        return s.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Values with spaces, quotes, `=` or newlines are quoted with backslash escapes, so the
    /// line splits back into pairs unambiguously.
    static func quoteIfNeeded(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\n" || $0 == "\r" || $0 == "\t" || $0 == "\\" }
        guard needsQuotes else { return value }
        var out = "\""
        for ch in value {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.append(ch)
            }
        }
        return out + "\""
    }
}

/// Where log lines go: stderr, or (for tests) a closure. Lines from concurrent threads never
/// interleave: each is written with one `write(2)` under a lock.
public struct LogOutput: Sendable {
    let write: @Sendable (String) -> Void

    public init(_ write: @escaping @Sendable (String) -> Void) { self.write = write }

    func write(_ line: String) { write(line) }

    public static let standardError = LogOutput { line in
        stderrLock.lock()
        defer { stderrLock.unlock() }
        let bytes = Array(line.utf8)
        bytes.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(2, base + offset, buffer.count - offset)
                if n > 0 {
                    offset += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    return  // stderr is gone: nothing sensible is left to do with a log line
                }
            }
        }
    }
}

private let stderrLock = NSLock()

/// The level every daemon logger follows unless set on the logger itself; changed on reload.
public final class LogLevelControl: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Logger.Level

    public init(_ level: Logger.Level) { current = level }

    public var level: Logger.Level {
        get {
            lock.lock()
            defer { lock.unlock() }
            return current
        }
        set {
            lock.lock()
            current = newValue
            lock.unlock()
        }
    }
}
