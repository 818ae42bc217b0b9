#if canImport(Glibc)
import Glibc
#endif
import IommufdRPC
import Logging
import Synchronization
import TestProcesses

@testable import IommuctlKit

/// An in-process JSON-RPC server on a temporary socket with canned answers, standing in for
/// iommufdd: it records every call's params so tests can check what iommuctl sent.
final class FakeDaemon: Sendable {
    private let temporaryDirectory: TemporaryDirectory
    var directory: String { temporaryDirectory.path }
    let socketPath: String
    let router: RPCRouter
    private let server: RPCServer
    private let calls = Recorder<(method: String, params: JSONValue?)>()

    init(accept: (@Sendable (RPCPeer) -> RPCError?)? = nil) throws {
        temporaryDirectory = try TemporaryDirectory("iommuctl-test")
        socketPath = temporaryDirectory.path + "/control.sock"
        router = RPCRouter(accept: accept)
        server = try RPCServer(listen: .path(socketPath), logger: Logger(label: "fake-iommufdd", factory: { _ in SwiftLogNoOpLogHandler() }), handler: router)
        server.start()
    }

    deinit {
        server.shutdown(gracePeriod: .seconds(5))
    }

    /// Answers `method` with `body`, recording the call first.
    func on(_ method: String, _ body: @escaping @Sendable (RPCCall) throws -> RPCResult) {
        router.register(method) { [calls] call in
            calls.append((call.method, call.params))
            return try body(call)
        }
    }

    /// Answers `method` with a fixed result.
    func answer(_ method: String, _ result: JSONValue) {
        on(method) { _ in RPCResult(result) }
    }

    /// Answers `method` with an error.
    func fail(_ method: String, _ error: RPCError) {
        on(method) { _ in throw error }
    }

    /// The params of the calls of `method`, in order.
    func params(of method: String) -> [JSONValue?] {
        calls.all.filter { $0.method == method }.map(\.params)
    }

    var methodsCalled: [String] { calls.all.map(\.method) }

    /// Runs iommuctl in-process against this daemon.
    func run(_ arguments: [String], environment: [String: String] = [:]) -> (code: Int32, output: String, error: String) {
        let (terminal, captured) = Terminal.capturing()
        let code = IommuCtl.run(arguments: arguments + ["--socket", socketPath], terminal: terminal, environment: environment)
        return (code, captured.output, captured.error)
    }

    /// Parses a JSON fixture (tests only: a malformed fixture is a test bug).
    static func json(_ text: String) -> JSONValue {
        (try? JSONValue.parse(text)) ?? .string("malformed fixture: \(text)")
    }
}

/// A list that handlers (on the server's threads) append to and tests read.
final class Recorder<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])
    func append(_ item: Element) { items.withLock { $0.append(item) } }
    var all: [Element] { items.withLock { $0 } }
}

/// The path `mkstemp` wrote into `template`.
func path(fromTemplate template: [CChar]) -> String {
    String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
