import IommufdCore

// MARK: hwqueue

extension FaultInjectingBackend: HWQueueIommuBackend {
    public func allocHWQueue(viommu: ObjectID, type: UInt32, index: UInt32, baseAddress: UInt64, length: UInt64, flags: UInt32) throws -> ObjectID {
        try run(.allocHWQueue, "vIOMMU \(viommu) type 0x\(String(type, radix: 16)) index \(index) at 0x\(String(baseAddress, radix: 16))+0x\(String(length, radix: 16))") {
            guard let inner = inner.hwQueues else { throw IommuError(.ENOTTY, "IOMMU_HW_QUEUE_ALLOC", detail: "the wrapped backend has no HW queues") }
            return try inner.allocHWQueue(viommu: viommu, type: type, index: index, baseAddress: baseAddress, length: length, flags: flags)
        }
    }
}
