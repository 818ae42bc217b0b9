#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import IommufdCore
import Logging

/// One client connection. Handlers receive it in `RPCCall.connection`; keep it to push
/// notifications (`events.subscribe`) until `RPCHandler.connectionClosed` says it is gone.
public final class RPCConnection: @unchecked Sendable, Hashable, CustomStringConvertible {
    /// Unique for the lifetime of the server.
    public let id: UInt64
    public let peer: RPCPeer

    let fd: Int32
    let server: RPCServer
    let queue: DispatchQueue
    let logger: Logger
    private let limits: RPCLimits

    // Confined to `queue`.
    private var inbound: [UInt8] = []
    /// Bytes at the front of `inbound` already handled.
    private var consumed = 0
    /// `inbound[consumed..<scanned]` has no newline.
    private var scanned = 0
    /// Stream offset of `inbound[0]`.
    private var streamBase = 0
    /// Fds waiting for their message, keyed by the stream offset where that message starts.
    private var waitingFDs: [(lineStart: Int, fds: [Int32], problem: FDProblem?)] = []

    /// Why the fds of a message were dropped.
    enum FDProblem {
        case tooMany
        /// The kernel could not install them here (the daemon's fd limit).
        case lost
    }
    private var readBuffer: UnsafeMutableRawBufferPointer
    /// The last read was handled in less than `RPCLingerGate.quickRequestNanoseconds`: only then
    /// does the worker linger for the next request (confined to `queue`).
    private var handledQuickly = false
    /// Whether this client came back quickly after the last answer (confined to `queue`).
    private var lingerState = LingerState()

    private struct OutChunk {
        var bytes: [UInt8]
        var offset: Int
        var fds: [Int32]
    }

    private struct Shared {
        var closed = false
        var fdClosed = false
        var readSource: Unchecked<DispatchSourceRead>?
        var readCancelled = false
        var writeSource: Unchecked<DispatchSourceWrite>?
        var writeSuspended = false
        var writeCancelled = true
        var output: [OutChunk] = []
        var outputHead = 0
        var outputBytes = 0
        var closeAfterFlush: String?
        var busy = false
        var lastActivity: UInt64
        var partialSince: UInt64?
        var exemptFromIdleTimeout = false
    }

    private let shared: Locked<Shared>

    static let readChunk = 16 << 10

    init(id: UInt64, fd: Int32, peer: RPCPeer, server: RPCServer) {
        self.id = id
        self.fd = fd
        self.peer = peer
        self.server = server
        self.limits = server.limits
        queue = DispatchQueue(label: "iommufdd.rpc.connection", target: server.handlerQueue)
        var logger = server.logger
        logger[metadataKey: "rpc.connection"] = .stringConvertible(id)
        logger[metadataKey: "rpc.peer.uid"] = .stringConvertible(peer.uid)
        logger[metadataKey: "rpc.peer.pid"] = .stringConvertible(peer.pid)
        self.logger = logger
        readBuffer = .allocate(byteCount: Self.readChunk, alignment: 16)
        shared = Locked(Shared(lastActivity: DispatchTime.now().uptimeNanoseconds))
    }

    deinit {
        readBuffer.deallocate()
    }

    public static func == (a: RPCConnection, b: RPCConnection) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
    public var description: String { "connection \(id) (\(peer))" }

    /// False once the connection is closed (by either side).
    public var isOpen: Bool { shared.withLock { !$0.closed } }

    /// A subscriber waits for notifications without sending anything: exempt it from the idle
    /// timeout.
    public var exemptFromIdleTimeout: Bool {
        get { shared.withLock { $0.exemptFromIdleTimeout } }
        set { shared.withLock { $0.exemptFromIdleTimeout = newValue } }
    }

    /// Pushes a notification (`{"jsonrpc":"2.0","method":...,"params":...}`), with optional fds
    /// (owned by the connection from now on). Safe from any thread; lines never interleave
    /// with responses. Returns false if the connection is closed (the fds are closed then).
    @discardableResult
    public func notify(method: String, params: JSONValue? = nil, fds: [Int32] = []) -> Bool {
        let sent = send(RPCWire.notificationLine(method: method, params: params), fds: fds)
        if sent { server.count { $0.notificationsSent += 1 } }
        return sent
    }

