import IommufdCore

// MARK: nestedgaps

extension FaultyBackend: NestedFaultIommuBackend {
    func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData, faultQueue: ObjectID) throws -> ObjectID {
        try sim.allocNestedHWPT(deviceID: deviceID, parentID: parentID, flags: flags, data: data, faultQueue: faultQueue)
    }
}
