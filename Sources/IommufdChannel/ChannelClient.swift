#if canImport(Glibc)
import Glibc
#endif
import CIommufd
import IommufdCore

/// A blocking client of a VMM channel, for the tests and the benchmark (a VMM uses libiommufdd,
/// the C library in libiommufdd/). One request at a time; not thread-safe.
public final class ChannelClient {
    public private(set) var fd: Int32
    private var nextID: UInt64 = 1
    private var buffer = [UInt8](repeating: 0, count: 64 << 10)

    /// An answer: the payload, and the fd that came with it (owned by the caller).
    public struct Reply {
        public var header: ChannelWire.Header
        public var payload: [UInt8]
        public var fd: Int32?
    }

    /// An error answer, as the daemon sent it.
    public struct Failure: Error, CustomStringConvertible {
        public var reply: ChannelWire.ErrorReply
        public var description: String { "\(reply.name) (errno \(reply.errno), entry \(reply.index), done \(reply.done)): \(reply.message)" }
    }

    /// The channel was closed, or a transport call failed.
    public struct Closed: Error, CustomStringConvertible {
        public var description: String
    }

    /// Adopts a channel fd (from `owner.delegate`); closes it on deinit.
    public init(adopting fd: Int32) { self.fd = fd }
    deinit { close() }

    public func close() {
        if fd >= 0 { _ = Glibc.close(fd) }
        fd = -1
    }

    /// Sends raw message bytes (with fds) as one packet.
    public func sendRaw(_ bytes: [UInt8], fds: [Int32] = []) throws {
        let rc = bytes.withUnsafeBytes { b in
            fds.withUnsafeBufferPointer { f in
                ciommufd_send_with_fds(fd, b.baseAddress, b.count, f.baseAddress, UInt32(f.count), 0)
            }
        }
        if rc < 0 { throw Closed(description: "sending on the channel failed: \(Errno.current)") }
    }

