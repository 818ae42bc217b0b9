import IommufdContract
import IommufdCore

/// Nested HWPTs and cache invalidation (branch `nested`): `hwpt.alloc` with `parent` or
/// `viommu`, `hwpt.invalidate`, `viommu.invalidate`, and their part of `owner.release`.
extension Broker {
    var nestedBackend: any NestedIommuBackend {
        get throws {
            guard let b = backend.nested, backend.features.contains(.hwptAlloc) else {
                throw BrokerError(.unsupported, "this iommufd backend has no nested HWPTs (IOMMU_HWPT_ALLOC with driver data, Linux >= 6.8)")
            }
            return b
        }
    }

    /// `hwpt.alloc` of a nested HWPT: validates everything the daemon can know before the
    /// kernel sees it (which parent, which owner, the data's fields for its type, the type for
    /// the device's IOMMU driver), then one `IOMMU_HWPT_ALLOC`.
    func hwptAllocNested(_ caller: Caller, _ params: HWPTAllocParams) throws -> HWPTInfo {
        if params.ioas != nil {
            throw BrokerError.invalid("hwpt.alloc: 'ioas' and '\(params.parent != nil ? "parent" : params.viommu != nil ? "viommu" : "data")' do not go together: name 'ioas' for a paging HWPT, or 'parent' (a nest-parent HWPT) or 'viommu' with 'data' for a nested HWPT")
        }
        if params.parent != nil && params.viommu != nil {
            throw BrokerError.invalid("hwpt.alloc: name either 'parent' (a nest-parent HWPT) or 'viommu' (the nested HWPT is then allocated on the vIOMMU, over its nest parent), not both")
        }
        guard let dataParams = params.data else {
            throw BrokerError.invalid("hwpt.alloc: a nested HWPT needs 'data', the IOMMU driver's stage-1 description: {\"type\": one of \(NestedDataParams.typeNames.joined(separator: ", ")), ...}")
        }
        guard params.parent != nil || params.viommu != nil else {
            throw BrokerError.invalid("hwpt.alloc: 'data' is for a nested HWPT: name its 'parent' (a nest-parent HWPT) or 'viommu'")
        }
        if params.dirtyTracking == true || params.nestParent == true {
            throw BrokerError.invalid("hwpt.alloc: a nested HWPT takes neither 'dirty_tracking' nor 'nest_parent' (IOMMU_HWPT_ALLOC refuses them on a nested domain): dirty tracking is its parent's, and a nested HWPT cannot be a parent")
        }
        return try locked {
            let parent: HWPTRecord
            var viommu: VIOMMURecord?
            if let id = params.viommu {
                let v = try self.viommu(caller, id, write: "hwpt.alloc")
                guard let p = hwptTable[v.hwpt] else { throw BrokerError.notFound("the nest parent \(v.hwpt) of vIOMMU \(v.id) is gone") }
                parent = p
                viommu = v
            } else {
                parent = try hwpt(caller, params.parent ?? 0, write: "hwpt.alloc")
                if parent.nested != nil {
                    throw BrokerError.invalid("hwpt.alloc: 'parent' HWPT \(parent.id) is itself nested; a nested HWPT's parent is a nest-parent HWPT (stage 2), e.g. HWPT \(parent.nested?.parent ?? 0)")
                }
                guard parent.flags.contains(.nestParent) else {
                    throw BrokerError.invalid("hwpt.alloc: 'parent' HWPT \(parent.id) was not allocated as a nest parent; allocate one with hwpt.alloc nest_parent=true (or viommu.create makes one) and name it")
                }
            }
            let (dev, owner) = try leasedDevice(caller, params.device, "hwpt.alloc")
            guard owner.name == parent.owner else {
                throw BrokerError.invalid("hwpt.alloc: device '\(dev.name)' and \(viommu.map { "vIOMMU \($0.id)" } ?? "HWPT \(parent.id)") belong to different owners")
            }
            guard let bound = dev.bound, !dev.descriptor.isMdev else {
                throw BrokerError(.unsupported, "device '\(dev.name)' is mdev-like (or not bound) and has no IOMMU page table to nest")
            }
            if let v = viommu, let instance = v.iommuInstance, instance != dev.descriptor.iommuInstance {
                throw BrokerError.invalid("hwpt.alloc: vIOMMU \(v.id) is on IOMMU instance \(instance) but device '\(dev.name)' is behind \(dev.descriptor.iommuInstance ?? "another"); a nested HWPT on a vIOMMU is for a device of that vIOMMU's instance")
            }
            let data = try Self.nestedData(dataParams, for: dev)
            if let parentDriver = driverType(of: parent), let driver = dev.hwInfo?.type, parentDriver != driver {
                throw BrokerError.invalid("hwpt.alloc: nest parent \(parent.id) belongs to an IOMMU of another driver (hw_info type \(parentDriver)) than device '\(dev.name)' (type \(driver))")
            }
            let b = try nestedBackend
            let nestedFlags: HWPTAllocFlags = params.pasid == true ? [try pasidAllocFlag()] : []  // pasid
            let parentID = viommu?.id ?? parent.id
            // nestedgaps: a nested HWPT whose I/O page faults go to a fault queue of its owner.
            let faultQueue = try params.faultQueue.map { try nestedFaultQueue(caller, $0, owner: owner) }
            let id: ObjectID
            do {
                if let faultQueue {
                    id = try nestedFaultBackend.allocNestedHWPT(deviceID: bound.id, parentID: parentID, flags: nestedFlags, data: data.userData, faultQueue: faultQueue)
                } else {
                    id = try b.allocNestedHWPT(deviceID: bound.id, parentID: parentID, flags: nestedFlags, data: data.userData)
                }
            } catch let error as IommuError where error.errno == .EOPNOTSUPP && backend.kind == .sim && data.dataType != HWPTDataType.selftest {
                throw BrokerError(
                    .unsupported,
                    "the simulator models nested HWPTs of the kernel's selftest mock driver only, not '\(HWPTDataType.name(data.dataType))' (device '\(dev.name)' is behind \(dev.descriptor.iommuInstance ?? "its IOMMU")); the data was valid, and the kernel backend passes it to the \(HWPTDataType.name(data.dataType)) driver",
                    kernel: error)
            } catch let error as IommuError {
                throw BrokerError.kernel(error, "allocating a nested HWPT (\(HWPTDataType.name(data.dataType))) for device '\(dev.name)' on \(viommu.map { "vIOMMU \($0.id)" } ?? "nest parent \(parent.id)")")
            }
            let record = HWPTRecord(id: id, owner: owner.name, ioas: parent.ioas, flags: nestedFlags, auto: false, iommuInstance: dev.descriptor.iommuInstance)
            record.hwInfoType = dev.hwInfo?.type
            record.nested = NestedRecord(parent: parent.id, viommu: viommu?.id, data: data.userData)
            record.faultQueue = faultQueue
            hwptTable[id] = record
            owner.hwpts.insert(id)
            linkNested(record)
            emit(.objectCreated(owner: owner.name, kind: .hwpt, id: id))
            return hwptInfo(record)
        }
    }

