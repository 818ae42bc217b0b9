import IommufdCore
import IommufdContract

// MARK: chnested

/// The broker's half of the channel's nested-translation ops (docs/vmm-channel.md, "Nested
/// translation"). The channel names objects the way the kernel does, by one ID that may be an
/// HWPT, a vIOMMU or an IOAS (`IOMMU_HWPT_ALLOC`'s `pt_id`, `IOMMU_HWPT_INVALIDATE`'s
/// `hwpt_id`); these resolve it among the caller's objects (another owner's answer exactly as
/// absent ones) and then call the method the control plane calls, so validation, policy and
/// the journal are the control plane's.
extension Broker {
    /// NESTED_ALLOC: `hwpt.alloc` of a nested HWPT on `parent` (a nest-parent HWPT or a vIOMMU of
    /// the caller's owner) with the driver data as its uAPI struct (`data`, of `dataType`).
    /// `pasid` (NESTED_ALLOC_FLAGS's PASID flag) is `hwpt.alloc`'s `pasid: true`.
    public func channelNestedAlloc(_ caller: Caller, parent: ObjectID, faultQueue: ObjectID?, dataType: UInt32, device: String, data: [UInt8], pasid: Bool = false) throws -> HWPTInfo {
        let onVIOMMU = try readLocked { () throws -> Bool in
            if let h = hwptTable[parent], canSee(caller, owner: h.owner) { return false }
            if let v = viommuTable[parent], canSee(caller, owner: v.owner) { return true }
            throw BrokerError.notFound("no HWPT or vIOMMU \(parent) (a nested HWPT's parent is a nest-parent HWPT or a vIOMMU); see hwpt.list and viommu.list")
        }
        let typed = try Self.nestedDataParams(type: dataType, raw: data)
        var params = HWPTAllocParams(device: device, parent: onVIOMMU ? nil : parent, viommu: onVIOMMU ? parent : nil, data: typed)
        params.faultQueue = faultQueue
        if pasid { params.pasid = true }  // pasidnest
        return try hwptAlloc(caller, params)
    }

    /// The typed data of a uAPI driver-data struct, for `hwptAllocNested`'s checks. Reserved
    /// fields must be 0; the selftest's `pagetable_type` must be 0, the only one `hwpt.alloc`
    /// offers.
    static func nestedDataParams(type: UInt32, raw: [UInt8]) throws -> NestedDataParams {
        func u32(_ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(raw[o + $1]) << (8 * $1) } }
        func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(raw[o + $1]) << (8 * $1) } }
        let sizes: [UInt32: Int] = [HWPTDataType.selftest: 8, HWPTDataType.vtdS1: 24, HWPTDataType.armSMMUv3: 16, HWPTDataType.amdGuest: 32]
        guard let size = sizes[type] else {
            throw BrokerError.invalid("NESTED_ALLOC: data_type 0x\(String(type, radix: 16)) is not a nested data type; use 1 (vtd_s1), 2 (arm_smmuv3), 3 (amd_guest) or 0xdead (selftest)")
        }
        guard raw.count == size else {
            throw BrokerError.invalid("NESTED_ALLOC: '\(HWPTDataType.name(type))' data is the \(size)-byte uAPI struct, not \(raw.count) bytes")
        }
        switch type {
        case HWPTDataType.selftest:
            guard u32(4) == 0 else {
                throw BrokerError.invalid("NESTED_ALLOC: selftest data's pagetable_type is \(u32(4)); iommufdd offers the mock driver's default page table (0) only, as hwpt.alloc does")
            }
            return NestedDataParams(type: "selftest", iotlb: u32(0))
        case HWPTDataType.vtdS1:
            guard u32(20) == 0 else { throw BrokerError.invalid("NESTED_ALLOC: vtd_s1 data's reserved word (offset 20) must be 0") }
            return NestedDataParams(type: "vtd_s1", flags: u64(0), pgtblAddr: u64(8), addrWidth: u32(16))
        case HWPTDataType.armSMMUv3:
            return NestedDataParams(type: "arm_smmuv3", ste: [u64(0), u64(8)])
        default:
            return NestedDataParams(type: "amd_guest", dte: (0..<4).map { u64(8 * $0) })
        }
    }

    /// REPLACE: `device.replace` of a device of the caller's owner onto `pt`, an HWPT or an IOAS
    /// of that owner.
    public func channelReplace(_ caller: Caller, device: String, pt: ObjectID) throws -> DeviceAttachResult {
        let isHWPT = try readLocked { () throws -> Bool in
            if let h = hwptTable[pt], canSee(caller, owner: h.owner) { return true }
            if let i = ioasTable[pt], canSee(caller, owner: i.owner) { return false }
            throw BrokerError.notFound("no HWPT or IOAS \(pt) to move device '\(Self.echo(device))' onto; see hwpt.list and ioas.list")
        }
        return try deviceReplace(caller, DeviceReplaceParams(device: device, ioas: isHWPT ? nil : pt, hwpt: isHWPT ? pt : nil))
    }

    /// INVALIDATE: `entryCount` uAPI entries of `dataType` to a nested HWPT or a vIOMMU of the
    /// caller's owner, in one `IOMMU_HWPT_INVALIDATE`, checked entry by entry with the control
    /// plane's rules (`checkInvalidationEntries`); under the owner's gate only.
    public func channelInvalidate(_ caller: Caller, target: ObjectID, dataType: UInt32, entryLength: UInt32, entryCount: UInt32, entries: [UInt8]) throws -> InvalidateResult {
        let method = "INVALIDATE"
        return try gatedInvalidation(caller, target, method: method, resolve: { id in
            if let h = self.hwptTable[id], self.canSee(caller, owner: h.owner) { return try self.nestedInvalidationTarget(caller, id, method: method) }
            if let v = self.viommuTable[id], self.canSee(caller, owner: v.owner) { return try self.viommuInvalidationTarget(caller, id, method: method) }
            throw BrokerError.notFound("no nested HWPT or vIOMMU \(id); see hwpt.list and viommu.list")
        }) { t in
            guard dataType == t.dataType else {
                throw BrokerError.invalid("INVALIDATE: \(t.what) takes '\(t.typeName)' entries (data_type 0x\(String(t.dataType, radix: 16))), not data_type 0x\(String(dataType, radix: 16))")
            }
            guard Int(entryLength) == t.entryLength else {
                throw BrokerError.invalid("INVALIDATE: \(t.what) takes \(t.entryLength)-byte '\(t.typeName)' entries, not \(entryLength)-byte ones")
            }
            return InvalidationRequest(dataType: dataType, entryLength: entryLength, entryCount: entryCount, bytes: entries)
        }
    }
}
