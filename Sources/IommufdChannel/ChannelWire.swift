import IommufdContract

/// The VMM channel's wire format (docs/vmm-channel.md is its specification): one request or
/// reply per `SOCK_SEQPACKET` message, a fixed 16-byte little-endian header, a fixed-layout
/// payload, and at most one fd by `SCM_RIGHTS`. This file only decodes and encodes: it holds no
/// state and calls nothing, so the fuzz target runs it alone.
public enum ChannelWire {
    public static let headerSize = 16
    public static let versionMajor: UInt16 = 1
    /// 1: ops 11-15 (nested translation); 2: ops 16-18 (PASID attachments) and 19
    /// (NESTED_ALLOC_FLAGS).
    public static let versionMinor: UInt16 = 2
    /// Most entries in one MAP, UNMAP, COPY or INVALIDATE batch.
    public static let maxEntries = 256
    /// Memory indexes run from 0 to `maxMemorySlots - 1`.
    public static let maxMemorySlots: UInt32 = 512
    /// The largest request: a full MAP or COPY batch.
    public static let maxRequestBytes = headerSize + 8 + maxEntries * 40
    /// The message of an error reply is cut at this many bytes.
    public static let maxErrorMessageBytes = 1024
    public static let errorNameBytes = 32
    public static let ownerNameBytes = 128
    public static let deviceNameBytes = 64

    public enum Op: UInt16, CaseIterable, Sendable {
        case hello = 1
        case memRegister = 2
        case memUnregister = 3
        case map = 4
        case unmap = 5
        case copy = 6
        case dirtyBitmapSet = 7
        case dirtyRead = 8
        case deviceFD = 9
        case hotReset = 10
        // MARK: chnested
        case nestedAlloc = 11
        case replace = 12
        case hwptDestroy = 13
        case invalidate = 14
        case queueFD = 15
        // MARK: pasidch (ChannelWire+PASID.swift)
        case pasidAttach = 16
        case pasidReplace = 17
        case pasidDetach = 18
        // MARK: pasidnest (ChannelWire+NestedFlags.swift)
        case nestedAllocFlags = 19

        public var name: String {
            switch self {
            case .hello: "HELLO"
            case .memRegister: "MEM_REGISTER"
            case .memUnregister: "MEM_UNREGISTER"
            case .map: "MAP"
            case .unmap: "UNMAP"
            case .copy: "COPY"
            case .dirtyBitmapSet: "DIRTY_BITMAP_SET"
            case .dirtyRead: "DIRTY_READ"
            case .deviceFD: "DEVICE_FD"
            case .hotReset: "HOT_RESET"
            case .nestedAlloc: "NESTED_ALLOC"
            case .replace: "REPLACE"
            case .hwptDestroy: "HWPT_DESTROY"
            case .invalidate: "INVALIDATE"
            case .queueFD: "QUEUE_FD"
            case .pasidAttach: "PASID_ATTACH"
            case .pasidReplace: "PASID_REPLACE"
            case .pasidDetach: "PASID_DETACH"
            case .nestedAllocFlags: "NESTED_ALLOC_FLAGS"
            }
        }

        /// Whether a request of this op carries exactly one fd (every other carries none).
        public var takesFD: Bool { self == .memRegister || self == .dirtyBitmapSet }
    }

    /// Header flags.
    public static let flagReply: UInt16 = 0x1
    public static let flagError: UInt16 = 0x2

    /// MAP and COPY entry flags.
    public static let mapRead: UInt32 = 0x1
    public static let mapWrite: UInt32 = 0x2
    public static let mapFixedIOVA: UInt32 = 0x4
    /// UNMAP entry flags.
    public static let unmapTolerateMissing: UInt32 = 0x1
    public static let unmapRequirePresent: UInt32 = 0x2
    public static let unmapAll: UInt32 = 0x4
    /// DIRTY_READ flags.
    public static let dirtyNoClear: UInt32 = 0x1