    /// The nested HWPT's links from its parent and vIOMMU.
    func linkNested(_ record: HWPTRecord) {
        guard let n = record.nested else { return }
        hwptTable[n.parent]?.nestedChildren.insert(record.id)
        if let v = n.viommu { viommuTable[v]?.nestedHWPTs.insert(record.id) }
    }

    func unlinkNested(_ record: HWPTRecord) {
        guard let n = record.nested else { return }
        hwptTable[n.parent]?.nestedChildren.remove(record.id)
        if let v = n.viommu { viommuTable[v]?.nestedHWPTs.remove(record.id) }
    }

    /// The typed data checked field by field for its type and the device's IOMMU driver.
    static func nestedData(_ p: NestedDataParams, for dev: DeviceRecord) throws -> NestedHWPTData {
        let typeByName: [String: UInt32] = [
            "selftest": HWPTDataType.selftest, "vtd_s1": HWPTDataType.vtdS1, "arm_smmuv3": HWPTDataType.armSMMUv3, "amd_guest": HWPTDataType.amdGuest,
        ]
        guard let type = typeByName[p.type] else {
            throw BrokerError.invalid("hwpt.alloc: data.type '\(echo(p.type))' is not a nested data type; use one of \(NestedDataParams.typeNames.joined(separator: ", "))")
        }
        let present: [(String, Bool)] = [
            ("iotlb", p.iotlb != nil), ("flags", p.flags != nil), ("pgtbl_addr", p.pgtblAddr != nil), ("addr_width", p.addrWidth != nil),
            ("ste", p.ste != nil), ("dte", p.dte != nil),
        ]
        let fields: [String: Set<String>] = [
            "selftest": ["iotlb"], "vtd_s1": ["flags", "pgtbl_addr", "addr_width"], "arm_smmuv3": ["ste"], "amd_guest": ["dte"],
        ]
        let allowed = fields[p.type] ?? []
        for (name, isSet) in present where isSet && !allowed.contains(name) {
            throw BrokerError.invalid("hwpt.alloc: data.\(name) is not a field of '\(p.type)' data (its fields: \(allowed.sorted().joined(separator: ", ")))")
        }
        func required<T>(_ value: T?, _ name: String) throws -> T {
            guard let value else { throw BrokerError.invalid("hwpt.alloc: '\(p.type)' data needs data.\(name)") }
            return value
        }
        if let hw = dev.hwInfo?.type, let wanted = HWPTDataType.forHWInfo(hw), wanted != type {
            throw BrokerError.invalid("hwpt.alloc: data.type '\(p.type)' does not fit device '\(dev.name)': its IOMMU (\(dev.descriptor.iommuInstance ?? "unnamed"), hw_info type 0x\(String(hw, radix: 16))) takes '\(HWPTDataType.name(wanted))' data")
        } else if let hw = dev.hwInfo?.type, HWPTDataType.forHWInfo(hw) == nil {
            throw BrokerError(.unsupported, "device '\(dev.name)': its IOMMU (hw_info type 0x\(String(hw, radix: 16))) has no nested HWPTs in Linux 7.3")
        }
        switch type {
        case HWPTDataType.selftest:
            return .selftest(iotlb: try required(p.iotlb, "iotlb"), pagetableType: 0)
        case HWPTDataType.vtdS1:
            let flags = try required(p.flags, "flags"), addr = try required(p.pgtblAddr, "pgtbl_addr"), width = try required(p.addrWidth, "addr_width")
            if flags & ~NestedHWPTData.vtdS1ValidFlags != 0 {
                throw BrokerError.invalid("hwpt.alloc: data.flags 0x\(String(flags, radix: 16)) has bits outside SRE (1), EAFE (2) and WPE (4), which the VT-d driver refuses")
            }
            if addr & 0xfff != 0 {
                throw BrokerError.invalid("hwpt.alloc: data.pgtbl_addr 0x\(String(addr, radix: 16)) is not 4 KiB aligned (a VT-d first-stage page table root is a page)")
            }
            if width != 48 && width != 57 {
                throw BrokerError.invalid("hwpt.alloc: data.addr_width \(width) is not a VT-d first-stage width: 48 (4-level) or 57 (5-level)")
            }
            return .vtdS1(flags: flags, pgtblAddr: addr, addrWidth: width)
        case HWPTDataType.armSMMUv3:
            let ste = try required(p.ste, "ste")
            guard ste.count == 2 else { throw BrokerError.invalid("hwpt.alloc: data.ste has \(ste.count) words; struct iommu_hwpt_arm_smmuv3 takes the STE's first 2 64-bit words") }
            // STE.V (bit 0) with STE.Config (bits 3:1): abort 0b000, bypass 0b100, S1 0b101.
            if ste[0] & 1 != 0, ![0b000, 0b100, 0b101].contains((ste[0] >> 1) & 0b111) {
                throw BrokerError.invalid("hwpt.alloc: data.ste[0] Config (bits 3:1) is 0b\(String((ste[0] >> 1) & 0b111, radix: 2)); a guest STE is abort (0b000), bypass (0b100) or stage-1 translate (0b101)")
            }
            return .armSMMUv3(ste: ste)
        default:
            let dte = try required(p.dte, "dte")
            guard dte.count == 4 else { throw BrokerError.invalid("hwpt.alloc: data.dte has \(dte.count) words; struct iommu_hwpt_amd_guest takes the guest DTE's 4 64-bit words") }
            return .amdGuest(dte: dte)
        }
    }