    /// Closes the connection now; queued output is dropped.
    public func close() {
        close(reason: "closed_by_server")
    }

    // MARK: - Reading

    func startReading() {
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        source.setEventHandler { [self] in readable() }
        source.setCancelHandler { [self] in
            shared.withLock { $0.readCancelled = true }
            finishIfClosed()
        }
        let started = shared.withLock { s -> Bool in
            guard !s.closed, s.closeAfterFlush == nil else { return false }
            s.readSource = Unchecked(source)
            return true
        }
        if started {
            source.activate()
        } else {
            shared.withLock { $0.readCancelled = true }
            finishIfClosed()
        }
    }

    /// Reads until the socket is drained: EAGAIN, or a short read that carried no fds. A short
    /// read *with* fds proves nothing (the kernel stops after a segment that carried fds), and
    /// the source may not fire again for what is left.
    ///
    /// When the socket is drained, the worker may linger for the client's next request
    /// (`RPCLingerGate`) and serve it without going back through Dispatch.
    private func readable() {
        server.linger.enter()
        defer { server.linger.leave() }
        while true {
            if shared.withLock({ $0.closed || $0.closeAfterFlush != nil }) { return }
            switch SocketIO.receive(fd, into: readBuffer, maxFDs: limits.maxFileDescriptorsPerMessage) {
            case .failure(.EAGAIN):
                if handledQuickly && server.linger.linger(on: fd, &lingerState) { continue }
                return
            case .failure(let e):
                if e == .ECONNRESET {
                    logger.debug("peer reset the connection")
                    close(reason: "peer_closed")
                } else {
                    logger.warning("receive failed; closing the connection", metadata: ["rpc.errno": .string(e.name)])
                    close(reason: "io_error")
                }
                return
            case .success(let received):
                if received.count == 0 {
                    SocketIO.closeAll(received.fds)
                    if inbound.count > consumed {
                        logger.debug("peer closed in the middle of a message", metadata: ["rpc.bytes": .stringConvertible(inbound.count - consumed)])
                    }
                    // Half-close: the client may still be reading its answers.
                    closeWhenFlushed(reason: "peer_closed")
                    return
                }
                server.count {
                    $0.bytesReceived += UInt64(received.count)
                    $0.fileDescriptorsReceived += UInt64(received.fds.count)
                }
                let problem: FDProblem? = received.fdsLost ? .lost : received.fdsTruncated ? .tooMany : nil
                if problem == .lost {
                    logger.error("could not receive file descriptors (process fd limit?); the request is refused")
                }
                let started = DispatchTime.now().uptimeNanoseconds
                ingest(count: received.count, fds: received.fds, problem: problem)
                handledQuickly = DispatchTime.now().uptimeNanoseconds - started < RPCLingerGate.quickRequestNanoseconds
                // A short read without fds took everything there was: new data means a new event.
                if received.count < readBuffer.count && received.fds.isEmpty && problem == nil {
                    if handledQuickly && server.linger.linger(on: fd, &lingerState) { continue }
                    return
                }
            }
        }
    }

    /// Appends one read to the buffer, attaches its fds, and handles every complete line.
    private func ingest(count n: Int, fds: [Int32], problem: FDProblem?) {
        let chunk = UnsafeRawBufferPointer(rebasing: readBuffer[0..<n])
        let chunkStart = streamBase + inbound.count
        if !fds.isEmpty || problem != nil {
            var lineStart: Int? = nil
            var p = n - 2
            while p >= 0 {
                if chunk[p] == UInt8(ascii: "\n") { lineStart = chunkStart + p + 1; break }
                p -= 1
            }
            let start = lineStart ?? (inbound.count == consumed ? chunkStart : streamBase + consumed)
            attach(fds, problem: problem, toLineAt: start)
        }
        inbound.append(contentsOf: chunk)
        processLines()
    }

