import IommufdCore

/// Nested HWPTs and cache invalidation (hw_pagetable.c; selftest `iommufd_ioas.alloc_hwpt_nested`,
/// `iommufd_viommu.viommu_alloc_nested_iopf`, `iommufd_viommu.vdevice_cache`) with the mock
/// driver's data (`struct iommu_hwpt_selftest`, `struct iommu_hwpt_invalidate_selftest`,
/// `struct iommu_viommu_invalidate_selftest`), which the simulator models.
enum NestedCases {
    static let iotlbDefault = NestedHWPTData.selftestIOTLBDefault
    static let cacheDefault: UInt32 = 0xbaddad
    static let data = NestedHWPTData.selftest(iotlb: iotlbDefault, pagetableType: 0).userData

    typealias Nested = any NestedIommuBackend & NestedTestHooks

    static func nested(_ ctx: ConformanceContext) throws -> Nested {
        guard let b = ctx.backend as? Nested else { throw ConformanceSkip("the backend has no nested HWPTs") }
        return b
    }

    /// An IOAS, a nest-parent HWPT for the primary device, and a nested HWPT on it.
    static func setUp(_ ctx: ConformanceContext) throws -> (b: Nested, ioas: ObjectID, parent: ObjectID, nested: ObjectID) {
        let b = try nested(ctx)
        let device = try ctx.device(.primary)
        let ioas = try b.allocIOAS()
        let parent = try b.allocHWPT(deviceID: device.id, ptID: ioas, flags: .nestParent)
        let nested = try ctx.expectSuccess("nested HWPT on nest parent \(parent)") {
            try b.allocNestedHWPT(deviceID: device.id, parentID: parent, flags: [], data: data)
        }
        return (b, ioas, parent, nested)
    }

    static func invalidate(_ b: Nested, _ id: ObjectID, _ entries: [InvalidationEntry]) -> InvalidationResult {
        b.invalidate(id, InvalidationRequest(entries))
    }

    /// Runs one invalidation that must end with `errno` after `done` entries.
    static func expectInvalidate(
        _ ctx: ConformanceContext, _ b: Nested, _ id: ObjectID, _ request: InvalidationRequest, errno: Errno?, done: UInt32, _ what: String
    ) throws {
        let result = b.invalidate(id, request)
        if let e = result.error, e.isMissingTestHook { throw ConformanceSkip("\(e.operation) is not available") }
        try ctx.expectEqual(result.error?.errno.name ?? "success", errno?.name ?? "success", "\(what): the answer")
        try ctx.expectEqual(result.done, done, "\(what): entry_num out")
    }

    static func expectIOTLB(_ ctx: ConformanceContext, _ b: Nested, _ hwpt: ObjectID, _ values: [UInt32]) throws {
        for (i, v) in values.enumerated() {
            try ctx.expectSuccess("IOTLB entry \(i) of nested HWPT \(hwpt) is 0x\(String(v, radix: 16))") {
                try b.checkNestedIOTLB(hwpt: hwpt, index: UInt32(i), value: v)
            }
        }
    }

