import CIommufd
import IommufdCore

// MARK: hwqueue

extension Iommufd {
    /// `IOMMU_HW_QUEUE_ALLOC`: the HW queue's ID.
    public func allocHWQueue(viommu: ObjectID, type: UInt32, index: UInt32, baseAddress: UInt64, length: UInt64, flags: UInt32) throws -> ObjectID {
        var cmd = ifd_hw_queue_alloc()
        cmd.size = UInt32(MemoryLayout<ifd_hw_queue_alloc>.size)
        cmd.flags = flags
        cmd.viommu_id = viommu
        cmd.type = type
        cmd.index = index
        cmd.nesting_parent_iova = baseAddress
        cmd.length = length
        try ioctl(IFD_IOMMU_HW_QUEUE_ALLOC, &cmd)
            .orThrow(
                "IOMMU_HW_QUEUE_ALLOC",
                detail: "vIOMMU \(viommu) type 0x\(String(type, radix: 16)) index \(index) at 0x\(String(baseAddress, radix: 16))+0x\(String(length, radix: 16))")
        return cmd.out_hw_queue_id
    }
}

/// One `IOMMU_HW_QUEUE_ALLOC`; the queue is destroyed with `IOMMU_DESTROY`.
extension KernelBackend: HWQueueIommuBackend {
    public func allocHWQueue(viommu: ObjectID, type: UInt32, index: UInt32, baseAddress: UInt64, length: UInt64, flags: UInt32) throws -> ObjectID {
        try iommufd.allocHWQueue(viommu: viommu, type: type, index: index, baseAddress: baseAddress, length: length, flags: flags)
    }
}