    // MARK: Invalidation

    /// `hwpt.invalidate`: the entries in one `IOMMU_HWPT_INVALIDATE` on a nested HWPT. Under
    /// the owner's gate only (`gatedInvalidation`).
    public func hwptInvalidate(_ caller: Caller, _ params: HWPTInvalidateParams) throws -> InvalidateResult {
        let method = "hwpt.invalidate"
        return try gatedInvalidation(caller, params.hwpt, method: method, resolve: { try self.nestedInvalidationTarget(caller, $0, method: method) }) { t in
            let entries: [InvalidationEntry]
            switch t.kind {
            case .selftestHWPT:
                entries = try params.entries.enumerated().map { i, e in
                    try Self.onlyFields(e, ["iotlb_id", "all"], index: i, method: method, kind: "a selftest nested HWPT")
                    let all = e.all ?? false
                    guard all || e.iotlbID != nil else { throw BrokerError.invalid("hwpt.invalidate: entries[\(i)] needs iotlb_id (0-3) or all=true") }
                    return .selftestHWPT(flags: all ? InvalidationEntry.selftestFlagAll : 0, iotlbID: e.iotlbID ?? 0)
                }
            default:
                entries = try params.entries.enumerated().map { i, e in
                    try Self.onlyFields(e, ["addr", "npages", "leaf"], index: i, method: method, kind: "a vtd_s1 nested HWPT")
                    guard let addr = e.addr, let npages = e.npages else { throw BrokerError.invalid("hwpt.invalidate: entries[\(i)] needs addr and npages (npages = 2^64-1 with addr 0: everything)") }
                    return .vtdS1(addr: addr, npages: npages, flags: e.leaf == true ? InvalidationEntry.vtdS1FlagLeaf : 0)
                }
            }
            return t.request(entries)
        }
    }

