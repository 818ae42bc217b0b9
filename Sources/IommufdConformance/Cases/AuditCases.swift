import IommufdCore

// MARK: i14audit

/// Refusals of issue 14's objects that the simulator models and the daemon's test hooks or
/// callers can reach, but that no other case compared with the kernel (branch `i14audit`).
enum AuditCases {
    static let all: [ConformanceCase] = [
        // iommufd_test_trigger_vevent → iommufd_viommu_report_event: no vEVENTQ of the type on
        // the device's vIOMMU → EOPNOTSUPP (nothing queued anywhere).
        ConformanceCase(
            "veventq.trigger.without-a-veventq-of-the-type-is-EOPNOTSUPP",
            "A device on a nested HWPT of a vIOMMU where it has a vDevice reports a vEVENT only while the vIOMMU has a vEVENTQ of the type: EOPNOTSUPP before one is allocated and after it is destroyed, one event (sequence 0) in between.",
            requires: [.nesting]
        ) { ctx in
            let hooks = try QueueCases.hooks(ctx)
            let s = try QueueCases.viommu(ctx)
            let device = try ctx.device(.primary)
            _ = try ctx.backend.allocVDevice(viommu: s.viommu, deviceID: device.id, virtualID: 0x42)
            let nested = try QueueCases.hook("a nested HWPT with IOMMU_HWPT_DATA_SELFTEST") {
                try hooks.allocSelftestNestedHWPT(deviceID: device.id, parent: s.viommu)
            }
            try ctx.backend.attach(deviceID: device.id, to: nested)
            try ctx.expectErrno(.EOPNOTSUPP, "trigger of a vEVENT before vIOMMU \(s.viommu) has a vEVENTQ") {
                try QueueCases.hook("IOMMU_TEST_OP_TRIGGER_VEVENT") { try hooks.triggerVEvent(deviceID: device.id) }
            }
            let q = try ctx.expectSuccess("a selftest vEVENTQ on vIOMMU \(s.viommu)") {
                try ctx.backend.allocVEventQueue(viommu: s.viommu, type: QueueCases.veventType, depth: 4)
            }
            try ctx.expectEqual(try QueueCases.read(ctx, q.id, 64), [], "read of the new vEVENTQ (the refused trigger queued nothing)")
            try ctx.expectSuccess("trigger of a vEVENT with the vEVENTQ") { try hooks.triggerVEvent(deviceID: device.id) }
            try ctx.expect(QueueCases.waitReadable(q.fd), "the vEVENTQ's fd did not poll readable after the event")
            let events = VEvent.parse(try QueueCases.read(ctx, q.id, 64), dataLength: EventQueueABI.selftestEventSize)
            try ctx.expectEqual(events, [VEvent(flags: 0, sequence: 0, data: [0x42, 0, 0, 0])], "the one event")
            try ctx.expectSuccess("destroy of the vEVENTQ") { try ctx.backend.destroy(q.id) }
            try ctx.expectErrno(.EOPNOTSUPP, "trigger of a vEVENT after the vEVENTQ is destroyed") { try hooks.triggerVEvent(deviceID: device.id) }
        },

        // iommufd_device_replace with a pasid → iommufd_hwpt_pasid_compat: !hwpt->pasid_compat
        // → EINVAL before the driver is asked, so the PASID stays where it was.
        ConformanceCase(
            "pasid.replace.hwpt-without-alloc-pasid-is-EINVAL-and-keeps-the-old-hwpt",
            "Replacing an attached PASID onto an HWPT allocated without IOMMU_HWPT_ALLOC_PASID is EINVAL, and the PASID stays on the HWPT it was on.",
            requires: [.pasidDevice]
        ) { ctx in
            let s = try PASIDCases.setUp(ctx)
            let first = try s.b.allocHWPT(deviceID: s.device, ptID: s.ioas, flags: .pasid)
            let plain = try s.b.allocHWPT(deviceID: s.device, ptID: s.ioas, flags: [])
            try PASIDCases.withCleanup(s, [300]) {
                try ctx.expectSuccess("attaching PASID 300 to HWPT \(first)") { try s.b.attachPASID(deviceID: s.device, pasid: 300, to: first) }
                try ctx.expectErrno(.EINVAL, "replacing PASID 300 onto HWPT \(plain) (no IOMMU_HWPT_ALLOC_PASID)") {
                    try s.b.replacePASID(deviceID: s.device, pasid: 300, with: plain)
                }
                try PASIDCases.expectAttached(ctx, s, 300, first, "after the refused replace")
                try ctx.expectErrno(.EBUSY, "IOMMU_DESTROY of HWPT \(first), which PASID 300 is still on") { try s.b.destroy(first) }
                try ctx.expectSuccess("IOMMU_DESTROY of HWPT \(plain), which nothing uses") { try s.b.destroy(plain) }
            }
        },
    ]
}
