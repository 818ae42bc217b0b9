#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IommufdCore
import IommufdRPC

/// What a command runs with: the options, where to print, and the connection to the daemon
/// (opened on first use, closed when the context goes away).
public final class CommandContext {
    public let options: GlobalOptions
    public let terminal: Terminal
    public let environment: [String: String]
    private var client: RPCClient?

    public init(options: GlobalOptions, terminal: Terminal, environment: [String: String]) {
        self.options = options
        self.terminal = terminal
        self.environment = environment
    }

    deinit { client?.close() }

    public var socketPath: String { options.socketPath(environment: environment) }

    /// The connection, opened on first use.
    public func connection() throws -> RPCClient {
        if let client { return client }
        let opened = try RPCClient(path: socketPath)
        client = opened
        return opened
    }

    /// Calls `method` and returns its result and the fds that came with it (the caller owns
    /// and must close them).
    public func callWithFDs(_ method: String, _ params: JSONValue? = nil, fds: [Int32] = []) throws -> (result: JSONValue, fds: [Int32]) {
        try connection().call(method, params: params, fds: fds, timeout: options.callTimeout)
    }

    /// Calls `method`; fds the daemon sends back unasked are closed.
    public func call(_ method: String, _ params: JSONValue? = nil, fds: [Int32] = []) throws -> JSONValue {
        let (result, received) = try callWithFDs(method, params, fds: fds)
        closeAll(received)
        return result
    }

    /// Calls `method` with params encoded from one of the broker's API types.
    public func call<P: Encodable>(_ method: String, encoding params: P, fds: [Int32] = []) throws -> JSONValue {
        try call(method, encode(params), fds: fds)
    }

    public func encode<P: Encodable>(_ params: P) throws -> JSONValue {
        try JSONValueEncoder().encode(params)
    }

    /// Decodes a result for human output; a mismatch says to use `--json`.
    public func decode<R: Decodable>(_ type: R.Type, from json: JSONValue) throws -> R {
        do {
            return try JSONValueDecoder().decode(R.self, from: json)
        } catch {
            throw CtlError(.failure, "cannot read the daemon's answer (\(error)); `--json` prints it as it is")
        }
    }

    /// Prints `json` with `--json`, else what `human` renders from it.
    public func emit(_ json: JSONValue, human: () throws -> String) throws {
        if options.jsonOutput {
            terminal.print(JSONText.render(json, compact: options.compact))
        } else {
            let text = try human()
            if !text.isEmpty { terminal.print(text) }
        }
    }

    /// Prints `json` with `--json`, else the result decoded as `R` and rendered.
    public func emit<R: Decodable>(_ json: JSONValue, as type: R.Type, human: (R) throws -> String) throws {
        try emit(json) { try human(try decode(R.self, from: json)) }
    }

    func closeAll(_ fds: [Int32]) {
        for fd in fds { _ = Glibc.close(fd) }
    }
}