    private func attach(_ fds: [Int32], problem: FDProblem?, toLineAt start: Int) {
        let index = waitingFDs.firstIndex { $0.lineStart == start } ?? {
            waitingFDs.append((start, [], nil))
            return waitingFDs.count - 1
        }()
        let tooMany = waitingFDs[index].fds.count + fds.count > limits.maxFileDescriptorsPerMessage
        if let dropped = problem ?? waitingFDs[index].problem ?? (tooMany ? .tooMany : nil) {
            SocketIO.closeAll(fds)
            SocketIO.closeAll(waitingFDs[index].fds)
            waitingFDs[index].fds = []
            if waitingFDs[index].problem != .lost { waitingFDs[index].problem = dropped }
        } else {
            waitingFDs[index].fds += fds
        }
    }

    private func takeFDs(forLineAt start: Int) -> (fds: [Int32], problem: FDProblem?) {
        var fds: [Int32] = []
        var problem: FDProblem? = nil
        waitingFDs.removeAll { entry in
            if entry.lineStart == start {
                fds = entry.fds
                problem = entry.problem
                return true
            }
            if entry.lineStart < start {
                SocketIO.closeAll(entry.fds)  // belonged to a line already gone (blank line)
                return true
            }
            return false
        }
        return (fds, problem)
    }

    private func processLines() {
        while true {
            let newline: Int? = inbound.withUnsafeBytes { raw -> Int? in
                guard scanned < raw.count, let base = raw.baseAddress else { return nil }
                guard let hit = memchr(base + scanned, 0x0A, raw.count - scanned) else { return nil }
                return base.distance(to: UnsafeRawPointer(hit))
            }
            guard let newline else {
                scanned = inbound.count
                break
            }
            let lineStart = consumed
            if newline - lineStart > limits.maxMessageBytes {
                messageTooLarge()
                return
            }
            consumed = newline + 1
            scanned = consumed
            let (fds, problem) = takeFDs(forLineAt: streamBase + lineStart)
            inbound.withUnsafeBytes { raw in
                var end = newline
                if end > lineStart, raw[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                handleLine(UnsafeRawBufferPointer(rebasing: raw[lineStart..<end]), fds: fds, fdProblem: problem)
            }
            if shared.withLock({ $0.closed }) { return }
        }
        let partial = inbound.count - consumed
        if partial > limits.maxMessageBytes {
            messageTooLarge()
            return
        }
        if consumed == inbound.count {
            inbound.removeAll(keepingCapacity: inbound.capacity <= 1 << 16)
            streamBase += consumed
            consumed = 0
            scanned = 0
        } else if consumed >= 1 << 16 {
            inbound.removeFirst(consumed)
            streamBase += consumed
            scanned -= consumed
            consumed = 0
        }
        let now = DispatchTime.now().uptimeNanoseconds
        shared.withLock { s in
            s.lastActivity = now
            if partial == 0 { s.partialSince = nil } else if s.partialSince == nil { s.partialSince = now }
        }
    }

    private func messageTooLarge() {
        logger.warning("message larger than the limit; closing the connection", metadata: ["rpc.limit": .stringConvertible(limits.maxMessageBytes)])
        let error = RPCError.invalidRequest(
            "message larger than \(limits.maxMessageBytes) bytes (a message is one line ending in \\n); the connection is closed",
            name: RPCError.Name.messageTooLarge, fields: ["limit": .int(Int64(limits.maxMessageBytes))])
        server.count { $0.errorsByCode[error.code, default: 0] += 1 }
        closeWithError(error, reason: "message_too_large")
    }

    // MARK: - Dispatching

    private func handleLine(_ line: UnsafeRawBufferPointer, fds: [Int32], fdProblem: FDProblem?) {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
            SocketIO.closeAll(fds)
            return
        }
        shared.withLock { $0.busy = true }
        let fileDescriptors = fds.isEmpty ? RPCFileDescriptors.none : RPCFileDescriptors(fds)
        defer {
            fileDescriptors.closeRemaining()
            // `processLines` stamps the activity time once the read is handled.
            shared.withLock { $0.busy = false }
        }

        let value: JSONValue
        do {
            value = try JSONValue.parse(line, maxDepth: limits.maxJSONDepth)
        } catch {
            respond(id: .null, .failure(.parseError(error.description)))
            return
        }

        let fdError: RPCError? = fdProblem.map {
            switch $0 {
            case .tooMany:
                return .invalidRequest(
                    "more than \(limits.maxFileDescriptorsPerMessage) file descriptors with one message; all of them were closed",
                    name: RPCError.Name.tooManyFileDescriptors, fields: ["limit": .int(Int64(limits.maxFileDescriptorsPerMessage))])
            case .lost:
                return .domain(RPCError.Name.fileDescriptorsLost,
                               "the daemon could not receive the file descriptors sent with this message (its open-file limit is reached); none were kept, retry later",
                               errno: .EMFILE)
            }
        }

        guard case .array(let members) = value else {
            if let fdError {
                switch RPCRequest.validate(value) {
                case .success(let request):
                    logger.warning("file descriptors of a message dropped", metadata: ["rpc.method": .string(request.method)])
                    if let id = request.id { respond(id: id, .failure(fdError)) }
                case .failure(let failure):
                    respond(id: failure.id, .failure(failure.error))
                }
                return
            }
            if let (id, outcome, resultFDs) = dispatch(value, fds: fileDescriptors, inBatch: false) {
                respond(id: id, outcome, fds: resultFDs)
            }
            return
        }

        server.count { $0.batches += 1 }
        if members.isEmpty {
            respond(id: .null, .failure(.invalidRequest("empty batch")))
            return
        }
        if members.count > limits.maxBatchSize {
            respond(id: .null, .failure(.invalidRequest("batch of \(members.count) requests; at most \(limits.maxBatchSize) are allowed")))
            return
        }
        if let fdError {
            respond(id: .null, .failure(fdError))
            return
        }
        var out: [UInt8] = [UInt8(ascii: "[")]
        var answered = 0
        for member in members {
            guard let (id, outcome, resultFDs) = dispatch(member, fds: fileDescriptors, inBatch: true) else { continue }
            SocketIO.closeAll(resultFDs)  // dispatch already refused them for a batch member
            if answered > 0 { out.append(UInt8(ascii: ",")) }
            RPCWire.writeResponse(id: id, outcome: outcome, to: &out)
            answered += 1
            countOutcome(outcome)
        }
        // A batch of notifications only gets no answer at all.
        guard answered > 0 else { return }
        out.append(UInt8(ascii: "]"))
        out.append(UInt8(ascii: "\n"))
        send(out, fds: [])
    }

