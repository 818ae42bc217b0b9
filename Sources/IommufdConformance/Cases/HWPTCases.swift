import IommufdCore

/// HWPT allocation and device attachment (hw_pagetable.c, device.c; selftest fixtures
/// `iommufd_ioas`, `iommufd_mock_domain`, `iommufd_dirty_tracking`).
enum HWPTCases {
    static let all: [ConformanceCase] = automatic + allocation + attachment + mdev

    static let automatic: [ConformanceCase] = [
        // iommufd_device_auto_get_domain: attaching to an IOAS allocates an HWPT.
        ConformanceCase(
            "hwpt.auto.attach-to-ioas-creates-hwpt",
            "Attaching a device to an IOAS attaches it to a new automatic HWPT, whose ID is returned and which is busy while used.",
            requires: [.device]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let hwpt = try ctx.backend.attach(deviceID: try ctx.device(.primary).id, to: ioas)
            try ctx.expect(hwpt != ioas, "attach returned the IOAS ID \(ioas), expected a new HWPT ID")
            try ctx.expectErrno(.EBUSY, "destroy of the automatic HWPT \(hwpt) while attached") { try ctx.backend.destroy(hwpt) }
        },

        // iommufd_device_auto_get_domain: "any domain that is willing to attach to the device
        // is interchangeable with any other".
        ConformanceCase(
            "hwpt.auto.compatible-devices-share-hwpt",
            "A second compatible device attached to the same IOAS reuses the first device's automatic HWPT.",
            requires: [.peerDevice]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let first = try ctx.backend.attach(deviceID: try ctx.device(.primary).id, to: ioas)
            let second = try ctx.backend.attach(deviceID: try ctx.device(.peer).id, to: ioas)
            try ctx.expectEqual(second, first, "automatic HWPT of the second device")
        },

        // Automatic domains are allocated without the dirty flag, so a device that cannot
        // track dirty pages accepts them (mock_domain_nop_attach only refuses dirty_ops).
        ConformanceCase(
            "hwpt.auto.no-dirty-device-shares-hwpt",
            "A device that cannot track dirty pages shares the automatic HWPT of a dirty-capable device on the same IOMMU.",
            requires: [.noDirtyDevice]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let first = try ctx.backend.attach(deviceID: try ctx.device(.primary).id, to: ioas)
            let second = try ctx.backend.attach(deviceID: try ctx.device(.noDirty).id, to: ioas)
            try ctx.expectEqual(second, first, "automatic HWPT of the device without dirty tracking")
        },

        // iommufd_device_auto_get_domain: EINVAL from attach means incompatible, try the next,
        // then allocate a new domain.
        ConformanceCase(
            "hwpt.auto.other-iommu-gets-own-hwpt",
            "A device behind another IOMMU instance attached to the same IOAS gets its own automatic HWPT.",
            requires: [.otherIOMMUDevice]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let first = try ctx.backend.attach(deviceID: try ctx.device(.primary).id, to: ioas)
            let other = try ctx.backend.attach(deviceID: try ctx.device(.otherIOMMU).id, to: ioas)
            try ctx.expect(other != first, "device behind another IOMMU shares HWPT \(first)")
        },

        // iommufd_hw_pagetable_put: an automatic HWPT is destroyed with its last device.
        ConformanceCase(
            "hwpt.auto.freed-with-last-device",
            "An automatic HWPT disappears when its last device detaches, which frees the IOAS.",
            requires: [.peerDevice]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let primary = try ctx.device(.primary)
            let peer = try ctx.device(.peer)
            let hwpt = try ctx.backend.attach(deviceID: primary.id, to: ioas)
            try ctx.backend.attach(deviceID: peer.id, to: ioas)
            try ctx.backend.detach(deviceID: primary.id)
            try ctx.expectErrno(.EBUSY, "destroy of the automatic HWPT while one device remains") { try ctx.backend.destroy(hwpt) }
            try ctx.backend.detach(deviceID: peer.id)
            try ctx.expectErrno(.ENOENT, "destroy of the automatic HWPT after the last detach") { try ctx.backend.destroy(hwpt) }
            try ctx.expectSuccess("destroy of the IOAS after the last detach") { try ctx.backend.destroy(ioas) }
        },

        // iommufd_device_do_replace + iommufd_hw_pagetable_put of the old HWPT.
        ConformanceCase(
            "hwpt.auto.replace-moves-device-and-frees-old",
            "Re-attaching a device to another IOAS moves it to a new automatic HWPT and frees the old one.",
            requires: [.device]
        ) { ctx in
            let device = try ctx.device(.primary)
            let first = try ctx.backend.allocIOAS()
            let second = try ctx.backend.allocIOAS()
            let old = try ctx.backend.attach(deviceID: device.id, to: first)
            let new = try ctx.backend.replace(deviceID: device.id, with: second)
            try ctx.expect(new != old, "replace into another IOAS kept HWPT \(old)")
            try ctx.expectErrno(.ENOENT, "destroy of the old automatic HWPT") { try ctx.backend.destroy(old) }
            try ctx.expectSuccess("destroy of the IOAS the device left") { try ctx.backend.destroy(first) }
            try ctx.expectErrno(.EBUSY, "destroy of the IOAS the device moved to") { try ctx.backend.destroy(second) }
        },
    ]

