import IommufdCore

// MARK: nestedgaps

extension FaultInjectingBackend: NestedFaultIommuBackend {
    public func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData, faultQueue: ObjectID) throws -> ObjectID {
        try run(.allocNestedHWPT, "device \(deviceID) on \(parentID) data type \(data.type), fault queue \(faultQueue)") {
            guard let inner = inner as? any NestedFaultIommuBackend else {
                throw IommuError(.ENOTTY, "IOMMU_HWPT_ALLOC", detail: "the wrapped backend has no nested HWPTs with fault queues")
            }
            return try inner.allocNestedHWPT(deviceID: deviceID, parentID: parentID, flags: flags, data: data, faultQueue: faultQueue)
        }
    }
}
