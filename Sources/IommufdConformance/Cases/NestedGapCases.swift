import IommufdCore

// MARK: nestedgaps

/// Nested HWPTs with a fault queue, dirty tracking under a nested HWPT, and a vIOMMU for a
/// device on a nested HWPT (hw_pagetable.c `iommufd_hwpt_alloc`, viommu.c
/// `iommufd_viommu_alloc_ioctl`; selftest `iommufd_ioas.alloc_hwpt_nested` (iopf_hwpt_id),
/// `iommufd_viommu.viommu_alloc_nested_iopf`, `iommufd_dirty_tracking`).
enum NestedGapCases {
    static let data = NestedCases.data

    typealias Faulting = any NestedFaultIommuBackend & NestedTestHooks

    static func faulting(_ ctx: ConformanceContext) throws -> Faulting {
        guard let b = ctx.backend as? Faulting else { throw ConformanceSkip("the backend has no nested HWPTs with fault queues") }
        return b
    }

    /// Reads the one fault a trigger queued, checking that it names `device`.
    static func expectOneFault(_ ctx: ConformanceContext, _ queue: EventQueue, device: ObjectID, address: UInt64) throws -> PageFault {
        try ctx.expect(QueueCases.waitReadable(queue.fd), "fault queue \(queue.id)'s fd did not poll readable after the page request")
        let faults = PageFault.parse(try QueueCases.read(ctx, queue.id, 80))
        try ctx.expectEqual(faults.count, 1, "faults read from queue \(queue.id)")
        try ctx.expectEqual(faults[0].deviceID, device, "fault dev_id")
        try ctx.expectEqual(faults[0].address, address, "fault addr")
        return faults[0]
    }

