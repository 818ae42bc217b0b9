#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An append-only file of checksummed records in a memfd: what the daemon keeps in systemd's fd
/// store so that its state survives it (the broker's object journal, the simulator's iommufd).
///
/// Layout: an 8-byte magic, then records `[u32 payload length][u8 type][payload][u32 FNV-1a of
/// type and payload]`, little endian. A process killed in the middle of a write leaves a torn
/// last record: reading stops at the first record whose length or checksum does not hold, and
/// appending continues from there. Not thread-safe: its owner serialises calls.
public final class RecordLog: @unchecked Sendable {
    public struct Record {
        public var type: UInt8
        public var payload: ArraySlice<UInt8>
    }

    public let fd: Int32
    /// Bytes of valid records on file (the next append goes here).
    public private(set) var size: Int
    /// Records appended but not yet written (`flush`).
    private var pending: [UInt8] = []
    public var hasPending: Bool { !pending.isEmpty }
    /// Writes made (`flush` calls that wrote something), for tests and figures.
    public private(set) var writes = 0
    private let closesFD: Bool
    // MARK: unmapfast
    /// The file's bytes from `size` up to here are already allocated (`fallocate` with
    /// `FALLOC_FL_KEEP_SIZE`: the file's size, so what a reader sees, stays at `size`): a
    /// `pwrite` into them copies into pages that exist instead of allocating one a page.
    private var allocated = 0
    /// False once `fallocate` failed (a file system without it): writes then allocate as before.
    private var preallocates = true
    /// The file is allocated ahead in steps of this many bytes (one `fallocate` every 1 MiB of
    /// records: about 340 batched UNMAPs of 256 entries), so pages are allocated in one call,
    /// not on the `pwrite` of every request (issue 16 target 2: half of a small `pwrite`'s time).
    public static let allocationStep = 1 << 20

    static let headerSize = 8

    /// A new, empty log in a new memfd called `name`.
    public init(memfdName name: String, magic: UInt64) throws(IommuError) {
        fd = try Memfd.create(name: name)
        closesFD = true
        size = 0
        self.magic = magic
        var header = ByteWriter()
        header.u64(magic)
        pending = header.bytes
        try flush()
    }

    /// Adopts an existing log (from the fd store) and reads it. `records` holds every valid
    /// record; `tornBytes` the bytes after them that were cut off (dropped from the file).
    /// Throws (leaving `fd` to the caller) when `fd` is not a log with this `magic`.
    public convenience init(adopting fd: Int32, magic: UInt64, records: inout [Record], tornBytes: inout Int) throws(IommuError) {
        try self.init(adopting: fd, magics: [magic], records: &records, tornBytes: &tornBytes)
    }

    /// The header of the log, as written or adopted (`adopting:magics:`: which of them it was).
    public let magic: UInt64

    /// Adopts an existing log whose header is one of `magics` (the versions of a format its
    /// reader knows); `magic` then says which.
    public init(adopting fd: Int32, magics: [UInt64], records: inout [Record], tornBytes: inout Int) throws(IommuError) {
        // Every check comes before the properties are set: a failed init must not close `fd`.
        let bytes = try Memfd.readAll(fd)
        var reader = ByteReader(bytes[...])
        let header = bytes.count >= Self.headerSize ? reader.u64() : 0
        guard bytes.count >= Self.headerSize, magics.contains(header) else {
            throw IommuError(.EINVAL, "read", detail: "fd \(fd) is not a log of this kind (bad magic); it is ignored")
        }
        var valid = Self.headerSize
        var found: [Record] = []
        while reader.remaining >= 9 {
            let start = reader.offset
            let length = Int(reader.u32())
            guard reader.remaining >= length + 5 else { break }
            let type = reader.u8()
            let payload = reader.bytes(length)
            let sum = reader.u32()
            guard sum == Self.checksum(type: type, payload) else { reader.offset = start; break }
            found.append(Record(type: type, payload: payload))
            valid = reader.offset
        }
        if bytes.count > valid, ftruncate(fd, off_t(valid)) != 0 {
            throw IommuError(.current, "ftruncate", detail: "dropping the torn tail of the log")
        }
        records = found
        tornBytes = bytes.count - valid
        self.fd = fd
        self.magic = header
        closesFD = true
        size = valid
        allocated = valid
    }

    deinit {
        if closesFD { close(fd) }
    }

    /// Queues one record; `flush` writes it.
    public func append(type: UInt8, _ payload: UnsafeRawBufferPointer) {
        // Straight into `pending` (no record-sized array between: a batch of unmaps appends
        // one record a mapping).
        withUnsafeBytes(of: UInt32(payload.count).littleEndian) { pending.append(contentsOf: $0) }
        pending.append(type)
        pending.append(contentsOf: payload)
        withUnsafeBytes(of: Self.checksum(type: type, payload).littleEndian) { pending.append(contentsOf: $0) }
    }