    /// `viommu.invalidate`: the entries in one `IOMMU_HWPT_INVALIDATE` on a vIOMMU. Under the
    /// owner's gate only (`gatedInvalidation`).
    public func viommuInvalidate(_ caller: Caller, _ params: VIOMMUInvalidateParams) throws -> InvalidateResult {
        let method = "viommu.invalidate"
        return try gatedInvalidation(caller, params.viommu, method: method, resolve: { try self.viommuInvalidationTarget(caller, $0, method: method) }) { t in
            let entries: [InvalidationEntry]
            switch t.kind {
            case .selftestVIOMMU:
                entries = try params.entries.enumerated().map { i, e in
                    try Self.onlyFields(e, ["vdev_id", "cache_id", "all"], index: i, method: method, kind: "a selftest vIOMMU")
                    let all = e.all ?? false
                    guard let vdev = e.vdevID else { throw BrokerError.invalid("viommu.invalidate: entries[\(i)] needs vdev_id (a virtual ID given by vdevice.create)") }
                    guard all || e.cacheID != nil else { throw BrokerError.invalid("viommu.invalidate: entries[\(i)] needs cache_id (0-3) or all=true") }
                    return .selftestVIOMMU(flags: all ? InvalidationEntry.selftestFlagAll : 0, vdevID: vdev, cacheID: e.cacheID ?? 0)
                }
            default:
                entries = try params.entries.enumerated().map { i, e in
                    try Self.onlyFields(e, ["cmd"], index: i, method: method, kind: "an SMMUv3 vIOMMU")
                    guard let cmd = e.cmd, cmd.count == 2 else { throw BrokerError.invalid("viommu.invalidate: entries[\(i)].cmd must be one CMDQ command, 2 64-bit words") }
                    return .armSMMUv3(cmd: cmd)
                }
            }
            return t.request(entries)
        }
    }

