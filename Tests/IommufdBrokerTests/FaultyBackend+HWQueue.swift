import IommufdCore

// MARK: hwqueue3

extension FaultyBackend: HWQueueIommuBackend {
    func allocHWQueue(viommu: ObjectID, type: UInt32, index: UInt32, baseAddress: UInt64, length: UInt64, flags: UInt32) throws -> ObjectID {
        try sim.allocHWQueue(viommu: viommu, type: type, index: index, baseAddress: baseAddress, length: length, flags: flags)
    }
}
