#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import IommufdCore
import Logging
import CIommufd

/// Where the server listens.
public enum RPCListenAddress: Sendable, Hashable {
    /// Create the socket at `path`: a stale socket file (nothing listening) is removed first; a
    /// live one or a non-socket file is an error. The socket gets `mode` and, if given, `group`.
    case path(String, mode: UInt32 = 0o660, group: UInt32? = nil)
    /// Serve an already-listening `SOCK_STREAM` Unix socket (systemd socket activation). The
    /// server owns it from now on and closes it at shutdown, but never unlinks its path.
    case adopted(Int32)
}

/// JSON-RPC 2.0 over a `SOCK_STREAM` Unix socket, on Dispatch.
///
/// Framing: one message per line (`\n`; a `\r` before it is ignored; blank lines are skipped).
/// File descriptors travel with SCM_RIGHTS. **Rule:** the sender sends a message's fds with the
/// message's first byte, in a `sendmsg` that starts with that byte (`RPCClient` does). The
/// receiver attaches the fds of one `recvmsg` to the *last message that begins in the bytes of
/// that read* (or to the message in progress if none begins in it). The kernel stops a stream
/// read right after the segment that carried fds, so with that sender rule this is exactly the
/// message the fds were sent with. Params refer to fds by index: `{"fd": 0}`.
///
/// Requests of one connection are handled one after the other and answered in order;
/// connections are served concurrently on a concurrent queue. Handlers may block.
public final class RPCServer: @unchecked Sendable {
    public let limits: RPCLimits
    public let logger: Logger
    /// The socket path when the server created it; `nil` for an adopted socket.
    public let path: String?

    let handler: any RPCHandler
    let listenFD: Int32
    private let socketIdentity: (dev: UInt64, ino: UInt64)?

    let acceptQueue = DispatchQueue(label: "iommufdd.rpc.accept")
    /// Write readiness and the timeout sweeper.
    let ioQueue = DispatchQueue(label: "iommufdd.rpc.io")
    /// Where requests run; each connection has a serial queue targeting it.
    let handlerQueue = DispatchQueue(label: "iommufdd.rpc.handlers", attributes: .concurrent)
    let connectionsGroup = DispatchGroup()
    /// Lets the worker that answered a request wait for the same client's next one.
    let linger: RPCLingerGate

    private struct State {
        var started = false
        var stopping = false
        var nextConnectionID: UInt64 = 1
        var connections: [UInt64: RPCConnection] = [:]
        var acceptSource: Unchecked<DispatchSourceRead>?
        var acceptPaused = false
        var sweeper: Unchecked<DispatchSourceTimer>?
    }

    private let state = Locked(State())
    private let counters = Locked(RPCMetrics())

    /// Creates (or adopts) the listening socket. Nothing is accepted before `start()`.
    public init(listen: RPCListenAddress, limits: RPCLimits = RPCLimits(), logger: Logger, handler: any RPCHandler) throws(RPCTransportError) {
        var limits = limits
        limits.maxFileDescriptorsPerMessage = max(0, min(limits.maxFileDescriptorsPerMessage, 253))
        limits.maxClients = max(1, limits.maxClients)
        self.limits = limits
        self.logger = logger
        self.handler = handler
        linger = RPCLingerGate(microseconds: limits.lingerMicroseconds, spinMicroseconds: limits.lingerSpinMicroseconds)
        switch listen {
        case .path(let path, let mode, let group):
            let created = try Self.createListeningSocket(path: path, mode: mode, group: group)
            listenFD = created.fd
            socketIdentity = created.identity
            self.path = path
        case .adopted(let fd):
            try Self.checkAdopted(fd)
            listenFD = fd
            socketIdentity = nil
            path = nil
        }
    }

    /// A server dropped without `shutdown()` (a failed daemon start) still closes its socket
    /// and removes the file it created. Open connections keep the server alive, so there are none.
    deinit {
        let (source, sweeper, paused, stopping) = state.withLock {
            ($0.acceptSource?.value, $0.sweeper?.value, $0.acceptPaused, $0.stopping)
        }
        guard !stopping else { return }
        if let source {
            if paused { source.resume() }
            source.cancel()
        } else {
            _ = Glibc.close(listenFD)
        }
        sweeper?.cancel()
        removeSocketFile()
    }

