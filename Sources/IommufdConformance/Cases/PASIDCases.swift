import IommufdCore

// MARK: pasid

/// PASID attachments (device.c `iommufd_device_attach/replace/detach` with a pasid,
/// `iommufd_hwpt_pasid_compat`; selftest `iommufd_device_pasid.pasid_attach` on a
/// `MOCK_FLAGS_DEVICE_PASID` device, whose PASID width is 20 bits). Each case attaches the
/// device's RID to a PASID-compatible HWPT first, as the selftest does: on the kernel a mock
/// device the daemon has not attached sits on an automatic (not PASID-compatible) domain of its
/// parking IOAS. Every case detaches its PASIDs before it ends (the kernel cannot free a mock
/// device that still has PASID attachments).
enum PASIDCases {
    typealias PASIDBackend = any PASIDIommuBackend & PASIDTestHooks

    /// The PASID backend, the PASID-capable device, an IOAS, and an HWPT allocated with
    /// IOMMU_HWPT_ALLOC_PASID that the device's RID is attached to.
    struct Setup {
        var b: PASIDBackend
        var device: ObjectID
        var ioas: ObjectID
        var rid: ObjectID
    }

    static func setUp(_ ctx: ConformanceContext) throws -> Setup {
        guard let b = ctx.backend as? PASIDBackend else { throw ConformanceSkip("the backend has no PASID attachments") }
        let device = try ctx.device(.pasid).id
        let ioas = try b.allocIOAS()
        let rid = try ctx.expectSuccess("IOMMU_HWPT_ALLOC with IOMMU_HWPT_ALLOC_PASID for device \(device)") {
            try b.allocHWPT(deviceID: device, ptID: ioas, flags: .pasid)
        }
        try ctx.expectSuccess("attaching the RID of device \(device) to PASID-compatible HWPT \(rid)") { try b.attach(deviceID: device, to: rid) }
        return Setup(b: b, device: device, ioas: ioas, rid: rid)
    }

    /// Checks `pasid` of `s.device` is attached to `hwpt` (nil: to nothing).
    static func expectAttached(_ ctx: ConformanceContext, _ s: Setup, _ pasid: UInt32, _ hwpt: ObjectID?, _ what: String) throws {
        try ctx.expectSuccess("\(what): PASID \(pasid) is attached to \(hwpt.map { "HWPT \($0)" } ?? "nothing") (IOMMU_TEST_OP_PASID_CHECK_HWPT)") {
            try s.b.checkPASID(deviceID: s.device, pasid: pasid, hwpt: hwpt)
        }
    }

    /// Runs `body` and detaches `pasids` afterwards, whatever happened.
    static func withCleanup(_ s: Setup, _ pasids: [UInt32], _ body: () throws -> Void) throws {
        defer { for p in pasids { try? s.b.detachPASID(deviceID: s.device, pasid: p) } }
        try body()
    }

