import IommufdCore

// MARK: p2p

/// dma-bufs: a successful `map` of a dma-buf fd is noted as `dmabufMap` too
/// (FeatureRecordingBackend.map); the exporter's test operations are `selftest`.
extension FeatureRecordingBackend: DmabufTestHooks {
    private var dmabufBase: any DmabufTestHooks {
        get throws {
            guard let b = base as? any DmabufTestHooks else {
                throw IommuError(.ENOTTY, "IOMMU_TEST_OP_DMABUF_GET", detail: "the backend has no dma-buf support")
            }
            return b
        }
    }

    /// Whether `source` is a dma-buf of the base backend (for noting `dmabufMap`).
    func isDmabuf(_ source: MemorySource) -> Bool {
        guard case .file(let fd, _) = source, let b = base.dmabuf else { return false }
        return ((try? b.dmabufInfo(fd: fd)) ?? nil) != nil
    }

    public func dmabufInfo(fd: Int32) throws -> DmabufInfo? { try dmabufBase.dmabufInfo(fd: fd) }
    public func dmabufRevoked(fd: Int32) throws -> Bool { try dmabufBase.dmabufRevoked(fd: fd) }
    public func testDmabufGet(length: UInt32) throws -> Int32 {
        try note(.selftest) { try dmabufBase.testDmabufGet(length: length) }
    }
    public func testDmabufRevoke(fd: Int32, revoked: Bool) throws {
        try note(.selftest) { try dmabufBase.testDmabufRevoke(fd: fd, revoked: revoked) }
    }
}
