#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IommufdCore

/// A notification pushed by the server (`events.subscribe`), with any fds it carried (owned by
/// the receiver).
public struct RPCNotification: Sendable, Hashable {
    public var method: String
    public var params: JSONValue?
    public var fds: [Int32]
}

/// One line read off the socket and parsed, with the fds that came with it (owned by the
/// receiver).
public struct RPCMessage: Sendable, Hashable {
    public var json: JSONValue
    public var fds: [Int32]
}

/// A blocking JSON-RPC client for the daemon's socket, for `iommuctl` and tests.
///
/// Not thread-safe: use one client from one thread at a time (open several for concurrency).
/// Notifications that arrive while waiting for a response are kept for `nextNotification`.
/// Fds passed to `call` stay owned by the caller (the kernel duplicates them in flight); fds
/// received are owned by the caller.
public final class RPCClient {
    /// The socket path, when connected by path.
    public let path: String?
    /// The connected socket.
    public private(set) var fileDescriptor: Int32
    /// Longest line accepted from the server.
    public var maxMessageBytes = 64 << 20
    /// Most fds accepted with one message (the kernel's maximum by default).
    public var maxFileDescriptorsPerMessage = 253

    private var nextID: Int64 = 1
    private var inbound: [UInt8] = []
    private var consumed = 0
    /// `inbound` up to here holds no newline after `consumed`: a long message arriving in many
    /// reads is scanned once, not once per read.
    private var scanned = 0
    private var streamBase = 0
    private var waitingFDs: [(lineStart: Int, fds: [Int32])] = []
    private var notifications: [RPCNotification] = []
    private var readBuffer = [UInt8](repeating: 0, count: 64 << 10)

