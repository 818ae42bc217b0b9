import IommufdCore

/// `IOMMU_GET_HW_INFO` (drivers/iommu/iommufd/device.c `iommufd_get_hw_info`, the drivers'
/// `hw_info` ops; the selftest's `iommufd_ioas.get_hw_info`).
enum HWInfoCases {
    /// Size of each 7.3 vendor struct by `enum iommu_hw_info_type`.
    static func structSize(_ type: UInt32) -> Int? {
        switch type {
        case HWInfoType.intelVTd: HWInfoVendorData.VTd.size
        case HWInfoType.armSMMUv3: HWInfoVendorData.SMMUv3.size
        case HWInfoType.tegra241CMDQV: HWInfoVendorData.Tegra241CMDQV.size
        case HWInfoType.amd: HWInfoVendorData.AMD.size
        case HWInfoType.selftest: HWInfoVendorData.Selftest.size
        default: nil
        }
    }

    /// The answer's vendor data is one whole struct of its type, and decodes.
    static func expectWholeStruct(_ ctx: ConformanceContext, _ info: HWInfo, _ what: String) throws {
        guard let size = structSize(info.type) else {
            throw ConformanceSkip("\(what): hw_info type \(info.type) has no 7.3 vendor struct this suite knows")
        }
        try ctx.expectEqual(Int(info.dataLength), size, "\(what): data_len of hw_info type \(info.type)")
        try ctx.expectEqual(info.data.count, size, "\(what): bytes of vendor data filled")
        try ctx.expect(info.vendor != nil, "\(what): vendor data of type \(info.type) does not decode: \(info.data)")
    }

