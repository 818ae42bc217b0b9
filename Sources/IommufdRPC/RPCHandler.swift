#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Who is on the other end of a connection: `SO_PEERCRED`, taken once at accept time.
public struct RPCPeer: Sendable, Hashable, CustomStringConvertible {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32

    public init(uid: UInt32, gid: UInt32, pid: Int32) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
    }

    public var description: String { "uid \(uid) gid \(gid) pid \(pid)" }
}

/// The file descriptors that arrived with one message (one line), by index.
///
/// A handler takes the ones it uses; ownership passes to it. Whatever is not taken is closed by
/// the server when the message has been handled (for a batch: after its last member).
public final class RPCFileDescriptors: Sendable {
    private let slots: Locked<[Int32?]>

    init(_ fds: [Int32]) { slots = Locked(fds.map { Optional($0) }) }

    /// Shared by every message that carried no fds.
    static let none = RPCFileDescriptors([])

    /// How many fds came with the message.
    public var count: Int { slots.withLock { $0.count } }

    /// Takes fd number `index`; the caller now owns it and must close it.
    /// Fails with -32602 when there is no such fd or it was already taken.
    public func take(_ index: Int) throws(RPCError) -> Int32 {
        let outcome: Result<Int32, RPCError> = slots.withLock { slots in
            guard index >= 0, index < slots.count else {
                return .failure(.invalidParams(
                    "file descriptor index \(index) does not exist: the message carried \(slots.count) file descriptor(s) (send them with SCM_RIGHTS on the request line)",
                    fields: ["fd": .int(Int64(index)), "received": .int(Int64(slots.count))]))
            }
            guard let fd = slots[index] else {
                return .failure(.invalidParams("file descriptor index \(index) is used twice", fields: ["fd": .int(Int64(index))]))
            }
            slots[index] = nil
            return .success(fd)
        }
        return try outcome.get()
    }

    /// Takes the fd a params member names as `{"fd": N}` (or a bare integer N).
    public func take(reference: JSONValue?, field: String = "fd") throws(RPCError) -> Int32 {
        let index: Int64?
        switch reference {
        case .object(let o)?: index = o["fd"]?.int64Value
        case let v?: index = v.int64Value
        case nil: index = nil
        }
        guard let index else {
            throw .invalidParams("\"\(field)\" must be {\"fd\": N}, N the index of a file descriptor sent with the message")
        }
        return try take(Int(clamping: index))
    }

    /// Closes every fd nobody took. Returns how many were closed.
    @discardableResult
    func closeRemaining() -> Int {
        let remaining: [Int32] = slots.withLock { slots in
            let left = slots.compactMap { $0 }
            slots = slots.map { _ in nil }
            return left
        }
        for fd in remaining { _ = Glibc.close(fd) }
        return remaining.count
    }
}

/// In params, a file descriptor sent with the message: `{"fd": 0}`.
public struct RPCFileDescriptorRef: Codable, Sendable, Hashable {
    public var fd: Int
    public init(fd: Int) { self.fd = fd }
}

/// One request as a handler sees it: the method and params, the fds that came with it, who sent
/// it and on which connection.
public struct RPCCall: Sendable {
    public var method: String
    public var params: JSONValue?
    /// `nil` for a notification: whatever the handler returns is dropped.
    public var id: RPCID?
    public var peer: RPCPeer
    public var connection: RPCConnection
    public var fds: RPCFileDescriptors
    /// True inside a batch. A batch member cannot return fds (their indexes would collide), so a
    /// handler that would hand fds out should refuse early; returned fds are closed and the
    /// member answered with `iommufdd.FileDescriptorsInBatch`.
    public var isBatchMember: Bool

    public var isNotification: Bool { id == nil }

    /// Decodes the params into `T`; absent params decode as `{}`. Mismatches become -32602 with
    /// the path of the offending member ("params.iova: expected an integer ...").
    public func decodeParams<T: Decodable>(_ type: T.Type = T.self) throws(RPCError) -> T {
        do {
            return try JSONValueDecoder().decode(T.self, from: params ?? .object([:]))
        } catch let error as DecodingError {
            throw .invalidParams(RPCError.describe(error))
        } catch {
            throw RPCError(converting: error)
        }
    }
}

/// What a handler answers: a JSON result and optionally fds, sent with SCM_RIGHTS on the
/// response line. The server owns the fds from then on and closes them once sent (or dropped).
public struct RPCResult: Sendable {
    public var value: JSONValue
    public var fds: [Int32]

    public init(_ value: JSONValue = .null, fds: [Int32] = []) {
        self.value = value
        self.fds = fds
    }

    /// Encodes `value` with `JSONValueEncoder`.
    public static func encoding<T: Encodable>(_ value: T, fds: [Int32] = []) throws(RPCError) -> RPCResult {
        do {
            return RPCResult(try JSONValueEncoder().encode(value), fds: fds)
        } catch {
            throw .internalError("cannot encode the result: \(error)")
        }
    }
}

/// The daemon's side of the server: admission, dispatch, and connection lifecycle.
///
/// `handle` runs on a concurrent pool; calls of one connection are strictly sequential and in
/// order, calls of different connections run in parallel. It may block. Throw an `RPCError`
/// (or an `IommuError`, `Errno`, `DecodingError`: see `RPCError(converting:)`).
public protocol RPCHandler: Sendable {
    /// Called on accept, before anything is read. Return an error to refuse the peer: it is
    /// sent as a response with id null, then the connection is closed. Must not block.
    func accept(peer: RPCPeer) -> RPCError?

    /// Called once the connection is admitted, before its first request.
    func connectionOpened(_ connection: RPCConnection)

    func handle(_ call: RPCCall) throws -> RPCResult

    /// Called once when the connection is gone (after its last `handle` returned): drop its
    /// subscriptions here.
    func connectionClosed(_ connection: RPCConnection)
}

extension RPCHandler {
    public func accept(peer: RPCPeer) -> RPCError? { nil }
    public func connectionOpened(_ connection: RPCConnection) {}
    public func connectionClosed(_ connection: RPCConnection) {}
}

/// A method table: the simplest `RPCHandler`. Unknown methods answer -32601.
public final class RPCRouter: RPCHandler, Sendable {
    public typealias Method = @Sendable (RPCCall) throws -> RPCResult

    private let methods: Locked<[String: Method]> = Locked([:])
    private let admission: (@Sendable (RPCPeer) -> RPCError?)?
    private let onClose: (@Sendable (RPCConnection) -> Void)?

    public init(accept: (@Sendable (RPCPeer) -> RPCError?)? = nil, onClose: (@Sendable (RPCConnection) -> Void)? = nil) {
        self.admission = accept
        self.onClose = onClose
    }

    public func register(_ method: String, _ body: @escaping Method) {
        methods.withLock { $0[method] = body }
    }

    /// Registers a method with typed params and result.
    public func register<P: Decodable, R: Encodable>(_ method: String, params: P.Type, _ body: @escaping @Sendable (P, RPCCall) throws -> R) {
        register(method) { call in
            let p = try call.decodeParams(P.self)
            return try RPCResult.encoding(try body(p, call))
        }
    }

    public var methodNames: [String] { methods.withLock { $0.keys.sorted() } }

    public func accept(peer: RPCPeer) -> RPCError? { admission?(peer) }

    public func connectionClosed(_ connection: RPCConnection) { onClose?(connection) }

    public func handle(_ call: RPCCall) throws -> RPCResult {
        guard let body = methods.withLock({ $0[call.method] }) else { throw RPCError.methodNotFound(call.method) }
        return try body(call)
    }
}
