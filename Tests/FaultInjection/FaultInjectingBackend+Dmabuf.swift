import IommufdCore

// MARK: p2p

/// dma-bufs: forwarded, never failed (telling a dma-buf apart reads /proc, not the iommufd;
/// the mapping itself is `map`, which fails as any map does).
extension FaultInjectingBackend: DmabufIommuBackend {
    public func dmabufInfo(fd: Int32) throws -> DmabufInfo? {
        guard let inner = inner.dmabuf else { return nil }
        return try inner.dmabufInfo(fd: fd)
    }
    public func dmabufRevoked(fd: Int32) throws -> Bool {
        guard let inner = inner.dmabuf else { throw IommuError(.EINVAL, "IOMMU_IOAS_MAP_FILE", detail: "the wrapped backend has no dma-bufs") }
        return try inner.dmabufRevoked(fd: fd)
    }
}