    static let all: [ConformanceCase] = [
        // selftest alloc_hwpt_nested: the two nested HWPTs, their IOTLB, and the busy parent.
        ConformanceCase(
            "nested.alloc.on-nest-parent",
            "A nested HWPT with selftest data on a nest-parent HWPT starts with every IOTLB entry at the data's value; its parent is EBUSY until it is destroyed.",
            requires: [.nesting]
        ) { ctx in
            let s = try setUp(ctx)
            let second = try s.b.allocNestedHWPT(deviceID: try ctx.device(.primary).id, parentID: s.parent, flags: [], data: data)
            try expectIOTLB(ctx, s.b, s.nested, Array(repeating: iotlbDefault, count: 4))
            try expectIOTLB(ctx, s.b, second, Array(repeating: iotlbDefault, count: 4))
            try ctx.expectErrno(.EINVAL, "IOTLB entry 4 (past MOCK_NESTED_DOMAIN_IOTLB_ID_MAX)") {
                try s.b.checkNestedIOTLB(hwpt: s.nested, index: 4, value: iotlbDefault)
            }
            try ctx.expectErrno(.EBUSY, "destroy of parent \(s.parent) with nested HWPTs") { try s.b.destroy(s.parent) }
            try s.b.destroy(s.nested)
            try s.b.destroy(second)
            try ctx.expectSuccess("destroy of the parent after its nested HWPTs") { try s.b.destroy(s.parent) }
        },

        ConformanceCase(
            "nested.alloc.bad-data-refused",
            "Nested HWPT refusals, in the kernel's order: data type NONE with data EINVAL, a type the driver does not take EOPNOTSUPP, data shorter than `iotlb` or longer than the struct EINVAL, NEST_PARENT on a nested HWPT EOPNOTSUPP.",
            requires: [.nesting]
        ) { ctx in
            let s = try setUp(ctx)
            let dev = try ctx.device(.primary).id
            try ctx.expectErrno(.EINVAL, "data type NONE with 8 bytes") {
                try s.b.allocNestedHWPT(deviceID: dev, parentID: s.parent, flags: [], data: HWPTUserData(type: HWPTDataType.none, bytes: data.bytes))
            }
            try ctx.expectErrno(.EOPNOTSUPP, "data type SELFTEST + 1") {
                try s.b.allocNestedHWPT(deviceID: dev, parentID: s.parent, flags: [], data: HWPTUserData(type: HWPTDataType.selftest + 1, bytes: data.bytes))
            }
            try ctx.expectErrno(.EINVAL, "3 bytes of selftest data") {
                try s.b.allocNestedHWPT(deviceID: dev, parentID: s.parent, flags: [], data: HWPTUserData(type: HWPTDataType.selftest, bytes: Array(data.bytes.prefix(3))))
            }
            try ctx.expectErrno(.EINVAL, "9 bytes of selftest data") {
                try s.b.allocNestedHWPT(deviceID: dev, parentID: s.parent, flags: [], data: HWPTUserData(type: HWPTDataType.selftest, bytes: data.bytes + [0]))
            }
            try ctx.expectErrno(.EOPNOTSUPP, "NEST_PARENT on a nested HWPT") {
                try s.b.allocNestedHWPT(deviceID: dev, parentID: s.parent, flags: .nestParent, data: data)
            }
            // Only `iotlb` is required: 4 bytes are zero-extended.
            let short = try ctx.expectSuccess("4 bytes of selftest data") {
                try s.b.allocNestedHWPT(deviceID: dev, parentID: s.parent, flags: [], data: HWPTUserData(type: HWPTDataType.selftest, bytes: Array(data.bytes.prefix(4))))
            }
            try expectIOTLB(ctx, s.b, short, Array(repeating: iotlbDefault, count: 4))
        },

        ConformanceCase(
            "nested.alloc.bad-parent-is-EINVAL",
            "A nested HWPT on a paging HWPT without NEST_PARENT, or on another nested HWPT, is EINVAL; on an ID that is no object, EINVAL too.",
            requires: [.nesting]
        ) { ctx in
            let s = try setUp(ctx)
            let dev = try ctx.device(.primary).id
            let plain = try s.b.allocHWPT(deviceID: dev, ptID: s.ioas, flags: [])
            try ctx.expectErrno(.EINVAL, "nested on plain HWPT \(plain)") { try s.b.allocNestedHWPT(deviceID: dev, parentID: plain, flags: [], data: data) }
            try ctx.expectErrno(.EINVAL, "nested on nested HWPT \(s.nested)") { try s.b.allocNestedHWPT(deviceID: dev, parentID: s.nested, flags: [], data: data) }
            try ctx.expectErrno(.EINVAL, "nested on object 0") { try s.b.allocNestedHWPT(deviceID: dev, parentID: 0, flags: [], data: data) }
            try ctx.expectErrno(.ENOENT, "nested for device ID 0") { try s.b.allocNestedHWPT(deviceID: 0, parentID: s.parent, flags: [], data: data) }
        },

        ConformanceCase(
            "nested.not-paging",
            "A nested HWPT is not a paging HWPT: dirty tracking on it and a vIOMMU over it are ENOENT.",
            requires: [.nesting]
        ) { ctx in
            let s = try setUp(ctx)
            try ctx.expectErrno(.ENOENT, "dirty tracking on nested HWPT") { try s.b.setDirtyTracking(hwpt: s.nested, enabled: true) }
            try ctx.expectErrno(.ENOENT, "vIOMMU over nested HWPT") {
                try s.b.allocVIOMMU(deviceID: try ctx.device(.primary).id, hwpt: s.nested, type: VIOMMUType.selftest)
            }
        },

        // selftest alloc_hwpt_nested: replace onto nested [0], then [1], then back to the parent.
        ConformanceCase(
            "nested.attach-replace-destroy-order",
            "A device attaches to a nested HWPT and is replaced onto another; an attached nested HWPT is EBUSY, and once the device is back on the parent both go.",
            requires: [.nesting]
        ) { ctx in
            let s = try setUp(ctx)
            let device = try ctx.device(.primary)
            let second = try s.b.allocNestedHWPT(deviceID: device.id, parentID: s.parent, flags: [], data: data)
            try ctx.expectSuccess("attach onto nested \(s.nested)") { try s.b.attach(deviceID: device.id, to: s.nested) }
            try ctx.expectErrno(.EBUSY, "destroy of attached nested HWPT") { try s.b.destroy(s.nested) }
            try ctx.expectSuccess("replace onto nested \(second)") { try s.b.replace(deviceID: device.id, with: second) }
            try ctx.expectErrno(.EBUSY, "destroy of nested HWPT \(second) now attached") { try s.b.destroy(second) }
            try ctx.expectSuccess("destroy of the nested HWPT the device left") { try s.b.destroy(s.nested) }
            try ctx.expectSuccess("replace back onto the parent") { try s.b.replace(deviceID: device.id, with: s.parent) }
            try ctx.expectSuccess("destroy of the unused nested HWPT") { try s.b.destroy(second) }
            try ctx.expectErrno(.EBUSY, "destroy of the parent the device is on") { try s.b.destroy(s.parent) }
        },

        // selftest alloc_hwpt_nested: the invalidation negative tests and partial completion.
        ConformanceCase(
            "nested.invalidate.array",
            "IOMMU_HWPT_INVALIDATE on a nested HWPT handles the array in order and reports how many entries were done; a bad entry stops it with EOPNOTSUPP (flags) or EINVAL (iotlb_id) after the good ones.",
            requires: [.nesting]
        ) { ctx in
            let s = try setUp(ctx)
            let t = InvalidateDataType.selftest
            func raw(_ entries: [InvalidationEntry], length: UInt32? = nil, count: UInt32? = nil, type: UInt32 = t) -> InvalidationRequest {
                let r = InvalidationRequest(entries)
                return InvalidationRequest(dataType: type, entryLength: length ?? r.entryLength, entryCount: count ?? r.entryCount, bytes: r.bytes + [UInt8](repeating: 0, count: 64))
            }
            let zero = InvalidationEntry.selftestHWPT(flags: 0, iotlbID: 0)
            try expectInvalidate(ctx, s.b, s.nested, raw([]), errno: nil, done: 0, "an empty array (type check only)")
            try expectInvalidate(ctx, s.b, s.parent, raw([zero]), errno: .EINVAL, done: 0, "on the nest parent")
            try expectInvalidate(ctx, s.b, s.nested, raw([zero], type: InvalidateDataType.selftestInvalid), errno: .EINVAL, done: 0, "an invalid data type")
            try expectInvalidate(ctx, s.b, s.nested, raw([zero], length: 9), errno: .EINVAL, done: 0, "entry_len 9")
            try expectInvalidate(ctx, s.b, s.nested, raw([zero], length: 1), errno: .EINVAL, done: 0, "entry_len 1")
            try expectInvalidate(ctx, s.b, s.nested, raw([zero], length: 0), errno: .EINVAL, done: 0, "entry_len 0")
            try expectInvalidate(ctx, s.b, s.nested, raw([zero], length: UInt32(ctx.pageSize) + 1), errno: .EINVAL, done: 0, "entry_len PAGE_SIZE + 1")
            try expectInvalidate(ctx, s.b, s.nested, raw([zero], count: InvalidationRequest.maxEntries + 1), errno: .EINVAL, done: 0, "entry_num past the cap")
            try expectInvalidate(ctx, s.b, s.nested, raw([.selftestHWPT(flags: 0xffff_ffff, iotlbID: 0)]), errno: .EOPNOTSUPP, done: 0, "unknown flags")
            try expectInvalidate(ctx, s.b, s.nested, raw([.selftestHWPT(flags: 0, iotlbID: 4)]), errno: .EINVAL, done: 0, "iotlb_id 4")
            try expectInvalidate(ctx, s.b, 0, raw([zero]), errno: .ENOENT, done: 0, "object 0")
            try expectInvalidate(ctx, s.b, s.ioas, raw([zero]), errno: .EINVAL, done: 0, "an IOAS")
            try expectIOTLB(ctx, s.b, s.nested, Array(repeating: iotlbDefault, count: 4))

            try expectInvalidate(ctx, s.b, s.nested, raw([zero, .selftestHWPT(flags: 0xffff_ffff, iotlbID: 1)]), errno: .EOPNOTSUPP, done: 1, "good entry then bad flags")
            try expectIOTLB(ctx, s.b, s.nested, [0, iotlbDefault, iotlbDefault, iotlbDefault])
            try expectInvalidate(ctx, s.b, s.nested, raw([zero, .selftestHWPT(flags: 0, iotlbID: 4)]), errno: .EINVAL, done: 1, "good entry then bad iotlb_id")
            try expectInvalidate(ctx, s.b, s.nested, raw([.selftestHWPT(flags: 0, iotlbID: 1)]), errno: nil, done: 1, "entry 1")
            try expectIOTLB(ctx, s.b, s.nested, [0, 0, iotlbDefault, iotlbDefault])
            try expectInvalidate(ctx, s.b, s.nested, raw([.selftestHWPT(flags: 0, iotlbID: 2), .selftestHWPT(flags: 0, iotlbID: 3)]), errno: nil, done: 2, "entries 2 and 3")
            try expectIOTLB(ctx, s.b, s.nested, [0, 0, 0, 0])

            let other = try s.b.allocNestedHWPT(deviceID: try ctx.device(.primary).id, parentID: s.parent, flags: [], data: data)
            let all = (0..<64).map { _ in InvalidationEntry.selftestHWPT(flags: InvalidationEntry.selftestFlagAll, iotlbID: 0) }
            try expectInvalidate(ctx, s.b, other, raw(all), errno: nil, done: 64, "64 entries with FLAG_ALL in one call")
            try expectIOTLB(ctx, s.b, other, [0, 0, 0, 0])
        },

        // selftest iommufd_viommu.viommu_alloc_nested_iopf / vdevice_cache.
        ConformanceCase(
            "nested.viommu.alloc-attach-invalidate",
            "A nested HWPT on a vIOMMU holds the vIOMMU (EBUSY); attaching a device to it needs the device's vDevice there (ENOENT without); vIOMMU invalidation clears the vDevice's device cache entry by entry, stopping at an unknown vDevice (EINVAL) after the good entries.",
            requires: [.nesting]
        ) { ctx in
            let b = try nested(ctx)
            let device = try ctx.device(.primary)
            let ioas = try b.allocIOAS()
            let parent = try b.allocHWPT(deviceID: device.id, ptID: ioas, flags: .nestParent)
            let viommu = try b.allocVIOMMU(deviceID: device.id, hwpt: parent, type: VIOMMUType.selftest)
            let nested = try ctx.expectSuccess("nested HWPT on vIOMMU \(viommu)") {
                try b.allocNestedHWPT(deviceID: device.id, parentID: viommu, flags: [], data: data)
            }
            try ctx.expectErrno(.EOPNOTSUPP, "NEST_PARENT flag on a vIOMMU nested HWPT") {
                try b.allocNestedHWPT(deviceID: device.id, parentID: viommu, flags: .nestParent, data: data)
            }
            try ctx.expectErrno(.EOPNOTSUPP, "vIOMMU nested HWPT without data") {
                try b.allocNestedHWPT(deviceID: device.id, parentID: viommu, flags: [], data: HWPTUserData(type: HWPTDataType.none, bytes: []))
            }
            try ctx.expectErrno(.ENOENT, "attach without a vDevice on the vIOMMU") { try b.attach(deviceID: device.id, to: nested) }
            let vdev = try b.allocVDevice(viommu: viommu, deviceID: device.id, virtualID: 0x99)
            try ctx.expectSuccess("attach with its vDevice") { try b.attach(deviceID: device.id, to: nested) }
            try ctx.expectErrno(.EBUSY, "destroy of vIOMMU \(viommu) with a nested HWPT") { try b.destroy(viommu) }

            let t = InvalidateDataType.selftest
            for i in 0..<4 {
                try ctx.expectSuccess("device cache \(i) starts at 0xbaddad") { try b.checkDeviceCache(deviceID: device.id, index: UInt32(i), value: cacheDefault) }
            }
            try expectInvalidate(ctx, b, viommu, InvalidationRequest(dataType: t, entryLength: 12, entryCount: 0, bytes: []), errno: nil, done: 0, "an empty vIOMMU array")
            try expectInvalidate(ctx, b, viommu, InvalidationRequest([.selftestVIOMMU(flags: 0, vdevID: 0x99, cacheID: 0)], dataType: InvalidateDataType.selftestInvalid), errno: .EINVAL, done: 0, "an invalid data type")
            try expectInvalidate(
                ctx, b, viommu, InvalidationRequest([.selftestVIOMMU(flags: 0, vdevID: 0x99, cacheID: 0), .selftestVIOMMU(flags: 0, vdevID: 0x98, cacheID: 1)]),
                errno: .EINVAL, done: 1, "entry 0, then an unknown vDevice")
            try ctx.expectSuccess("device cache 0 cleared") { try b.checkDeviceCache(deviceID: device.id, index: 0, value: 0) }
            try ctx.expectSuccess("device cache 1 kept") { try b.checkDeviceCache(deviceID: device.id, index: 1, value: cacheDefault) }
            try expectInvalidate(
                ctx, b, viommu, InvalidationRequest([.selftestVIOMMU(flags: 2, vdevID: 0x99, cacheID: 1)]), errno: .EOPNOTSUPP, done: 0, "unknown flags")
            try expectInvalidate(
                ctx, b, viommu, InvalidationRequest([.selftestVIOMMU(flags: 0, vdevID: 0x99, cacheID: 4)]), errno: .EINVAL, done: 0, "cache_id 4")
            try expectInvalidate(
                ctx, b, viommu, InvalidationRequest([.selftestVIOMMU(flags: InvalidationEntry.selftestFlagAll, vdevID: 0x99, cacheID: 0)]), errno: nil, done: 1, "FLAG_ALL")
            for i in 0..<4 {
                try ctx.expectSuccess("device cache \(i) cleared") { try b.checkDeviceCache(deviceID: device.id, index: UInt32(i), value: 0) }
            }
            try ctx.expectSuccess("replace back onto the parent") { try b.replace(deviceID: device.id, with: parent) }
            try b.destroy(vdev)
            try ctx.expectSuccess("destroy of the nested HWPT") { try b.destroy(nested) }
            try ctx.expectSuccess("destroy of the vIOMMU after its nested HWPT") { try b.destroy(viommu) }
        },
    ]
}
