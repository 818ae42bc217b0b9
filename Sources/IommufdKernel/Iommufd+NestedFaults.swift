import IommufdCore

// MARK: nestedgaps

/// A nested HWPT whose I/O page faults go to a fault queue: one `IOMMU_HWPT_ALLOC` with the
/// driver's data and `IOMMU_HWPT_FAULT_ID_VALID` (the selftest's iopf tests do this on the mock).
extension KernelBackend: NestedFaultIommuBackend {
    public func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData, faultQueue: ObjectID) throws -> ObjectID {
        try iommufd.allocNestedHWPT(deviceID: deviceID, parentID: parentID, flags: flags, data: data, faultID: faultQueue)
    }
}
