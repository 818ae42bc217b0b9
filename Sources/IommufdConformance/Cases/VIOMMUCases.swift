import IommufdCore

/// vIOMMU and vDevice (viommu.c; selftest fixture `iommufd_viommu`). The type is the selftest's
/// mock vIOMMU, which the simulator accepts too.
enum VIOMMUCases {
    static let type = VIOMMUType.selftest

    /// An IOAS, a nest-parent HWPT on it for the primary device, and a vIOMMU over that parent.
    static func setUp(_ ctx: ConformanceContext) throws -> (ioas: ObjectID, parent: ObjectID, viommu: ObjectID) {
        let device = try ctx.device(.primary)
        let ioas = try ctx.backend.allocIOAS()
        let parent = try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: .nestParent)
        let viommu = try ctx.backend.allocVIOMMU(deviceID: device.id, hwpt: parent, type: type)
        return (ioas, parent, viommu)
    }

    static let all: [ConformanceCase] = [
        // selftest iommufd_viommu.viommu_negative_tests: "not a nesting parent hwpt".
        ConformanceCase(
            "viommu.alloc.parent-not-nest-parent-is-EINVAL",
            "A vIOMMU over an HWPT allocated without NEST_PARENT is EINVAL.",
            requires: [.nesting]
        ) { ctx in
            let device = try ctx.device(.primary)
            let ioas = try ctx.backend.allocIOAS()
            let hwpt = try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: [])
            try ctx.expectErrno(.EINVAL, "vIOMMU over plain HWPT \(hwpt)") {
                try ctx.backend.allocVIOMMU(deviceID: device.id, hwpt: hwpt, type: type)
            }
        },

        // selftest iommufd_viommu.viommu_negative_tests: "invalid hwpt (hwpt_id=0)".
        ConformanceCase(
            "viommu.alloc.unknown-hwpt-is-ENOENT",
            "A vIOMMU over an ID that is not an HWPT is ENOENT.",
            requires: [.nesting]
        ) { ctx in
            let device = try ctx.device(.primary)
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectErrno(.ENOENT, "vIOMMU over HWPT 0") { try ctx.backend.allocVIOMMU(deviceID: device.id, hwpt: 0, type: type) }
            try ctx.expectErrno(.ENOENT, "vIOMMU over IOAS \(ioas)") { try ctx.backend.allocVIOMMU(deviceID: device.id, hwpt: ioas, type: type) }
        },

        // iommufd_viommu_alloc_ioctl: IOMMU_VIOMMU_TYPE_DEFAULT; get_viommu_size() == 0.
        ConformanceCase(
            "viommu.alloc.unsupported-type-is-EOPNOTSUPP",
            "A vIOMMU of type DEFAULT (0), or of a type the IOMMU does not implement, is EOPNOTSUPP.",
            requires: [.nesting]
        ) { ctx in
            let device = try ctx.device(.primary)
            let ioas = try ctx.backend.allocIOAS()
            let parent = try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: .nestParent)
            try ctx.expectErrno(.EOPNOTSUPP, "vIOMMU of type 0") { try ctx.backend.allocVIOMMU(deviceID: device.id, hwpt: parent, type: 0) }
            try ctx.expectErrno(.EOPNOTSUPP, "vIOMMU of type 0xdead") {
                try ctx.backend.allocVIOMMU(deviceID: device.id, hwpt: parent, type: 0xdead)
            }
        },

        // iommufd_viommu_alloc_ioctl: no viommu ops on the device's IOMMU.
        ConformanceCase(
            "viommu.alloc.iommu-without-nesting-is-EOPNOTSUPP",
            "A vIOMMU on a device whose IOMMU cannot nest is EOPNOTSUPP.",
            requires: [.nonNestingDevice]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectErrno(.EOPNOTSUPP, "vIOMMU for a device behind an IOMMU without nesting") {
                try ctx.backend.allocVIOMMU(deviceID: try ctx.device(.nonNesting).id, hwpt: ioas, type: type)
            }
        },

        // selftest iommufd_viommu.viommu_negative_tests: destroy of the parent HWPT is EBUSY.
        ConformanceCase(
            "viommu.parent-hwpt-busy-while-used",
            "The nest-parent HWPT of a vIOMMU cannot be destroyed (EBUSY) until the vIOMMU is.",
            requires: [.nesting]
        ) { ctx in
            let s = try setUp(ctx)
            try ctx.expectErrno(.EBUSY, "destroy of the parent HWPT \(s.parent)") { try ctx.backend.destroy(s.parent) }
            try ctx.backend.destroy(s.viommu)
            try ctx.expectSuccess("destroy of the parent after its vIOMMU") { try ctx.backend.destroy(s.parent) }
        },

        // iommufd_vdevice_alloc_ioctl: refcount_inc(&viommu->obj.users).
        ConformanceCase(
            "viommu.busy-while-vdevice-exists",
            "A vIOMMU with a vDevice cannot be destroyed (EBUSY) until the vDevice is.",
            requires: [.nesting]
        ) { ctx in
            let s = try setUp(ctx)
            let vdev = try ctx.backend.allocVDevice(viommu: s.viommu, deviceID: try ctx.device(.primary).id, virtualID: 0x99)
            try ctx.expectErrno(.EBUSY, "destroy of vIOMMU \(s.viommu) with vDevice \(vdev)") { try ctx.backend.destroy(s.viommu) }
            try ctx.backend.destroy(vdev)
            try ctx.expectSuccess("destroy of the vIOMMU after its vDevice") { try ctx.backend.destroy(s.viommu) }
        },

        // iommufd_vdevice_alloc_ioctl: xa_insert on viommu->vdevs; -EBUSY becomes -EEXIST.
        ConformanceCase(
            "vdevice.alloc.duplicate-virtual-id-is-EEXIST",
            "Two vDevices with the same virtual ID on one vIOMMU: the second is EEXIST.",
            requires: [.nesting, .peerDevice]
        ) { ctx in
            let s = try setUp(ctx)
            _ = try ctx.backend.allocVDevice(viommu: s.viommu, deviceID: try ctx.device(.primary).id, virtualID: 0x99)
            try ctx.expectErrno(.EEXIST, "second vDevice with virtual ID 0x99") {
                try ctx.backend.allocVDevice(viommu: s.viommu, deviceID: try ctx.device(.peer).id, virtualID: 0x99)
            }
        },

        // selftest iommufd_viommu.vdevice_alloc; iommufd_vdevice_alloc_ioctl: idev->vdev.
        ConformanceCase(
            "vdevice.alloc.second-for-device-is-EEXIST",
            "A device has at most one vDevice: another one, on any vIOMMU, is EEXIST.",
            requires: [.nesting]
        ) { ctx in
            let s = try setUp(ctx)
            let device = try ctx.device(.primary)
            _ = try ctx.backend.allocVDevice(viommu: s.viommu, deviceID: device.id, virtualID: 0x99)
            try ctx.expectErrno(.EEXIST, "second vDevice of the device, virtual ID 0x88") {
                try ctx.backend.allocVDevice(viommu: s.viommu, deviceID: device.id, virtualID: 0x88)
            }
            let second = try ctx.backend.allocVIOMMU(deviceID: device.id, hwpt: s.parent, type: type)
            try ctx.expectErrno(.EEXIST, "vDevice of the device on a second vIOMMU") {
                try ctx.backend.allocVDevice(viommu: second, deviceID: device.id, virtualID: 0x77)
            }
        },

        // iommufd_vdevice_alloc_ioctl: viommu->iommu_dev != the device's IOMMU.
        ConformanceCase(
            "vdevice.alloc.other-iommu-device-is-EINVAL",
            "A vDevice for a device behind another IOMMU instance than the vIOMMU's is EINVAL.",
            requires: [.nesting, .otherIOMMUDevice]
        ) { ctx in
            let s = try setUp(ctx)
            try ctx.expectErrno(.EINVAL, "vDevice of a device behind another IOMMU") {
                try ctx.backend.allocVDevice(viommu: s.viommu, deviceID: try ctx.device(.otherIOMMU).id, virtualID: 1)
            }
        },

        // selftest iommufd_viommu.vdevice_tombstone; iommufd_device_remove_vdev.
        ConformanceCase(
            "vdevice.unbind-device-tombstones-vdevice",
            "Unbinding a device destroys its vDevice and leaves the ID a tombstone: destroy is ENOENT and the ID is not reused.",
            requires: [.nesting]
        ) { ctx in
            let s = try setUp(ctx)
            let device = try ctx.device(.primary)
            let vdev = try ctx.backend.allocVDevice(viommu: s.viommu, deviceID: device.id, virtualID: 0x99)
            try ctx.expectSuccess("unbind of the device with a vDevice") { try ctx.backend.unbind(deviceID: device.id) }
            try ctx.expectErrno(.ENOENT, "destroy of the tombstoned vDevice \(vdev)") { try ctx.backend.destroy(vdev) }
            for _ in 0..<3 {
                let id = try ctx.backend.allocIOAS()
                try ctx.expect(id != vdev, "new IOAS reused the tombstoned vDevice ID \(vdev)")
            }
            try ctx.expectSuccess("destroy of the vIOMMU once its vDevice is gone") { try ctx.backend.destroy(s.viommu) }
        },
    ]
}
