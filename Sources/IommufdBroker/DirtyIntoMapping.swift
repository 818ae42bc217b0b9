#if canImport(Glibc)
import Glibc
#endif
import IommufdCore

/// The client's bitmap memfd (`dirty.read` `into`, the channel's DIRTY_BITMAP_SET) mapped into
/// the daemon once and kept between the owner's reads, so a read zeroes the client's pages and
/// has the backend set its bits straight into them: no scratch bitmap, no copy, no `pwrite` of
/// the whole bitmap per read (issue 16 target 4). Only under the owner's gate.
///
/// An access past the end of a shared file mapping is SIGBUS, which would kill the daemon, so a
/// file is only mapped when it can never end inside the mapping, nor leave a page of it unbacked:
/// - it is on tmpfs (a memfd); not hugetlbfs, where a page punched out of the file and touched
///   again needs a huge page from the pool, which may be empty (SIGBUS);
/// - it is sealed against shrinking (`F_SEAL_SHRINK`): the daemon adds the seal, which needs a
///   memfd created with `MFD_ALLOW_SEALING`; one without (sealed with `F_SEAL_SEAL`) is not mapped;
/// - it is mapped `MAP_SHARED` read/write, so it must be open for reading and writing.
/// Any other bitmap file is written with `pwrite` as before (`words(of:bytes:)` answers nil).
/// Sealing is the one change the daemon makes to the client's file: it can still grow, not shrink.
final class DirtyIntoMapping {
    private var base: UnsafeMutableRawPointer?
    private var mappedBytes = 0
    private var device: UInt64 = 0
    private var inode: UInt64 = 0

    private static let tmpfsMagic = 0x0102_1994
    private static let fAddSeals: Int32 = 1033
    private static let fGetSeals: Int32 = 1034
    private static let fSealShrink: Int32 = 0x0002

    private typealias FStatFS = @convention(c) (Int32, UnsafeMutableRawPointer) -> Int32
    /// glibc's fstatfs (Swift's Glibc module does not export sys/vfs.h): looked up once.
    nonisolated(unsafe) private static let fstatfsFunction: FStatFS? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "fstatfs") else { return nil }
        return unsafeBitCast(symbol, to: FStatFS.self)
    }()

    /// `statfs.f_type` of the file system of `fd` (the struct's first member, a C long), or nil.
    private static func fileSystemType(of fd: Int32) -> Int? {
        guard let fstatfs = fstatfsFunction else { return nil }
        // struct statfs is 120 bytes on 64-bit Linux; room to spare.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 16)
        defer { buffer.deallocate() }
        guard fstatfs(fd, buffer) == 0 else { return nil }
        return buffer.load(as: Int.self)
    }

    /// Whether a file is mapped now, for tests.
    var isMapped: Bool { base != nil }

    /// The first `bytes` bytes of `fd` as words the daemon may write, mapped now or kept from an
    /// earlier read of the same file; nil when the file does not qualify (see above).
    func words(of fd: Int32, bytes: Int) -> UnsafeMutableBufferPointer<UInt64>? {
        guard bytes > 0, bytes % 8 == 0 else { return nil }
        guard Self.fileSystemType(of: fd) == Self.tmpfsMagic else { return nil }
        let seals = fcntl(fd, Self.fGetSeals)
        guard seals >= 0 else { return nil }
        if seals & Self.fSealShrink == 0 {
            guard fcntl(fd, Self.fAddSeals, Self.fSealShrink) == 0 else { return nil }
        }
        // Sealed first, then measured: from here on the size can only grow.
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, Int(st.st_size) >= bytes else { return nil }
        if base == nil || UInt64(st.st_dev) != device || UInt64(st.st_ino) != inode || mappedBytes < bytes {
            release()
            guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else { return nil }
            base = p
            mappedBytes = bytes
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
        }
        guard let base else { return nil }
        return UnsafeMutableBufferPointer(start: base.bindMemory(to: UInt64.self, capacity: bytes / 8), count: bytes / 8)
    }

    /// Unmaps the file (dirty tracking stopped, or the owner gone).
    func release() {
        if let base { munmap(base, mappedBytes) }
        base = nil
        mappedBytes = 0
    }

    deinit { release() }
}
