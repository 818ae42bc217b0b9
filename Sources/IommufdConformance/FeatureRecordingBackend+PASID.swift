import IommufdCore

// MARK: pasid

extension FeatureRecordingBackend: PASIDIommuBackend, PASIDTestHooks {
    private var pasidBase: any PASIDIommuBackend & PASIDTestHooks {
        get throws {
            guard let b = base as? any PASIDIommuBackend & PASIDTestHooks else {
                throw IommuError(.ENOTTY, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", detail: "the backend has no PASID attachments")
            }
            return b
        }
    }

    public func attachPASID(deviceID: ObjectID, pasid: UInt32, to ptID: ObjectID) throws {
        try note(.pasid) { try pasidBase.attachPASID(deviceID: deviceID, pasid: pasid, to: ptID) }
    }

    public func replacePASID(deviceID: ObjectID, pasid: UInt32, with ptID: ObjectID) throws {
        try note(.pasid) { try pasidBase.replacePASID(deviceID: deviceID, pasid: pasid, with: ptID) }
    }

    public func detachPASID(deviceID: ObjectID, pasid: UInt32) throws {
        try note(.pasid) { try pasidBase.detachPASID(deviceID: deviceID, pasid: pasid) }
    }

    public func checkPASID(deviceID: ObjectID, pasid: UInt32, hwpt: ObjectID?) throws {
        try note(.selftest) { try pasidBase.checkPASID(deviceID: deviceID, pasid: pasid, hwpt: hwpt) }
    }
}