    static let all: [ConformanceCase] = [
        // mock_domain_hw_info: struct iommu_test_hw_info { flags = 0, test_reg = REGVAL }.
        ConformanceCase(
            "hwinfo.vendor-data-is-the-driver-struct",
            "GET_HW_INFO fills the driver's vendor struct whole (data_len = its size); the selftest mock's is flags 0, test_reg 0xdeadbeef.",
            requires: [.device]
        ) { ctx in
            let device = try ctx.device(.primary)
            let info = try ctx.expectSuccess("IOMMU_GET_HW_INFO of device \(device.id)") { try ctx.backend.hwInfo(deviceID: device.id) }
            try expectWholeStruct(ctx, info, "device \(device.id)")
            if case .selftest(let mock) = info.vendor {
                try ctx.expectEqual(mock.flags, 0, "iommu_test_hw_info.flags")
                try ctx.expectEqual(mock.testReg, HWInfoVendorData.Selftest.regval, "iommu_test_hw_info.test_reg")
            }
        },

        // iommufd_get_hw_info: copy_len = min(data_len in, the driver's); data_len out is the
        // driver's length whatever was offered; a zero-length buffer is allowed.
        ConformanceCase(
            "hwinfo.short-buffer-gets-a-prefix-and-the-full-length",
            "A buffer smaller than the vendor struct gets its first bytes, and data_len still says the struct's full size; a zero-length buffer is allowed.",
            requires: [.device]
        ) { ctx in
            let device = try ctx.device(.primary)
            let full = try ctx.backend.hwInfo(deviceID: device.id)
            guard full.dataLength > 4 else { throw ConformanceSkip("device \(device.id) has \(full.dataLength) bytes of vendor data") }
            let short = try ctx.expectSuccess("IOMMU_GET_HW_INFO with a 4-byte buffer") {
                try ctx.backend.hwInfo(deviceID: device.id, request: HWInfoRequest(dataLength: 4))
            }
            try ctx.expectEqual(short.data, Array(full.data.prefix(4)), "the 4 bytes filled")
            try ctx.expectEqual(short.dataLength, full.dataLength, "data_len out with a 4-byte buffer")
            let none = try ctx.expectSuccess("IOMMU_GET_HW_INFO with a zero-length buffer") {
                try ctx.backend.hwInfo(deviceID: device.id, request: HWInfoRequest(dataLength: 0))
            }
            try ctx.expectEqual(none.data, [], "bytes filled with a zero-length buffer")
            try ctx.expectEqual(none.dataLength, full.dataLength, "data_len out with a zero-length buffer")
            try ctx.expectEqual(none.type, full.type, "out_data_type with a zero-length buffer")
        },

        // IOMMU_HW_INFO_FLAG_INPUT_TYPE: the driver's hw_info answers its own type (or DEFAULT)
        // and refuses any other with EOPNOTSUPP (mock_domain_hw_info, intel_iommu_hw_info,
        // arm_smmu_hw_info); the selftest asks for IOMMU_HW_INFO_TYPE_SELFTEST + 1.
        ConformanceCase(
            "hwinfo.input-type-other-than-the-drivers-is-EOPNOTSUPP",
            "Asking for the driver's own hw_info type (IOMMU_HW_INFO_FLAG_INPUT_TYPE) answers as the default does; asking for a type no driver has is EOPNOTSUPP.",
            requires: [.device]
        ) { ctx in
            let device = try ctx.device(.primary)
            let full = try ctx.backend.hwInfo(deviceID: device.id)
            guard full.type != HWInfoType.none else { throw ConformanceSkip("device \(device.id)'s IOMMU driver has no hw_info op") }
            let own = try ctx.expectSuccess("IOMMU_GET_HW_INFO asking for type \(full.type)") {
                try ctx.backend.hwInfo(deviceID: device.id, request: HWInfoRequest(dataType: full.type))
            }
            try ctx.expectEqual(own, full, "answer asking for the driver's own type")
            let explicitDefault = try ctx.expectSuccess("IOMMU_GET_HW_INFO asking for IOMMU_HW_INFO_TYPE_DEFAULT") {
                try ctx.backend.hwInfo(deviceID: device.id, request: HWInfoRequest(dataType: HWInfoType.none))
            }
            try ctx.expectEqual(explicitDefault, full, "answer asking for IOMMU_HW_INFO_TYPE_DEFAULT")
            let unknown = HWInfoType.selftest + 1
            try ctx.expectErrno(.EOPNOTSUPP, "IOMMU_GET_HW_INFO asking for type \(unknown)") {
                try ctx.backend.hwInfo(deviceID: device.id, request: HWInfoRequest(dataType: unknown))
            }
        },

        // iommufd_get_hw_info: DIRTY_TRACKING from IOMMU_CAP_DIRTY_TRACKING, PCI_ATS_NOT_SUPPORTED
        // unless IOMMU_CAP_PCI_ATS_SUPPORTED (mock_domain_capable has neither for ATS), PASID
        // width from dev->iommu->max_pasids (0: a mock device without MOCK_FLAGS_DEVICE_PASID).
        ConformanceCase(
            "hwinfo.capabilities-of-a-device-without-ats-or-pasid",
            "The capabilities say dirty tracking as the device can, ATS not supported and no PASID for a device with neither (the mock devices, emulated PCI devices).",
            requires: [.dirtyDevice, .noDirtyDevice]
        ) { ctx in
            for (role, dirty) in [(DeviceRole.primary, true), (.noDirty, false)] {
                let device = try ctx.device(role)
                let info = try ctx.backend.hwInfo(deviceID: device.id)
                try ctx.expectEqual(info.capabilities.contains(.dirtyTracking), dirty, "IOMMU_HW_CAP_DIRTY_TRACKING of device \(device.id)")
                try ctx.expect(info.capabilities.contains(.pciATSNotSupported), "device \(device.id) does not report IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED (capabilities \(info.capabilities.rawValue))")
                try ctx.expectEqual(info.maxPasidLog2, 0, "out_max_pasid_log2 of device \(device.id)")
                try ctx.expect(!info.capabilities.contains(.pciPasidExec) && !info.capabilities.contains(.pciPasidPriv), "PASID capabilities without PASID on device \(device.id)")
            }
        },

        // intel_iommu_hw_info: cap_reg and ecap_reg of the unit. Checked against what the
        // kernel itself says: dirty tracking needs second-stage A/D bits (ecap SLADS), and
        // MGAW/SAGAW describe an address width the unit translates.
        ConformanceCase(
            "hwinfo.vtd-registers-agree-with-the-capabilities",
            "A device behind Intel VT-d gets struct iommu_hw_info_vtd whose ECAP has SLADS where dirty tracking is reported and whose CAP has a usable MGAW and SAGAW.",
            requires: [.otherIOMMUDevice]
        ) { ctx in
            let device = try ctx.device(.otherIOMMU)
            let info = try ctx.backend.hwInfo(deviceID: device.id)
            guard info.type == HWInfoType.intelVTd else {
                throw ConformanceSkip("the other IOMMU's device \(device.id) has hw_info type \(info.type), not Intel VT-d")
            }
            try expectWholeStruct(ctx, info, "device \(device.id)")
            guard case .intelVTd(let vtd) = info.vendor else { return }
            let slads = vtd.ecapReg >> 45 & 1 == 1
            if info.capabilities.contains(.dirtyTracking) {
                try ctx.expect(slads, "dirty tracking reported but ECAP \(vtd.ecapReg) has no SLADS (bit 45)")
            }
            let mgaw = (vtd.capReg >> 16 & 0x3f) + 1
            try ctx.expect(mgaw >= 39, "CAP MGAW says \(mgaw) address bits, fewer than any VT-d's 39")
            try ctx.expect(vtd.capReg >> 8 & 0x1f != 0, "CAP SAGAW \(vtd.capReg) names no page-table depth")
        },
    ]
}