    public struct Header: Sendable, Hashable {
        public var id: UInt64
        public var op: UInt16
        public var flags: UInt16
        public var size: UInt32
        public init(id: UInt64, op: UInt16, flags: UInt16, size: UInt32) {
            self.id = id
            self.op = op
            self.flags = flags
            self.size = size
        }
    }

    public struct MapEntry: Sendable, Hashable {
        public var ioas: UInt32
        public var memIndex: UInt32
        public var offset: UInt64
        public var length: UInt64
        public var iova: UInt64
        public var flags: UInt32
    }

    public struct UnmapEntry: Sendable, Hashable {
        public var ioas: UInt32
        public var flags: UInt32
        public var iova: UInt64
        public var length: UInt64
    }

    public struct CopyEntry: Sendable, Hashable {
        public var dstIOAS: UInt32
        public var srcIOAS: UInt32
        public var srcIOVA: UInt64
        public var length: UInt64
        public var dstIOVA: UInt64
        public var flags: UInt32
    }

    public struct DirtyRead: Sendable, Hashable {
        public var ioas: UInt32
        public var flags: UInt32
        public var iova: UInt64
        public var length: UInt64
        public var pageSize: UInt64
    }

    /// A decoded request.
    public enum Request: Sendable, Hashable {
        case hello
        case memRegister(index: UInt32)
        case memUnregister(index: UInt32)
        case map([MapEntry])
        case unmap([UnmapEntry])
        case copy([CopyEntry])
        case dirtyBitmapSet
        case dirtyRead(DirtyRead)
        case deviceFD(String)
        /// `VFIO_DEVICE_PCI_HOT_RESET` done by the daemon once it has checked every device the
        /// reset touches is the channel owner's.
        case hotReset(String)
        // MARK: chnested (ChannelWire+Nested.swift)
        case nestedAlloc(NestedAlloc)
        case replace(Replace)
        case hwptDestroy(hwpt: UInt32)
        case invalidate(Invalidate)
        case queueFD(queue: UInt32)
        // MARK: pasidch (ChannelWire+PASID.swift)
        case pasidAttach(PASID)
        case pasidReplace(PASID)
        /// `hwpt` is 0.
        case pasidDetach(PASID)
        // MARK: pasidnest (ChannelWire+NestedFlags.swift)
        case nestedAllocFlags(NestedAllocFlags)
    }

    /// A request the decoder refuses: the errno, the daemon's error name and what to fix.
    public struct Refusal: Error, Sendable, Hashable {
        public var errno: Int32
        public var name: String
        public var message: String
        public init(errno: Int32, name: String, message: String) {
            self.errno = errno
            self.name = name
            self.message = message
        }
    }

    /// Error names of refusals made by the channel itself (the broker's are `iommufdd.NotFound` ...),
    /// from IommufdContract's catalogue.
    public enum ErrorName {
        /// A message that is not a well-formed request: short, wrong size, bad flags, fds where
        /// none belong. errno EBADMSG (EMSGSIZE for one larger than `maxRequestBytes`).
        public static let badMessage = IommufdContract.ErrorName.badMessage.wireName
        /// An op this daemon does not know. errno EOPNOTSUPP.
        public static let unknownOp = IommufdContract.ErrorName.unknownOp.wireName
        /// An fd of the wrong kind (not a regular file). errno EBADF.
        public static let badFD = IommufdContract.ErrorName.badFD.wireName
        /// A memory index nothing is registered under on this channel (never, or not since the
        /// daemon restarted): register it again and retry. errno ESTALE.
        public static let notRegistered = IommufdContract.ErrorName.notRegistered.wireName
        /// The bitmap memfd is not set on this channel (never, or not since a restart). ESTALE.
        public static let noBitmap = IommufdContract.ErrorName.noBitmap.wireName
        /// The channel's owner is gone (released); the channel closes after this answer. EPIPE.
        public static let ownerGone = IommufdContract.ErrorName.ownerGone.wireName
    }

