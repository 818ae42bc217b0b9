import IommufdCore

/// The object ID space (drivers/iommu/iommufd/main.c).
enum ObjectCases {
    static let all: [ConformanceCase] = [
        // _iommufd_object_alloc: xa_alloc on an XA_FLAGS_ALLOC1 xarray.
        ConformanceCase(
            "object.ids.first-is-1",
            "On a fresh iommufd the first object allocated gets ID 1."
        ) { ctx in
            try ctx.expectEqual(try ctx.backend.allocIOAS(), 1, "ID of the first IOAS")
        },

        // xa_alloc hands out the lowest free index.
        ConformanceCase(
            "object.ids.lowest-free-reused",
            "The ID of a destroyed object is the next one handed out (lowest free ID)."
        ) { ctx in
            let a = try ctx.backend.allocIOAS()
            let b = try ctx.backend.allocIOAS()
            try ctx.expect(a != b, "two IOASes got the same ID \(a)")
            try ctx.backend.destroy(a)
            try ctx.expectEqual(try ctx.backend.allocIOAS(), a, "ID after destroying IOAS \(a)")
        },

        // IOAS, HWPT and device objects all live in ictx->objects.
        ConformanceCase(
            "object.ids.one-space-for-all-types",
            "IOAS, HWPT and device IDs come from one ID space and never collide.",
            requires: [.device]
        ) { ctx in
            let device = try ctx.device(.primary)
            let ioas = try ctx.backend.allocIOAS()
            let hwpt = try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: [])
            try ctx.expectEqual(Set([device.id, ioas, hwpt]).count, 3, "distinct IDs among device \(device.id), IOAS \(ioas), HWPT \(hwpt)")
        },

        // iommufd_object_remove: xa_load finds nothing.
        ConformanceCase(
            "object.destroy.unknown-is-ENOENT",
            "IOMMU_DESTROY of an ID that names no object is ENOENT, also for an ID already destroyed."
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectErrno(.ENOENT, "destroy of never-allocated ID \(ioas + 100)") { try ctx.backend.destroy(ioas + 100) }
            try ctx.backend.destroy(ioas)
            try ctx.expectErrno(.ENOENT, "second destroy of IOAS \(ioas)") { try ctx.backend.destroy(ioas) }
        },

        // iommufd_get_object: obj->type != type is ENOENT.
        ConformanceCase(
            "object.wrong-type-is-ENOENT",
            "An ID of the wrong object type is ENOENT, as if it did not exist.",
            requires: [.device]
        ) { ctx in
            let device = try ctx.device(.primary)
            let ioas = try ctx.backend.allocIOAS()
            let hwpt = try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: [])
            try ctx.expectErrno(.ENOENT, "IOMMU_IOAS_UNMAP on device ID \(device.id)") {
                try ctx.backend.unmap(ioas: device.id, iova: 0, length: .max)
            }
            try ctx.expectErrno(.ENOENT, "IOMMU_IOAS_IOVA_RANGES on HWPT ID \(hwpt)") {
                try ctx.backend.iovaRanges(ioas: hwpt, capacity: 8)
            }
            try ctx.expectErrno(.ENOENT, "IOMMU_HWPT_SET_DIRTY_TRACKING on IOAS ID \(ioas)") {
                try ctx.backend.setDirtyTracking(hwpt: ioas, enabled: false)
            }
            try ctx.expectErrno(.ENOENT, "IOMMU_GET_HW_INFO on IOAS ID \(ioas)") { try ctx.backend.hwInfo(deviceID: ioas) }
        },

        // iommufd_device_bind takes a users reference for the driver until unbind.
        ConformanceCase(
            "object.destroy.bound-device-is-EBUSY",
            "IOMMU_DESTROY of a bound device's ID is EBUSY: only closing the device unbinds it.",
            requires: [.device]
        ) { ctx in
            let device = try ctx.device(.primary)
            try ctx.expectErrno(.EBUSY, "destroy of device \(device.id)") { try ctx.backend.destroy(device.id) }
            // The device is still usable.
            _ = try ctx.expectSuccess("IOMMU_GET_HW_INFO after the refused destroy") { try ctx.backend.hwInfo(deviceID: device.id) }
        },
    ]
}
