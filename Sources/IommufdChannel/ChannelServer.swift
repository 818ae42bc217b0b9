#if canImport(Glibc)
import Glibc
#endif
import CIommufd
import Foundation
import IommufdBroker
import IommufdContract
import IommufdCore
import Logging

/// Serves the VMM channels (docs/vmm-channel.md): the daemon's ends of the socket pairs that
/// `owner.delegate` hands out. Each channel is served by a thread of its own, one request at a
/// time, in order; every request calls the same `Broker` method the JSON-RPC method of the same
/// name calls, with a caller scoped to the channel's owner, so policies, quotas and the journal
/// are those of the control plane. (The broker still serialises all owners under one lock: the
/// channel saves the JSON and the connection's thread hops, not the wait for another owner.)
public final class ChannelServer: @unchecked Sendable {
    let broker: Broker
    let logger: Logger
    private let lock = NSLock()
    private var channels: [UInt64: Channel] = [:]
    /// Counters for `daemon.metrics`.
    private var served: UInt64 = 0
    private var refused: UInt64 = 0
    /// `[limits] channel_busy_poll_us`: the adaptive spin of every channel's thread after an
    /// answer (see `busyPollMicroseconds`); one policy for all channels, so a spin that lost
    /// its CPU pauses spinning on all of them.
    let spin = AdaptiveSpin(microseconds: Int(ChannelServer.defaultBusyPollMicroseconds))

    public init(broker: Broker, logger: Logger) {
        self.broker = broker
        self.logger = logger
    }

    /// `owner.delegate`: a new connected `SOCK_SEQPACKET` pair; the broker records the channel
    /// (checking the caller may change `owner`) and keeps the daemon's end in the fd store; the
    /// daemon serves that end. Returns the channel ID and the other end, which the caller owns.
    public func delegate(_ caller: Caller, owner: String) throws -> (id: UInt64, fd: Int32) {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            let err = Errno.current
            throw BrokerError(.io, "socketpair(AF_UNIX, SOCK_SEQPACKET) failed with \(err.name) (\(err.message)); the daemon may be out of file descriptors (LimitNOFILE)")
        }
        let (mine, theirs) = (pair[0], pair[1])
        let id: UInt64
        do {
            id = try broker.channelOpen(caller, owner: owner, daemonEnd: mine)
        } catch {
            close(mine)
            close(theirs)
            throw error
        }
        serve(id: id, owner: owner, fd: mine)
        return (id, theirs)
    }

    /// Serves `fd` (the daemon's end) as channel `id` of `owner`: a new channel, or one the fd
    /// store gave back at a restart.
    public func serve(id: UInt64, owner: String, fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let channel = Channel(id: id, owner: owner, fd: fd, server: self)
        lock.withLock { channels[id] = channel }
        channel.start()
    }

    /// `owner.revoke_channels` and `owner.release`: closes every channel of `owner`. Returns how
    /// many were closed. The holder's next read sees end of file.
    @discardableResult
    public func revoke(ids: [UInt64]) -> Int {
        let doomed = lock.withLock { ids.compactMap { channels[$0] } }
        for channel in doomed { channel.close(reason: "revoked") }
        return doomed.count
    }

    /// Closes every channel acting as `owner` (after `owner.release`).
    @discardableResult
    public func revoke(owner: String) -> Int {
        let doomed = lock.withLock { channels.values.filter { $0.owner == owner } }
        for channel in doomed { channel.close(reason: "owner released") }
        return doomed.count
    }

    /// The busy-poll window (`[limits] channel_busy_poll_us`; `defaultBusyPollMicroseconds`
    /// unless set; 0: off; at most `maxBusyPollMicroseconds`). After it answers a request, a
    /// channel's thread may keep polling its socket without sleeping (`poll` with a zero
    /// timeout, `sched_yield` between polls) for up to this long before it blocks, so a VMM's
    /// next request within the window is read without waking the thread: under a hypervisor or
    /// TCG a wake-up across CPUs is the largest cost of a small request. Adaptive, by the rules
    /// the control socket's linger follows (IommufdCore's `AdaptiveSpin`): only when this
    /// channel's VMM came back within the window the time before (a VMM sending now and then
    /// costs one spin, then none), and on no channel for 100 ms after a spin lost its CPU (a
    /// busy host). Changing it applies to every channel from its next wait (a reload).
    public var busyPollMicroseconds: UInt32 {
        get { UInt32(spin.microseconds) }
        set { spin.microseconds = Int(min(newValue, Self.maxBusyPollMicroseconds)) }
    }

    /// The default busy-poll window, µs: that of the control socket's spin (`rpc_spin_us`).
    public static let defaultBusyPollMicroseconds: UInt32 = 50

    /// The largest busy-poll window: one millisecond.
    public static let maxBusyPollMicroseconds: UInt32 = 1000

    /// What the channels' spin did since the server started (spins, spins that found the
    /// request, spins that lost the CPU, waits not spun because spinning was paused).
    public var spinCounters: AdaptiveSpin.Counters { spin.counters }

    public var openChannels: Int { lock.withLock { channels.count } }
    public var counters: (requests: UInt64, refused: UInt64) { lock.withLock { (served, refused) } }

    func count(refused wasRefused: Bool) {
        lock.withLock {
            served += 1
            if wasRefused { refused += 1 }
        }
    }

    func closed(_ channel: Channel, reason: String) {
        lock.withLock { if channels[channel.id] === channel { channels[channel.id] = nil } }
        broker.channelClosed(channel.id)
        logger.info("channel closed", metadata: ["channel": "\(channel.id)", "owner": "\(channel.owner)", "reason": "\(reason)"])
    }
}

