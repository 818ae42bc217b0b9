import IommufdCore

// MARK: pasid

extension FaultyBackend: PASIDIommuBackend {
    func attachPASID(deviceID: ObjectID, pasid: UInt32, to ptID: ObjectID) throws {
        try sim.attachPASID(deviceID: deviceID, pasid: pasid, to: ptID)
    }
    func replacePASID(deviceID: ObjectID, pasid: UInt32, with ptID: ObjectID) throws {
        try sim.replacePASID(deviceID: deviceID, pasid: pasid, with: ptID)
    }
    func detachPASID(deviceID: ObjectID, pasid: UInt32) throws { try sim.detachPASID(deviceID: deviceID, pasid: pasid) }
}