    /// Starts accepting connections and the timeout sweeper.
    public func start() {
        let go = state.withLock { s -> Bool in
            guard !s.started, !s.stopping else { return false }
            s.started = true
            return true
        }
        guard go else { return }

        let source = DispatchSource.makeReadSource(fileDescriptor: listenFD, queue: acceptQueue)
        source.setEventHandler { [weak self] in self?.acceptReady() }
        source.setCancelHandler { [listenFD] in _ = Glibc.close(listenFD) }

        let sweeper = DispatchSource.makeTimerSource(queue: ioQueue)
        let interval = sweepInterval
        sweeper.schedule(deadline: .now() + .nanoseconds(Int(interval)), repeating: .nanoseconds(Int(interval)), leeway: .milliseconds(10))
        sweeper.setEventHandler { [weak self] in self?.sweep() }

        state.withLock {
            $0.acceptSource = Unchecked(source)
            $0.sweeper = Unchecked(sweeper)
        }
        source.activate()
        sweeper.activate()
        logger.info("serving JSON-RPC", metadata: ["rpc.socket": .string(path ?? "fd \(listenFD) (adopted)")])
    }

    /// A snapshot of the counters.
    public var metrics: RPCMetrics {
        var m = counters.withLock { $0 }
        m.connectionsOpen = state.withLock { $0.connections.count }
        return m
    }

    /// The connections open now.
    public var connections: [RPCConnection] {
        state.withLock { Array($0.connections.values) }.sorted { $0.id < $1.id }
    }

    /// Graceful shutdown: stop accepting, let every connection finish the requests it has read,
    /// flush their answers, close. Connections still open after `gracePeriod` are closed
    /// without waiting further. Removes the socket file the server created. Blocks until done.
    public func shutdown(gracePeriod: Duration = .seconds(10)) {
        let plan = state.withLock { s -> (connections: [RPCConnection], source: DispatchSourceRead?, sweeper: DispatchSourceTimer?, paused: Bool)? in
            guard !s.stopping else { return nil }
            s.stopping = true
            return (Array(s.connections.values), s.acceptSource?.value, s.sweeper?.value, s.acceptPaused)
        }
        guard let (connections, source, sweeper, paused) = plan else { return }
        if let source {
            acceptQueue.sync {
                if paused { source.resume() }
                source.cancel()
            }
        } else {
            _ = Glibc.close(listenFD)
        }
        sweeper?.cancel()
        removeSocketFile()
        logger.info("shutting down", metadata: ["rpc.connections": .stringConvertible(connections.count)])
        for connection in connections {
            connection.queue.async { connection.closeWhenFlushed(reason: "shutdown") }
        }
        if connectionsGroup.wait(timeout: .now() + .nanoseconds(Int(clamping: gracePeriod.nanoseconds))) == .timedOut {
            let left = self.connections
            logger.warning("closing connections still busy after the grace period", metadata: ["rpc.connections": .stringConvertible(left.count)])
            for connection in left { connection.close(reason: "shutdown") }
            _ = connectionsGroup.wait(timeout: .now() + .seconds(1))
        }
    }

    // MARK: - Socket setup