    /// What an invalidation goes to, and the entries it takes (looked up under `lock`).
    struct InvalidationTarget {
        enum Kind { case selftestHWPT, vtdS1, selftestVIOMMU, armSMMUv3 }
        var id: ObjectID
        var owner: String
        var kind: Kind
        /// `IOMMU_HWPT_INVALIDATE`'s `data_type` and `entry_len` for this target.
        var dataType: UInt32
        var entryLength: Int
        /// The driver data's name ("selftest", "vtd_s1", "arm_smmuv3"), and the target in words.
        var typeName: String
        var what: String

        func request(_ entries: [InvalidationEntry]) -> InvalidationRequest {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(entries.count * entryLength)
            for e in entries { bytes += e.bytes }
            return InvalidationRequest(dataType: dataType, entryLength: UInt32(entryLength), entryCount: UInt32(entries.count), bytes: bytes)
        }
    }

    /// A nested HWPT the caller may invalidate (under `lock`).
    func nestedInvalidationTarget(_ caller: Caller, _ id: ObjectID, method: String) throws -> InvalidationTarget {
        let h = try hwpt(caller, id, write: method)
        guard let n = h.nested else {
            throw BrokerError.invalid("\(method): HWPT \(h.id) is not nested; only a nested HWPT (hwpt.alloc with parent or viommu) caches a guest's translations (a vIOMMU's caches: \(method == "hwpt.invalidate" ? "viommu.invalidate" : "invalidate the vIOMMU"))")
        }
        switch n.data.type {
        case HWPTDataType.selftest:
            return InvalidationTarget(id: h.id, owner: h.owner, kind: .selftestHWPT, dataType: InvalidateDataType.selftest,
                                      entryLength: InvalidationEntry.selftestHWPTSize, typeName: "selftest", what: "nested HWPT \(h.id)")
        case HWPTDataType.vtdS1:
            return InvalidationTarget(id: h.id, owner: h.owner, kind: .vtdS1, dataType: InvalidateDataType.vtdS1,
                                      entryLength: InvalidationEntry.vtdS1Size, typeName: "vtd_s1", what: "nested HWPT \(h.id)")
        default:
            throw BrokerError.invalid("\(method): HWPT \(h.id) holds '\(HWPTDataType.name(n.data.type))' data, whose caches are invalidated through its vIOMMU (\(method == "hwpt.invalidate" ? "viommu.invalidate" : "INVALIDATE with the vIOMMU as target"))\(n.viommu.map { " \($0)" } ?? ""), not the HWPT")
        }
    }

    /// A vIOMMU the caller may invalidate (under `lock`).
    func viommuInvalidationTarget(_ caller: Caller, _ id: ObjectID, method: String) throws -> InvalidationTarget {
        let v = try viommu(caller, id, write: method)
        switch Self.viommuType(for: devices[v.device]?.hwInfo) {
        case VIOMMUType.selftest:
            return InvalidationTarget(id: v.id, owner: v.owner, kind: .selftestVIOMMU, dataType: InvalidateDataType.selftest,
                                      entryLength: InvalidationEntry.selftestVIOMMUSize, typeName: "selftest", what: "vIOMMU \(v.id)")
        case VIOMMUType.armSMMUv3, VIOMMUType.tegra241CMDQV:
            return InvalidationTarget(id: v.id, owner: v.owner, kind: .armSMMUv3, dataType: InvalidateDataType.armSMMUv3,
                                      entryLength: InvalidationEntry.armSMMUv3Size, typeName: "arm_smmuv3", what: "vIOMMU \(v.id)")
        default:
            throw BrokerError(.unsupported, "vIOMMU \(v.id): its IOMMU has no vIOMMU cache invalidation the daemon knows")
        }
    }