    static let all: [ConformanceCase] = [
        // selftest pasid_attach: attach s2_hwpt to pasid 100, replace with another, detach.
        ConformanceCase(
            "pasid.attach-replace-detach",
            "A PASID attaches to an HWPT allocated with IOMMU_HWPT_ALLOC_PASID, replaces onto another such HWPT (the first is then free to destroy) and detaches, leaving nothing attached.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            let first = try s.b.allocHWPT(deviceID: s.device, ptID: s.ioas, flags: .pasid)
            let second = try s.b.allocHWPT(deviceID: s.device, ptID: s.ioas, flags: .pasid)
            try withCleanup(s, [100]) {
                try expectAttached(ctx, s, 100, nil, "before the attach")
                try ctx.expectSuccess("attaching PASID 100 to HWPT \(first)") { try s.b.attachPASID(deviceID: s.device, pasid: 100, to: first) }
                try expectAttached(ctx, s, 100, first, "after the attach")
                try ctx.expectSuccess("replacing PASID 100 onto HWPT \(second)") { try s.b.replacePASID(deviceID: s.device, pasid: 100, with: second) }
                try expectAttached(ctx, s, 100, second, "after the replace")
                try ctx.expectSuccess("destroying HWPT \(first), which PASID 100 left") { try s.b.destroy(first) }
                try ctx.expectSuccess("replacing PASID 100 onto the HWPT it is on") { try s.b.replacePASID(deviceID: s.device, pasid: 100, with: second) }
                try ctx.expectSuccess("detaching PASID 100") { try s.b.detachPASID(deviceID: s.device, pasid: 100) }
                try expectAttached(ctx, s, 100, nil, "after the detach")
                try ctx.expectSuccess("destroying HWPT \(second) after the detach") { try s.b.destroy(second) }
            }
        },

        // The HWPT holds a users reference per attachment: IOMMU_DESTROY is EBUSY.
        ConformanceCase(
            "pasid.hwpt-with-a-pasid-attached-is-EBUSY-to-destroy",
            "An HWPT a PASID is attached to cannot be destroyed (EBUSY) until the PASID is detached.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            let hwpt = try s.b.allocHWPT(deviceID: s.device, ptID: s.ioas, flags: .pasid)
            try withCleanup(s, [7]) {
                try ctx.expectSuccess("attaching PASID 7 to HWPT \(hwpt)") { try s.b.attachPASID(deviceID: s.device, pasid: 7, to: hwpt) }
                try ctx.expectErrno(.EBUSY, "IOMMU_DESTROY of HWPT \(hwpt) with PASID 7 attached") { try s.b.destroy(hwpt) }
                try s.b.detachPASID(deviceID: s.device, pasid: 7)
                try ctx.expectSuccess("IOMMU_DESTROY of HWPT \(hwpt) after the detach") { try s.b.destroy(hwpt) }
            }
        },

        // iommufd_hwpt_pasid_compat: !hwpt->pasid_compat → EINVAL.
        ConformanceCase(
            "pasid.attach.hwpt-without-alloc-pasid-is-EINVAL",
            "Attaching a PASID to an HWPT allocated without IOMMU_HWPT_ALLOC_PASID is EINVAL and leaves the PASID unattached.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            let plain = try s.b.allocHWPT(deviceID: s.device, ptID: s.ioas, flags: [])
            try withCleanup(s, [100]) {
                try ctx.expectErrno(.EINVAL, "attaching PASID 100 to HWPT \(plain) (no IOMMU_HWPT_ALLOC_PASID)") {
                    try s.b.attachPASID(deviceID: s.device, pasid: 100, to: plain)
                }
                try expectAttached(ctx, s, 100, nil, "after the refusal")
            }
        },

        // iommufd_hwpt_pasid_compat: the RID's domain lacks pasid_compat → EINVAL.
        ConformanceCase(
            "pasid.attach.while-rid-on-non-pasid-hwpt-is-EINVAL",
            "While the device's RID is attached to an HWPT without IOMMU_HWPT_ALLOC_PASID, attaching a PASID, even to a PASID-compatible HWPT, is EINVAL.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            let plain = try s.b.allocHWPT(deviceID: s.device, ptID: s.ioas, flags: [])
            try s.b.replace(deviceID: s.device, with: plain)
            try withCleanup(s, [100]) {
                try ctx.expectErrno(.EINVAL, "attaching PASID 100 to HWPT \(s.rid) while the RID is on HWPT \(plain)") {
                    try s.b.attachPASID(deviceID: s.device, pasid: 100, to: s.rid)
                }
                try expectAttached(ctx, s, 100, nil, "after the refusal")
            }
        },

        // iommufd_hwpt_pasid_compat(IOMMU_NO_PASID): a PASID is attached → the RID cannot move
        // to a domain without pasid_compat.
        ConformanceCase(
            "pasid.rid-to-non-pasid-hwpt-while-a-pasid-is-attached-is-EINVAL",
            "While a PASID of the device is attached, replacing its RID onto an HWPT without IOMMU_HWPT_ALLOC_PASID is EINVAL; after the PASID is detached it succeeds.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            let plain = try s.b.allocHWPT(deviceID: s.device, ptID: s.ioas, flags: [])
            try withCleanup(s, [100]) {
                try s.b.attachPASID(deviceID: s.device, pasid: 100, to: s.rid)
                try ctx.expectErrno(.EINVAL, "replacing the RID onto HWPT \(plain) with PASID 100 attached") {
                    try s.b.replace(deviceID: s.device, with: plain)
                }
                try s.b.detachPASID(deviceID: s.device, pasid: 100)
                try ctx.expectSuccess("replacing the RID onto HWPT \(plain) with no PASID attached") { try s.b.replace(deviceID: s.device, with: plain) }
            }
        },

        // iommufd_device_auto_get_domain: no automatic domain is PASID-compatible.
        ConformanceCase(
            "pasid.attach.to-an-ioas-is-EINVAL",
            "Attaching a PASID to an IOAS (an automatic domain, never PASID-compatible) is EINVAL; replacing an attached PASID onto an IOAS is EINVAL and keeps its HWPT.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            try withCleanup(s, [100, 200]) {
                try ctx.expectErrno(.EINVAL, "attaching PASID 100 to IOAS \(s.ioas)") { try s.b.attachPASID(deviceID: s.device, pasid: 100, to: s.ioas) }
                try expectAttached(ctx, s, 100, nil, "after the refusal")
                try s.b.attachPASID(deviceID: s.device, pasid: 200, to: s.rid)
                try ctx.expectErrno(.EINVAL, "replacing PASID 200 onto IOAS \(s.ioas)") { try s.b.replacePASID(deviceID: s.device, pasid: 200, with: s.ioas) }
                try expectAttached(ctx, s, 200, s.rid, "after the refused replace")
            }
        },