    /// Receives one packet; nil at end of file (the daemon closed the channel). `timeout` in ms.
    public func receive(timeoutMilliseconds: Int32 = 60_000) throws -> Reply? {
        // A signal (libFuzzer's alarm, a profiler's timer) interrupts poll with EINTR: that is
        // not the end of the wait; only the deadline is.
        let deadline = monotonicNanoseconds() + UInt64(max(timeoutMilliseconds, 0)) * 1_000_000
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let now = monotonicNanoseconds()
            let left = now < deadline ? Int32((deadline - now + 999_999) / 1_000_000) : 0
            let rc = poll(&p, 1, left)
            if rc > 0 { break }
            if rc < 0 && errno == EINTR { continue }
            if rc < 0 { throw Closed(description: "waiting for an answer on the channel failed: \(Errno.current)") }
            throw Closed(description: "no answer on the channel within \(timeoutMilliseconds) ms")
        }
        var fds: [Int32] = [-1]
        var nfds: UInt32 = 0
        var truncated: Int32 = 0
        let n = buffer.withUnsafeMutableBytes { b in
            fds.withUnsafeMutableBufferPointer { f in
                ciommufd_recv_with_fds(fd, b.baseAddress, b.count, f.baseAddress, 1, &nfds, &truncated, 0)
            }
        }
        if n < 0 && errno == EINTR { return try receive(timeoutMilliseconds: timeoutMilliseconds) }
        if n < 0 {
            if errno == ECONNRESET { return nil }
            throw Closed(description: "receiving on the channel failed: \(Errno.current)")
        }
        if n == 0 { return nil }
        let bytes = Array(buffer[0..<n])
        let header = try bytes.withUnsafeBytes { try ChannelWire.header($0) }
        return Reply(header: header, payload: Array(bytes[16...]), fd: nfds > 0 ? fds[0] : nil)
    }

    /// True when the daemon has closed the channel: a read sees end of file within `timeout`.
    public func isClosedByDaemon(timeoutMilliseconds: Int32 = 60_000) -> Bool {
        guard let reply = try? receive(timeoutMilliseconds: timeoutMilliseconds) else {
            return (try? receive(timeoutMilliseconds: 0)) == nil
        }
        if let f = reply.fd { _ = Glibc.close(f) }
        return false
    }

    /// One request and its answer; an error answer throws `Failure`.
    public func call(_ op: ChannelWire.Op, _ payload: [UInt8] = [], fd sendFD: Int32? = nil) throws -> Reply {
        let id = nextID
        nextID += 1
        var w = ChannelWire.Writer()
        w.u64(id); w.u16(op.rawValue); w.u16(0); w.u32(UInt32(payload.count))
        try sendRaw(w.bytes + payload, fds: sendFD.map { [$0] } ?? [])
        guard let reply = try receive() else { throw Closed(description: "the daemon closed the channel") }
        guard reply.header.id == id, reply.header.op == op.rawValue, reply.header.flags & ChannelWire.flagReply != 0 else {
            throw Closed(description: "an answer to request \(reply.header.id) op \(reply.header.op) came for request \(id) op \(op.rawValue)")
        }
        if reply.header.flags & ChannelWire.flagError != 0 {
            let e = reply.payload.withUnsafeBytes { ChannelWire.decodeError($0) }
            guard let e else { throw Closed(description: "a malformed error answer of \(reply.payload.count) bytes") }
            throw Failure(reply: e)
        }
        return reply
    }

    // MARK: Typed calls

    public struct Hello {
        public var major: UInt16, minor: UInt16
        public var maxEntries: UInt32
        public var pageSize: UInt64
        public var maxMemorySlots: UInt32
        public var channel: UInt64
        public var owner: String
    }

    public func hello() throws -> Hello {
        let r = try call(.hello)
        return r.payload.withUnsafeBytes { b in
            var rd = ChannelWire.Reader(b)
            let major = rd.u16(), minor = rd.u16(), entries = rd.u32(), page = rd.u64(), slots = rd.u32()
            _ = rd.u32()
            let channel = rd.u64()
            let owner = String(decoding: b[32...].prefix { $0 != 0 }, as: UTF8.self)
            return Hello(major: major, minor: minor, maxEntries: entries, pageSize: page, maxMemorySlots: slots, channel: channel, owner: owner)
        }
    }

    public func register(index: UInt32, memfd: Int32) throws {
        var w = ChannelWire.Writer()
        w.u32(index); w.u32(0)
        _ = try call(.memRegister, w.bytes, fd: memfd)
    }

    public func unregister(index: UInt32) throws {
        var w = ChannelWire.Writer()
        w.u32(index); w.u32(0)
        _ = try call(.memUnregister, w.bytes)
    }

    public struct MapSpec {
        public var ioas: UInt32, memIndex: UInt32, offset: UInt64, length: UInt64
        public var iova: UInt64?
        public var flags: UInt32
        public init(ioas: UInt32, memIndex: UInt32, offset: UInt64, length: UInt64, iova: UInt64?, flags: UInt32 = ChannelWire.mapRead | ChannelWire.mapWrite) {
            self.ioas = ioas; self.memIndex = memIndex; self.offset = offset; self.length = length; self.iova = iova; self.flags = flags
        }
    }

    /// MAP: the IOVAs, and the owner's pinned bytes after the batch.
    public func map(_ entries: [MapSpec]) throws -> (iovas: [UInt64], pinned: UInt64) {
        var w = ChannelWire.Writer()
        w.u32(UInt32(entries.count)); w.u32(0)
        for e in entries {
            w.u32(e.ioas); w.u32(e.memIndex); w.u64(e.offset); w.u64(e.length); w.u64(e.iova ?? 0)
            w.u32(e.flags | (e.iova != nil ? ChannelWire.mapFixedIOVA : 0)); w.u32(0)
        }
        return Self.counted(try call(.map, w.bytes))
    }

    /// UNMAP: the bytes unmapped per entry, and the owner's pinned bytes after the batch.
    public func unmap(_ entries: [(ioas: UInt32, iova: UInt64, length: UInt64, flags: UInt32)]) throws -> (bytes: [UInt64], pinned: UInt64) {
        var w = ChannelWire.Writer()
        w.u32(UInt32(entries.count)); w.u32(0)
        for e in entries { w.u32(e.ioas); w.u32(e.flags); w.u64(e.iova); w.u64(e.length) }
        let r = Self.counted(try call(.unmap, w.bytes))
        return (r.iovas, r.pinned)
    }

    /// COPY: destination IOVAs and the owner's pinned bytes.
    public func copy(dst: UInt32, src: UInt32, srcIOVA: UInt64, length: UInt64, dstIOVA: UInt64?) throws -> (iovas: [UInt64], pinned: UInt64) {
        var w = ChannelWire.Writer()
        w.u32(1); w.u32(0)
        w.u32(dst); w.u32(src); w.u64(srcIOVA); w.u64(length); w.u64(dstIOVA ?? 0)
        w.u32(ChannelWire.mapRead | ChannelWire.mapWrite | (dstIOVA != nil ? ChannelWire.mapFixedIOVA : 0)); w.u32(0)
        return Self.counted(try call(.copy, w.bytes))
    }

    public func setBitmap(_ memfd: Int32) throws {
        _ = try call(.dirtyBitmapSet, [UInt8](repeating: 0, count: 8), fd: memfd)
    }

    /// DIRTY_READ into the bitmap memfd: (dirty pages, bitmap bytes, clear failures).
    public func dirtyRead(ioas: UInt32, iova: UInt64, length: UInt64, pageSize: UInt64 = 0, clear: Bool = true) throws -> (pages: UInt64, bytes: UInt64, failures: UInt32) {
        var w = ChannelWire.Writer()
        w.u32(ioas); w.u32(clear ? 0 : ChannelWire.dirtyNoClear); w.u64(iova); w.u64(length); w.u64(pageSize)
        let r = try call(.dirtyRead, w.bytes)
        return r.payload.withUnsafeBytes { b in
            var rd = ChannelWire.Reader(b)
            return (rd.u64(), rd.u64(), rd.u32())
        }
    }

    /// DEVICE_FD: the device ID and its fd (owned by the caller).
    public func deviceFD(_ name: String) throws -> (id: UInt32, fd: Int32?) {
        var w = ChannelWire.Writer()
        w.fixed(name, ChannelWire.deviceNameBytes)
        let r = try call(.deviceFD, w.bytes)
        return (r.payload.withUnsafeBytes { b in var rd = ChannelWire.Reader(b); return rd.u32() }, r.fd)
    }

    /// HOT_RESET: how many devices the daemon reset (the device included).
    public func hotReset(_ name: String) throws -> UInt32 {
        var w = ChannelWire.Writer()
        w.fixed(name, ChannelWire.deviceNameBytes)
        let r = try call(.hotReset, w.bytes)
        return r.payload.withUnsafeBytes { b in var rd = ChannelWire.Reader(b); return rd.u32() }
    }

    private static func counted(_ r: Reply) -> (iovas: [UInt64], pinned: UInt64) {
        r.payload.withUnsafeBytes { b in
            var rd = ChannelWire.Reader(b)
            let count = Int(rd.u32())
            _ = rd.u32()
            let pinned = rd.u64()
            return ((0..<count).map { _ in rd.u64() }, pinned)
        }
    }
}