    /// An invalidation in the two phases of a gated request (the locking design in
    /// Broker.swift): the target is looked up, the request built and every entry checked under
    /// `lock`; the one `IOMMU_HWPT_INVALIDATE` runs under the owner's gate only, so another
    /// owner's requests do not wait for it and it does not wait for theirs. Nothing is recorded
    /// (an invalidation changes no broker state and is not journaled), so there is no third
    /// phase. The gate is what keeps the target alive during the call: `hwpt.destroy`,
    /// `viommu.destroy` and `owner.release` hold it too, so the ID cannot be destroyed (and
    /// reused by the kernel for another owner's object) under the call.
    func gatedInvalidation(
        _ caller: Caller, _ id: ObjectID, method: String, resolve: (ObjectID) throws -> InvalidationTarget,
        build: (InvalidationTarget) throws -> InvalidationRequest
    ) throws -> InvalidateResult {
        try serialized({ () throws -> OwnerRecord in
            let t = try resolve(id)
            guard let owner = owners[t.owner] else { throw BrokerError.notFound("owner of \(t.what) is gone") }
            return owner
        }) { _ in
            let (target, request) = try readLocked { () throws -> (InvalidationTarget, InvalidationRequest) in
                let t = try resolve(id)
                let request = try build(t)
                try Self.checkInvalidationEntries(request, t.kind, method: method)
                return (t, request)
            }
            return try runInvalidation(target.id, request, dataType: target.typeName, what: target.what)
        }
    }