    static let allocation: [ConformanceCase] = [
        // selftest iommufd_dirty_tracking.enforce_dirty: "IOMMU device does not support dirty tracking".
        ConformanceCase(
            "hwpt.alloc.dirty-on-incapable-device-is-EOPNOTSUPP",
            "Allocating a dirty-tracking HWPT for a device that cannot track dirty pages is EOPNOTSUPP.",
            requires: [.noDirtyDevice]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectErrno(.EOPNOTSUPP, "dirty-tracking HWPT for the device without dirty tracking") {
                try ctx.backend.allocHWPT(deviceID: try ctx.device(.noDirty).id, ptID: ioas, flags: .dirtyTracking)
            }
        },

        // iommufd_hwpt_paging_alloc: flags & ~valid_flags.
        ConformanceCase(
            "hwpt.alloc.unknown-flag-is-EOPNOTSUPP",
            "IOMMU_HWPT_ALLOC with a flag the uAPI does not define is EOPNOTSUPP.",
            requires: [.device]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectErrno(.EOPNOTSUPP, "HWPT with flag bit 7") {
                try ctx.backend.allocHWPT(deviceID: try ctx.device(.primary).id, ptID: ioas, flags: HWPTAllocFlags(rawValue: 1 << 7))
            }
        },

        // iommufd_hwpt_alloc: iommufd_get_object(pt_id) failing is EINVAL; a non-IOAS/HWPT/vIOMMU too.
        ConformanceCase(
            "hwpt.alloc.bad-pt-is-EINVAL",
            "IOMMU_HWPT_ALLOC from a pt_id that is no object, or not an IOAS, HWPT or vIOMMU, is EINVAL.",
            requires: [.device]
        ) { ctx in
            let device = try ctx.device(.primary)
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectErrno(.EINVAL, "HWPT from unknown pt_id \(ioas + 100)") {
                try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas + 100, flags: [])
            }
            try ctx.expectErrno(.EINVAL, "HWPT from the device's own ID") {
                try ctx.backend.allocHWPT(deviceID: device.id, ptID: device.id, flags: [])
            }
        },

        // iommufd_hwpt_alloc: iommufd_get_device.
        ConformanceCase(
            "hwpt.alloc.not-a-device-is-ENOENT",
            "IOMMU_HWPT_ALLOC for a dev_id that is not a bound device is ENOENT."
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectErrno(.ENOENT, "HWPT for dev_id = the IOAS ID") { try ctx.backend.allocHWPT(deviceID: ioas, ptID: ioas, flags: []) }
        },

        // The driver's domain_alloc_paging_flags refuses NEST_PARENT without nesting support.
        ConformanceCase(
            "hwpt.alloc.nest-parent-without-nesting-is-EOPNOTSUPP",
            "A nest-parent HWPT for a device whose IOMMU cannot nest is EOPNOTSUPP.",
            requires: [.nonNestingDevice]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectErrno(.EOPNOTSUPP, "nest-parent HWPT on an IOMMU without nesting") {
                try ctx.backend.allocHWPT(deviceID: try ctx.device(.nonNesting).id, ptID: ioas, flags: .nestParent)
            }
        },

