import IommufdCore

// MARK: pasid

extension FaultInjectingBackend: PASIDIommuBackend {
    public func attachPASID(deviceID: ObjectID, pasid: UInt32, to ptID: ObjectID) throws {
        try run(.attachPASID, "device \(deviceID) PASID \(pasid) to \(ptID)") {
            guard let inner = inner.pasid else { throw IommuError(.ENOTTY, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", detail: "the wrapped backend has no PASID attachments") }
            try inner.attachPASID(deviceID: deviceID, pasid: pasid, to: ptID)
        }
    }

    public func replacePASID(deviceID: ObjectID, pasid: UInt32, with ptID: ObjectID) throws {
        try run(.replacePASID, "device \(deviceID) PASID \(pasid) to \(ptID)") {
            guard let inner = inner.pasid else { throw IommuError(.ENOTTY, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", detail: "the wrapped backend has no PASID attachments") }
            try inner.replacePASID(deviceID: deviceID, pasid: pasid, with: ptID)
        }
    }

    public func detachPASID(deviceID: ObjectID, pasid: UInt32) throws {
        try run(.detachPASID, "device \(deviceID) PASID \(pasid)") {
            guard let inner = inner.pasid else { throw IommuError(.ENOTTY, "VFIO_DEVICE_DETACH_IOMMUFD_PT", detail: "the wrapped backend has no PASID attachments") }
            try inner.detachPASID(deviceID: deviceID, pasid: pasid)
        }
    }
}
