import IommufdCore

/// A nested HWPT (`struct iommufd_hwpt_nested`) of the selftest mock driver
/// (`struct mock_iommu_domain_nested`): its parent, its vIOMMU when allocated on one, and the
/// mock IOTLB that invalidation clears.
struct SimNested {
    /// The nest-parent HWPT (also the vIOMMU's parent when `viommu` is set).
    var parent: ObjectID
    var viommu: ObjectID?
    var dataType: UInt32
    var iotlb: [UInt32]

    /// `IOMMU_TEST_DEV_CACHE_DEFAULT`.
    static let deviceCacheDefault: UInt32 = 0xbaddad
    /// `MOCK_NESTED_DOMAIN_IOTLB_ID_MAX`, `MOCK_DEV_CACHE_ID_MAX`.
    static let iotlbIDMax: UInt32 = 3
    static let cacheIDMax: UInt32 = 3
}

/// Nested HWPTs and `IOMMU_HWPT_INVALIDATE`, after hw_pagetable.c (iommufd_hwpt_alloc,
/// iommufd_hwpt_nested_alloc, iommufd_viommu_alloc_hwpt_nested, iommufd_hwpt_invalidate) and
/// the selftest mock driver (selftest.c). Only the mock driver's nested domains are modelled:
/// an IOMMU of another driver (VT-d, SMMUv3, AMD) answers as a driver without
/// `domain_alloc_nested` / `alloc_domain_nested`: EOPNOTSUPP.
extension SimBackend: NestedIommuBackend, NestedTestHooks {
    /// `IOMMU_HWPT_ALLOC` with `data`: the checks in the kernel's order.
    public func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData) throws -> ObjectID {
        try allocNested(deviceID: deviceID, parentID: parentID, flags: flags, data: data, faultQueue: nil)
    }

    /// `iommufd_hwpt_alloc` of a nested HWPT; `faultQueue` is `cmd->fault_id` (0 when not given).
    func allocNested(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData, faultQueue: ObjectID?) throws -> ObjectID {
        try locked("IOMMU_HWPT_ALLOC") {
            // iommufd_hwpt_alloc: a data type needs data, and NONE takes none.
            if (data.type == HWPTDataType.none) != data.bytes.isEmpty { throw Errno.EINVAL }
            let device = try physicalDevice(deviceID)
            guard let iommu = device.iommu else { throw Errno.ENOENT }
            guard let target = objects[parentID] else { throw Errno.EINVAL }
            let allowed: HWPTAllocFlags = [.faultIDValid, .pasid]
            var parent: ObjectID
            var viommuID: ObjectID?
            switch target {
            case .ioas:
                // Not a nested HWPT: a paging HWPT with driver data, which this call does not
                // make (the mock driver takes IOMMU_HWPT_DATA_SELFTEST for its paging domains
                // too; the simulator does not model that, and refuses rather than pretend).
                throw Errno.EOPNOTSUPP
            case .hwpt(let paging):
                if paging.nested != nil { throw Errno.EINVAL }
                // iommufd_hwpt_nested_alloc
                if !flags.subtracting(allowed).isEmpty || data.bytes.isEmpty || !iommu.nesting { throw Errno.EOPNOTSUPP }
                if paging.autoDomain || !paging.isNestParent || paging.iommu.hwInfoType != iommu.hwInfoType { throw Errno.EINVAL }
                // nestedgaps: a driver that does not share nest parents refuses another
                // instance's (unless the two share domains, as VT-d units of a domainGroup do).
                if !iommu.acceptsNestParent(of: paging.iommu) && (iommu.domainGroup == nil || iommu.domainGroup != paging.iommu.domainGroup) {
                    throw Errno.EINVAL
                }
                parent = parentID
            case .viommu(let viommu):
                // iommufd_hwpt_alloc: the vIOMMU must be on the device's IOMMU instance.
                if viommu.iommuName != iommu.name { throw Errno.EINVAL }
                // iommufd_viommu_alloc_hwpt_nested
                if !flags.subtracting(allowed).isEmpty || data.bytes.isEmpty { throw Errno.EOPNOTSUPP }
                parent = viommu.hwpt
                viommuID = parentID
            default:
                throw Errno.EINVAL
            }
            // The driver: only the selftest mock's nested domains are modelled.
            guard iommu.hwInfoType == HWInfoType.selftest else { throw Errno.EOPNOTSUPP }
            // __mock_domain_alloc_nested: the type, then iommu_copy_struct_from_user (at least
            // up to `iotlb`, at most the struct; a shorter one is zero-filled).
            if data.type != HWPTDataType.selftest { throw Errno.EOPNOTSUPP }
            if data.bytes.count < 4 || data.bytes.count > 8 { throw Errno.EINVAL }
            let padded = data.bytes + [UInt8](repeating: 0, count: 8 - data.bytes.count)
            let iotlb = (0..<4).reduce(UInt32(0)) { $0 | UInt32(padded[$1]) << (8 * $1) }
            guard case .hwpt(let parentHWPT) = objects[parent] else { throw Errno.EINVAL }
            // iommufd_hwpt_alloc, after the domain: iommufd_get_fault is ENOENT for anything but
            // a fault object (fault_id 0 included).
            var fault: SimEventQueue?
            if flags.contains(.faultIDValid) {
                guard let faultQueue, case .eventQueue(let queue) = objects[faultQueue], queue.kind == .fault else { throw Errno.ENOENT }
                fault = queue
            }
            let id = try allocateID()
            // The nested domain is the device's driver's (its instance's), over the parent's.
            let hwpt = SimHWPT(ioas: parentHWPT.ioas, iommu: iommu, flags: flags.intersection(.pasid), autoDomain: false)
            if let fault {
                fault.users += 1
                hwpt.faultQueue = faultQueue
            }
            hwpt.nested = SimNested(
                parent: parent, viommu: viommuID, dataType: data.type,
                iotlb: [UInt32](repeating: iotlb, count: NestedHWPTData.selftestIOTLBCount))
            objects[id] = .hwpt(hwpt)
            if let viommuID, case .viommu(let viommu) = objects[viommuID] {
                viommu.nestedUsers += 1
            } else {
                parentHWPT.nestedUsers += 1
            }
            return id
        }
    }

    /// `iommufd_hwpt_nested_destroy`: drops the reference on the vIOMMU or the parent.
    func removeNestedHWPT(_ id: ObjectID, _ hwpt: SimHWPT) {
        guard let nested = hwpt.nested else { return }
        if let fault = hwpt.faultQueue, case .eventQueue(let queue) = objects[fault] { queue.users -= 1 }
        if let viommuID = nested.viommu, case .viommu(let viommu) = objects[viommuID] {
            viommu.nestedUsers -= 1
        } else if case .hwpt(let parent) = objects[nested.parent] {
            parent.nestedUsers -= 1
        }
        removeObject(id)
    }

    /// `iommufd_hwpt_invalidate`.
    public func invalidate(_ id: ObjectID, _ request: InvalidationRequest) -> InvalidationResult {
        var done: UInt32 = 0
        do {
            try locked("IOMMU_HWPT_INVALIDATE") {
                let n = request.entryCount, len = request.entryLength
                if n > 0 && (len == 0 || UInt64(len) > pageSize || n > InvalidationRequest.maxEntries) { throw Errno.EINVAL }
                if n > 0 && UInt64(request.bytes.count) < UInt64(len) * UInt64(n) { throw Errno.EFAULT }
                guard let object = objects[id] else { throw Errno.ENOENT }
                switch object {
                case .hwpt(let hwpt):
                    guard hwpt.nested != nil else { throw Errno.EINVAL }
                    try invalidateNested(hwpt, request, done: &done)
                case .viommu(let viommu):
                    try invalidateVIOMMU(viommu, request, done: &done)
                case .tombstone:
                    throw Errno.ENOENT
                default:
                    throw Errno.EINVAL
                }
            }
            return InvalidationResult(done: done)
        } catch {
            return InvalidationResult(done: done, error: error)
        }
    }

    /// Entry `i` as a zero-filled struct of `size` bytes, by `__iommu_copy_struct_from_user`
    /// (entry_len between `minimum` and the struct: EINVAL otherwise).
    private static func entry(_ r: InvalidationRequest, _ i: UInt32, size: Int, minimum: Int) throws -> [UInt8] {
        let len = Int(r.entryLength)
        if len < minimum || len > size { throw Errno.EINVAL }
        let start = Int(i) * len
        return Array(r.bytes[start..<start + len]) + [UInt8](repeating: 0, count: size - len)
    }

    private static func u32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * $1) } }

    /// `mock_domain_cache_invalidate_user`: entry by entry, stopping at the first bad one.
    private func invalidateNested(_ hwpt: SimHWPT, _ r: InvalidationRequest, done: inout UInt32) throws {
        guard var nested = hwpt.nested else { throw Errno.EINVAL }
        defer { hwpt.nested = nested }
        if r.dataType != InvalidateDataType.selftest { throw Errno.EINVAL }
        for i in 0..<r.entryCount {
            let e = try Self.entry(r, i, size: 8, minimum: 8)
            let flags = Self.u32(e, 0), iotlbID = Self.u32(e, 4)
            if flags & ~InvalidationEntry.selftestFlagAll != 0 { throw Errno.EOPNOTSUPP }
            if iotlbID > SimNested.iotlbIDMax { throw Errno.EINVAL }
            if flags & InvalidationEntry.selftestFlagAll != 0 {
                for j in nested.iotlb.indices { nested.iotlb[j] = 0 }
            } else {
                nested.iotlb[Int(iotlbID)] = 0
            }
            done += 1
        }
    }

    /// `mock_viommu_cache_invalidate`: the whole array is copied first
    /// (`iommu_copy_struct_from_full_user_array`), then applied entry by entry.
    private func invalidateVIOMMU(_ viommu: SimVIOMMU, _ r: InvalidationRequest, done: inout UInt32) throws {
        guard viommu.type == VIOMMUType.selftest else { throw Errno.EOPNOTSUPP }
        if r.entryCount == 0 && r.dataType == InvalidateDataType.selftest { return }
        if r.dataType != InvalidateDataType.selftest || r.entryCount == 0 { throw Errno.EINVAL }
        let size = InvalidationEntry.selftestVIOMMUSize
        var entries: [[UInt8]] = []
        for i in 0..<r.entryCount {
            let len = Int(r.entryLength), start = Int(i) * len
            var e = Array(r.bytes[start..<start + len])
            // copy_struct_from_user: a longer entry's tail must be zero (E2BIG).
            if e.count > size {
                if e[size...].contains(where: { $0 != 0 }) { throw Errno.E2BIG }
                e = Array(e[..<size])
            }
            entries.append(e + [UInt8](repeating: 0, count: size - e.count))
        }
        for e in entries {
            let flags = Self.u32(e, 0), vdevID = Self.u32(e, 4), cacheID = Self.u32(e, 8)
            if flags & ~InvalidationEntry.selftestFlagAll != 0 { throw Errno.EOPNOTSUPP }
            if cacheID > SimNested.cacheIDMax { throw Errno.EINVAL }
            guard let vdevObject = viommu.vdevices[UInt64(vdevID)], case .vdevice(let vdev) = objects[vdevObject],
                case .device(let device) = objects[vdev.device]
            else { throw Errno.EINVAL }
            if flags & InvalidationEntry.selftestFlagAll != 0 {
                for j in device.cache.indices { device.cache[j] = 0 }
            } else {
                device.cache[Int(cacheID)] = 0
            }
            done += 1
        }
    }

    // MARK: Test hooks

    /// `IOMMU_TEST_OP_MD_CHECK_IOTLB` (`get_md_pagetable_nested`: a non-nested HWPT is ENOENT).
    public func checkNestedIOTLB(hwpt hwptID: ObjectID, index: UInt32, value: UInt32) throws {
        try locked("IOMMU_TEST_OP_MD_CHECK_IOTLB") {
            guard case .hwpt(let hwpt) = objects[hwptID], let nested = hwpt.nested else { throw Errno.ENOENT }
            if index > SimNested.iotlbIDMax || nested.iotlb[Int(index)] != value { throw Errno.EINVAL }
        }
    }

    /// `IOMMU_TEST_OP_DEV_CHECK_CACHE`.
    public func checkDeviceCache(deviceID: ObjectID, index: UInt32, value: UInt32) throws {
        try locked("IOMMU_TEST_OP_DEV_CHECK_CACHE") {
            let device = try physicalDevice(deviceID)
            if index > SimNested.cacheIDMax || device.cache[Int(index)] != value { throw Errno.EINVAL }
        }
    }
}
