#if canImport(Glibc)
import Glibc
#endif
import IommufdContract
import IommufdCore

/// The memory files (memfds, hugetlbfs or tmpfs files) behind mappings.
///
/// The client's fd is only valid for the request, so the broker keeps its own duplicate for as
/// long as a mapping uses the file: one dup per file (by device and inode), reference counted,
/// so a million mappings of one memfd hold one fd.
struct MemoryFileTable {
    struct Key: Hashable {
        var device: UInt64
        var inode: UInt64
    }
    struct File {
        var fd: Int32
        var references: Int
    }
    private(set) var files: [Key: File] = [:]
    /// systemd's fd store, when the daemon has one: each dup is stored while it is held.
    var store: (any FileDescriptorStore)?

    /// Checks that `fd` is a regular file with `[offset, offset+length)` inside it, and returns
    /// its key and the broker's fd for it (a new dup on first use).
    mutating func retain(fd: Int32, offset: UInt64, length: UInt64) throws -> (Key, Int32) {
        var none: Stat?
        return try retain(fd: fd, offset: offset, length: length, stat: &none)
    }

    /// An fd's `fstat`, reused by `retain` for the next entries of a batch with the same fd in
    /// the same hold of the broker's lock (one `fstat` a group of a VMM's maps, not one each).
    struct Stat {
        var fd: Int32
        var st: stat
    }

    /// `retain`, with the `fstat` of `fd` taken from `cache` when it is that fd's (and kept
    /// there for the next call).
    mutating func retain(fd: Int32, offset: UInt64, length: UInt64, stat cache: inout Stat?) throws -> (Key, Int32) {
        let st: stat
        if let cache, cache.fd == fd {
            st = cache.st
        } else {
            var fresh = stat()
            guard fstat(fd, &fresh) == 0 else {
                let err = Errno.current
                throw BrokerError.invalid("the fd sent for memory cannot be used: fstat failed with \(err.name) (\(err.message)). Pass an open memfd.")
            }
            st = fresh
            cache = Stat(fd: fd, st: fresh)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw BrokerError.invalid("the fd sent for memory is \(Self.kind(of: st.st_mode)), not a regular file; only a memfd, hugetlbfs or tmpfs file can back guest memory")
        }
        let size = UInt64(max(st.st_size, 0))
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= size else {
            throw BrokerError.invalid("offset 0x\(String(offset, radix: 16)) + length 0x\(String(length, radix: 16)) is beyond the end of the file (size 0x\(String(size, radix: 16))); grow the memfd (ftruncate) or map less")
        }
        let key = Key(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        if let index = files.index(forKey: key) {  // one hash, the count changed in place
            files.values[index].references += 1
            return (key, files.values[index].fd)
        }
        let dup = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard dup >= 0 else {
            let err = Errno.current
            throw BrokerError(.io, "could not keep a reference to the memory fd: dup failed with \(err.name) (\(err.message)); the daemon may be out of file descriptors (LimitNOFILE)")
        }
        files[key] = File(fd: dup, references: 1)
        store?.store(dup, name: StoredFDName.memory(device: key.device, inode: key.inode))
        return (key, dup)
    }

    /// What a non-regular file is, for the refusal (the fd number is the daemon's, not the caller's).
    static func kind(of mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFSOCK: "a socket"
        case S_IFIFO: "a pipe"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFDIR: "a directory"
        default: "a file of type 0o\(String(mode & S_IFMT, radix: 8))"
        }
    }

    /// Drops one reference; closes the broker's fd with the last.
    mutating func release(_ key: Key) { release(key, count: 1) }

    /// Drops `count` references at once (a batch of unmaps of one file: one hash, not `count`).
    mutating func release(_ key: Key, count: Int) {
        guard let index = files.index(forKey: key) else { return }  // one hash, the count changed in place
        files.values[index].references -= count
        if files.values[index].references <= 0 {
            store?.remove(name: StoredFDName.memory(device: key.device, inode: key.inode))
            close(files.values[index].fd)
            files.remove(at: index)
        }
    }

    func fd(for key: Key) -> Int32? { files[key]?.fd }

    /// Takes one more reference on a file adopted from the fd store after a restart.
    mutating func adopt(_ key: Key, fd: Int32) {
        files[key, default: File(fd: fd, references: 0)].references += 1
    }
}

/// Maps `[offset, offset+length)` of `fd` shared into the daemon (the path for kernels without
/// `IOMMU_IOAS_MAP_FILE`: the pages are then pinned through the daemon's address space).
func mapShared(fd: Int32, offset: UInt64, length: UInt64, writable: Bool) throws -> UInt64 {
    let prot = PROT_READ | (writable ? PROT_WRITE : 0)
    guard let p = mmap(nil, Int(length), prot, MAP_SHARED, fd, off_t(offset)), p != MAP_FAILED else {
        let err = Errno.current
        throw BrokerError(.io, "mmap of the memory fd failed with \(err.name) (\(err.message)); is it opened read-write and large enough?")
    }
    return UInt64(UInt(bitPattern: p))
}

func unmapShared(address: UInt64, length: UInt64) {
    if let p = UnsafeMutableRawPointer(bitPattern: UInt(address)) { munmap(p, Int(length)) }
}

