import Foundation
import IommufdCore
import Logging
import TOMLKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension DaemonConfig {
    /// Parses TOML text. `file` names it in error messages.
    public static func parse(
        _ text: String, file: String = "<config>", names: NameResolver = .system
    ) -> Result<DaemonConfig, ConfigError> {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            return .failure(
                ConfigError([
                    ConfigIssue(
                        file: file, line: error.source.begin.line, column: error.source.begin.column,
                        reason: "TOML syntax: \(error.description)")
                ]))
        } catch {
            return .failure(ConfigError([ConfigIssue(file: file, reason: "TOML syntax: \(error)")]))
        }
        var decoder = ConfigDecoder(file: file, source: text, names: names)
        let config = decoder.decode(table)
        guard decoder.issues.isEmpty else {
            // In file order, as a person fixes them (the decoder goes section by section).
            let ordered = decoder.issues.enumerated().sorted { a, b in
                let ka = (a.element.line ?? 0, a.element.column ?? 0, a.offset)
                let kb = (b.element.line ?? 0, b.element.column ?? 0, b.offset)
                return ka < kb
            }.map(\.element)
            return .failure(ConfigError(ordered))
        }
        return .success(config)
    }

    /// Reads and parses the file at `path`.
    public static func load(contentsOf path: String, names: NameResolver = .system) -> Result<DaemonConfig, ConfigError> {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason: String
            if let posix = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
                reason = "cannot read the file: \(Errno(Int32(posix.code)))"
            } else if !FileManager.default.fileExists(atPath: path) {
                reason = "cannot read the file: \(Errno.ENOENT)"
            } else {
                reason = "cannot read the file: \(error.localizedDescription)"
            }
            return .failure(ConfigError([ConfigIssue(file: path, reason: reason)]))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .failure(ConfigError([ConfigIssue(file: path, reason: "the file is not UTF-8 text")]))
        }
        return parse(text, file: path, names: names)
    }

    /// What the daemon runs with: the file `--config` names (which must exist), else
    /// `defaultPath` if it exists, else the built-in defaults; then the command-line overrides.
    public static func load(overrides: ConfigOverrides, names: NameResolver = .system) -> Result<DaemonConfig, ConfigError> {
        let base: Result<DaemonConfig, ConfigError>
        if let path = overrides.configPath {
            base = load(contentsOf: path, names: names)
        } else if FileManager.default.fileExists(atPath: defaultPath) {
            base = load(contentsOf: defaultPath, names: names)
        } else {
            base = .success(DaemonConfig())
        }
        return base.flatMap { $0.applying(overrides: overrides) }
    }

    /// The configuration with the command line's flags in place of the file's values.
    /// `configPath` only chooses the file (see `load(overrides:)`).
    public func applying(overrides: ConfigOverrides) -> Result<DaemonConfig, ConfigError> {
        var config = self
        var issues: [ConfigIssue] = []
        if let socket = overrides.socketPath {
            if let problem = SocketPathCheck.problem(socket) {
                issues.append(ConfigIssue(file: "<command line>", key: "--socket", reason: problem))
            } else {
                config.daemon.socketPath = socket
            }
        }
        if let backend = overrides.backend { config.daemon.backend = backend }
        if let level = overrides.logLevel { config.daemon.logLevel = level }
        return issues.isEmpty ? .success(config) : .failure(ConfigError(issues))
    }

    /// The keys whose change a reload cannot apply to a running daemon (they take effect at the
    /// next start), for a warning after SIGHUP.
    public func changesNeedingRestart(from old: DaemonConfig) -> [String] {
        var keys: [String] = []
        if daemon.socketPath != old.daemon.socketPath { keys.append("daemon.socket_path") }
        if daemon.socketMode != old.daemon.socketMode { keys.append("daemon.socket_mode") }
        if daemon.socketGroup != old.daemon.socketGroup { keys.append("daemon.socket_group") }
        if daemon.backend != old.daemon.backend { keys.append("daemon.backend") }
        if kernel != old.kernel { keys.append("kernel") }
        if sim != old.sim { keys.append("sim") }
        // The RPC server takes its limits when it starts listening; only channel_busy_poll_us
        // is applied by a reload.
        let (l, o) = (limits, old.limits)
        if l.maxMessageBytes != o.maxMessageBytes { keys.append("limits.max_message_bytes") }
        if l.maxClients != o.maxClients { keys.append("limits.max_clients") }
        if l.maxFDsPerMessage != o.maxFDsPerMessage { keys.append("limits.max_fds_per_message") }
        if l.idleTimeout != o.idleTimeout { keys.append("limits.idle_timeout_sec") }
        if l.partialMessageTimeout != o.partialMessageTimeout { keys.append("limits.partial_message_timeout_sec") }
        if l.maxOutputBufferBytes != o.maxOutputBufferBytes { keys.append("limits.max_output_buffer_bytes") }
        if l.rpcLingerMicroseconds != o.rpcLingerMicroseconds { keys.append("limits.rpc_linger_us") }
        if l.rpcSpinMicroseconds != o.rpcSpinMicroseconds { keys.append("limits.rpc_spin_us") }
        return keys
    }
}

