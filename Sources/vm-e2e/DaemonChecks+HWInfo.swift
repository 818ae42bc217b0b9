import IommufdContract
import IommufdCore

// MARK: i14audit

extension DaemonChecks {
    /// Issue 14 item 5 over RPC on the real kernel: `device.info` of a bound device carries the
    /// vendor data of IOMMU_GET_HW_INFO and the capabilities: the selftest mock's struct
    /// iommu_test_hw_info (test_reg IOMMU_HW_INFO_SELFTEST_REGVAL) and the emulated VT-d's
    /// struct iommu_hw_info_vtd (24 bytes, CAP and ECAP registers), no dirty tracking and no
    /// PASID behind QEMU's VT-d.
    func deviceInfoVendorData() throws {
        let owner = "vm-hwinfo"
        defer { _ = try? client.release(owner) }
        _ = try client.call("owner.create", OwnerCreateParams(name: owner), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner))
        for device in ["mock1", "vfio0"] {
            _ = try client.call("device.attach", DeviceAttachParams(owner: owner, device: device, ioas: ioas.ioas), as: DeviceAttachResult.self)
        }
        let mock: DeviceInfo = try client.call("device.info", DeviceInfoParams(device: "mock1"))
        let m = mock.capabilities
        print("      mock1: hw_info_type \(m.map { String($0.hwInfoType, radix: 16) } ?? "-"), vendor \(String(describing: m?.vendor))")
        try expect(
            m?.hwInfoType == HWInfoType.selftest && m?.vendor?.type == "selftest" && m?.vendor?.selftest?.testReg == 0xdead_beef,
            "mock1's device.info capabilities: \(String(describing: m))")
        let edu: DeviceInfo = try client.call("device.info", DeviceInfoParams(device: "vfio0"))
        let e = edu.capabilities
        print("      vfio0: vendor \(String(describing: e?.vendor))")
        try expect(
            e?.hwInfoType == HWInfoType.intelVTd && e?.vendor?.type == "intel_vtd" && e?.vendor?.dataLength == 24,
            "vfio0's device.info capabilities: \(String(describing: e))")
        try expect(
            (e?.vendor?.intelVTd?.capReg ?? 0) != 0 && (e?.vendor?.intelVTd?.ecapReg ?? 0) != 0,
            "vfio0's VT-d CAP/ECAP registers: \(String(describing: e?.vendor?.intelVTd))")
        try expect(e?.dirtyTracking == false && (e?.pasidWidth ?? 0) == 0, "QEMU's VT-d reports dirty tracking or PASIDs: \(String(describing: e))")
    }
}