/// A new close-on-exec memfd for an answer, with the failure in the broker's terms.
private func createAnswerMemfd(name: String) throws -> Int32 {
    do {
        return try Memfd.create(name: name)
    } catch let error where error.errno == .ENOSYS {
        throw BrokerError(.unsupported, "memfd_create is not available in this C library; ask for the bitmap as runs instead")
    } catch {
        throw BrokerError(.io, "memfd_create failed with \(error.errno.name) (\(error.errno.message))")
    }
}

/// A memfd holding the bitmap `words` (for handing a dirty bitmap back to a client), and the
/// number of bits set. Only the 4 KiB pages with a bit set are written: the rest of the file is
/// a hole, which reads as zeros, so a mostly clean 32 MiB bitmap costs a few page allocations
/// instead of 8192 (new shmem pages are what a memfd answer costs most). The pages written are
/// zeroed in `words` afterwards, so on success `words` is all zero.
func makeBitmapMemfd(name: String, words: UnsafeMutableBufferPointer<UInt64>) throws -> (fd: Int32, bitsSet: UInt64) {
    let fd = try createAnswerMemfd(name: name)
    func fail(_ what: String) -> BrokerError {
        let err = Errno.current
        close(fd)
        return BrokerError(.io, "\(what) of the dirty bitmap memfd failed with \(err.name) (\(err.message))")
    }
    guard ftruncate(fd, off_t(words.count * 8)) == 0 else { throw fail("sizing") }
    guard let base = words.baseAddress else { return (fd, 0) }
    let pageWords = 512
    var bitsSet: UInt64 = 0
    var pending: Range<Int>? = nil  // words of consecutive pages with a bit set, not written yet
    func flush() -> Bool {
        guard let range = pending else { return true }
        pending = nil
        var offset = range.lowerBound * 8
        let end = range.upperBound * 8
        let raw = UnsafeRawPointer(base)
        while offset < end {
            let rc = pwrite(fd, raw + offset, end - offset, off_t(offset))
            if rc < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += rc
        }
        memset(base + range.lowerBound, 0, range.count * 8)
        return true
    }
    var page = 0
    while page < words.count {
        let end = min(page + pageWords, words.count)
        var count = 0
        for w in page..<end { count &+= base[w].nonzeroBitCount }
        if count > 0 {
            bitsSet &+= UInt64(count)
            pending = (pending?.lowerBound ?? page)..<end
        } else if !flush() {
            throw fail("writing")
        }
        page = end
    }
    guard flush() else { throw fail("writing") }
    return (fd, bitsSet)
}

/// The bitmap `dirty.read` fills, kept between reads: during a migration the same range is
/// harvested again and again, and memory already mapped costs a fraction of fresh pages.
/// Backed by transparent huge pages where the kernel gives them. A reader that hands it back
/// with every word it set cleared again (`markClean`) spares the next one the full clear.
final class DirtyScratch {
    /// The client's bitmap memfd, mapped (`dirty.read` `into`); released with the scratch.
    let into = DirtyIntoMapping()
    /// The varint bytes of the owner's last `packed_runs` answer: kept, so a harvest repeated
    /// during a migration writes into memory it already has (issue 16 target 4). Dropped when
    /// one answer made it larger than `maxKeptPackedBytes`, and with the scratch.
    var packed = DirtyRunPacking.Bytes()
    static let maxKeptPackedBytes = 4 << 20
    private var base: UnsafeMutableRawPointer?
    private var capacity = 0
    /// Words at the start that may be non-zero; every word after them is zero.
    private var dirtyWords = 0

    /// `count` zeroed words.
    func zeroed(words count: Int) throws -> UnsafeMutableBufferPointer<UInt64> {
        if count > capacity {
            releaseScratch()
            let bytes = (count * 8 + (2 << 20) - 1) & ~((2 << 20) - 1)
            guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
                let err = Errno.current
                throw BrokerError(.io, "mapping a \(count * 8)-byte dirty bitmap failed with \(err.name) (\(err.message)); read a smaller range")
            }
            _ = madvise(p, bytes, 14 /* MADV_HUGEPAGE */)
            base = p
            capacity = bytes / 8
        } else if dirtyWords > 0, let base {
            memset(base, 0, dirtyWords * 8)
        }
        dirtyWords = count
        guard let base else { return UnsafeMutableBufferPointer(start: nil, count: 0) }
        return UnsafeMutableBufferPointer(start: base.bindMemory(to: UInt64.self, capacity: count), count: count)
    }

    /// The words handed out last are all zero again.
    func markClean() { dirtyWords = 0 }

    /// Gives the memory back (when no IOAS tracks dirty pages any more).
    func release() {
        into.release()
        packed.deallocate()
        releaseScratch()
    }

    /// The packed bytes as the answer's base64 string; the buffer is kept for the next read
    /// unless this answer grew it past `maxKeptPackedBytes`.
    func takePackedString() -> String {
        let string = DirtyRunPacking.base64(packed.buffer)
        if packed.capacity > Self.maxKeptPackedBytes { packed.deallocate() } else { packed.removeAll() }
        return string
    }

    private func releaseScratch() {
        if let base { munmap(base, capacity * 8) }
        base = nil
        capacity = 0
        dirtyWords = 0
    }

    deinit { release() }
}
