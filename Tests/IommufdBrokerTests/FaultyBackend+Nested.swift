import IommufdCore

// MARK: nested

extension FaultyBackend: NestedIommuBackend {
    func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData) throws -> ObjectID {
        try sim.allocNestedHWPT(deviceID: deviceID, parentID: parentID, flags: flags, data: data)
    }
    func invalidate(_ id: ObjectID, _ request: InvalidationRequest) -> InvalidationResult { sim.invalidate(id, request) }
}
