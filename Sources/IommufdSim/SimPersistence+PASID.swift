import IommufdCore

// MARK: pasid

/// PASID attachments in the simulator's operation log (branch `pasid`): new operation kinds, so
/// a log written before them replays unchanged and the format stays 1.
extension PersistentSimBackend: PASIDIommuBackend, PASIDTestHooks {
    public func attachPASID(deviceID: ObjectID, pasid: UInt32, to ptID: ObjectID) throws {
        try logged(.attachPASID, { try sim.attachPASID(deviceID: deviceID, pasid: pasid, to: ptID) }) { w, _ in
            w.u32(deviceID); w.u32(pasid); w.u32(ptID)
        }
    }

    public func replacePASID(deviceID: ObjectID, pasid: UInt32, with ptID: ObjectID) throws {
        try logged(.replacePASID, { try sim.replacePASID(deviceID: deviceID, pasid: pasid, with: ptID) }) { w, _ in
            w.u32(deviceID); w.u32(pasid); w.u32(ptID)
        }
    }

    public func detachPASID(deviceID: ObjectID, pasid: UInt32) throws {
        try logged(.detachPASID, { try sim.detachPASID(deviceID: deviceID, pasid: pasid) }) { w, _ in
            w.u32(deviceID); w.u32(pasid)
        }
    }

    public func checkPASID(deviceID: ObjectID, pasid: UInt32, hwpt: ObjectID?) throws {
        try sim.checkPASID(deviceID: deviceID, pasid: pasid, hwpt: hwpt)
    }

    func replayPASID(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .attachPASID: try sim.attachPASID(deviceID: r.u32(), pasid: r.u32(), to: r.u32())
        case .replacePASID: try sim.replacePASID(deviceID: r.u32(), pasid: r.u32(), with: r.u32())
        case .detachPASID: try sim.detachPASID(deviceID: r.u32(), pasid: r.u32())
        default: break
        }
    }
}
