import Foundation
import IommufdCore

// MARK: p2p

/// One dma-buf of the selftest exporter (selftest.c `iommufd_test_dma_buf`): a memfd of the
/// buffer's size stands for it, so its fd can travel over SCM_RIGHTS like a real one and DMA
/// through a mapping reads and writes the memfd. The simulator knows it by the memfd's
/// (st_dev, st_ino); it lives as long as the simulator (the kernel frees it with its last fd
/// and mapping — nothing the conformance suite can observe).
final class SimDmabuf {
    let file: SimFile
    /// `dmabuf->size`: the length asked for, rounded up to pages.
    let size: UInt64
    /// `priv->revoked`: new attachments fail with ENODEV while set.
    var revoked = false
    /// The `iopt_pages` attached to it (one per `IOMMU_IOAS_MAP_FILE`, shared by copies).
    var attachments: [WeakAttachment] = []

    init(file: SimFile, size: UInt64) {
        self.file = file
        self.size = size
    }

    struct WeakAttachment {
        weak var attachment: SimDmabufAttachment?
    }
}

/// The dma-buf side of one `iopt_pages` of type `IOPT_ADDRESS_DMABUF`: `revoked` is
/// `pages->dmabuf.phys.len == 0`, set by `iopt_revoke_notify` and never cleared, so a mapping
/// made before a revoke stays unmapped from every domain even after the exporter restores the
/// buffer.
final class SimDmabufAttachment {
    let dmabuf: SimDmabuf
    var revoked = false
    init(dmabuf: SimDmabuf) { self.dmabuf = dmabuf }
}

extension SimBackend: DmabufTestHooks {
    /// selftest.c: `len = ALIGN(len, PAGE_SIZE); if (len == 0 || len > PAGE_SIZE * 512) EINVAL`.
    static let maxDmabufPages: UInt64 = 512

    /// The simulator's dma-buf behind `fd`, if it is one (under `lock`).
    func dmabuf(for fd: Int32) -> SimDmabuf? {
        guard !dmabufs.isEmpty else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return dmabufs[SimFileKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), accessMode: 0)]
    }

    /// `iopt_alloc_dmabuf_pages` + `iopt_map_dmabuf` (under `lock`): the range must end inside
    /// the buffer (EINVAL), the exporter must not have revoked it (ENODEV).
    func mapDmabufPages(_ dmabuf: SimDmabuf, offset: UInt64, length: UInt64, writable: Bool) throws(Errno) -> SimPages {
        if dmabuf.size <= offset &+ (length - 1) { throw .EINVAL }
        if dmabuf.revoked { throw .ENODEV }
        let attachment = SimDmabufAttachment(dmabuf: dmabuf)
        dmabuf.attachments.removeAll { $0.attachment == nil }
        dmabuf.attachments.append(SimDmabuf.WeakAttachment(attachment: attachment))
        return SimPages(backing: .file(dmabuf.file, offset: offset), writable: writable, dmabuf: attachment)
    }

    public func dmabufInfo(fd: Int32) throws -> DmabufInfo? {
        try locked("fdinfo") {
            if fcntl(fd, F_GETFD) < 0 { throw Errno.EBADF }
            return dmabuf(for: fd).map { DmabufInfo(size: $0.size, exporter: "iommufd") }
        }
    }

    public func dmabufRevoked(fd: Int32) throws -> Bool {
        try locked("IOMMU_IOAS_MAP_FILE") {
            if fcntl(fd, F_GETFD) < 0 { throw Errno.EBADF }
            guard let dmabuf = dmabuf(for: fd) else { throw Errno.EINVAL }
            return dmabuf.revoked
        }
    }

    /// `iommufd_test_dmabuf_get`: a memfd of the rounded length stands for the new dma-buf.
    public func testDmabufGet(length: UInt32) throws -> Int32 {
        try locked("IOMMU_TEST_OP_DMABUF_GET") {
            let size = (UInt64(length) + pageSize - 1) / pageSize * pageSize
            if size == 0 || size > pageSize * Self.maxDmabufPages { throw Errno.EINVAL }
            let fd: Int32
            do {
                fd = try Memfd.create(name: "iommufd-sim-dmabuf")
            } catch {
                throw Errno.ENOMEM
            }
            guard ftruncate(fd, off_t(size)) == 0 else {
                close(fd)
                throw Errno.ENOMEM
            }
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
            var st = stat()
            guard copy >= 0, fstat(fd, &st) == 0 else {
                close(fd)
                if copy >= 0 { close(copy) }
                throw Errno.EMFILE
            }
            dmabufs[SimFileKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), accessMode: 0)] =
                SimDmabuf(file: SimFile(fd: copy), size: size)
            return fd
        }
    }

    /// `iommufd_test_dmabuf_revoke`: `dma_buf_get` (EBADF for a closed fd, EINVAL for a file
    /// that is no dma-buf), then `priv->revoked = revoked` and `dma_buf_invalidate_mappings`,
    /// which revokes every attachment for good when `revoked` is set.
    public func testDmabufRevoke(fd: Int32, revoked: Bool) throws {
        try locked("IOMMU_TEST_OP_DMABUF_REVOKE") {
            if fcntl(fd, F_GETFD) < 0 { throw Errno.EBADF }
            guard let dmabuf = dmabuf(for: fd) else { throw Errno.EINVAL }
            dmabuf.revoked = revoked
            if revoked {
                for weak in dmabuf.attachments { weak.attachment?.revoked = true }
            }
        }
    }
}