    /// Connects to the daemon at `path`. Errors say what to do: ENOENT → "no daemon at PATH: is
    /// iommufdd running?", EACCES → permission, ECONNREFUSED → stale socket.
    public init(path: String) throws(RPCTransportError) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw RPCTransportError(.system, errno: .current, path: path, message: "cannot create a socket: \(Errno.current)")
        }
        let result: Result<Int32, Errno> = SocketIO.withAddress(path) { address, length in
            while true {
                if connect(fd, address, length) == 0 { return 0 }
                if errno != EINTR { return errno }
            }
        }
        let failure: Errno?
        switch result {
        case .failure(let e): failure = e
        case .success(let code): failure = code == 0 ? nil : Errno(code)
        }
        if let failure {
            _ = Glibc.close(fd)
            throw RPCTransportError.connectFailed(failure, path: path)
        }
        self.path = path
        self.fileDescriptor = fd
    }

    /// Adopts a connected stream socket (a `socketpair` end, an inherited fd).
    public init(adopting fd: Int32) {
        path = nil
        fileDescriptor = fd
    }

    deinit { close() }

    /// Closes the socket, and any fds received but not handed out.
    public func close() {
        guard fileDescriptor >= 0 else { return }
        _ = Glibc.close(fileDescriptor)
        fileDescriptor = -1
        for entry in waitingFDs { SocketIO.closeAll(entry.fds) }
        waitingFDs = []
        for n in notifications { SocketIO.closeAll(n.fds) }
        notifications = []
    }

    // MARK: - Calls

    /// Calls `method` and waits for its response. Throws `RPCError` when the daemon answers with
    /// an error, `RPCTransportError` when the connection fails or `timeout` passes.
    public func call(_ method: String, params: JSONValue? = nil, fds: [Int32] = [], timeout: Duration? = nil) throws -> (result: JSONValue, fds: [Int32]) {
        let id = RPCID(nextID)
        nextID += 1
        var line = RPCRequest(method: method, params: params, id: id).json.encoded()
        line.append(UInt8(ascii: "\n"))
        try sendExpectingAnswer(line, fds: fds)
        let deadline = timeout.map { Self.now() &+ $0.nanoseconds }
        while true {
            guard let message = try receiveMessage(deadline: deadline) else {
                throw RPCTransportError(.timedOut, path: path, message: "no answer to \(method) within \(timeout!)")
            }
            if let response = try route(message) {
                switch response {
                case (let rid, .success(let value)) where rid == id:
                    return (value, message.fds)
                case (let rid, .failure(let error)) where rid == id || rid == .null:
                    // id null: the server could not read the request (parse error, too large...).
                    SocketIO.closeAll(message.fds)
                    throw error
                default:
                    SocketIO.closeAll(message.fds)  // an answer to a call that timed out earlier
                }
            }
        }
    }

    /// Calls `method` with `params` encoded from `P` and decodes the result as `R`.
    public func call<P: Encodable, R: Decodable>(_ method: String, params: P, as type: R.Type = R.self, timeout: Duration? = nil) throws -> R {
        let encoded = try JSONValueEncoder().encode(params)
        let (result, fds) = try call(method, params: encoded, timeout: timeout)
        SocketIO.closeAll(fds)
        return try JSONValueDecoder().decode(R.self, from: result)
    }

    /// Sends a notification: no answer comes back, not even for an error.
    public func notify(_ method: String, params: JSONValue? = nil, fds: [Int32] = []) throws(RPCTransportError) {
        var line = RPCRequest(method: method, params: params, id: nil).json.encoded()
        line.append(UInt8(ascii: "\n"))
        try sendRaw(line, fds: fds)
    }

    /// Sends `requests` as one batch. Returns the answers by id (empty, without waiting, when
    /// every member is a notification). Throws `RPCError` if the whole batch was refused.
    public func batch(_ requests: [RPCRequest], timeout: Duration? = nil) throws -> [RPCID: Result<JSONValue, RPCError>] {
        var line = JSONValue.array(requests.map(\.json)).encoded()
        line.append(UInt8(ascii: "\n"))
        try sendExpectingAnswer(line, fds: [])
        if !requests.isEmpty && requests.allSatisfy(\.isNotification) { return [:] }
        let deadline = timeout.map { Self.now() &+ $0.nanoseconds }
        while true {
            guard let message = try receiveMessage(deadline: deadline) else {
                throw RPCTransportError(.timedOut, path: path, message: "no answer to a batch within \(timeout!)")
            }
            SocketIO.closeAll(message.fds)
            if case .array(let members) = message.json {
                var answers: [RPCID: Result<JSONValue, RPCError>] = [:]
                for member in members {
                    guard let (id, outcome) = Self.parseResponse(member) else {
                        throw RPCTransportError(.protocolViolation, path: path, message: "the daemon sent a malformed batch answer: \(member)")
                    }
                    answers[id] = outcome
                }
                return answers
            }
            if let (_, outcome) = try route(message), case .failure(let error) = outcome { throw error }
        }
    }

    /// The next notification: one already received, or the next to arrive within `timeout`
    /// (`nil`: wait forever). Returns nil on timeout. Responses read meanwhile are dropped.
    public func nextNotification(timeout: Duration? = nil) throws(RPCTransportError) -> RPCNotification? {
        let deadline = timeout.map { Self.now() &+ $0.nanoseconds }
        while notifications.isEmpty {
            guard let message = try receiveMessage(deadline: deadline) else { return nil }
            if (try? route(message)) != nil { SocketIO.closeAll(message.fds) }
        }
        return notifications.removeFirst()
    }

    /// Files a notification away; returns a response as (id, outcome); nil for anything else.
    private func route(_ message: RPCMessage) throws(RPCTransportError) -> (RPCID, Result<JSONValue, RPCError>)? {
        if case .object(let o) = message.json, o["id"] == nil, case .string(let method)? = o["method"] {
            notifications.append(RPCNotification(method: method, params: o["params"], fds: message.fds))
            return nil
        }
        guard let response = Self.parseResponse(message.json) else {
            SocketIO.closeAll(message.fds)
            throw RPCTransportError(.protocolViolation, path: path, message: "the daemon sent something that is not a JSON-RPC response: \(message.json)")
        }
        return response
    }

    static func parseResponse(_ json: JSONValue) -> (RPCID, Result<JSONValue, RPCError>)? {
        guard case .object(let o) = json, let rawID = o["id"], let id = RPCID(json: rawID) else { return nil }
        if let result = o["result"] { return (id, .success(result)) }
        if let e = o["error"], let error = RPCError(json: e) { return (id, .failure(error)) }
        return nil
    }

    // MARK: - Raw lines

    /// Sends `bytes` as they are (add the `\n` yourself). `fds` ride on the first byte.
    public func sendRaw(_ bytes: [UInt8], fds: [Int32] = []) throws(RPCTransportError) {
        var offset = 0
        var pendingFDs = fds
        while offset < bytes.count || !pendingFDs.isEmpty {
            let r = bytes.withUnsafeBytes { raw in
                SocketIO.send(fileDescriptor, UnsafeRawBufferPointer(rebasing: raw[offset...]), fds: pendingFDs)
            }
            switch r {
            case .success(let n):
                offset += n
                pendingFDs = []
            case .failure(let e):
                throw disconnected(e, doing: "send")
            }
        }
    }

    /// Like `sendRaw`, but when the daemon already closed the connection, reports the error it
    /// left behind (refusal, client limit, message too large) instead of EPIPE.
    private func sendExpectingAnswer(_ bytes: [UInt8], fds: [Int32]) throws {
        do {
            try sendRaw(bytes, fds: fds)
        } catch let sendError {
            if sendError.kind == .disconnected,
               let message = try? receiveMessage(deadline: Self.now() &+ 200_000_000),
               let (_, outcome) = Self.parseResponse(message.json), case .failure(let error) = outcome {
                throw error
            }
            throw sendError
        }
    }

    /// Reads the next line as JSON within `timeout` (`nil`: wait forever); nil on timeout.
    public func receiveMessage(timeout: Duration? = nil) throws(RPCTransportError) -> RPCMessage? {
        try receiveMessage(deadline: timeout.map { Self.now() &+ $0.nanoseconds })
    }

    private func receiveMessage(deadline: UInt64?) throws(RPCTransportError) -> RPCMessage? {
        guard let (line, fds) = try receiveLine(deadline: deadline) else { return nil }
        do {
            return RPCMessage(json: try JSONValue.parse(line, maxDepth: 512), fds: fds)
        } catch {
            SocketIO.closeAll(fds)
            throw RPCTransportError(.protocolViolation, path: path, message: "the daemon sent a line that is not JSON (\(error))")
        }
    }

    /// Reads the next line (without its `\n`) and the fds that came with it.
    public func receiveLine(timeout: Duration? = nil) throws(RPCTransportError) -> (bytes: [UInt8], fds: [Int32])? {
        try receiveLine(deadline: timeout.map { Self.now() &+ $0.nanoseconds })
    }

    private func receiveLine(deadline: UInt64?) throws(RPCTransportError) -> (bytes: [UInt8], fds: [Int32])? {
        while true {
            let from = max(consumed, scanned)
            let found: Int? = inbound.withUnsafeBytes { raw in
                guard from < raw.count, let base = raw.baseAddress, let hit = memchr(base + from, 0x0A, raw.count - from) else { return nil }
                return base.distance(to: UnsafeRawPointer(hit))
            }
            scanned = found ?? inbound.count
            if let newline = found {
                let start = consumed
                var end = newline
                if end > start, inbound[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = Array(inbound[start..<end])
                consumed = newline + 1
                scanned = consumed
                let lineStart = streamBase + start
                var fds: [Int32] = []
                waitingFDs.removeAll { entry in
                    if entry.lineStart == lineStart { fds = entry.fds; return true }
                    if entry.lineStart < lineStart { SocketIO.closeAll(entry.fds); return true }
                    return false
                }
                if consumed == inbound.count {
                    streamBase += consumed
                    inbound.removeAll(keepingCapacity: true)
                    consumed = 0
                    scanned = 0
                }
                return (line, fds)
            }
            if inbound.count - consumed > maxMessageBytes {
                throw RPCTransportError(.protocolViolation, path: path, message: "the daemon sent a message larger than \(maxMessageBytes) bytes")
            }
            if let deadline {
                let now = Self.now()
                if now >= deadline { return nil }
                var pfd = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
                let ms = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
                let ready = poll(&pfd, 1, ms)
                if ready < 0 && errno != EINTR { throw disconnected(.current, doing: "poll") }
                if ready <= 0 { continue }
            }
            let received = readBuffer.withUnsafeMutableBytes { raw in
                SocketIO.receive(fileDescriptor, into: raw, maxFDs: maxFileDescriptorsPerMessage)
            }
            switch received {
            case .failure(let e):
                throw disconnected(e, doing: "receive")
            case .success(let r):
                if r.count == 0 {
                    SocketIO.closeAll(r.fds)
                    throw RPCTransportError(.disconnected, path: path, message: "the daemon closed the connection\(path.map { " on \($0)" } ?? "")")
                }
                let chunkStart = streamBase + inbound.count
                if !r.fds.isEmpty {
                    var lineStart = inbound.count == consumed ? chunkStart : streamBase + consumed
                    var p = r.count - 2
                    while p >= 0 {
                        if readBuffer[p] == UInt8(ascii: "\n") { lineStart = chunkStart + p + 1; break }
                        p -= 1
                    }
                    if let i = waitingFDs.firstIndex(where: { $0.lineStart == lineStart }) {
                        waitingFDs[i].fds += r.fds
                    } else {
                        waitingFDs.append((lineStart, r.fds))
                    }
                }
                if r.fdsTruncated {
                    throw RPCTransportError(.protocolViolation, path: path, message: "the daemon sent more than \(maxFileDescriptorsPerMessage) file descriptors with one message")
                }
                inbound.append(contentsOf: readBuffer[0..<r.count])
            }
        }
    }

    private func disconnected(_ e: Errno, doing what: String) -> RPCTransportError {
        let kind: RPCTransportError.Kind = (e == .EPIPE || e == .ECONNRESET) ? .disconnected : .system
        let message = kind == .disconnected
            ? "the daemon closed the connection\(path.map { " on \($0)" } ?? "") (\(what): \(e.name))"
            : "\(what) on the daemon's socket failed: \(e)"
        return RPCTransportError(kind, errno: e, path: path, message: message)
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
