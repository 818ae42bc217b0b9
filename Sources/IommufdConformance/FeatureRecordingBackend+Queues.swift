import IommufdCore

// MARK: queues

extension FeatureRecordingBackend: IommuQueueTestHooks {
    public func allocFaultQueue() throws -> EventQueue { try noteQueue(.faultQueue) { try base.allocFaultQueue() } }
    public func allocVEventQueue(viommu: ObjectID, type: UInt32, depth: UInt32) throws -> EventQueue {
        try noteQueue(.veventq) { try base.allocVEventQueue(viommu: viommu, type: type, depth: depth) }
    }
    public func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags, faultQueue: ObjectID) throws -> ObjectID {
        try noteQueue(.faultQueue) { try base.allocHWPT(deviceID: deviceID, ptID: ptID, flags: flags, faultQueue: faultQueue) }
    }
    public func readEventQueue(_ id: ObjectID, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try base.readEventQueue(id, into: buffer)
    }
    public func respondToFaults(_ id: ObjectID, _ responses: UnsafeRawBufferPointer) throws -> Int {
        try base.respondToFaults(id, responses)
    }

    private var queueHooks: any IommuQueueTestHooks {
        get throws {
            guard let hooks = base as? any IommuQueueTestHooks else {
                throw IommuError(.ENOTTY, "IOMMU_TEST_CMD", detail: "this backend has no queue test hooks")
            }
            return hooks
        }
    }
    public func triggerIOPF(deviceID: ObjectID, pasid: UInt32, groupID: UInt32, perm: UInt32, address: UInt64) throws {
        try noteQueue(.selftest) { try queueHooks.triggerIOPF(deviceID: deviceID, pasid: pasid, groupID: groupID, perm: perm, address: address) }
    }
    public func triggerVEvent(deviceID: ObjectID) throws {
        try noteQueue(.selftest) { try queueHooks.triggerVEvent(deviceID: deviceID) }
    }
    public func allocSelftestNestedHWPT(deviceID: ObjectID, parent: ObjectID) throws -> ObjectID {
        try noteQueue(.hwptAlloc) { try queueHooks.allocSelftestNestedHWPT(deviceID: deviceID, parent: parent) }
    }
}