    /// Runs one request object. Returns what to answer, or nil for a notification.
    private func dispatch(_ value: JSONValue, fds: RPCFileDescriptors, inBatch: Bool) -> (RPCID, Result<JSONValue, RPCError>, [Int32])? {
        let request: RPCRequest
        switch RPCRequest.validate(value) {
        case .failure(let failure):
            return (failure.id, .failure(failure.error), [])
        case .success(let r):
            request = r
        }
        server.count {
            if request.id == nil { $0.notificationsReceived += 1 } else { $0.requests += 1 }
        }
        let call = RPCCall(method: request.method, params: request.params, id: request.id, peer: peer,
                           connection: self, fds: fds, isBatchMember: inBatch)
        var outcome: Result<JSONValue, RPCError>
        var resultFDs: [Int32] = []
        do {
            let result = try server.handler.handle(call)
            outcome = .success(result.value)
            resultFDs = result.fds
        } catch {
            let rpcError = RPCError(converting: error)
            if rpcError.code == RPCError.Code.internalError {
                logger.error("handler failed", metadata: ["rpc.method": .string(request.method), "rpc.error": .string(String(describing: error))])
            }
            outcome = .failure(rpcError)
        }
        if inBatch && !resultFDs.isEmpty {
            SocketIO.closeAll(resultFDs)
            resultFDs = []
            outcome = .failure(.invalidRequest(
                "\(request.method) returns file descriptors and cannot be called in a batch; call it on its own",
                name: RPCError.Name.fileDescriptorsInBatch))
        }
        guard let id = request.id else {
            SocketIO.closeAll(resultFDs)
            return nil
        }
        return (id, outcome, resultFDs)
    }

    private func countOutcome(_ outcome: Result<JSONValue, RPCError>) {
        if case .failure(let e) = outcome { server.count { $0.errorsByCode[e.code, default: 0] += 1 } }
    }

