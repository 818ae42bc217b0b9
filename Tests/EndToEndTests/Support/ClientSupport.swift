import CIommufd
import CTestIdentity
import Foundation
import IommufdCore
import IommufdRPC
import Testing

#if canImport(Glibc)
import Glibc
#endif

let pageSize: UInt64 = 4096

extension RPCClient {
    /// `call` with a generous deadline, so a wedged daemon fails the test instead of hanging it.
    @discardableResult
    func call(_ method: String, _ params: JSONValue? = nil, fds: [Int32] = []) throws -> JSONValue {
        let (result, received) = try call(method, params: params, fds: fds, timeout: .seconds(60))
        for fd in received { Glibc.close(fd) }
        return result
    }

    /// The error `method` answers with; fails the test if it succeeds.
    func error(_ method: String, _ params: JSONValue? = nil, fds: [Int32] = [],
               sourceLocation: SourceLocation = #_sourceLocation) throws -> RPCError {
        do {
            let (result, received) = try call(method, params: params, fds: fds, timeout: .seconds(60))
            for fd in received { Glibc.close(fd) }
            Issue.record("\(method) succeeded with \(result); an error was expected", sourceLocation: sourceLocation)
            throw TestFailure("\(method) did not fail")
        } catch let e as RPCError {
            return e
        }
    }

    /// Reads lines until one parses as a JSON-RPC response object (skipping notifications).
    func nextResponse(timeout: Double = 60) throws -> JSONValue {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let message = try receiveMessage(timeout: .seconds(5)) else { continue }
            for fd in message.fds { Glibc.close(fd) }
            if case .object(let o) = message.json, o["method"] != nil, o["id"] == nil { continue }
            return message.json
        }
        throw TestFailure("no response within \(timeout) s")
    }

    /// Sends raw bytes and returns the next response.
    func raw(_ text: String, fds: [Int32] = []) throws -> JSONValue {
        try sendRaw(Array(text.utf8), fds: fds)
        return try nextResponse()
    }

    /// True once the daemon has closed this connection (reads EOF or ECONNRESET within
    /// `timeout`); lines it sends before closing are skipped.
    func isClosedByDaemon(timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            do {
                guard let m = try receiveLine(timeout: .seconds(5)) else { continue }
                for fd in m.fds { Glibc.close(fd) }
            } catch let e as RPCTransportError {
                return e.kind == .disconnected || e.errno == .ECONNRESET
            } catch {
                return false
            }
        }
        return false
    }
}

extension JSONValue {
    var int: Int64? { int64Value }
    var uint: UInt64? { uint64Value }
    var errorCode: Int64? { self["error"]?["code"]?.int64Value }
    var errorName: String? { self["error"]?["data"]?["name"]?.stringValue }
}

/// Names of the domain errors (BRIEF section 4), as `error.data.name`.
enum ErrorName {
    static let notFound = "iommufdd.NotFound"
    static let permissionDenied = "iommufdd.PermissionDenied"
    static let busy = "iommufdd.Busy"
    static let quotaExceeded = "iommufdd.QuotaExceeded"
    static let unsupported = "iommufdd.Unsupported"
    static let kernel = "iommufdd.Kernel"
    static let invalidParams = "iommufdd.InvalidParams"
    static let conflict = "iommufdd.Conflict"
    static let policyRefused = "iommufdd.PolicyRefused"
}

/// Whether `fd` is open in this process.
func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }

let runningAsRoot = getuid() == 0
