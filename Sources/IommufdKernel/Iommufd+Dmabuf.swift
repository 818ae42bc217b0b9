import CIommufd
import Foundation
import IommufdCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: p2p

/// dma-bufs: telling one apart, whether its exporter revoked it, and the selftest's mock
/// exporter (`IOMMU_TEST_OP_DMABUF_GET` / `IOMMU_TEST_OP_DMABUF_REVOKE`).
extension Iommufd {
    /// Serialises `testDmabufGet`'s search for the fd the kernel installed (see there).
    private static let dmabufGetLock = NSLock()

    /// What `/proc/self/fdinfo/<fd>` says of a dma-buf (`dma_buf_show_fdinfo`: `size:` and
    /// `exp_name:`), or nil when the fd is no dma-buf (no `exp_name:` line).
    public static func dmabufInfo(fd: Int32) throws -> DmabufInfo? {
        guard fcntl(fd, F_GETFD) >= 0 else {
            throw IommuError(.EBADF, "fdinfo", detail: "fd \(fd) is not open")
        }
        guard let text = try? String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8) else {
            throw IommuError(.ENOENT, "fdinfo", detail: "/proc/self/fdinfo/\(fd) cannot be read: is /proc mounted?")
        }
        var size: UInt64?
        var exporter: String?
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let value = parts[1].trimmingCharacters(in: .whitespaces)
            switch parts[0] {
            case "size": size = UInt64(value)
            case "exp_name": exporter = value
            default: break
            }
        }
        guard let exporter else { return nil }
        return DmabufInfo(size: size ?? 0, exporter: exporter)
    }

    /// The dma-buf fds open in this process now, with their inode numbers (a dma-buf's fd
    /// links to "/dmabuf:<name>").
    private static func openDmabufs() -> Set<[UInt64]> {
        var found = Set<[UInt64]>()
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return found }
        for entry in entries {
            guard let fd = Int32(entry),
                  let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)"),
                  target.hasPrefix("/dmabuf:") else { continue }
            var st = stat()
            guard fstat(fd, &st) == 0 else { continue }
            found.insert([UInt64(fd), UInt64(st.st_ino)])
        }
        return found
    }

    /// `IOMMU_TEST_OP_DMABUF_GET`: a new close-on-exec mock dma-buf of `length` bytes.
    ///
    /// Linux 7.3's `iommufd_test_dmabuf_get` installs the new fd (`dma_buf_fd`) but returns 0
    /// instead of its number, so the ioctl answers 0 and the caller is not told which fd it
    /// got (this is why the kernel's own `dmabuf_*` selftests fail on 7.3: they map fd 0).
    /// The fd is found here as the one dma-buf fd of exporter "iommufd" that was not open
    /// before the call; a kernel that returns the number is taken at its word.
    public func testDmabufGet(length: UInt32) throws -> Int32 {
        Self.dmabufGetLock.lock()
        defer { Self.dmabufGetLock.unlock() }
        let before = Self.openDmabufs()
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_DMABUF_GET), id: 0)
        cmd.dmabuf_get.length = length
        cmd.dmabuf_get.open_flags = UInt32(O_CLOEXEC)
        let rc = withUnsafeMutablePointer(to: &cmd) { pointer -> Int32 in
            var rc: Int32
            repeat { rc = Glibc.ioctl(fd, IFD_IOMMU_TEST_CMD, UnsafeMutableRawPointer(pointer)) } while rc < 0 && errno == EINTR
            return rc
        }
        if rc < 0 { throw IommuError(Errno(errno), "IOMMU_TEST_OP_DMABUF_GET", detail: "length \(length)") }
        if rc > 0 { return rc }
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let expected = (UInt64(length) + page - 1) / page * page
        let new = Self.openDmabufs().subtracting(before).map { Int32($0[0]) }.filter {
            (try? Self.dmabufInfo(fd: $0)).flatMap { $0 }.map { $0.exporter == "iommufd" && $0.size == expected } ?? false
        }
        guard new.count == 1, let dmabuf = new.first else {
            for fd in new { close(fd) }
            throw IommuError(.EIO, "IOMMU_TEST_OP_DMABUF_GET", detail: "the kernel answered 0 and \(new.count) new mock dma-buf fds were found instead of one")
        }
        return dmabuf
    }

    /// `IOMMU_TEST_OP_DMABUF_REVOKE`.
    public func testDmabufRevoke(fd dmabuf: Int32, revoked: Bool) throws {
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_DMABUF_REVOKE), id: 0)
        cmd.dmabuf_revoke.dmabuf_fd = dmabuf
        cmd.dmabuf_revoke.revoked = revoked ? 1 : 0
        try ioctl(IFD_IOMMU_TEST_CMD, &cmd)
            .orThrow("IOMMU_TEST_OP_DMABUF_REVOKE", detail: "\(revoked ? "revoke" : "restore") dma-buf fd \(dmabuf)")
    }

    /// Whether a new `IOMMU_IOAS_MAP_FILE` of the dma-buf `fd` fails with ENODEV (its
    /// exporter revoked it): the first page (or the whole buffer, when smaller) is mapped into a
    /// scratch IOAS, which is destroyed again with the mapping.
    public func dmabufRevoked(fd dmabuf: Int32, size: UInt64) throws -> Bool {
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let scratch = try allocIOAS()
        defer { try? destroy(scratch) }
        do {
            _ = try mapFile(ioas: scratch, fd: dmabuf, offset: 0, length: max(1, min(page, size)), iova: 0, flags: [.readable])
            return false
        } catch let error as IommuError where error.errno == .ENODEV {
            return true
        }
    }
}

extension KernelBackend: DmabufTestHooks {
    private func requireDmabufHooks(_ operation: String) throws {
        guard !options.mockDevices.isEmpty, features.contains(.selftest) else {
            throw IommuError(.ENOTTY, operation, detail: "test hooks need a CONFIG_IOMMUFD_TEST kernel and mock devices enabled in the config")
        }
    }

    public func dmabufInfo(fd: Int32) throws -> DmabufInfo? {
        try Iommufd.dmabufInfo(fd: fd)
    }

    public func dmabufRevoked(fd: Int32) throws -> Bool {
        guard let info = try Iommufd.dmabufInfo(fd: fd) else {
            throw IommuError(.EINVAL, "IOMMU_IOAS_MAP_FILE", detail: "fd \(fd) is not a dma-buf")
        }
        return try iommufd.dmabufRevoked(fd: fd, size: info.size)
    }

    public func testDmabufGet(length: UInt32) throws -> Int32 {
        try requireDmabufHooks("IOMMU_TEST_OP_DMABUF_GET")
        return try iommufd.testDmabufGet(length: length)
    }

    public func testDmabufRevoke(fd: Int32, revoked: Bool) throws {
        try requireDmabufHooks("IOMMU_TEST_OP_DMABUF_REVOKE")
        try iommufd.testDmabufRevoke(fd: fd, revoked: revoked)
    }
}