    private func respond(id: RPCID, _ outcome: Result<JSONValue, RPCError>, fds: [Int32] = []) {
        countOutcome(outcome)
        send(RPCWire.responseLine(id: id, outcome: outcome), fds: fds)
    }

    // MARK: - Writing

    /// Queues one line (sent at once when the socket takes it). Takes ownership of `fds`.
    @discardableResult
    func send(_ bytes: [UInt8], fds: [Int32]) -> Bool {
        var closeReason: String? = nil
        var sentBytes = 0
        var sentFDs = 0
        let accepted = shared.withLock { s -> Bool in
            guard !s.closed else {
                SocketIO.closeAll(fds)
                return false
            }
            var chunk = OutChunk(bytes: bytes, offset: 0, fds: fds)
            if s.outputHead == s.output.count {
                switch writeSome(&chunk) {
                case .failure(let e):
                    SocketIO.closeAll(chunk.fds)
                    closeReason = e == .EPIPE || e == .ECONNRESET ? "peer_closed" : "io_error"
                    return false
                case .success(let (n, f)):
                    sentBytes = n
                    sentFDs = f
                }
                if chunk.offset == chunk.bytes.count { return true }
            }
            s.outputBytes += chunk.bytes.count - chunk.offset
            s.output.append(chunk)
            if s.outputBytes > limits.maxOutputBytes {
                closeReason = "output_overflow"
                return false
            }
            armWriteSource(&s)
            return true
        }
        if sentBytes > 0 { server.count { $0.bytesSent += UInt64(sentBytes); $0.fileDescriptorsSent += UInt64(sentFDs) } }
        if let closeReason {
            if closeReason == "output_overflow" {
                logger.warning("client does not read its answers; closing the connection", metadata: ["rpc.limit": .stringConvertible(limits.maxOutputBytes)])
            }
            close(reason: closeReason)
        }
        return accepted
    }

    /// Sends as much of `chunk` as the socket takes now. EAGAIN is not an error.
    private func writeSome(_ chunk: inout OutChunk) -> Result<(Int, Int), Errno> {
        var sent = 0
        var fdsSent = 0
        while chunk.offset < chunk.bytes.count {
            let r = chunk.bytes.withUnsafeBytes { raw in
                SocketIO.send(fd, UnsafeRawBufferPointer(rebasing: raw[chunk.offset...]), fds: chunk.fds)
            }
            switch r {
            case .success(let n):
                chunk.offset += n
                sent += n
                if !chunk.fds.isEmpty {
                    // In flight now (the kernel holds references): our copies can go.
                    fdsSent += chunk.fds.count
                    SocketIO.closeAll(chunk.fds)
                    chunk.fds = []
                }
            case .failure(.EAGAIN):
                return .success((sent, fdsSent))
            case .failure(let e):
                return .failure(e)
            }
        }
        return .success((sent, fdsSent))
    }

