import IommufdCore

// MARK: p2p

/// dma-bufs through the persistent simulator. The selftest exporter's buffers are not iommufd
/// state (in the kernel they live as long as their fds), so getting and revoking one is not
/// logged; a dma-buf mapping is logged as the `map` of its memfd. A restarted daemon's new
/// simulator knows none of the old buffers: the replayed mapping is then an ordinary file
/// mapping of the memfd that stood for the buffer (same IOVA, same bytes), whose revocation
/// is no longer modelled.
extension PersistentSimBackend: DmabufTestHooks {
    public func dmabufInfo(fd: Int32) throws -> DmabufInfo? { try sim.dmabufInfo(fd: fd) }
    public func dmabufRevoked(fd: Int32) throws -> Bool { try sim.dmabufRevoked(fd: fd) }
    public func testDmabufGet(length: UInt32) throws -> Int32 { try sim.testDmabufGet(length: length) }
    public func testDmabufRevoke(fd: Int32, revoked: Bool) throws { try sim.testDmabufRevoke(fd: fd, revoked: revoked) }
}