/// The `iommufdd` flags that override the file. nil: not given.
public struct ConfigOverrides: Sendable, Equatable {
    /// `--config PATH`
    public var configPath: String?
    /// `--socket PATH`
    public var socketPath: String?
    /// `--backend auto|kernel|sim`
    public var backend: Backend?
    /// `--log-level trace|debug|info|notice|warning|error|critical`
    public var logLevel: Logger.Level?

    public init(configPath: String? = nil, socketPath: String? = nil, backend: Backend? = nil, logLevel: Logger.Level? = nil) {
        self.configPath = configPath
        self.socketPath = socketPath
        self.backend = backend
        self.logLevel = logLevel
    }
}

/// The configuration in force, replaced as a whole on reload. A reload that fails leaves the
/// old configuration in force and returns the problems for the log.
public final class ConfigStore: @unchecked Sendable {
    private let lock = NSLock()
    private var config: DaemonConfig
    /// The flags the daemon was started with; they keep overriding the file after a reload.
    public let overrides: ConfigOverrides
    private let names: NameResolver

    public init(initial: DaemonConfig, overrides: ConfigOverrides, names: NameResolver = .system) {
        self.config = initial
        self.overrides = overrides
        self.names = names
    }

    public var current: DaemonConfig {
        lock.lock()
        defer { lock.unlock() }
        return config
    }

    /// Re-reads the file (SIGHUP). On success the new configuration is in force and returned
    /// with the old one (so the caller can diff them); on failure nothing changes.
    @discardableResult
    public func reload() -> Result<(old: DaemonConfig, new: DaemonConfig), ConfigError> {
        switch DaemonConfig.load(overrides: overrides, names: names) {
        case .success(let new):
            lock.lock()
            let old = config
            config = new
            lock.unlock()
            return .success((old, new))
        case .failure(let error):
            return .failure(error)
        }
    }
}

/// User and group name lookups.
public struct NameResolver: Sendable {
    public var uid: @Sendable (String) -> uid_t?
    public var gid: @Sendable (String) -> gid_t?

    public init(uid: @escaping @Sendable (String) -> uid_t?, gid: @escaping @Sendable (String) -> gid_t?) {
        self.uid = uid
        self.gid = gid
    }

    /// getpwnam_r / getgrnam_r (NSS: /etc/passwd, sssd, systemd-userdb ...).
    public static let system = NameResolver(
        uid: { name in
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            var buffer = [CChar](repeating: 0, count: 16384)
            guard getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
            return entry.pw_uid
        },
        gid: { name in
            var entry = group()
            var result: UnsafeMutablePointer<group>?
            var buffer = [CChar](repeating: 0, count: 16384)
            guard getgrnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
            return entry.gr_gid
        })
}

enum SocketPathCheck {
    /// Why `path` cannot be a Unix socket path, or nil if it can.
    static func problem(_ path: String) -> String? {
        if !path.hasPrefix("/") { return "\"\(path)\" is not an absolute path" }
        // sockaddr_un.sun_path is 108 bytes including the terminating NUL.
        if path.utf8.count > 107 { return "the path is \(path.utf8.count) bytes; a Unix socket path holds at most 107" }
        if path.hasSuffix("/") { return "\"\(path)\" names a directory, not a socket" }
        if path.utf8.contains(0) { return "the path contains a NUL byte" }
        return nil
    }
}