/// One channel: its socket, its memory registrations and bitmap memfd, and the thread that
/// serves it.
///
/// Each channel has a thread of its own that waits in `poll(2)` on the socket and on an eventfd
/// that `close(reason:)` signals, rather than a Dispatch read source. Channels are opened and
/// closed all the time (every VMM start, every `owner.revoke_channels`) and the lowest free fd
/// number is reused at once, which is the pattern that leaves libdispatch's epoll backend with a
/// stale registration for the reused number, so the new source never fires
/// (swift-corelibs-libdispatch#833, open). The thread also answers on the thread that read the
/// request, with no hop.
final class Channel: @unchecked Sendable {
    let id: UInt64
    let owner: String
    let fd: Int32
    unowned let server: ChannelServer
    /// Signalled by `close(reason:)` to wake the serving thread; closed by it when it ends.
    private let wake: Int32
    /// Guards `closeReason` and `finished`, which any thread may read or set.
    private let state = NSLock()
    private var closeReason: String?
    private var finished = false
    // Confined to the serving thread.
    private var memory: [UInt32: Int32] = [:]
    private var bitmap: Int32 = -1
    private let buffer: UnsafeMutableRawBufferPointer
    /// When the last answer went out (monotonic ns): whether the VMM came back quickly is
    /// measured from it (`AdaptiveSpin`). MARK: chspin
    private var lastAnswer: UInt64 = 0

    /// A reply the VMM does not read within this long closes the channel.
    static let sendTimeoutMilliseconds: Int32 = 10_000