    static let all: [ConformanceCase] = [
        // selftest alloc_hwpt_nested: iopf_hwpt_id (ENOENT for fault_id UINT32_MAX, then a
        // nested HWPT with the fault queue; replace onto it; EBUSY; trigger_iopf).
        ConformanceCase(
            "nested.fault.alloc-on-nest-parent",
            "A nested HWPT on a nest parent with FAULT_ID_VALID: ENOENT when fault_id is not a fault queue (an unknown ID, the parent), EOPNOTSUPP for an unknown flag; with a fault queue it is allocated, is EBUSY while a device is on it, the device's page requests go to that queue, and it holds the queue (EBUSY).",
            requires: [.nesting]
        ) { ctx in
            let b = try faulting(ctx)
            let hooks = try QueueCases.hooks(ctx)
            let device = try ctx.device(.primary)
            let ioas = try b.allocIOAS()
            let parent = try b.allocHWPT(deviceID: device.id, ptID: ioas, flags: .nestParent)
            let fault = try b.allocFaultQueue()
            try ctx.expectErrno(.ENOENT, "fault_id 0xffffffff") {
                try b.allocNestedHWPT(deviceID: device.id, parentID: parent, flags: [], data: data, faultQueue: UInt32.max)
            }
            try ctx.expectErrno(.ENOENT, "fault_id = the nest parent \(parent)") {
                try b.allocNestedHWPT(deviceID: device.id, parentID: parent, flags: [], data: data, faultQueue: parent)
            }
            try ctx.expectErrno(.EOPNOTSUPP, "an unknown flag (1 << 31) with FAULT_ID_VALID") {
                try b.allocNestedHWPT(deviceID: device.id, parentID: parent, flags: HWPTAllocFlags(rawValue: 1 << 31), data: data, faultQueue: fault.id)
            }
            let iopf = try ctx.expectSuccess("nested HWPT with fault queue \(fault.id)") {
                try b.allocNestedHWPT(deviceID: device.id, parentID: parent, flags: [], data: data, faultQueue: fault.id)
            }
            try NestedCases.expectIOTLB(ctx, b, iopf, [NestedCases.iotlbDefault, NestedCases.iotlbDefault, NestedCases.iotlbDefault, NestedCases.iotlbDefault])
            try b.attach(deviceID: device.id, to: parent)
            try ctx.expectSuccess("replace onto the nested HWPT with a fault queue") { try b.replace(deviceID: device.id, with: iopf) }
            try ctx.expectErrno(.EBUSY, "destroy of nested HWPT \(iopf) with a device on it") { try b.destroy(iopf) }
            try QueueCases.hook("IOMMU_TEST_OP_TRIGGER_IOPF") {
                try hooks.triggerIOPF(deviceID: device.id, pasid: 0, groupID: 1, perm: 1, address: 0xbeef_0000)
            }
            let f = try expectOneFault(ctx, fault, device: device.id, address: 0xbeef_0000)
            try ctx.expectEqual(try QueueCases.write(ctx, fault.id, [PageResponse(cookie: f.cookie, code: PageResponse.success)]), 8, "bytes of the response")
            // Last: the kernel backend closes its copy of the queue's fd before IOMMU_DESTROY.
            try ctx.expectErrno(.EBUSY, "destroy of fault queue \(fault.id) a nested HWPT delivers to") { try b.destroy(fault.id) }
            try b.replace(deviceID: device.id, with: parent)
            try ctx.expectSuccess("destroy of the nested HWPT once the device left it") { try b.destroy(iopf) }
            try ctx.expectSuccess("destroy of the fault queue after its nested HWPT") { try b.destroy(fault.id) }
        },

        // selftest iommufd_viommu.viommu_alloc_nested_iopf.
        ConformanceCase(
            "nested.fault.alloc-on-viommu",
            "A nested HWPT on a vIOMMU with FAULT_ID_VALID: ENOENT for fault_id 0xffffffff, EOPNOTSUPP for an unknown flag; with a fault queue, attaching needs the device's vDevice (ENOENT without), and then its page requests go to the queue.",
            requires: [.nesting]
        ) { ctx in
            let b = try faulting(ctx)
            let hooks = try QueueCases.hooks(ctx)
            let device = try ctx.device(.primary)
            let s = try VIOMMUCases.setUp(ctx)
            let fault = try b.allocFaultQueue()
            try ctx.expectErrno(.ENOENT, "fault_id 0xffffffff") {
                try b.allocNestedHWPT(deviceID: device.id, parentID: s.viommu, flags: [], data: data, faultQueue: UInt32.max)
            }
            try ctx.expectErrno(.EOPNOTSUPP, "an unknown flag (1 << 31) with FAULT_ID_VALID") {
                try b.allocNestedHWPT(deviceID: device.id, parentID: s.viommu, flags: HWPTAllocFlags(rawValue: 1 << 31), data: data, faultQueue: fault.id)
            }
            let iopf = try ctx.expectSuccess("nested HWPT on vIOMMU \(s.viommu) with fault queue \(fault.id)") {
                try b.allocNestedHWPT(deviceID: device.id, parentID: s.viommu, flags: [], data: data, faultQueue: fault.id)
            }
            try b.attach(deviceID: device.id, to: s.parent)
            try ctx.expectErrno(.ENOENT, "replace onto it without a vDevice") { try b.replace(deviceID: device.id, with: iopf) }
            let vdev = try b.allocVDevice(viommu: s.viommu, deviceID: device.id, virtualID: 0x99)
            try ctx.expectSuccess("replace onto it with the vDevice") { try b.replace(deviceID: device.id, with: iopf) }
            try ctx.expectErrno(.EBUSY, "destroy of nested HWPT \(iopf) with a device on it") { try b.destroy(iopf) }
            try QueueCases.hook("IOMMU_TEST_OP_TRIGGER_IOPF") {
                try hooks.triggerIOPF(deviceID: device.id, pasid: 0, groupID: 3, perm: 2, address: 0xcafe_0000)
            }
            _ = try expectOneFault(ctx, fault, device: device.id, address: 0xcafe_0000)
            try b.replace(deviceID: device.id, with: s.ioas)
            try b.destroy(iopf)
            try b.destroy(vdev)
            try ctx.expectSuccess("destroy of the fault queue after its nested HWPT") { try b.destroy(fault.id) }
        },

        // Dirty tracking is a paging (stage-2) HWPT's: iommufd_get_hwpt_paging answers ENOENT
        // for a nested HWPT in IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_HWPT_GET_DIRTY_BITMAP and
        // IOMMU_TEST_OP_DIRTY (get_md_pagetable); a nest parent allocated with
        // DIRTY_TRACKING tracks the DMA of a device on a nested HWPT over it.
        ConformanceCase(
            "nested.dirty.tracked-by-nest-parent",
            "A nest parent allocated with DIRTY_TRACKING takes a nested HWPT and a device on it; starting tracking, a simulated write and a bitmap read name the parent (ENOENT on the nested HWPT), and the read reports the write.",
            requires: [.nesting, .dirtyDevice]
        ) { ctx in
            let b = try NestedCases.nested(ctx)
            let p = ctx.pageSize
            let device = try ctx.device(.primary)
            let ioas = try b.allocIOAS()
            try b.setOption(.hugePages, objectID: ioas, value: 0)
            let parent = try ctx.expectSuccess("a nest parent with dirty tracking") {
                try b.allocHWPT(deviceID: device.id, ptID: ioas, flags: [.nestParent, .dirtyTracking])
            }
            let length = 16 * p
            let iova = try ctx.baseIOVA(ioas: ioas, length: length)
            try ctx.mapFixed(ioas: ioas, iova: iova, length: length)
            let nested = try b.allocNestedHWPT(deviceID: device.id, parentID: parent, flags: [], data: data)
            try ctx.expectSuccess("attach to the nested HWPT over a dirty-tracking parent") { try b.attach(deviceID: device.id, to: nested) }
            try ctx.expectErrno(.ENOENT, "IOMMU_HWPT_SET_DIRTY_TRACKING on nested HWPT \(nested)") { try b.setDirtyTracking(hwpt: nested, enabled: true) }
            try ctx.expectSuccess("IOMMU_HWPT_SET_DIRTY_TRACKING on the parent") { try b.setDirtyTracking(hwpt: parent, enabled: true) }
            try ctx.expectErrno(.ENOENT, "IOMMU_TEST_OP_DIRTY on nested HWPT \(nested)") {
                try ctx.deviceWrite(hwpt: nested, iova: iova + p, length: p, pageSize: p)
            }
            try ctx.deviceWrite(hwpt: parent, iova: iova + p, length: 2 * p, pageSize: p)
            try ctx.expectErrno(.ENOENT, "IOMMU_HWPT_GET_DIRTY_BITMAP on nested HWPT \(nested)") {
                try ctx.dirtyBitmap(hwpt: nested, iova: iova, length: length, pageSize: p, clear: false)
            }
            let words = try ctx.expectSuccess("IOMMU_HWPT_GET_DIRTY_BITMAP on the parent") {
                try ctx.dirtyBitmap(hwpt: parent, iova: iova, length: length, pageSize: p, clear: true)
            }
            try ctx.expectEqual(DirtyCases.bits(words), [1, 2], "dirty pages of the parent")
            try b.replace(deviceID: device.id, with: parent)
            try b.destroy(nested)
        },

        // iommufd_viommu_alloc_ioctl: the device only names the physical IOMMU
        // (iommufd_device_get_iommu_dev); it need not be attached at all, nor to the parent.
        ConformanceCase(
            "viommu.alloc.device-attachment-does-not-matter",
            "IOMMU_VIOMMU_ALLOC succeeds for a device that is not attached, and for one attached to a nested HWPT over the nest parent, which stays attached there (the parent stays EBUSY, a vDevice can be made).",
            requires: [.nesting]
        ) { ctx in
            let b = try NestedCases.nested(ctx)
            let device = try ctx.device(.primary)
            let ioas = try b.allocIOAS()
            let parent = try b.allocHWPT(deviceID: device.id, ptID: ioas, flags: .nestParent)
            let first = try ctx.expectSuccess("vIOMMU for a device attached nowhere") { try b.allocVIOMMU(deviceID: device.id, hwpt: parent, type: VIOMMUCases.type) }
            try b.destroy(first)
            let nested = try b.allocNestedHWPT(deviceID: device.id, parentID: parent, flags: [], data: data)
            try b.attach(deviceID: device.id, to: nested)
            let viommu = try ctx.expectSuccess("vIOMMU for a device on a nested HWPT over the parent") {
                try b.allocVIOMMU(deviceID: device.id, hwpt: parent, type: VIOMMUCases.type)
            }
            try ctx.expectErrno(.EBUSY, "destroy of nested HWPT \(nested): the device is still on it") { try b.destroy(nested) }
            let vdev = try ctx.expectSuccess("vDevice on the new vIOMMU") { try b.allocVDevice(viommu: viommu, deviceID: device.id, virtualID: 0x42) }
            try b.destroy(vdev)
            try b.destroy(viommu)
            try b.replace(deviceID: device.id, with: parent)
            try b.destroy(nested)
        },
    ]
}
