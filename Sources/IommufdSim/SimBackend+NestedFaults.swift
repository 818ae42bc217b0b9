import IommufdCore

// MARK: nestedgaps

/// `IOMMU_HWPT_ALLOC` of a nested HWPT with `IOMMU_HWPT_FAULT_ID_VALID` (hw_pagetable.c: the
/// nested domain first, then `iommufd_get_fault`, ENOENT for anything but a fault queue). Its
/// I/O page faults (`IOMMU_TEST_OP_TRIGGER_IOPF` on a device attached to it) go to that queue.
extension SimBackend: NestedFaultIommuBackend {
    public func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData, faultQueue: ObjectID) throws -> ObjectID {
        try allocNested(deviceID: deviceID, parentID: parentID, flags: flags.union(.faultIDValid), data: data, faultQueue: faultQueue)
    }
}

/// Logged as its own operation kind (a log without it replays as before).
extension PersistentSimBackend: NestedFaultIommuBackend {
    public func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData, faultQueue: ObjectID) throws -> ObjectID {
        try logged(.allocNestedFaultHWPT, { try sim.allocNestedHWPT(deviceID: deviceID, parentID: parentID, flags: flags, data: data, faultQueue: faultQueue) }) { w, id in
            w.u32(id); w.u32(deviceID); w.u32(parentID); w.u32(flags.rawValue); w.u32(faultQueue); w.u32(data.type)
            w.u32(UInt32(data.bytes.count)); w.bytes += data.bytes
        }
    }

    func replayNestedFault(_ r: inout ByteReader, _ expect: (ObjectID, UInt32, String) throws -> Void) throws {
        let id = r.u32(), dev = r.u32(), parent = r.u32(), flags = HWPTAllocFlags(rawValue: r.u32()), fault = r.u32(), type = r.u32()
        let bytes = Array(r.bytes(Int(r.u32())))
        try expect(
            try sim.allocNestedHWPT(deviceID: dev, parentID: parent, flags: flags, data: HWPTUserData(type: type, bytes: bytes), faultQueue: fault),
            id, "IOMMU_HWPT_ALLOC")
    }
}