        // iommufd_hwpt_alloc (immediate_attach = false) and iommufd_hw_pagetable_put (not auto).
        ConformanceCase(
            "hwpt.user.outlives-detach-and-busy-while-attached",
            "A user-allocated HWPT is EBUSY to destroy while a device is attached and survives its last detach.",
            requires: [.device]
        ) { ctx in
            let device = try ctx.device(.primary)
            let ioas = try ctx.backend.allocIOAS()
            let hwpt = try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: [])
            try ctx.expectEqual(try ctx.backend.attach(deviceID: device.id, to: hwpt), hwpt, "page table attached")
            try ctx.expectErrno(.EBUSY, "destroy of the attached HWPT") { try ctx.backend.destroy(hwpt) }
            try ctx.expectErrno(.EBUSY, "destroy of the IOAS under the HWPT") { try ctx.backend.destroy(ioas) }
            try ctx.backend.detach(deviceID: device.id)
            try ctx.expectSuccess("destroy of the HWPT after detach") { try ctx.backend.destroy(hwpt) }
            try ctx.expectSuccess("destroy of the IOAS after its HWPT") { try ctx.backend.destroy(ioas) }
        },
    ]

    static let attachment: [ConformanceCase] = [
        // selftest iommufd_dirty_tracking.enforce_dirty; mock_domain_nop_attach.
        ConformanceCase(
            "hwpt.attach.dirty-hwpt-to-no-dirty-device-is-EINVAL",
            "Attaching a device that cannot track dirty pages to a dirty-tracking HWPT is EINVAL.",
            requires: [.noDirtyDevice]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let hwpt = try ctx.backend.allocHWPT(deviceID: try ctx.device(.primary).id, ptID: ioas, flags: .dirtyTracking)
            try ctx.expectErrno(.EINVAL, "attach of the device without dirty tracking to dirty HWPT \(hwpt)") {
                try ctx.backend.attach(deviceID: try ctx.device(.noDirty).id, to: hwpt)
            }
        },

        // The iommu core refuses a domain owned by another IOMMU instance.
        ConformanceCase(
            "hwpt.attach.other-iommu-hwpt-is-EINVAL",
            "Attaching a device to an HWPT of another IOMMU instance is EINVAL.",
            requires: [.otherIOMMUDevice]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let hwpt = try ctx.backend.allocHWPT(deviceID: try ctx.device(.primary).id, ptID: ioas, flags: [])
            try ctx.expectErrno(.EINVAL, "attach of a device behind another IOMMU to HWPT \(hwpt)") {
                try ctx.backend.attach(deviceID: try ctx.device(.otherIOMMU).id, to: hwpt)
            }
        },

        // iommufd_device_change_pt: iommufd_get_object(pt_id).
        ConformanceCase(
            "device.attach.unknown-pt-is-ENOENT",
            "Attaching a device to an ID that names no object is ENOENT.",
            requires: [.device]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectErrno(.ENOENT, "attach to unknown ID \(ioas + 100)") {
                try ctx.backend.attach(deviceID: try ctx.device(.primary).id, to: ioas + 100)
            }
        },

        // iommufd_device_change_pt: default case of the object type switch.
        ConformanceCase(
            "device.attach.non-page-table-is-EINVAL",
            "Attaching a device to an object that is neither an IOAS nor an HWPT is EINVAL.",
            requires: [.device]
        ) { ctx in
            let device = try ctx.device(.primary)
            try ctx.expectErrno(.EINVAL, "attach of device \(device.id) to its own ID") {
                try ctx.backend.attach(deviceID: device.id, to: device.id)
            }
        },
    ]

    static let mdev: [ConformanceCase] = [
        // vfio_iommufd_emulated_bind binds an access, not a device: iommufd_get_device fails.
        ConformanceCase(
            "mdev.hwpt-alloc-is-ENOENT",
            "An mdev-like device has no HWPT: IOMMU_HWPT_ALLOC for it is ENOENT.",
            requires: [.mdevDevice]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectErrno(.ENOENT, "HWPT for the mdev-like device") {
                try ctx.backend.allocHWPT(deviceID: try ctx.device(.mdev).id, ptID: ioas, flags: [])
            }
        },

        // iommufd_access_attach: the access holds the IOAS itself.
        ConformanceCase(
            "mdev.attach-to-ioas-uses-ioas",
            "An mdev-like device attaches to the IOAS itself (the returned ID is the IOAS), which is then busy.",
            requires: [.mdevDevice]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectEqual(try ctx.backend.attach(deviceID: try ctx.device(.mdev).id, to: ioas), ioas, "page table of the mdev-like device")
            try ctx.expectErrno(.EBUSY, "destroy of the IOAS the mdev-like device uses") { try ctx.backend.destroy(ioas) }
        },

        // iommufd_access_change_ioas_id → iommufd_get_ioas: an HWPT ID is the wrong type.
        ConformanceCase(
            "mdev.attach-to-hwpt-is-ENOENT",
            "An mdev-like device cannot attach to an HWPT: ENOENT.",
            requires: [.mdevDevice, .device]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let hwpt = try ctx.backend.allocHWPT(deviceID: try ctx.device(.primary).id, ptID: ioas, flags: [])
            try ctx.expectErrno(.ENOENT, "attach of the mdev-like device to HWPT \(hwpt)") {
                try ctx.backend.attach(deviceID: try ctx.device(.mdev).id, to: hwpt)
            }
        },
    ]
}