    private func armWriteSource(_ s: inout Shared) {
        if let source = s.writeSource?.value {
            if s.writeSuspended {
                s.writeSuspended = false
                source.resume()
            }
            return
        }
        let source = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: server.ioQueue)
        source.setEventHandler { [self] in writable() }
        source.setCancelHandler { [self] in
            shared.withLock { $0.writeCancelled = true }
            finishIfClosed()
        }
        s.writeSource = Unchecked(source)
        s.writeCancelled = false
        s.writeSuspended = false
        source.activate()
    }

    private func writable() {
        var closeReason: String? = nil
        var sentBytes = 0
        var sentFDs = 0
        shared.withLock { s in
            guard !s.closed else { return }
            while s.outputHead < s.output.count {
                var chunk = s.output[s.outputHead]
                switch writeSome(&chunk) {
                case .failure(let e):
                    closeReason = e == .EPIPE || e == .ECONNRESET ? "peer_closed" : "io_error"
                    s.output[s.outputHead] = chunk
                    return
                case .success(let (n, f)):
                    sentBytes += n
                    sentFDs += f
                    s.outputBytes -= n
                }
                s.output[s.outputHead] = chunk
                if chunk.offset < chunk.bytes.count { return }  // EAGAIN: wait for the next event
                s.outputHead += 1
            }
            s.output.removeAll(keepingCapacity: true)
            s.outputHead = 0
            s.outputBytes = 0
            if !s.writeSuspended, let source = s.writeSource?.value {
                s.writeSuspended = true
                source.suspend()
            }
            if let reason = s.closeAfterFlush { closeReason = reason }
        }
        if sentBytes > 0 { server.count { $0.bytesSent += UInt64(sentBytes); $0.fileDescriptorsSent += UInt64(sentFDs) } }
        if let closeReason { close(reason: closeReason) }
    }

    // MARK: - Closing

    /// Stops reading; closes once every queued answer is written.
    func closeWhenFlushed(reason: String) {
        let (source, flushed) = shared.withLock { s -> (DispatchSourceRead?, Bool) in
            if s.closeAfterFlush == nil { s.closeAfterFlush = reason }
            return (s.readSource?.value, s.outputHead == s.output.count)
        }
        source?.cancel()
        if flushed { close(reason: reason) }
    }

    /// Best effort: tells the client why, then closes.
    func closeWithError(_ error: RPCError, reason: String) {
        let line = RPCWire.responseLine(id: .null, outcome: .failure(error))
        shared.withLock { s in
            guard !s.closed, s.outputHead == s.output.count else { return }
            _ = line.withUnsafeBytes { SocketIO.send(fd, $0, fds: []) }
        }
        close(reason: reason)
    }

    func close(reason: String) {
        let sources = shared.withLock { s -> (DispatchSourceRead?, DispatchSourceWrite?, Bool)? in
            guard !s.closed else { return nil }
            s.closed = true
            for chunk in s.output[s.outputHead...] { SocketIO.closeAll(chunk.fds) }
            s.output = []
            s.outputHead = 0
            s.outputBytes = 0
            if s.readSource == nil { s.readCancelled = true }
            let suspended = s.writeSuspended
            s.writeSuspended = false
            return (s.readSource?.value, s.writeSource?.value, suspended)
        }
        guard let (readSource, writeSource, writeSuspended) = sources else { return }
        server.count { $0.disconnects[reason, default: 0] += 1 }
        logger.debug("connection closed", metadata: ["rpc.reason": .string(reason)])
        readSource?.cancel()
        if let writeSource {
            if writeSuspended { writeSource.resume() }
            writeSource.cancel()
        }
        finishIfClosed()
    }

    /// Closes the socket once both sources are cancelled (no handler can still touch it), then
    /// tells the handler, on the connection's queue so it runs after the last request.
    private func finishIfClosed() {
        let finish = shared.withLock { s -> Bool in
            guard s.closed, s.readCancelled, s.writeCancelled, !s.fdClosed else { return false }
            s.fdClosed = true
            return true
        }
        guard finish else { return }
        _ = Glibc.close(fd)
        queue.async { [self] in
            for entry in waitingFDs { SocketIO.closeAll(entry.fds) }
            waitingFDs = []
            inbound = []
            server.handler.connectionClosed(self)
            server.connectionDidClose(self)
        }
    }

    func checkTimeouts(now: UInt64) {
        let verdict = shared.withLock { s -> String? in
            guard !s.closed, !s.busy else { return nil }
            // `now` was read before the lock: activity may be newer than it (no wrap-around).
            if let since = s.partialSince, now > since, now - since > limits.partialMessageTimeout.nanoseconds {
                return "partial_timeout"
            }
            if let idle = limits.idleTimeout, !s.exemptFromIdleTimeout, s.partialSince == nil,
               s.outputHead == s.output.count, s.closeAfterFlush == nil, now > s.lastActivity,
               now - s.lastActivity > idle.nanoseconds {
                return "idle_timeout"
            }
            return nil
        }
        guard let verdict else { return }
        if verdict == "partial_timeout" {
            logger.notice("message not completed in time; closing the connection")
            let error = RPCError.invalidRequest(
                "message not completed within \(limits.partialMessageTimeout) of its first byte; the connection is closed")
            server.count { $0.errorsByCode[error.code, default: 0] += 1 }
            closeWithError(error, reason: verdict)
        } else {
            logger.debug("idle connection closed")
            close(reason: verdict)
        }
    }
}