    private static func createListeningSocket(path: String, mode: UInt32, group: UInt32?) throws(RPCTransportError) -> (fd: Int32, identity: (dev: UInt64, ino: UInt64)) {
        func fail(_ op: String, _ e: Errno) -> RPCTransportError {
            RPCTransportError(e == .EACCES || e == .EPERM ? .permissionDenied : .system, errno: e, path: path,
                              message: "cannot listen on \(path): \(op) failed with \(e)")
        }
        // Refuse to replace anything but a dead socket.
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw RPCTransportError(.addressInUse, errno: .EEXIST, path: path,
                                        message: "cannot listen on \(path): it exists and is not a socket; remove it or choose another path")
            }
            let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if probe >= 0 {
                let live = (try? SocketIO.withAddress(path) { connect(probe, $0, $1) == 0 }.get()) ?? false
                _ = Glibc.close(probe)
                if live {
                    throw RPCTransportError(.addressInUse, errno: .EADDRINUSE, path: path,
                                            message: "cannot listen on \(path): another process is serving it (is iommufdd already running?)")
                }
            }
            if unlink(path) != 0, errno != ENOENT { throw fail("unlink of the stale socket", .current) }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw fail("socket", .current) }
        let bound: Result<Int32, Errno> = SocketIO.withAddress(path) { bind(fd, $0, $1) }
        switch bound {
        case .failure(let e):
            _ = Glibc.close(fd)
            throw fail("bind", e)
        case .success(let rc) where rc != 0:
            let e = Errno.current
            _ = Glibc.close(fd)
            throw fail("bind", e)
        default: break
        }
        // The accept hook checks every peer, so the instant between bind and chmod is harmless.
        if chmod(path, mode_t(mode)) != 0 {
            let e = Errno.current
            _ = Glibc.close(fd); _ = unlink(path)
            throw fail("chmod", e)
        }
        if let group, chown(path, uid_t.max, gid_t(group)) != 0 {
            let e = Errno.current
            _ = Glibc.close(fd); _ = unlink(path)
            throw fail("chown to group \(group)", e)
        }
        if Glibc.listen(fd, SOMAXCONN) != 0 {
            let e = Errno.current
            _ = Glibc.close(fd); _ = unlink(path)
            throw fail("listen", e)
        }
        var bst = stat()
        _ = lstat(path, &bst)
        return (fd, (UInt64(bst.st_dev), UInt64(bst.st_ino)))
    }

    private static func checkAdopted(_ fd: Int32) throws(RPCTransportError) {
        func fail(_ what: String, _ e: Errno? = nil) -> RPCTransportError {
            RPCTransportError(.system, errno: e, message: "cannot serve adopted fd \(fd): \(what)")
        }
        guard case .success(let domain) = SocketIO.intOption(fd, SOL_SOCKET, SO_DOMAIN) else { throw fail("not a socket", .current) }
        guard domain == AF_UNIX else { throw fail("not a Unix socket (domain \(domain))") }
        guard case .success(let type) = SocketIO.intOption(fd, SOL_SOCKET, SO_TYPE), type == Int32(SOCK_STREAM.rawValue) else {
            throw fail("not a SOCK_STREAM socket (check ListenStream= in the .socket unit)")
        }
        guard case .success(let listening) = SocketIO.intOption(fd, SOL_SOCKET, SO_ACCEPTCONN), listening != 0 else {
            throw fail("not listening")
        }
        if case .failure(let e) = SocketIO.setNonBlocking(fd) { throw fail("fcntl(O_NONBLOCK)", e) }
        if case .failure(let e) = SocketIO.setCloseOnExec(fd) { throw fail("fcntl(FD_CLOEXEC)", e) }
    }

    private func removeSocketFile() {
        guard let path, let socketIdentity else { return }
        var st = stat()
        // Only our own socket: a newer daemon may already have replaced it.
        if lstat(path, &st) == 0, UInt64(st.st_dev) == socketIdentity.dev, UInt64(st.st_ino) == socketIdentity.ino {
            _ = unlink(path)
        }
    }

    // MARK: - Accepting

    private func acceptReady() {
        while true {
            let fd = ciommufd_accept(listenFD)
            if fd < 0 {
                let e = Errno.current
                switch e {
                case .EAGAIN: return
                case .EINTR, Errno(ECONNABORTED): continue
                default:
                    // EMFILE/ENFILE/ENOBUFS/ENOMEM: the pending connection stays in the backlog and
                    // the source would fire in a loop; pause accepting for a moment instead.
                    counters.withLock { $0.acceptFailures += 1 }
                    logger.error("accept failed; pausing new connections for 100 ms", metadata: ["rpc.errno": .string(e.name)])
                    pauseAccepting()
                    return
                }
            }
            admit(fd)
        }
    }

    private func pauseAccepting() {
        let source = state.withLock { s -> DispatchSourceRead? in
            guard !s.stopping, !s.acceptPaused, let src = s.acceptSource else { return nil }
            s.acceptPaused = true
            return src.value
        }
        guard let source else { return }
        source.suspend()
        acceptQueue.asyncAfter(deadline: .now() + .milliseconds(100)) { [weak self] in
            guard let self else { return }
            let source = self.state.withLock { s -> DispatchSourceRead? in
                guard s.acceptPaused, !s.stopping else { return nil }
                s.acceptPaused = false
                return s.acceptSource?.value
            }
            source?.resume()
        }
    }

    private func admit(_ fd: Int32) {
        let peer: RPCPeer
        switch SocketIO.peerCredentials(fd) {
        case .success(let p): peer = p
        case .failure(let e):
            logger.warning("dropping a connection without peer credentials", metadata: ["rpc.errno": .string(e.name)])
            _ = Glibc.close(fd)
            return
        }
        var meta: Logger.Metadata = ["rpc.peer.uid": .stringConvertible(peer.uid), "rpc.peer.gid": .stringConvertible(peer.gid),
                                     "rpc.peer.pid": .stringConvertible(peer.pid)]
        let tooMany = RPCError.domain(RPCError.Name.tooManyClients,
                                      "too many clients: the daemon serves at most \(limits.maxClients) connections at once; retry later")
        if state.withLock({ $0.stopping }) {
            reject(fd, .domain(RPCError.Name.shuttingDown, "the daemon is shutting down"))
            return
        }
        if state.withLock({ $0.connections.count >= limits.maxClients }) {
            counters.withLock { $0.connectionsRejectedLimit += 1 }
            logger.warning("refusing a connection: client limit reached", metadata: meta)
            reject(fd, tooMany)
            return
        }
        if let refusal = handler.accept(peer: peer) {
            counters.withLock { $0.connectionsRefused += 1 }
            meta["rpc.reason"] = .string(refusal.message)
            logger.notice("refusing a connection", metadata: meta)
            reject(fd, refusal)
            return
        }
        let connection: RPCConnection? = state.withLock { s in
            guard !s.stopping, s.connections.count < limits.maxClients else { return nil }
            let id = s.nextConnectionID
            s.nextConnectionID += 1
            let c = RPCConnection(id: id, fd: fd, peer: peer, server: self)
            s.connections[id] = c
            return c
        }
        guard let connection else {
            counters.withLock { $0.connectionsRejectedLimit += 1 }
            reject(fd, tooMany)
            return
        }
        counters.withLock { $0.connectionsAccepted += 1 }
        connectionsGroup.enter()
        meta["rpc.connection"] = .stringConvertible(connection.id)
        logger.debug("connection accepted", metadata: meta)
        connection.queue.async {
            self.handler.connectionOpened(connection)
            connection.startReading()
        }
    }

    /// Tells a refused peer why (best effort, never blocks) and closes.
    private func reject(_ fd: Int32, _ error: RPCError) {
        let line = RPCWire.responseLine(id: .null, outcome: .failure(error))
        _ = line.withUnsafeBytes { SocketIO.send(fd, $0, fds: []) }
        counters.withLock { $0.errorsByCode[error.code, default: 0] += 1 }
        _ = Glibc.close(fd)
    }

    // MARK: - Bookkeeping used by connections

    func connectionDidClose(_ connection: RPCConnection) {
        let removed = state.withLock { $0.connections.removeValue(forKey: connection.id) != nil }
        if removed { connectionsGroup.leave() }
    }

    func count(_ update: (inout RPCMetrics) -> Void) {
        counters.withLock { update(&$0) }
    }

    private var sweepInterval: UInt64 {
        var shortest = limits.partialMessageTimeout.nanoseconds
        if let idle = limits.idleTimeout { shortest = min(shortest, idle.nanoseconds) }
        return min(max(shortest / 4, 10_000_000), 1_000_000_000)
    }

    private func sweep() {
        let now = DispatchTime.now().uptimeNanoseconds
        for connection in state.withLock({ Array($0.connections.values) }) {
            connection.checkTimeouts(now: now)
        }
    }
}

/// Carries a value Swift cannot prove Sendable (Dispatch sources) into lock-protected state.
struct Unchecked<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
