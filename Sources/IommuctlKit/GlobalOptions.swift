#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser

/// Options every command takes: where the daemon is, and how to print.
public struct GlobalOptions: ParsableArguments {
    /// The daemon's default socket (`iommufdd --socket` and the systemd socket unit agree).
    public static let defaultSocketPath = "/run/iommufdd/control.sock"
    /// The environment variable that overrides the default socket.
    public static let socketEnvironmentVariable = "IOMMUFDD_SOCKET"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The daemon's control socket. (default: $IOMMUFDD_SOCKET, else \(defaultSocketPath); for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)",
            valueName: "path"),
        completion: .file())
    public var socket: String?

    @Flag(name: .long, help: "Print the daemon's answer as JSON (keys sorted) instead of a table.")
    public var json = false

    @Flag(name: .long, help: "With --json: print the JSON on one line. Implies --json.")
    public var compact = false

    @Option(
        name: .long,
        help: ArgumentHelp("Seconds to wait for each answer of the daemon (0: wait forever).", valueName: "seconds"))
    public var timeout: UInt32 = 60

    public init() {}

    /// `--json` or `--compact`.
    public var jsonOutput: Bool { json || compact }

    /// `--socket`, else `$IOMMUFDD_SOCKET` (when set and not empty), else the default path —
    /// except for a non-root user with no system daemon but a daemon of their own, which
    /// `iommufdd` run as that user puts at `$XDG_RUNTIME_DIR/iommufdd/control.sock`.
    public func socketPath(environment: [String: String]) -> String {
        socketPath(environment: environment, uid: geteuid(), exists: { access($0, F_OK) == 0 })
    }

    func socketPath(environment: [String: String], uid: uid_t, exists: (String) -> Bool) -> String {
        if let socket { return socket }
        if let fromEnvironment = environment[Self.socketEnvironmentVariable], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        if uid != 0, !exists(Self.defaultSocketPath), let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            let own = runtime + "/iommufdd/control.sock"
            if exists(own) { return own }
        }
        return Self.defaultSocketPath
    }

    public var callTimeout: Duration? { timeout == 0 ? nil : .seconds(Int64(timeout)) }
}
