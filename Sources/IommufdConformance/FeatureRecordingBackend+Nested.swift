import IommufdCore

// MARK: nested

extension FeatureRecordingBackend: NestedIommuBackend, NestedTestHooks {
    private var nestedBase: any NestedIommuBackend & NestedTestHooks {
        get throws {
            guard let b = base as? any NestedIommuBackend & NestedTestHooks else {
                throw IommuError(.ENOTTY, "IOMMU_HWPT_ALLOC", detail: "the backend has no nested HWPTs")
            }
            return b
        }
    }

    public func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData) throws -> ObjectID {
        try note(.hwptAlloc) { try nestedBase.allocNestedHWPT(deviceID: deviceID, parentID: parentID, flags: flags, data: data) }
    }

    /// Noted as `hwptInvalidate` when the kernel took the call (no error).
    public func invalidate(_ id: ObjectID, _ request: InvalidationRequest) -> InvalidationResult {
        guard let b = try? nestedBase else {
            return InvalidationResult(done: 0, error: IommuError(.ENOTTY, "IOMMU_HWPT_INVALIDATE", detail: "the backend has no nested HWPTs"))
        }
        let result = b.invalidate(id, request)
        if result.error == nil { note(.hwptInvalidate) {} }
        return result
    }

    public func checkNestedIOTLB(hwpt: ObjectID, index: UInt32, value: UInt32) throws {
        try note(.selftest) { try nestedBase.checkNestedIOTLB(hwpt: hwpt, index: index, value: value) }
    }

    public func checkDeviceCache(deviceID: ObjectID, index: UInt32, value: UInt32) throws {
        try note(.selftest) { try nestedBase.checkDeviceCache(deviceID: deviceID, index: index, value: value) }
    }
}