        // iommufd_hw_pagetable_attach: xa_insert into the PASID's device_array → EBUSY.
        ConformanceCase(
            "pasid.attach.attached-pasid-is-EBUSY",
            "Attaching a PASID that is attached is EBUSY, to the same HWPT or another (replace moves it); its HWPT stays.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            let other = try s.b.allocHWPT(deviceID: s.device, ptID: s.ioas, flags: .pasid)
            try withCleanup(s, [100]) {
                try s.b.attachPASID(deviceID: s.device, pasid: 100, to: s.rid)
                try ctx.expectErrno(.EBUSY, "attaching attached PASID 100 to the same HWPT \(s.rid)") { try s.b.attachPASID(deviceID: s.device, pasid: 100, to: s.rid) }
                try ctx.expectErrno(.EBUSY, "attaching attached PASID 100 to HWPT \(other)") { try s.b.attachPASID(deviceID: s.device, pasid: 100, to: other) }
                try ctx.expectErrno(.EBUSY, "attaching attached PASID 100 to IOAS \(s.ioas)") { try s.b.attachPASID(deviceID: s.device, pasid: 100, to: s.ioas) }
                try expectAttached(ctx, s, 100, s.rid, "after the refusals")
            }
        },

        // iommufd_device_do_replace: no attach for the pasid → EINVAL.
        ConformanceCase(
            "pasid.replace.unattached-pasid-is-EINVAL",
            "Replacing the HWPT of a PASID that is not attached is EINVAL and attaches nothing.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            try withCleanup(s, [200]) {
                try ctx.expectErrno(.EINVAL, "replacing unattached PASID 200 onto HWPT \(s.rid)") { try s.b.replacePASID(deviceID: s.device, pasid: 200, with: s.rid) }
                try expectAttached(ctx, s, 200, nil, "after the refusal")
            }
        },

        // selftest: "detach pasid without attaching ... should not result in failure".
        ConformanceCase(
            "pasid.detach.unattached-pasid-succeeds",
            "Detaching a PASID that is not attached succeeds and changes nothing.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            try ctx.expectSuccess("detaching unattached PASID 100") { try s.b.detachPASID(deviceID: s.device, pasid: 100) }
            try expectAttached(ctx, s, 100, nil, "after the detach")
        },

        // iommu_attach_device_pasid: pasid >= dev->iommu->max_pasids → EINVAL.
        ConformanceCase(
            "pasid.attach.beyond-the-device-width-is-EINVAL",
            "Attaching a PASID the device cannot issue (1 << 20 on a 20-bit device) is EINVAL; the highest one (2^20 - 1) attaches.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            let info = try s.b.hwInfo(deviceID: s.device)
            try ctx.expectEqual(info.maxPasidLog2, 20, "out_max_pasid_log2 of PASID-capable device \(s.device)")
            let top: UInt32 = (1 << 20) - 1
            try withCleanup(s, [1 << 20, top]) {
                try ctx.expectErrno(.EINVAL, "attaching PASID 0x100000 (beyond 20 bits)") { try s.b.attachPASID(deviceID: s.device, pasid: 1 << 20, to: s.rid) }
                try ctx.expectSuccess("attaching PASID 0xfffff") { try s.b.attachPASID(deviceID: s.device, pasid: top, to: s.rid) }
                try expectAttached(ctx, s, top, s.rid, "after attaching the highest PASID")
            }
        },

        // iommu_attach_device_pasid on a device with no PASID support (max_pasids 0).
        ConformanceCase(
            "pasid.attach.device-without-pasid-is-EINVAL",
            "A device without PASID support (out_max_pasid_log2 0) can use a PASID-compatible HWPT for its RID, but attaching any of its PASIDs is EINVAL.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            let plain = try ctx.device(.noPASID).id
            try ctx.expectEqual(try s.b.hwInfo(deviceID: plain).maxPasidLog2, 0, "out_max_pasid_log2 of device \(plain)")
            try ctx.expectSuccess("attaching the RID of device \(plain) to PASID-compatible HWPT \(s.rid)") { try s.b.attach(deviceID: plain, to: s.rid) }
            defer { try? s.b.detachPASID(deviceID: plain, pasid: 100) }
            try ctx.expectErrno(.EINVAL, "attaching PASID 100 of device \(plain), which has no PASID") {
                try s.b.attachPASID(deviceID: plain, pasid: 100, to: s.rid)
            }
        },

        // mock_domain_set_dev_pasid_nop: the second set_dev_pasid of PASID 1024 fails (ENOMEM)
        // and the core puts the old domain back.
        ConformanceCase(
            "pasid.replace.driver-failure-keeps-the-old-hwpt",
            "When the IOMMU driver fails a PASID replace (the selftest mock driver fails PASID 1024's with ENOMEM), the PASID stays on its old HWPT.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            let other = try s.b.allocHWPT(deviceID: s.device, ptID: s.ioas, flags: .pasid)
            try withCleanup(s, [1024]) {
                try s.b.attachPASID(deviceID: s.device, pasid: 1024, to: s.rid)
                try ctx.expectErrno(.ENOMEM, "replacing PASID 1024 onto HWPT \(other) (the mock driver's fake error)") {
                    try s.b.replacePASID(deviceID: s.device, pasid: 1024, with: other)
                }
                try expectAttached(ctx, s, 1024, s.rid, "after the failed replace")
            }
        },

        // iommufd_test_trigger_iopf with a pasid → iommu_report_device_fault finds the PASID's
        // attach handle (selftest: test_cmd_trigger_iopf_pasid on pasid 2048).
        ConformanceCase(
            "pasid.iopf-goes-to-the-fault-queue-of-the-pasid-hwpt",
            "A page request with a PASID reaches the fault queue of the HWPT that PASID is attached to, flagged PASID_VALID with that PASID; one for a PASID not attached reaches no queue.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try setUp(ctx)
            let hooks = try QueueCases.hooks(ctx)
            let fault = try ctx.backend.allocFaultQueue()
            let hwpt = try ctx.expectSuccess("IOMMU_HWPT_ALLOC with IOMMU_HWPT_ALLOC_PASID and fault queue \(fault.id)") {
                try ctx.backend.allocHWPT(deviceID: s.device, ptID: s.ioas, flags: .pasid, faultQueue: fault.id)
            }
            try withCleanup(s, [2048]) {
                try ctx.expectSuccess("attaching PASID 2048 to fault HWPT \(hwpt)") { try s.b.attachPASID(deviceID: s.device, pasid: 2048, to: hwpt) }
                try QueueCases.hook("IOMMU_TEST_OP_TRIGGER_IOPF") {
                    try hooks.triggerIOPF(deviceID: s.device, pasid: 7, groupID: 1, perm: 1, address: 0x1000)
                }
                try ctx.expectEqual(try QueueCases.read(ctx, fault.id, 40), [], "read after a fault on unattached PASID 7")
                try QueueCases.hook("IOMMU_TEST_OP_TRIGGER_IOPF") {
                    try hooks.triggerIOPF(deviceID: s.device, pasid: 2048, groupID: 3, perm: 1, address: 0xbeef_0000)
                }
                try ctx.expect(QueueCases.waitReadable(fault.fd), "the fault queue's fd did not poll readable after the PASID page request")
                let faults = PageFault.parse(try QueueCases.read(ctx, fault.id, 80))
                try ctx.expectEqual(faults.count, 1, "faults read")
                try ctx.expectEqual(faults[0].pasid, 2048, "fault pasid")
                try ctx.expectEqual(faults[0].deviceID, s.device, "fault dev_id")
                try ctx.expectEqual(faults[0].address, 0xbeef_0000, "fault addr")
                try ctx.expect(faults[0].flags & PageFault.pasidValid != 0, "fault flags 0x\(String(faults[0].flags, radix: 16)) lack PASID_VALID")
                try ctx.expect(faults[0].flags & PageFault.lastPage != 0, "fault flags 0x\(String(faults[0].flags, radix: 16)) lack LAST_PAGE")
            }
        },

        // Nested HWPTs allocated with IOMMU_HWPT_ALLOC_PASID take PASIDs too (selftest:
        // nested_hwpt_id[0] on pasid 100).
        ConformanceCase(
            "pasid.attach.nested-hwpt",
            "A nested HWPT allocated with IOMMU_HWPT_ALLOC_PASID on a nest parent takes a PASID; one allocated without it is EINVAL.",
            requires: [.pasidDevice, .nesting]
        ) { ctx in
            let s = try setUp(ctx)
            guard let n = ctx.backend as? any NestedIommuBackend else { throw ConformanceSkip("the backend has no nested HWPTs") }
            let parent = try n.allocHWPT(deviceID: s.device, ptID: s.ioas, flags: .nestParent)
            let data = NestedHWPTData.selftest(iotlb: NestedHWPTData.selftestIOTLBDefault, pagetableType: 0).userData
            let withPASID = try ctx.expectSuccess("nested HWPT with IOMMU_HWPT_ALLOC_PASID") { try n.allocNestedHWPT(deviceID: s.device, parentID: parent, flags: .pasid, data: data) }
            let without = try n.allocNestedHWPT(deviceID: s.device, parentID: parent, flags: [], data: data)
            try withCleanup(s, [100]) {
                try ctx.expectErrno(.EINVAL, "attaching PASID 100 to nested HWPT \(without) (no IOMMU_HWPT_ALLOC_PASID)") {
                    try s.b.attachPASID(deviceID: s.device, pasid: 100, to: without)
                }
                try ctx.expectSuccess("attaching PASID 100 to nested HWPT \(withPASID)") { try s.b.attachPASID(deviceID: s.device, pasid: 100, to: withPASID) }
                try expectAttached(ctx, s, 100, withPASID, "after the attach")
                try ctx.expectErrno(.EBUSY, "IOMMU_DESTROY of nested HWPT \(withPASID) with PASID 100 attached") { try n.destroy(withPASID) }
            }
        },
    ]
}