    init(id: UInt64, owner: String, fd: Int32, server: ChannelServer) {
        self.id = id
        self.owner = owner
        self.fd = fd
        self.server = server
        wake = ifd_eventfd()
        buffer = .allocate(byteCount: ChannelWire.maxRequestBytes + 1, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Starts the serving thread. A channel whose eventfd could not be made (the daemon is out
    /// of fds) is closed at once: the holder reads end of file, as after a revoke.
    func start() {
        guard wake >= 0 else {
            close(reason: "the daemon could not create the channel's eventfd (\(Errno.current.name)); it may be out of file descriptors (LimitNOFILE)")
            server.closed(self, reason: "no eventfd")
            finish()
            return
        }
        let thread = Thread { [self] in serve() }
        thread.name = "iommufdd.channel.\(id)"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// True once `close(reason:)` was called (from any thread).
    private var closed: Bool { state.withLock { closeReason != nil } }

    /// Closes the channel (from any thread): the serving thread wakes, tells the server, closes
    /// every fd the channel holds and ends. The first reason given is the one logged.
    func close(reason: String) {
        state.withLock {
            if closeReason == nil { closeReason = reason }
            // The eventfd is closed only with `finished` set under this lock, so this never
            // writes to a number that has since been reused.
            if !finished && wake >= 0 {
                var one: UInt64 = 1
                _ = Glibc.write(wake, &one, 8)
            }
        }
    }

    /// The serving thread: waits for a request or a close, handles requests in order. After
    /// answering, the wait may begin with a busy phase (`ChannelServer.busyPollMicroseconds`,
    /// `AdaptiveSpin`: only when this channel's VMM came back within the window the time
    /// before); otherwise, and after it, the thread sleeps in `ppoll` until the socket or the
    /// close eventfd wakes it.
    private func serve() {
        var client = AdaptiveSpin.Client()
        var answered = false  // a wait right after answering may spin
        var failure: Errno?
        let (socket, wakeFD) = (fd, wake)
        func wait(_ timeout: Int64) -> AdaptiveSpin.Event {
            while true {
                switch ciommufd_wait_readable(socket, wakeFD, timeout) {
                case 2: return .ready
                case 1: return .woken
                case 0: return .timedOut
                default:
                    let err = Errno.current
                    if err == .EINTR { if timeout == 0 { return .timedOut }; continue }
                    failure = err
                    return .woken
                }
            }
        }
        while !closed {
            let event = answered
                ? server.spin.wait(&client, answeredAt: lastAnswer, poll: { wait(0) }, sleep: { _ in wait(-1) })
                : wait(-1)
            if let err = failure {
                close(reason: err == .EBADF ? "the channel's socket is no longer open (POLLNVAL)" : "poll failed: \(err.name)")
                break
            }
            answered = false
            if event == .ready {
                readable()
                answered = true
            }
        }
        let reason = state.withLock { closeReason ?? "closed" }
        server.closed(self, reason: reason)
        finish()
    }

    /// After the serving thread stops: the fds this channel holds are closed.
    private func finish() {
        for (_, f) in memory { Glibc.close(f) }
        memory = [:]
        if bitmap >= 0 { Glibc.close(bitmap) }
        bitmap = -1
        Glibc.close(fd)
        state.withLock {
            finished = true
            if wake >= 0 { Glibc.close(wake) }
        }
    }

    /// Reads every request that is waiting (the socket is non-blocking) and answers each.
    private func readable() {
        while !closed {
            var fds = [Int32](repeating: -1, count: 1)
            var nfds: UInt32 = 0
            var truncated: Int32 = 0
            // MSG_TRUNC: a packet larger than the buffer returns its real length.
            let n = fds.withUnsafeMutableBufferPointer { f in
                ciommufd_recv_with_fds(fd, buffer.baseAddress, buffer.count, f.baseAddress, 1, &nfds, &truncated, Int32(MSG_TRUNC | MSG_DONTWAIT))
            }
            if n < 0 {
                let err = Errno.current
                if err == .EINTR { continue }
                if err == .EAGAIN { return }
                close(reason: "receive failed: \(err.name)")
                return
            }
            let received = Array(fds.prefix(Int(nfds)))
            if n == 0 && received.isEmpty && truncated == 0 {
                close(reason: "the VMM closed its end")
                return
            }
            handle(count: n, fds: received, fdsTruncated: truncated)
        }
    }

    private func handle(count n: Int, fds: [Int32], fdsTruncated: Int32) {
        var owned = fds  // closed at the end unless a handler takes one
        defer { for f in owned where f >= 0 { Glibc.close(f) } }
        let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<min(n, buffer.count)])
        let peek = try? ChannelWire.header(bytes)
        let id = peek?.id ?? 0
        let op = peek?.op ?? 0
        if fdsTruncated != 0 {
            let why = fdsTruncated == CIOMMUFD_FDS_LOST
                ? "the daemon could not receive its fd (its fd limit); the request was not run"
                : "a request carries at most one fd; more came with it, and all were closed"
            reply(ChannelWire.errorReply(id: id, op: op, errno: ChannelWire.EBADMSG, name: ChannelWire.ErrorName.badMessage, message: why), refused: true)
            return
        }
        if n > buffer.count - 1 {
            reply(ChannelWire.errorReply(id: id, op: op, errno: ChannelWire.EMSGSIZE, name: ChannelWire.ErrorName.badMessage,
                message: "a message of \(n) bytes is larger than the largest request (\(ChannelWire.maxRequestBytes) bytes: \(ChannelWire.maxEntries) entries); split the batch"), refused: true)
            return
        }
        let request: ChannelWire.Request
        do {
            (_, request) = try ChannelWire.decode(bytes, fdCount: fds.count)
        } catch {
            reply(ChannelWire.errorReply(id: id, op: op, errno: error.errno, name: error.name, message: error.message), refused: true)
            return
        }
        guard let caller = server.broker.channelCaller(self.id) else {
            reply(ChannelWire.errorReply(id: id, op: op, errno: ChannelWire.EPIPE, name: ChannelWire.ErrorName.ownerGone,
                message: "owner '\(owner)' of this channel is gone (released); the channel is closed"), refused: true)
            close(reason: "owner gone")
            return
        }
        do {
            let (payload, fd) = try run(request, caller: caller, fds: &owned)
            reply(ChannelWire.reply(id: id, op: op, payload: payload), fd: fd)
        } catch let failure as Failure {
            reply(ChannelWire.errorReply(id: id, op: op, errno: failure.errno, name: failure.name, message: failure.message, index: failure.index, done: failure.done), refused: true)
        } catch {
            let f = Failure(error)
            reply(ChannelWire.errorReply(id: id, op: op, errno: f.errno, name: f.name, message: f.message), refused: true)
        }
    }

    /// Sends one reply (and `fd`, closed after sending). A VMM that does not read its replies
    /// for `sendTimeoutMilliseconds` loses the channel.
    private func reply(_ message: [UInt8], fd: Int32 = -1, refused: Bool = false) {
        server.count(refused: refused)
        defer { if fd >= 0 { Glibc.close(fd) } }
        var fds = fd >= 0 ? [fd] : []
        while !closed {
            // Stamped before the send (branch pinggap): the send wakes the VMM, which may take
            // this thread's CPU until after its next request; stamped after, that request would
            // look quick (the adaptive spin's rule) however long the VMM waited.
            let sentAt = monotonicNanoseconds()
            let rc = message.withUnsafeBytes { m in
                fds.withUnsafeMutableBufferPointer { f in
                    ciommufd_send_with_fds(self.fd, m.baseAddress, m.count, f.baseAddress, UInt32(f.count), Int32(MSG_DONTWAIT))
                }
            }
            if rc >= 0 {
                lastAnswer = sentAt
                return
            }
            let err = Errno.current
            if err == .EINTR { continue }
            if err == .EAGAIN {
                if Self.waitWritable(self.fd, milliseconds: Self.sendTimeoutMilliseconds) { continue }
                close(reason: "the VMM did not read its replies for \(Self.sendTimeoutMilliseconds / 1000) s")
                return
            }
            close(reason: "send failed: \(err.name)")
            return
        }
    }

    /// Waits up to `milliseconds` for `fd` to take a write; a signal does not cut the wait short.
    static func waitWritable(_ fd: Int32, milliseconds: Int32) -> Bool {
        let deadline = monotonicNanoseconds() + UInt64(milliseconds) * 1_000_000
        while true {
            let now = monotonicNanoseconds()
            guard now < deadline else { return false }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let rc = poll(&p, 1, Int32((deadline - now + 999_999) / 1_000_000))
            if rc > 0 { return true }
            if rc == 0 || errno != EINTR { return false }
        }
    }

    // MARK: Ops

    /// A failed request as the wire says it.
    struct Failure: Error {
        var errno: Int32
        var name: String
        var message: String
        var index: UInt32 = 0
        var done: UInt32 = 0

        init(errno: Int32, name: String, message: String, index: UInt32 = 0, done: UInt32 = 0) {
            self.errno = errno
            self.name = name
            self.message = message
            self.index = index
            self.done = done
        }

        /// A broker error: its wire name, and the kernel's errno for a kernel failure, else the
        /// errno of its kind (docs/vmm-channel.md, "Errors").
        init(_ error: any Error, index: UInt32 = 0, done: UInt32 = 0) {
            if let b = error as? BrokerError {
                self.init(errno: b.kernel?.errno.rawValue ?? Self.errno(of: b.kind), name: b.wireName, message: b.message, index: index, done: done)
            } else if let k = error as? IommuError {
                self.init(errno: k.errno.rawValue, name: ErrorName.kernel.wireName, message: "\(k)", index: index, done: done)
            } else if let f = error as? Failure {
                self = f
                self.index = index
                self.done = done
            } else {
                self.init(errno: EIO, name: ErrorName.io.wireName, message: "\(error)", index: index, done: done)
            }
        }

        /// A broker error of a call the channel made for `op`, whose checks are those of a
        /// control-plane method: the same name and errno, the message naming the op the VMM sent
        /// instead (each of `methods`, e.g. `device.attach_pasid`, removed from its start in turn).
        init(_ error: BrokerError, op: String, replacing methods: [String]) {
            self.init(error)
            var message = Substring(self.message)
            for method in methods where message.hasPrefix(method + ": ") { message = message.dropFirst(method.count + 2) }
            self.message = op + ": " + message
        }

        static func errno(of kind: ErrorName) -> Int32 {
            switch kind {
            case .notFound: ENOENT
            case .permissionDenied: EACCES
            case .busy: EBUSY
            case .quotaExceeded: EDQUOT
            case .unsupported: EOPNOTSUPP
            case .kernel: EIO
            case .invalidParams: EINVAL
            case .conflict: EEXIST
            case .policyRefused: EPERM
            case .limitExceeded: E2BIG
            case .io: EIO
            // Not names the broker raises (a BrokerError never carries them).
            case .messageTooLarge, .tooManyFileDescriptors, .fileDescriptorsLost, .tooManyClients, .fileDescriptorsInBatch,
                .shuttingDown, .badMessage, .unknownOp, .badFD, .notRegistered, .noBitmap, .ownerGone, .transport, .confine:
                EIO
            }
        }
    }

    private func run(_ request: ChannelWire.Request, caller: Caller, fds: inout [Int32]) throws -> (payload: [UInt8], fd: Int32) {
        let broker = server.broker
        var w = ChannelWire.Writer(reserving: 64)
        switch request {
        case .hello:
            w.u16(ChannelWire.versionMajor); w.u16(ChannelWire.versionMinor)
            w.u32(UInt32(ChannelWire.maxEntries)); w.u64(Broker.pageSize)
            w.u32(ChannelWire.maxMemorySlots); w.u32(0)
            w.u64(id)
            w.fixed(owner, ChannelWire.ownerNameBytes)
            return (w.bytes, -1)

        case .memRegister(let index):
            let file = fds[0]
            var st = stat()
            // A regular file (guest RAM), or a dma-buf (P2P: a VFIO PCI BAR; MARK: p2p).
            guard fstat(file, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG || broker.isDmabuf(file) else {
                throw Failure(errno: ChannelWire.EBADF, name: ChannelWire.ErrorName.badFD,
                    message: "MEM_REGISTER: the fd is \(st.st_mode == 0 ? "unusable" : MemoryFileKind.describe(st.st_mode)), not a regular file or dma-buf; register a memfd (or a hugetlbfs/tmpfs file) backing guest memory, or a dma-buf for P2P")
            }
            guard memory[index] == nil else {
                throw Failure(errno: EEXIST, name: ErrorName.conflict.wireName,
                    message: "MEM_REGISTER: memory index \(index) is already registered on this channel; unregister it first (MEM_UNREGISTER) or use another index")
            }
            memory[index] = file
            fds[0] = -1  // kept
            w.u32(index); w.u32(0); w.u64(UInt64(max(st.st_size, 0)))
            return (w.bytes, -1)

        case .memUnregister(let index):
            guard let file = memory.removeValue(forKey: index) else { throw notRegistered(index, "MEM_UNREGISTER") }
            Glibc.close(file)  // mappings keep the broker's own reference
            return ([], -1)

        case .map(let entries):
            // One broker batch (the owner's gate once for a run of one owner's entries), up to
            // the first entry whose memory index is not registered.
            var batch: [(params: IOASMapParams, fd: Int32)] = []
            batch.reserveCapacity(entries.count)
            var unregistered: (any Error)?
            for e in entries {
                guard let file = memory[e.memIndex] else {
                    unregistered = notRegistered(e.memIndex, nil)
                    break
                }
                batch.append((IOASMapParams(
                    ioas: e.ioas, fd: FDRef(fd: 0), offset: e.offset, length: e.length,
                    iova: e.flags & ChannelWire.mapFixedIOVA != 0 ? e.iova : nil,
                    readable: e.flags & ChannelWire.mapRead != 0, writeable: e.flags & ChannelWire.mapWrite != 0), file))
            }
            let outcome = broker.ioasMapBatch(caller, batch)
            if let error = outcome.failure ?? unregistered {
                let i = outcome.results.count
                let undo = undoMaps(zip(entries, outcome.results).map { ($0.0.ioas, $0.1.iova, $0.0.length) }, caller: caller)
                var f = Failure(error, index: UInt32(i), done: UInt32(undo.failed))
                f.message = "MAP entry \(i): \(f.message)" + undo.note
                throw f
            }
            w.u32(UInt32(outcome.results.count)); w.u32(0); w.u64(outcome.results.last?.ownerPinnedBytes ?? 0)
            for r in outcome.results { w.u64(r.iova) }
            return (w.bytes, -1)

        case .unmap(let entries):
            // One broker batch: the owner's gate once, one hold of the broker's lock an entry.
            let outcome = broker.ioasUnmapBatch(caller, entries.map { e in
                let all = e.flags & ChannelWire.unmapAll != 0
                let tolerate: Bool? = e.flags & ChannelWire.unmapTolerateMissing != 0 ? true : e.flags & ChannelWire.unmapRequirePresent != 0 ? false : nil
                return IOASUnmapParams(ioas: e.ioas, iova: all ? nil : e.iova, length: all ? nil : e.length, all: all ? true : nil, tolerateMissing: tolerate)
            })
            if let error = outcome.failure {
                let i = outcome.results.count
                var f = Failure(error, index: UInt32(i), done: UInt32(i))
                f.message = "UNMAP entry \(i): \(f.message)" + (i > 0 ? " (entries 0 to \(i - 1) were unmapped)" : "")
                throw f
            }
            w.u32(UInt32(outcome.results.count)); w.u32(0); w.u64(outcome.results.last?.ownerPinnedBytes ?? 0)
            for r in outcome.results { w.u64(r.unmappedBytes) }
            return (w.bytes, -1)

        case .copy(let entries):
            var iovas: [UInt64] = []
            var pinned: UInt64 = 0
            for (i, e) in entries.enumerated() {
                do {
                    let r = try broker.ioasCopy(caller, IOASCopyParams(
                        dstIOAS: e.dstIOAS, srcIOAS: e.srcIOAS, srcIOVA: e.srcIOVA, length: e.length,
                        dstIOVA: e.flags & ChannelWire.mapFixedIOVA != 0 ? e.dstIOVA : nil,
                        readable: e.flags & ChannelWire.mapRead != 0, writeable: e.flags & ChannelWire.mapWrite != 0))
                    iovas.append(r.dstIOVA)
                    pinned = r.ownerPinnedBytes
                } catch {
                    let undo = undoMaps(zip(entries, iovas).map { ($0.0.dstIOAS, $0.1, $0.0.length) }, caller: caller)
                    var f = Failure(error, index: UInt32(i), done: UInt32(undo.failed))
                    f.message = "COPY entry \(i): \(f.message)" + undo.note
                    throw f
                }
            }
            w.u32(UInt32(iovas.count)); w.u32(0); w.u64(pinned)
            for iova in iovas { w.u64(iova) }
            return (w.bytes, -1)

        case .dirtyBitmapSet:
            let file = fds[0]
            var st = stat()
            let mode = fcntl(file, F_GETFL)
            guard fstat(file, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, mode >= 0, (mode & O_ACCMODE) != O_RDONLY else {
                throw Failure(errno: ChannelWire.EBADF, name: ChannelWire.ErrorName.badFD,
                    message: "DIRTY_BITMAP_SET: the fd must be a memfd (a regular file) open for writing; this one is \((st.st_mode & S_IFMT) == S_IFREG ? "read-only" : MemoryFileKind.describe(st.st_mode))")
            }
            if bitmap >= 0 { Glibc.close(bitmap) }
            bitmap = file
            fds[0] = -1
            w.u64(UInt64(max(st.st_size, 0)))
            return (w.bytes, -1)

        case .dirtyRead(let d):
            guard bitmap >= 0 else {
                throw Failure(errno: ChannelWire.ESTALE, name: ChannelWire.ErrorName.noBitmap,
                    message: "DIRTY_READ: no bitmap memfd is set on this channel (never, or not since the daemon restarted); send one with DIRTY_BITMAP_SET and retry")
            }
            let params = DirtyReadParams(
                ioas: d.ioas, iova: d.iova, length: d.length, pageSize: d.pageSize == 0 ? nil : d.pageSize,
                clear: d.flags & ChannelWire.dirtyNoClear == 0, format: .bitmap)
            let out = try broker.dirtyRead(caller, params, into: bitmap)
            for f in out.fds { Glibc.close(f) }
            w.u64(out.result.dirtyPages); w.u64(UInt64(out.result.bitmapBytes ?? 0))
            w.u32(UInt32(out.result.clearFailures?.count ?? 0)); w.u32(0)
            return (w.bytes, -1)

        case .deviceFD(let name):
            let out = try broker.deviceFD(caller, DeviceFDParams(device: name))
            w.u32(out.result.deviceID); w.u32(0)
            return (w.bytes, out.fds.first ?? -1)

        case .hotReset(let name):
            let reset = try broker.deviceHotReset(caller, device: name)
            w.u32(UInt32(reset.count)); w.u32(0)
            return (w.bytes, -1)

        case .nestedAlloc, .replace, .hwptDestroy, .invalidate, .queueFD:
            return try runNested(request, caller: caller)

        case .pasidAttach, .pasidReplace, .pasidDetach:
            return try runPASID(request, caller: caller)

        case .nestedAllocFlags(let a):
            return try runNestedAllocFlags(a, caller: caller)
        }
    }

    /// `what` prefixes the message (a MAP entry's failure gets its own prefix from the batch).
    private func notRegistered(_ index: UInt32, _ what: String?) -> Failure {
        Failure(errno: ChannelWire.ESTALE, name: ChannelWire.ErrorName.notRegistered,
            message: (what.map { "\($0): " } ?? "") + "memory index \(index) is not registered on this channel (never, or not since the daemon restarted); register it (MEM_REGISTER) and retry")
    }

    /// Undoes the mappings a failed MAP or COPY batch made (all or nothing), through the same
    /// broker unmap as `ioas.unmap`. Returns how many could not be undone, and a note saying so.
    private func undoMaps(_ done: [(ioas: UInt32, iova: UInt64, length: UInt64)], caller: Caller) -> (failed: Int, note: String) {
        guard !done.isEmpty else { return (0, "") }
        var failed: [String] = []
        for m in done.reversed() {
            do {
                _ = try server.broker.ioasUnmap(caller, IOASUnmapParams(ioas: m.ioas, iova: m.iova, length: m.length, tolerateMissing: false))
            } catch {
                failed.append("IOAS \(m.ioas) at 0x\(String(m.iova, radix: 16)): \(error)")
            }
        }
        if failed.isEmpty {
            return (0, " (the \(done.count) entries before it were unmapped again: nothing of the batch stays)")
        }
        return (failed.count, " (undoing the entries before it failed for \(failed.count): \(failed.joined(separator: "; ")); those stay mapped, unmap them)")
    }
}

/// What a non-regular file is, in words.
enum MemoryFileKind {
    static func describe(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFSOCK: "a socket"
        case S_IFIFO: "a pipe"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFDIR: "a directory"
        case S_IFREG: "a regular file"
        default: "a file of type 0o\(String(mode & S_IFMT, radix: 8))"
        }
    }
}