    // Linux errno values the channel itself answers with.
    public static let EBADMSG: Int32 = 74
    public static let EMSGSIZE: Int32 = 90
    public static let EOPNOTSUPP: Int32 = 95
    public static let EBADF: Int32 = 9
    public static let ESTALE: Int32 = 116
    public static let EPIPE: Int32 = 32
    public static let EINVAL: Int32 = 22

    static func bad(_ message: String) -> Refusal {
        Refusal(errno: EBADMSG, name: ErrorName.badMessage, message: message)
    }

    /// The header of a message, or a refusal when it is shorter than one.
    public static func header(_ bytes: UnsafeRawBufferPointer) throws(Refusal) -> Header {
        guard bytes.count >= headerSize else {
            throw bad("a message of \(bytes.count) bytes is shorter than the 16-byte header")
        }
        var r = Reader(bytes)
        return Header(id: r.u64(), op: r.u16(), flags: r.u16(), size: r.u32())
    }

    /// Decodes one request message of `bytes` that came with `fdCount` fds. Every way a message
    /// can be wrong is a `Refusal` naming what is wrong; nothing here can trap.
    public static func decode(_ bytes: UnsafeRawBufferPointer, fdCount: Int) throws(Refusal) -> (Header, Request) {
        let header = try header(bytes)
        if bytes.count > maxRequestBytes {
            throw Refusal(errno: EMSGSIZE, name: ErrorName.badMessage, message: "a message of \(bytes.count) bytes is larger than the largest request (\(maxRequestBytes) bytes: \(maxEntries) entries)")
        }
        guard Int(header.size) == bytes.count - headerSize else {
            throw bad("the header says \(header.size) payload bytes but the message has \(bytes.count - headerSize)")
        }
        guard header.flags == 0 else {
            throw bad("request flags must be 0 (0x\(String(header.flags, radix: 16)) given; REPLY and ERROR are for answers)")
        }
        guard let op = Op(rawValue: header.op) else {
            throw Refusal(errno: EOPNOTSUPP, name: ErrorName.unknownOp, message: "op \(header.op) is not a channel op of version \(versionMajor).\(versionMinor); see docs/vmm-channel.md")
        }
        let wantFDs = op.takesFD ? 1 : 0
        guard fdCount == wantFDs else {
            throw bad("\(op.name) takes \(wantFDs == 1 ? "exactly one fd" : "no fd") but \(fdCount) came with it (they were closed)")
        }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[headerSize...])
        var r = Reader(payload)
        func fixed(_ size: Int) throws(Refusal) {
            guard payload.count == size else {
                throw bad("\(op.name) has a \(size)-byte payload, not \(payload.count)")
            }
        }
        func batch(_ entrySize: Int) throws(Refusal) -> Int {
            guard payload.count >= 8 else {
                throw bad("\(op.name) starts with an 8-byte count; the payload has \(payload.count) bytes")
            }
            let count = Int(r.u32())
            let reserved = r.u32()
            guard reserved == 0 else { throw bad("\(op.name): the reserved word after the count must be 0") }
            guard (1...maxEntries).contains(count) else {
                throw bad("\(op.name) holds \(count) entries; a batch has 1 to \(maxEntries)")
            }
            guard payload.count == 8 + count * entrySize else {
                throw bad("\(op.name) with \(count) entries of \(entrySize) bytes has a \(8 + count * entrySize)-byte payload, not \(payload.count)")
            }
            return count
        }
        func reserved(_ value: UInt32, _ what: String) throws(Refusal) {
            guard value == 0 else { throw bad("\(op.name): \(what) is reserved and must be 0") }
        }
        switch op {
        case .hello:
            try fixed(0)
            return (header, .hello)
        case .memRegister, .memUnregister:
            try fixed(8)
            let index = r.u32()
            try reserved(r.u32(), "the word after the index")
            guard index < maxMemorySlots else {
                throw Refusal(errno: EINVAL, name: IommufdContract.ErrorName.invalidParams.wireName, message: "memory index \(index) is out of range: indexes run from 0 to \(maxMemorySlots - 1)")
            }
            return (header, op == .memRegister ? .memRegister(index: index) : .memUnregister(index: index))
        case .map:
            let count = try batch(40)
            var entries: [MapEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let e = MapEntry(ioas: r.u32(), memIndex: r.u32(), offset: r.u64(), length: r.u64(), iova: r.u64(), flags: r.u32())
                try reserved(r.u32(), "the last word of a MAP entry")
                guard e.flags & ~(mapRead | mapWrite | mapFixedIOVA) == 0 else {
                    throw bad("MAP entry \(entries.count): unknown flags 0x\(String(e.flags, radix: 16)) (READ=1, WRITE=2, FIXED_IOVA=4)")
                }
                guard e.flags & mapFixedIOVA != 0 || e.iova == 0 else {
                    throw bad("MAP entry \(entries.count): iova must be 0 without FIXED_IOVA (the kernel chooses it)")
                }
                entries.append(e)
            }
            return (header, .map(entries))
        case .unmap:
            let count = try batch(24)
            var entries: [UnmapEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let e = UnmapEntry(ioas: r.u32(), flags: r.u32(), iova: r.u64(), length: r.u64())
                guard e.flags & ~(unmapTolerateMissing | unmapRequirePresent | unmapAll) == 0 else {
                    throw bad("UNMAP entry \(entries.count): unknown flags 0x\(String(e.flags, radix: 16)) (TOLERATE_MISSING=1, REQUIRE_PRESENT=2, ALL=4)")
                }
                guard e.flags & (unmapTolerateMissing | unmapRequirePresent) != (unmapTolerateMissing | unmapRequirePresent) else {
                    throw bad("UNMAP entry \(entries.count): TOLERATE_MISSING and REQUIRE_PRESENT together")
                }
                guard e.flags & unmapAll == 0 || (e.iova == 0 && e.length == 0) else {
                    throw bad("UNMAP entry \(entries.count): with ALL, iova and length must be 0")
                }
                entries.append(e)
            }
            return (header, .unmap(entries))
        case .copy:
            let count = try batch(40)
            var entries: [CopyEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let e = CopyEntry(dstIOAS: r.u32(), srcIOAS: r.u32(), srcIOVA: r.u64(), length: r.u64(), dstIOVA: r.u64(), flags: r.u32())
                try reserved(r.u32(), "the last word of a COPY entry")
                guard e.flags & ~(mapRead | mapWrite | mapFixedIOVA) == 0 else {
                    throw bad("COPY entry \(entries.count): unknown flags 0x\(String(e.flags, radix: 16)) (READ=1, WRITE=2, FIXED_IOVA=4)")
                }
                guard e.flags & mapFixedIOVA != 0 || e.dstIOVA == 0 else {
                    throw bad("COPY entry \(entries.count): dst_iova must be 0 without FIXED_IOVA (the kernel chooses it)")
                }
                entries.append(e)
            }
            return (header, .copy(entries))
        case .dirtyBitmapSet:
            try fixed(8)
            try reserved(r.u32(), "flags")
            try reserved(r.u32(), "the word after flags")
            return (header, .dirtyBitmapSet)
        case .dirtyRead:
            try fixed(32)
            let d = DirtyRead(ioas: r.u32(), flags: r.u32(), iova: r.u64(), length: r.u64(), pageSize: r.u64())
            guard d.flags & ~dirtyNoClear == 0 else {
                throw bad("DIRTY_READ: unknown flags 0x\(String(d.flags, radix: 16)) (NO_CLEAR=1)")
            }
            return (header, .dirtyRead(d))
        case .deviceFD, .hotReset:
            try fixed(deviceNameBytes)
            let name = try fixedString(UnsafeRawBufferPointer(rebasing: payload[0..<deviceNameBytes]), "\(op.name): the device name")
            guard !name.isEmpty else { throw bad("\(op.name): the device name is empty") }
            return (header, op == .deviceFD ? .deviceFD(name) : .hotReset(name))
        case .nestedAlloc, .replace, .hwptDestroy, .invalidate, .queueFD:
            return (header, try decodeNested(op, payload))
        case .pasidAttach, .pasidReplace, .pasidDetach:
            return (header, try decodePASID(op, payload))
        case .nestedAllocFlags:
            return (header, try decodeNestedAllocFlags(payload))
        }
    }

    /// A NUL-padded UTF-8 field: the bytes before the first NUL, which must be valid UTF-8 and
    /// followed by nothing but NULs.
    static func fixedString(_ field: UnsafeRawBufferPointer, _ what: String) throws(Refusal) -> String {
        let end = field.firstIndex(of: 0) ?? field.count
        guard end < field.count else { throw bad("\(what) must end with a NUL within its \(field.count) bytes") }
        guard field[end...].allSatisfy({ $0 == 0 }) else { throw bad("\(what) has bytes after its NUL; pad it with NULs") }
        let bytes = Array(field[..<end])
        guard let s = String(validating: bytes, as: UTF8.self) else { throw bad("\(what) is not valid UTF-8") }
        return s
    }

    // MARK: Requests

    /// The request message for `request` with `id`: the inverse of `decode` (decoding what this
    /// writes gives back `id` and `request`, and every message `decode` accepts is what this
    /// writes for its result; the fuzz target checks both).
    public static func encode(id: UInt64, _ request: Request) -> [UInt8] {
        var p = Writer(reserving: 64)
        let op: Op
        switch request {
        case .hello:
            op = .hello
        case .memRegister(let index), .memUnregister(let index):
            if case .memRegister = request { op = .memRegister } else { op = .memUnregister }
            p.u32(index); p.u32(0)
        case .map(let entries):
            op = .map
            p.u32(UInt32(entries.count)); p.u32(0)
            for e in entries {
                p.u32(e.ioas); p.u32(e.memIndex); p.u64(e.offset); p.u64(e.length); p.u64(e.iova); p.u32(e.flags); p.u32(0)
            }
        case .unmap(let entries):
            op = .unmap
            p.u32(UInt32(entries.count)); p.u32(0)
            for e in entries { p.u32(e.ioas); p.u32(e.flags); p.u64(e.iova); p.u64(e.length) }
        case .copy(let entries):
            op = .copy
            p.u32(UInt32(entries.count)); p.u32(0)
            for e in entries {
                p.u32(e.dstIOAS); p.u32(e.srcIOAS); p.u64(e.srcIOVA); p.u64(e.length); p.u64(e.dstIOVA); p.u32(e.flags); p.u32(0)
            }
        case .dirtyBitmapSet:
            op = .dirtyBitmapSet
            p.u32(0); p.u32(0)
        case .dirtyRead(let d):
            op = .dirtyRead
            p.u32(d.ioas); p.u32(d.flags); p.u64(d.iova); p.u64(d.length); p.u64(d.pageSize)
        case .deviceFD(let name):
            op = .deviceFD
            p.fixed(name, deviceNameBytes)
        case .hotReset(let name):
            op = .hotReset
            p.fixed(name, deviceNameBytes)
        case .nestedAlloc, .replace, .hwptDestroy, .invalidate, .queueFD:
            op = encodeNested(request, into: &p)
        case .pasidAttach, .pasidReplace, .pasidDetach:
            op = encodePASID(request, into: &p)
        case .nestedAllocFlags(let a):
            op = encodeNestedAllocFlags(a, into: &p)
        }
        var w = Writer(reserving: headerSize + p.bytes.count)
        w.u64(id); w.u16(op.rawValue); w.u16(0); w.u32(UInt32(p.bytes.count))
        w.bytes.append(contentsOf: p.bytes)
        return w.bytes
    }

    // MARK: Replies

    /// A reply message: the header (REPLY, the request's id and op) and `payload`.
    public static func reply(id: UInt64, op: UInt16, payload: [UInt8]) -> [UInt8] {
        var w = Writer(reserving: headerSize + payload.count)
        w.u64(id); w.u16(op); w.u16(flagReply); w.u32(UInt32(payload.count))
        w.bytes.append(contentsOf: payload)
        return w.bytes
    }

    /// An error reply: errno, the failed batch entry, how many entries' effects stay, the
    /// daemon's error name and the message.
    public static func errorReply(id: UInt64, op: UInt16, errno: Int32, name: String, message: String, index: UInt32 = 0, done: UInt32 = 0) -> [UInt8] {
        let text = Array(message.utf8.prefix(maxErrorMessageBytes))
        var w = Writer(reserving: 48 + text.count)
        w.i32(errno); w.u32(index); w.u32(done); w.u32(UInt32(text.count))
        w.fixed(name, errorNameBytes)
        w.bytes.append(contentsOf: text)
        var out = Writer(reserving: headerSize + w.bytes.count)
        out.u64(id); out.u16(op); out.u16(flagReply | flagError); out.u32(UInt32(w.bytes.count))
        out.bytes.append(contentsOf: w.bytes)
        return out.bytes
    }

    /// A decoded error reply (for clients and tests).
    public struct ErrorReply: Sendable, Hashable {
        public var errno: Int32
        public var index: UInt32
        public var done: UInt32
        public var name: String
        public var message: String
        public init(errno: Int32, index: UInt32, done: UInt32, name: String, message: String) {
            self.errno = errno
            self.index = index
            self.done = done
            self.name = name
            self.message = message
        }
    }

    public static func decodeError(_ payload: UnsafeRawBufferPointer) -> ErrorReply? {
        guard payload.count >= 48 else { return nil }
        var r = Reader(payload)
        let errno = r.i32(), index = r.u32(), done = r.u32(), length = Int(r.u32())
        guard payload.count == 48 + length else { return nil }
        let nameField = UnsafeRawBufferPointer(rebasing: payload[16..<48])
        let name = String(decoding: nameField.prefix { $0 != 0 }, as: UTF8.self)
        let message = String(decoding: payload[48...], as: UTF8.self)
        return ErrorReply(errno: errno, index: index, done: done, name: name, message: message)
    }

    // MARK: Little-endian fields

    public struct Reader {
        let base: UnsafeRawBufferPointer
        public private(set) var offset = 0
        public init(_ base: UnsafeRawBufferPointer) { self.base = base }
        /// Reads past the end yield 0 (the decoder checks sizes before reading).
        mutating func load<T: FixedWidthInteger>(_: T.Type) -> T {
            let size = MemoryLayout<T>.size
            guard offset + size <= base.count else { offset = base.count; return 0 }
            var v: T = 0
            withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: base[offset..<offset + size])) }
            offset += size
            return T(littleEndian: v)
        }
        public mutating func u16() -> UInt16 { load(UInt16.self) }
        public mutating func u32() -> UInt32 { load(UInt32.self) }
        public mutating func i32() -> Int32 { load(Int32.self) }
        public mutating func u64() -> UInt64 { load(UInt64.self) }
    }

    public struct Writer {
        public var bytes: [UInt8] = []
        public init(reserving n: Int = 0) { bytes.reserveCapacity(n) }
        mutating func put<T: FixedWidthInteger>(_ v: T) {
            withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
        }
        public mutating func u16(_ v: UInt16) { put(v) }
        public mutating func u32(_ v: UInt32) { put(v) }
        public mutating func i32(_ v: Int32) { put(v) }
        public mutating func u64(_ v: UInt64) { put(v) }
        /// `s` as UTF-8, cut to `size - 1` bytes, NUL-padded to `size`.
        public mutating func fixed(_ s: String, _ size: Int) {
            let utf8 = Array(s.utf8.prefix(size - 1))
            bytes.append(contentsOf: utf8)
            bytes.append(contentsOf: repeatElement(0, count: size - utf8.count))
        }
    }
}
