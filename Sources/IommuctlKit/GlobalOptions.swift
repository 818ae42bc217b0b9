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
            "The daemon's control socket. (default: $IOMMUFDD_SOCKET, else \(defaultSocketPath))",
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

    /// `--socket`, else `$IOMMUFDD_SOCKET` (when set and not empty), else the default path.
    public func socketPath(environment: [String: String]) -> String {
        if let socket { return socket }
        if let fromEnvironment = environment[Self.socketEnvironmentVariable], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return Self.defaultSocketPath
    }

    public var callTimeout: Duration? { timeout == 0 ? nil : .seconds(Int64(timeout)) }
}