    /// The value checks of every entry, on the uAPI structs themselves: one rule for the
    /// control plane (whose typed entries are encoded first) and the channel (raw entries).
    static func checkInvalidationEntries(_ r: InvalidationRequest, _ kind: InvalidationTarget.Kind, method: String) throws {
        let length = Int(r.entryLength)
        guard r.bytes.count >= length * Int(r.entryCount) else {
            throw BrokerError.invalid("\(method): \(r.entryCount) entries of \(length) bytes need \(length * Int(r.entryCount)) bytes; \(r.bytes.count) given")
        }
        try r.bytes.withUnsafeBytes { raw in
            for i in 0..<Int(r.entryCount) {
                let base = i * length
                func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: base + o, as: UInt32.self)) }
                func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + o, as: UInt64.self)) }
                switch kind {
                case .selftestHWPT:
                    let flags = u32(0), id = u32(4)
                    if flags & ~InvalidationEntry.selftestFlagAll != 0 {
                        throw BrokerError.invalid("\(method): entries[\(i)].flags 0x\(String(flags, radix: 16)) has bits other than ALL (1)")
                    }
                    if id > 3 { throw BrokerError.invalid("\(method): entries[\(i)].iotlb_id \(id) is past the mock IOTLB's last entry (3)") }
                case .selftestVIOMMU:
                    let flags = u32(0), cache = u32(8)
                    if flags & ~InvalidationEntry.selftestFlagAll != 0 {
                        throw BrokerError.invalid("\(method): entries[\(i)].flags 0x\(String(flags, radix: 16)) has bits other than ALL (1)")
                    }
                    if cache > 3 { throw BrokerError.invalid("\(method): entries[\(i)].cache_id \(cache) is past the mock device cache's last entry (3)") }
                case .vtdS1:
                    let addr = u64(0), npages = u64(8), flags = u32(16), reserved = u32(20)
                    if addr & 0xfff != 0 { throw BrokerError.invalid("\(method): entries[\(i)].addr 0x\(String(addr, radix: 16)) is not 4 KiB aligned") }
                    if npages == 0 { throw BrokerError.invalid("\(method): entries[\(i)].npages is 0") }
                    if flags & ~InvalidationEntry.vtdS1FlagLeaf != 0 {
                        throw BrokerError.invalid("\(method): entries[\(i)].flags 0x\(String(flags, radix: 16)) has bits other than LEAF (1)")
                    }
                    if reserved != 0 { throw BrokerError.invalid("\(method): entries[\(i)]: the reserved word at offset 20 must be 0") }
                case .armSMMUv3:
                    break  // one CMDQ command: the driver checks its opcode
                }
            }
        }
    }

    static func onlyFields(_ e: InvalidationEntryParams, _ allowed: Set<String>, index: Int, method: String, kind: String) throws {
        let present: [(String, Bool)] = [
            ("iotlb_id", e.iotlbID != nil), ("all", e.all != nil), ("vdev_id", e.vdevID != nil), ("cache_id", e.cacheID != nil),
            ("addr", e.addr != nil), ("npages", e.npages != nil), ("leaf", e.leaf != nil), ("cmd", e.cmd != nil),
        ]
        for (name, isSet) in present where isSet && !allowed.contains(name) {
            throw BrokerError.invalid("\(method): entries[\(index)].\(name) is not a field of an entry for \(kind) (its fields: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    /// One `IOMMU_HWPT_INVALIDATE`: nothing done is an error; an early stop is a result that
    /// says how far it got and why it stopped.
    func runInvalidation(_ id: ObjectID, _ request: InvalidationRequest, dataType: String, what: String) throws -> InvalidateResult {
        guard backend.features.contains(.hwptInvalidate) else {
            throw BrokerError(.unsupported, "this kernel has no IOMMU_HWPT_INVALIDATE (Linux >= 6.8)")
        }
        if request.entryCount > InvalidationRequest.maxEntries {
            throw BrokerError(.limitExceeded, "\(request.entryCount) entries are more than the kernel takes in one IOMMU_HWPT_INVALIDATE (\(InvalidationRequest.maxEntries)); split them")
        }
        let result = try nestedBackend.invalidate(id, request)
        var answer = InvalidateResult(object: id, requested: Int(request.entryCount), done: Int(result.done), dataType: dataType, stopped: nil)
        guard let error = result.error else { return answer }
        if result.done == 0 {
            throw BrokerError.kernel(error, "invalidating \(what) (entry 0 of \(request.entryCount) refused, none done)")
        }
        answer.stopped = InvalidationStop(
            errno: error.errno.name, ioctl: error.operation,
            message: "entry \(result.done) was refused with \(error.errno.name) (\(error.errno.message)); entries 0..<\(result.done) took effect and the ones after it were not tried: fix entry \(result.done) and send it and the rest again")
        return answer
    }

    // MARK: Teardown

    /// `owner.release`'s first step for nested translation, in the kernel's order: every device
    /// on a nested HWPT moves onto that HWPT's nest parent (replace: no window with the old
    /// stage 1 and nothing), then the nested HWPTs go, so vDevices, vIOMMUs and parents can.
    func releaseNestedHWPTs(_ owner: OwnerRecord, failures: inout [String], destroyed: inout [String: Int]) {
        for id in owner.hwpts.sorted() {
            guard let h = hwptTable[id], let n = h.nested else { continue }
            for name in h.devices.sorted() {
                guard let dev = devices[name] else { continue }
                do {
                    if let bound = dev.bound {
                        _ = try kcall("moving device '\(name)' off nested HWPT \(id) onto its parent \(n.parent)") {
                            try backend.replace(deviceID: bound.id, with: n.parent)
                        }
                    }
                    leave(dev, pt: id, cleanup: false)
                    dev.pt = n.parent
                    hwptTable[n.parent]?.devices.insert(name)
                } catch { failures.append("\(error)") }
            }
            guard h.isUnused else { continue }
            do {
                try destroyHWPT(h)
                destroyed["hwpt", default: 0] += 1
            } catch { failures.append("\(error)") }
        }
    }
}
