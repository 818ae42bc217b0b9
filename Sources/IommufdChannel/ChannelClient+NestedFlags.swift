import IommufdCore

// MARK: pasidnest

/// The typed call of NESTED_ALLOC_FLAGS (op 19, docs/vmm-channel.md).
extension ChannelClient {
    /// NESTED_ALLOC_FLAGS: NESTED_ALLOC with `flags` (`ChannelWire.nestedAllocPASID`: the HWPT
    /// is allocated with `IOMMU_HWPT_ALLOC_PASID`, so PASID_ATTACH can put device PASIDs on it).
    /// The new HWPT and its nest parent (stage 2).
    public func nestedAlloc(parent: UInt32, dataType: UInt32, device: String, data: [UInt8], faultQueue: UInt32 = 0, flags: UInt32) throws -> (hwpt: UInt32, nestParent: UInt32) {
        var w = ChannelWire.Writer()
        let alloc = ChannelWire.NestedAlloc(parent: parent, faultQueue: faultQueue, dataType: dataType, device: device, data: data)
        let op = ChannelWire.encodeNestedAllocFlags(.init(alloc, flags: flags), into: &w)
        let r = try call(op, w.bytes)
        guard r.payload.count == 8 else {
            throw Closed(description: "a NESTED_ALLOC_FLAGS answer of \(r.payload.count) bytes, not 8")
        }
        return r.payload.withUnsafeBytes { b in var rd = ChannelWire.Reader(b); return (rd.u32(), rd.u32()) }
    }

    /// NESTED_ALLOC_FLAGS with selftest data (`struct iommu_hwpt_selftest`: iotlb, pagetable_type 0).
    public func nestedAllocSelftest(parent: UInt32, device: String, iotlb: UInt32, flags: UInt32) throws -> UInt32 {
        var d = ChannelWire.Writer()
        d.u32(iotlb); d.u32(0)
        return try nestedAlloc(parent: parent, dataType: HWPTDataType.selftest, device: device, data: d.bytes, flags: flags).hwpt
    }

    /// The request payload of NESTED_ALLOC_FLAGS; `dataLength` and `reserved` default to the
    /// data's size and 0 (tests set them to build malformed requests).
    public static func nestedAllocFlagsPayload(
        parent: UInt32, faultQueue: UInt32 = 0, dataType: UInt32, device: String, flags: UInt32, reserved: UInt32 = 0, dataLength: UInt32? = nil, data: [UInt8]
    ) -> [UInt8] {
        var w = ChannelWire.Writer()
        w.u32(parent); w.u32(faultQueue); w.u32(dataType); w.u32(dataLength ?? UInt32(data.count))
        w.fixed(device, ChannelWire.deviceNameBytes)
        w.u32(flags); w.u32(reserved)
        w.bytes += data
        return w.bytes
    }
}
