#if canImport(Glibc)
import Glibc
#endif
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
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let err = Errno.current
            throw BrokerError.invalid("fd \(fd) cannot be used for memory: fstat failed with \(err.name) (\(err.message)). Pass an open memfd.")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw BrokerError.invalid("fd \(fd) is not a regular file (a memfd, hugetlbfs or tmpfs file); only those can back guest memory")
        }
        let size = UInt64(max(st.st_size, 0))
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= size else {
            throw BrokerError.invalid("offset 0x\(String(offset, radix: 16)) + length 0x\(String(length, radix: 16)) is beyond the end of the file (size 0x\(String(size, radix: 16))); grow the memfd (ftruncate) or map less")
        }
        let key = Key(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        if var file = files[key] {
            file.references += 1
            files[key] = file
            return (key, file.fd)
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

    /// Drops one reference; closes the broker's fd with the last.
    mutating func release(_ key: Key) {
        guard var file = files[key] else { return }
        file.references -= 1
        if file.references <= 0 {
            store?.remove(name: StoredFDName.memory(device: key.device, inode: key.inode))
            close(file.fd)
            files[key] = nil
        } else {
            files[key] = file
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

private typealias MemfdCreate = @convention(c) (UnsafePointer<CChar>, UInt32) -> Int32

/// `memfd_create(name, MFD_CLOEXEC)`: glibc has it, but Swift's Glibc module does not
/// export it, so it is looked up once.
private let memfdCreateFunction: MemfdCreate? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "memfd_create") else { return nil }
    return unsafeBitCast(symbol, to: MemfdCreate.self)
}()

/// A new memfd holding `bytes` (for handing a dirty bitmap back to a client).
func makeMemfd(name: String, bytes: UnsafeRawBufferPointer) throws -> Int32 {
    guard let create = memfdCreateFunction else {
        throw BrokerError(.unsupported, "memfd_create is not available in this C library; ask for the bitmap as runs instead")
    }
    let fd = create(name, 1 /* MFD_CLOEXEC */)
    guard fd >= 0 else {
        let err = Errno.current
        throw BrokerError(.io, "memfd_create failed with \(err.name) (\(err.message))")
    }
    var written = 0
    while written < bytes.count {
        let rc = pwrite(fd, bytes.baseAddress! + written, bytes.count - written, off_t(written))
        if rc < 0 {
            let err = Errno.current
            if err == .EINTR { continue }
            close(fd)
            throw BrokerError(.io, "writing the dirty bitmap to a memfd failed with \(err.name) (\(err.message))")
        }
        written += rc
    }
    return fd
}
