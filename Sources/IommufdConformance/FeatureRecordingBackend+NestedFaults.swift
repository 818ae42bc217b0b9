import IommufdCore

// MARK: nestedgaps

extension FeatureRecordingBackend: NestedFaultIommuBackend {
    /// Noted as `hwptAlloc` and `faultQueue`: the call needs both.
    public func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData, faultQueue: ObjectID) throws -> ObjectID {
        guard let b = base as? any NestedFaultIommuBackend else {
            throw IommuError(.ENOTTY, "IOMMU_HWPT_ALLOC", detail: "the backend has no nested HWPTs with fault queues")
        }
        let id = try note(.hwptAlloc) { try b.allocNestedHWPT(deviceID: deviceID, parentID: parentID, flags: flags, data: data, faultQueue: faultQueue) }
        note(.faultQueue) {}
        return id
    }
}