    public func append(type: UInt8, _ payload: [UInt8]) {
        payload.withUnsafeBytes { append(type: type, $0) }
    }

    /// TEST ONLY (`CrashPoints`): writes the first half of what `append` queued and keeps it
    /// queued, as a process killed in the middle of `flush` leaves the file.
    public func writeHalfOfPendingForCrashTest() {
        let half = pending.count / 2
        guard half > 0 else { return }
        pending.withUnsafeBytes { raw in _ = pwrite(fd, raw.baseAddress!, half, off_t(size)) }
    }

    /// Writes what `append` queued, in one `pwrite` when it can.
    public func flush() throws(IommuError) {
        guard !pending.isEmpty else { return }
        var written = 0
        let total = pending.count
        var failure: Errno?
        if size + total > allocated { allocateAhead(through: size + total) }
        pending.withUnsafeBytes { raw in
            while written < total {
                let rc = pwrite(fd, raw.baseAddress! + written, total - written, off_t(size + written))
                if rc < 0 {
                    if errno == EINTR { continue }
                    failure = .current
                    return
                }
                written += rc
            }
        }
        if let failure {
            // Keep the file at its last good record: a half-written record would be torn anyway.
            _ = ftruncate(fd, off_t(size))
            pending.removeAll(keepingCapacity: true)
            throw IommuError(failure, "pwrite", detail: "appending to the log memfd")
        }
        size += total
        writes += 1
        pending.removeAll(keepingCapacity: true)
    }

    /// Allocates the file's pages from `allocated` to past `end`, in whole steps, keeping the
    /// file's size. A failure only stops the allocation ahead: `pwrite` allocates what it
    /// writes, and reports ENOSPC itself.
    private func allocateAhead(through end: Int) {
        guard preallocates else { return }
        let step = Self.allocationStep
        let target = (end + step - 1) / step * step
        let from = max(allocated, size)
        if Memfd.allocate(fd, from: from, count: target - from, keepSize: true) {
            allocated = target
        } else {
            preallocates = false
        }
    }

    /// Bytes allocated beyond the records, for tests: at most one step and the last write.
    public var allocatedAhead: Int { max(0, allocated - size) }

    static func checksum(type: UInt8, _ payload: some Sequence<UInt8>) -> UInt32 {
        var h: UInt32 = 0x811c_9dc5
        h = (h ^ UInt32(type)) &* 0x0100_0193
        for b in payload { h = (h ^ UInt32(b)) &* 0x0100_0193 }
        return h
    }
}

/// What a log is and which format version it is written in, as its 8-byte header spells them:
/// six ASCII letters for the kind (`IFDJRN`: the broker's object journal, `IFDSIM`: the
/// simulator's iommufd) and two ASCII digits for the format version (`01`). A reader adopts
/// every version up to its own and refuses a newer one before touching anything, so a daemon
/// rolled back after an upgrade leaves the newer daemon's logs as they are.
public struct RecordLogFormat: Hashable, Sendable, CustomStringConvertible {
    public let kind: String
    public let version: Int

    public init(kind: String, version: Int) {
        precondition(kind.utf8.count == 6 && kind.utf8.allSatisfy { $0 >= 0x41 && $0 <= 0x5a }, "a log kind is six capital letters")
        precondition((1...99).contains(version), "a log format version is 1 to 99")
        self.kind = kind
        self.version = version
    }

    /// Parses a header; nil when it is not six capital letters and two digits.
    public init?(magic: UInt64) {
        let bytes = (0..<8).map { UInt8(truncatingIfNeeded: magic >> (8 * UInt64($0))) }
        guard bytes[0..<6].allSatisfy({ $0 >= 0x41 && $0 <= 0x5a }), bytes[6...].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        let version = Int(bytes[6] - 0x30) * 10 + Int(bytes[7] - 0x30)
        guard version >= 1 else { return nil }
        kind = String(decoding: bytes[0..<6], as: UTF8.self)
        self.version = version
    }

    /// The header as the log stores it (little endian: the kind's first letter comes first).
    public var magic: UInt64 {
        var v: UInt64 = 0
        for (i, b) in Array(kind.utf8).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        v |= UInt64(0x30 + version / 10) << 48
        v |= UInt64(0x30 + version % 10) << 56
        return v
    }

    public var description: String { "\(kind) format version \(version)" }

