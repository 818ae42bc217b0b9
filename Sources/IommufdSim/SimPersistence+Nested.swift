import IommufdCore

/// Nested HWPTs and invalidations in the simulator's operation log (branch `nested`). Both are
/// new operation kinds: a log written before them replays unchanged, so the format stays 1.
extension PersistentSimBackend: NestedIommuBackend, NestedTestHooks {
    public func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData) throws -> ObjectID {
        try logged(.allocNestedHWPT, { try sim.allocNestedHWPT(deviceID: deviceID, parentID: parentID, flags: flags, data: data) }) { w, id in
            w.u32(id); w.u32(deviceID); w.u32(parentID); w.u32(flags.rawValue); w.u32(data.type)
            w.u32(UInt32(data.bytes.count)); w.bytes += data.bytes
        }
    }

    /// Logged when an entry was handled (the IOTLB or a device cache changed), whatever the
    /// answer; the replay applies the same array and expects the same count.
    public func invalidate(_ id: ObjectID, _ request: InvalidationRequest) -> InvalidationResult {
        var result = InvalidationResult(done: 0)
        _ = try? logged(.invalidate, {
            result = sim.invalidate(id, request)
            if result.done == 0 { throw Skip() }
        }) { w, _ in
            w.u32(id); w.u32(request.dataType); w.u32(request.entryLength); w.u32(result.done)
            w.bytes += request.bytes.prefix(Int(request.entryLength) * Int(result.done))
        }
        return result
    }

    private struct Skip: Error {}

    func replayNested(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .allocNestedHWPT:
            let id = r.u32(), dev = r.u32(), parent = r.u32(), flags = HWPTAllocFlags(rawValue: r.u32()), type = r.u32()
            let bytes = Array(r.bytes(Int(r.u32())))
            let got = try sim.allocNestedHWPT(deviceID: dev, parentID: parent, flags: flags, data: HWPTUserData(type: type, bytes: bytes))
            if got != id { throw IommuError(.EEXIST, "IOMMU_HWPT_ALLOC", detail: "replay allocated ID \(got) where the log says \(id)") }
        case .invalidate:
            let id = r.u32(), type = r.u32(), length = r.u32(), done = r.u32()
            let bytes = Array(r.bytes(Int(length) * Int(done)))
            let result = sim.invalidate(id, InvalidationRequest(dataType: type, entryLength: length, entryCount: done, bytes: bytes))
            if result.done != done {
                throw result.error ?? IommuError(.EINVAL, "IOMMU_HWPT_INVALIDATE", detail: "replay handled \(result.done) entries where the log says \(done)")
            }
        default:
            break
        }
    }

    public func checkNestedIOTLB(hwpt: ObjectID, index: UInt32, value: UInt32) throws {
        try sim.checkNestedIOTLB(hwpt: hwpt, index: index, value: value)
    }

    public func checkDeviceCache(deviceID: ObjectID, index: UInt32, value: UInt32) throws {
        try sim.checkDeviceCache(deviceID: deviceID, index: index, value: value)
    }
}
