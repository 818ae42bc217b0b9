import CIommufd
import Testing

/// The ioctl numbers and struct layouts of the shim, checked against values derived here
/// independently of the C header, so a typo on either side fails.
@Suite struct IoctlNumberTests {
    /// asm-generic `_IOC(dir, type, nr, size)`, with `_IO` = dir 0 (none), size 0.
    static func ioc(dir: UInt, type: UInt8, nr: UInt, size: UInt) -> UInt {
        (dir << 30) | (size << 16) | (UInt(type) << 8) | nr
    }
    static func io(_ nr: UInt) -> UInt { ioc(dir: 0, type: UInt8(ascii: ";"), nr: nr, size: 0) }

    @Test func destroyIsTheFirstCommand() {
        #expect(IFD_IOMMU_DESTROY == 0x3b80)
        #expect(IFD_IOMMU_DESTROY == Self.io(0x80))
    }

    @Test func iommufdCommands() {
        #expect(IFD_IOMMU_IOAS_ALLOC == Self.io(0x81))
        #expect(IFD_IOMMU_IOAS_MAP == Self.io(0x85))
        #expect(IFD_IOMMU_IOAS_MAP == 0x3b85)
        #expect(IFD_IOMMU_IOAS_UNMAP == Self.io(0x86))
        #expect(IFD_IOMMU_OPTION == Self.io(0x87))
        #expect(IFD_IOMMU_HWPT_ALLOC == Self.io(0x89))
        #expect(IFD_IOMMU_GET_HW_INFO == Self.io(0x8a))
        #expect(IFD_IOMMU_HWPT_SET_DIRTY_TRACKING == Self.io(0x8b))
        #expect(IFD_IOMMU_HWPT_GET_DIRTY_BITMAP == Self.io(0x8c))
        #expect(IFD_IOMMU_IOAS_MAP_FILE == Self.io(0x8f))
        #expect(IFD_IOMMU_VIOMMU_ALLOC == Self.io(0x90))
        #expect(IFD_IOMMU_VDEVICE_ALLOC == Self.io(0x91))
        #expect(IFD_IOMMU_HW_QUEUE_ALLOC == Self.io(0x94))
    }

    @Test func selftestCommandIsBasePlus32() {
        #expect(IFD_IOMMU_TEST_CMD == Self.io(0x80 + 32))
        #expect(IFD_IOMMU_TEST_CMD == 0x3ba0)
    }

    @Test func vfioCdevCommandsAreVFIOBasePlusOffset() {
        let vfioBase: UInt = 100
        #expect(IFD_VFIO_DEVICE_BIND_IOMMUFD == Self.io(vfioBase + 18))
        #expect(IFD_VFIO_DEVICE_BIND_IOMMUFD == 0x3b76)
        #expect(IFD_VFIO_DEVICE_ATTACH_IOMMUFD_PT == Self.io(vfioBase + 19))
        #expect(IFD_VFIO_DEVICE_DETACH_IOMMUFD_PT == Self.io(vfioBase + 20))
    }
}

@Suite struct StructLayoutTests {
    @Test func iommufdStructSizes() {
        #expect(MemoryLayout<ifd_destroy>.size == 8)
        #expect(MemoryLayout<ifd_ioas_alloc>.size == 12)
        #expect(MemoryLayout<ifd_iova_range>.size == 16)
        #expect(MemoryLayout<ifd_ioas_iova_ranges>.size == 32)
        #expect(MemoryLayout<ifd_ioas_allow_iovas>.size == 24)
        #expect(MemoryLayout<ifd_ioas_map>.size == 40)
        #expect(MemoryLayout<ifd_ioas_map_file>.size == 40)
        #expect(MemoryLayout<ifd_ioas_copy>.size == 40)
        #expect(MemoryLayout<ifd_ioas_unmap>.size == 24)
        #expect(MemoryLayout<ifd_option>.size == 24)
        #expect(MemoryLayout<ifd_hwpt_alloc>.size == 48)
        #expect(MemoryLayout<ifd_hw_info>.size == 40)
        #expect(MemoryLayout<ifd_hwpt_set_dirty_tracking>.size == 16)
        #expect(MemoryLayout<ifd_hwpt_get_dirty_bitmap>.size == 48)
        #expect(MemoryLayout<ifd_viommu_alloc>.size == 40)
        #expect(MemoryLayout<ifd_vdevice_alloc>.size == 24)
        #expect(MemoryLayout<ifd_hw_queue_alloc>.size == 40)
        #expect(MemoryLayout<ifd_test_cmd>.size == 72)
    }

    @Test func vfioStructSizes() {
        #expect(MemoryLayout<ifd_vfio_device_bind_iommufd>.size == 24)
        #expect(MemoryLayout<ifd_vfio_device_attach_iommufd_pt>.size == 16)
        #expect(MemoryLayout<ifd_vfio_device_detach_iommufd_pt>.size == 12)
    }

    @Test func keyFieldOffsets() {
        #expect(MemoryLayout<ifd_ioas_map>.offset(of: \.user_va) == 16)
        #expect(MemoryLayout<ifd_ioas_map>.offset(of: \.iova) == 32)
        #expect(MemoryLayout<ifd_ioas_map_file>.offset(of: \.fd) == 12)
        #expect(MemoryLayout<ifd_ioas_unmap>.offset(of: \.iova) == 8)
        #expect(MemoryLayout<ifd_option>.offset(of: \.val64) == 16)
        #expect(MemoryLayout<ifd_hw_info>.offset(of: \.out_capabilities) == 32)
        #expect(MemoryLayout<ifd_hwpt_get_dirty_bitmap>.offset(of: \.data) == 40)
        #expect(MemoryLayout<ifd_vdevice_alloc>.offset(of: \.virt_id) == 16)
        #expect(MemoryLayout<ifd_hw_queue_alloc>.offset(of: \.out_hw_queue_id) == 20)
        #expect(MemoryLayout<ifd_hw_queue_alloc>.offset(of: \.nesting_parent_iova) == 24)
        #expect(MemoryLayout<ifd_hw_queue_alloc>.offset(of: \.length) == 32)
        #expect(IFD_HW_QUEUE_TYPE_SELFTEST == 0xdead_beef && IFD_TEST_HW_QUEUE_MAX == 2)
        #expect(IFD_HW_QUEUE_TYPE_TEGRA241_CMDQV == 1)
        #expect(MemoryLayout<ifd_test_cmd>.offset(of: \.last) == 64)
        #expect(MemoryLayout<ifd_vfio_device_bind_iommufd>.offset(of: \.out_devid) == 12)
    }
}
