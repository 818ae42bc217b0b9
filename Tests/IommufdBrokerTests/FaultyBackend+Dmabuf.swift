import IommufdCore

// MARK: p2p

extension FaultyBackend: DmabufIommuBackend {
    func dmabufInfo(fd: Int32) throws -> DmabufInfo? { try sim.dmabufInfo(fd: fd) }
    func dmabufRevoked(fd: Int32) throws -> Bool { try sim.dmabufRevoked(fd: fd) }
}
