// MARK: p2p

/// A dma-buf as `IOMMU_IOAS_MAP_FILE` sees it (Linux >= 6.19: `iopt_map_file_pages` tries
/// `dma_buf_get(fd)` first and maps the exporter's physical range, not pinned pages).
public struct DmabufInfo: Hashable, Sendable {
    /// `dmabuf->size`: a mapping must end inside it (else EINVAL).
    public var size: UInt64
    /// The exporter (`exp_name` of the fd's `/proc/self/fdinfo`: "vfio-pci" for a PCI BAR,
    /// "iommufd" for the selftest's mock dma-buf).
    public var exporter: String

    public init(size: UInt64, exporter: String) {
        self.size = size
        self.exporter = exporter
    }
}

extension IommuBackend {
    /// Whether this backend can tell dma-bufs apart and map them (the requirements of
    /// `DmabufIommuBackend`).
    public var dmabuf: (any DmabufIommuBackend)? { self as? any DmabufIommuBackend }
}

/// P2P by dma-buf (branch `p2p`): every backend conforms (KernelBackend, SimBackend,
/// PersistentSimBackend, FeatureRecordingBackend, FaultInjectingBackend). The mapping itself
/// is the ordinary `map(ioas:source: .file(fd:offset:) ...)`: the kernel tells the dma-buf
/// apart by itself.
public protocol DmabufIommuBackend: IommuBackend {
    /// What `fd` is: a dma-buf this iommufd would map as one (its size and exporter), or nil
    /// for any other file. The kernel backend reads the fd's `/proc/self/fdinfo` (only a
    /// dma-buf has `exp_name:`); the simulator looks the file up among its own dma-bufs.
    func dmabufInfo(fd: Int32) throws -> DmabufInfo?

    /// Whether the exporter has revoked the dma-buf `fd` now: a new `IOMMU_IOAS_MAP_FILE` of it
    /// would fail with ENODEV. (No ioctl reports a mapping's state: the kernel backend maps the
    /// first page into a scratch IOAS and destroys it again.) A mapping made before a revoke
    /// stays revoked even after the exporter restores the dma-buf (`iopt_revoke_notify` sets
    /// its length to 0 for good); only unmapping it and mapping again brings the memory back.
    func dmabufRevoked(fd: Int32) throws -> Bool
}

/// The selftest's mock dma-buf exporter (CONFIG_IOMMUFD_TEST kernels; always on the
/// simulator): how conformance tests and the daemon's test hooks get a dma-buf to map.
public protocol DmabufTestHooks: IommuTestHooks, DmabufIommuBackend {
    /// `IOMMU_TEST_OP_DMABUF_GET`: a new dma-buf of `length` bytes (rounded up to pages; 0 or
    /// more than 512 pages is EINVAL). The caller owns (closes) the fd, which is close-on-exec.
    func testDmabufGet(length: UInt32) throws -> Int32

    /// `IOMMU_TEST_OP_DMABUF_REVOKE`: the exporter revokes (`revoked` true) or restores the
    /// dma-buf `fd`. EBADF for a closed fd, EINVAL for a file that is not a dma-buf,
    /// EOPNOTSUPP for a dma-buf of another exporter.
    func testDmabufRevoke(fd: Int32, revoked: Bool) throws
}
