#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CIommufd
import IommufdCore

/// The files iommuctl opens itself: memory to map (`ioas map`) and bitmaps to write
/// (`dirty read --bitmap`). Failures are `CtlError`s with exit code `localIO`, naming the path
/// and the errno.
enum LocalFiles {
    /// Opens `path` as memory to map: read-write when the mapping is writeable (the daemon maps
    /// it shared, or hands it to IOMMU_IOAS_MAP_FILE), read-only otherwise. Returns the fd and
    /// the file's size.
    static func openMemory(_ path: String, writeable: Bool) throws(CtlError) -> (fd: Int32, size: UInt64) {
        let flags = (writeable ? O_RDWR : O_RDONLY) | O_CLOEXEC
        let opened = retryOnInterrupt { ifd_open(path, flags) }
        let fd: Int32
        switch opened {
        case .success(let value): fd = value
        case .failure(let e):
            var message = "cannot open \(path) \(writeable ? "read-write" : "read-only"): \(e.name) (\(e.message))"
            if writeable && (e == .EACCES || e == .EROFS) {
                message += "; map it with --read-only, or make it writable"
            }
            throw CtlError(.localIO, message)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = Errno.current
            _ = close(fd)
            throw CtlError(.localIO, "cannot stat \(path): \(e.name) (\(e.message))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            _ = close(fd)
            throw CtlError(.localIO, "\(path) is not a regular file or memfd: only file-backed memory can be mapped")
        }
        return (fd, UInt64(st.st_size))
    }

    // MARK: p2p
    /// A duplicate of iommuctl's inherited descriptor `fd` (a memfd or a dma-buf, which has no
    /// path) and its size (`st_size`: a dma-buf reports its size there too).
    static func inheritedMemory(_ fd: Int32) throws(CtlError) -> (fd: Int32, size: UInt64) {
        var st = stat()
        guard fd >= 0, fstat(fd, &st) == 0 else {
            let e = Errno.current
            throw CtlError(.localIO, "--fd \(fd): iommuctl has no such open descriptor (\(e.name)); pass it from the shell, e.g. 3<FILE, or from the program that starts iommuctl")
        }
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else {
            let e = Errno.current
            throw CtlError(.localIO, "--fd \(fd): cannot duplicate it: \(e.name) (\(e.message))")
        }
        return (copy, UInt64(max(st.st_size, 0)))
    }

    /// A new memfd of `size` bytes (zero-filled), for mapping fresh memory from the shell.
    static func createMemory(size: UInt64, name: String) throws(CtlError) -> Int32 {
        let fd = ifd_memfd_create(name, 0)
        guard fd >= 0 else {
            let e = Errno.current
            throw CtlError(.localIO, "cannot create a memfd: \(e.name) (\(e.message))")
        }
        let truncated = retryOnInterrupt { ftruncate(fd, off_t(clamping: size)) }
        if case .failure(let e) = truncated {
            _ = close(fd)
            throw CtlError(.localIO, "cannot size a memfd to \(Units.bytes(size)): \(e.name) (\(e.message))")
        }
        return fd
    }

    /// Reads `count` bytes of `fd` from offset 0 (the bitmap memfd of `dirty.read`).
    static func readAll(_ fd: Int32, count: Int, what: String) throws(CtlError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let result = bytes.withUnsafeMutableBytes { raw in
                retryOnInterrupt { pread(fd, raw.baseAddress! + offset, count - offset, off_t(offset)) }
            }
            switch result {
            case .success(0):
                throw CtlError(.failure, "\(what) holds \(offset) bytes, the daemon announced \(count)")
            case .success(let n): offset += n
            case .failure(let e): throw CtlError(.localIO, "cannot read \(what): \(e.name) (\(e.message))")
            }
        }
        return bytes
    }

    /// Writes `bytes` to `path` (created with mode 0644, or truncated).
    static func write(_ bytes: [UInt8], to path: String) throws(CtlError) {
        let opened = retryOnInterrupt { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        guard case .success(let fd) = opened else {
            if case .failure(let e) = opened {
                throw CtlError(.localIO, "cannot create \(path): \(e.name) (\(e.message))")
            }
            return
        }
        defer { _ = close(fd) }
        var offset = 0
        while offset < bytes.count {
            let result = bytes.withUnsafeBytes { raw in
                retryOnInterrupt { Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) }
            }
            switch result {
            case .success(let n): offset += n
            case .failure(let e): throw CtlError(.localIO, "cannot write \(path): \(e.name) (\(e.message))")
            }
        }
    }
}
