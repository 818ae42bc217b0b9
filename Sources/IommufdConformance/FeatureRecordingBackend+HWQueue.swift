import IommufdCore

// MARK: hwqueue

extension FeatureRecordingBackend: HWQueueIommuBackend {
    public func allocHWQueue(viommu: ObjectID, type: UInt32, index: UInt32, baseAddress: UInt64, length: UInt64, flags: UInt32) throws -> ObjectID {
        guard let b = base.hwQueues else {
            throw IommuError(.ENOTTY, "IOMMU_HW_QUEUE_ALLOC", detail: "the backend has no HW queues")
        }
        return try note(.hwQueue) { try b.allocHWQueue(viommu: viommu, type: type, index: index, baseAddress: baseAddress, length: length, flags: flags) }
    }
}