    /// The format of the log in `fd`, read from its header (the file offset is left alone);
    /// nil when `fd` is shorter than a header or its header is not a log format.
    public static func of(_ fd: Int32) -> RecordLogFormat? {
        var magic: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &magic) { pread(fd, $0.baseAddress, 8, 0) }
        guard n == 8 else { return nil }
        return RecordLogFormat(magic: UInt64(littleEndian: magic))
    }
}

/// Little-endian encoding of fixed-size fields.
public struct ByteWriter {
    public var bytes: [UInt8] = []
    public init() {}
    public init(reserving n: Int) { bytes.reserveCapacity(n) }
    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
}

/// Reads what `ByteWriter` wrote. Reading past the end yields zeros (callers check `remaining`).
public struct ByteReader {
    let data: ArraySlice<UInt8>
    public var offset: Int
    public init(_ data: ArraySlice<UInt8>) {
        self.data = data
        offset = data.startIndex
    }
    public var remaining: Int { data.endIndex - offset }
    public mutating func u8() -> UInt8 {
        guard remaining >= 1 else { return 0 }
        defer { offset += 1 }
        return data[offset]
    }
    public mutating func u32() -> UInt32 {
        guard remaining >= 4 else { offset = data.endIndex; return 0 }
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(data[offset + i]) << (8 * i) }
        offset += 4
        return v
    }
    public mutating func u64() -> UInt64 {
        guard remaining >= 8 else { offset = data.endIndex; return 0 }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(data[offset + i]) << (8 * i) }
        offset += 8
        return v
    }
    public mutating func bytes(_ n: Int) -> ArraySlice<UInt8> {
        let end = min(data.endIndex, offset + max(0, n))
        defer { offset = end }
        return data[offset..<end]
    }
}

/// `memfd_create(2)` and whole-file reads.
public enum Memfd {
    // MARK: unmapfast
    private typealias Fallocate = @convention(c) (Int32, Int32, Int64, Int64) -> Int32
    /// glibc's `fallocate64` (Swift's Glibc module leaves `fallocate` out: it needs _GNU_SOURCE).
    nonisolated(unsafe) private static let fallocateFunction: Fallocate? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "fallocate64") else { return nil }
        return unsafeBitCast(symbol, to: Fallocate.self)
    }()

    /// `fallocate(2)`: allocates `[from, from + count)` of `fd`; with `keepSize`
    /// (`FALLOC_FL_KEEP_SIZE`) the file's size stays. False when it failed or is unavailable.
    public static func allocate(_ fd: Int32, from: Int, count: Int, keepSize: Bool) -> Bool {
        guard let fallocate = fallocateFunction, count > 0 else { return false }
        return fallocate(fd, keepSize ? 1 : 0, Int64(from), Int64(count)) == 0
    }

    private typealias Create = @convention(c) (UnsafePointer<CChar>, UInt32) -> Int32
    /// glibc has memfd_create but Swift's Glibc module does not export it: looked up once.
    nonisolated(unsafe) private static let createFunction: Create? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "memfd_create") else { return nil }
        return unsafeBitCast(symbol, to: Create.self)
    }()

    /// A new close-on-exec memfd; with `allowSealing`, one that takes seals (`MFD_ALLOW_SEALING`:
    /// a bitmap memfd the daemon may then keep mapped, see `dirty.read` `into`).
    public static func create(name: String, allowSealing: Bool = false) throws(IommuError) -> Int32 {
        guard let create = createFunction else {
            throw IommuError(.ENOSYS, "memfd_create", detail: "not available in this C library")
        }
        let fd = create(name, 1 /* MFD_CLOEXEC */ | (allowSealing ? 2 /* MFD_ALLOW_SEALING */ : 0))
        guard fd >= 0 else { throw IommuError(.current, "memfd_create", detail: name) }
        return fd
    }

    /// The whole content of the regular file `fd` (read with pread: the file offset is left alone).
    public static func readAll(_ fd: Int32) throws(IommuError) -> [UInt8] {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw IommuError(.current, "fstat", detail: "fd \(fd)") }
        let count = Int(st.st_size)
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        var failure: Errno?
        bytes.withUnsafeMutableBytes { raw in
            while done < count {
                let rc = pread(fd, raw.baseAddress! + done, count - done, off_t(done))
                if rc < 0 {
                    if errno == EINTR { continue }
                    failure = .current
                    return
                }
                if rc == 0 { break }
                done += rc
            }
        }
        if let failure { throw IommuError(failure, "pread", detail: "fd \(fd)") }
        return Array(bytes[0..<done])
    }

    /// `(st_dev, st_ino)` of `fd`: what identifies a memory file across processes.
    public static func identity(_ fd: Int32) -> (device: UInt64, inode: UInt64)? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }
}
