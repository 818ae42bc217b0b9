// MARK: hwqueue

/// `enum iommu_hw_queue_type` (include/uapi/linux/iommufd.h) and the selftest's type
/// (drivers/iommu/iommufd/iommufd_test.h).
public enum HWQueueType {
    /// `IOMMU_HW_QUEUE_TYPE_DEFAULT`: reserved; the kernel refuses it EOPNOTSUPP.
    public static let `default`: UInt32 = 0
    /// `IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV`: an NVIDIA Tegra241 CMDQV virtual command queue.
    /// The guest reaches the queues' registers through an mmap of the iommufd itself (VINTF
    /// page 0 at the `out_vintf_mmap_offset` of `struct iommu_viommu_tegra241_cmdqv`), which
    /// the daemon never hands out.
    public static let tegra241CMDQV: UInt32 = 1
    /// `IOMMU_HW_QUEUE_TYPE_SELFTEST`: the mock vIOMMU's queue type.
    public static let selftest: UInt32 = 0xdead_beef
    /// `IOMMU_TEST_HW_QUEUE_MAX`: the mock vIOMMU takes indexes 0 and 1.
    public static let selftestMaxQueues: UInt32 = 2
}

extension IommuBackend {
    /// Whether this backend implements `IOMMU_HW_QUEUE_ALLOC` (`HWQueueIommuBackend`).
    public var hwQueues: (any HWQueueIommuBackend)? { self as? any HWQueueIommuBackend }
}

/// HW queues of a vIOMMU (branch `hwqueue`): every backend conforms (KernelBackend, SimBackend,
/// PersistentSimBackend, FeatureRecordingBackend, FaultInjectingBackend). A queue is destroyed
/// with `destroy(_:)` like any object.
///
/// The kernel's rules (drivers/iommu/iommufd/viommu.c `iommufd_hw_queue_alloc_ioctl`, and the
/// mock driver's `mock_hw_queue_init_phys` in selftest.c), in the order it checks them:
/// EOPNOTSUPP for nonzero flags or type `default` → EINVAL for a length of 0 → EOVERFLOW when
/// `baseAddress + length - 1` overflows → ENOENT when `viommu` is not a vIOMMU → EOPNOTSUPP for
/// a type the vIOMMU's driver has no queues of → the range is pinned through an internal access
/// on the vIOMMU's IOAS: ENOENT when it is not wholly mapped, EFAULT when its pages are not
/// physically contiguous → (mock) EINVAL for an index ≥ 2, EEXIST for an index in use, EIO for
/// an index whose predecessor does not exist. While the queue exists its pinned pages cannot be
/// unmapped (EBUSY), the vIOMMU cannot be destroyed (EBUSY), and on the mock queue `n` holds
/// queue `n-1` (EBUSY to destroy it first).
public protocol HWQueueIommuBackend: IommuBackend {
    /// `IOMMU_HW_QUEUE_ALLOC`: a HW queue of `type` at `index` of `viommu` over the
    /// guest-physical (nest-parent IOVA) range `[baseAddress, baseAddress + length)`. `flags`
    /// must be 0 (the kernel defines none; anything else is EOPNOTSUPP).
    func allocHWQueue(viommu: ObjectID, type: UInt32, index: UInt32, baseAddress: UInt64, length: UInt64, flags: UInt32) throws -> ObjectID
}

extension HWQueueIommuBackend {
    /// `IOMMU_HW_QUEUE_ALLOC` with flags 0.
    public func allocHWQueue(viommu: ObjectID, type: UInt32, index: UInt32, baseAddress: UInt64, length: UInt64) throws -> ObjectID {
        try allocHWQueue(viommu: viommu, type: type, index: index, baseAddress: baseAddress, length: length, flags: 0)
    }
}
