import Foundation
import IommufdCore
import IommufdRPC
import IommufdContract

// PASID attachments across the SIGKILL (branch `pasid`): mock-pasid (MOCK_FLAGS_DEVICE_PASID)
// with its RID on one PASID-capable HWPT and PASIDs 100 and 200 on two of them. The restarted
// daemon takes them back from its journal and checks each against the kernel
// (IOMMU_TEST_OP_PASID_CHECK_HWPT: recovery-clean fails on a mismatch), still refuses to
// destroy an HWPT a PASID holds, moves one, and owner.release detaches them before the HWPTs.
final class RestartPASIDState: @unchecked Sendable {
    static let shared = RestartPASIDState()
    var first: ObjectID = 0
    var second: ObjectID = 0
}

extension RestartChecks {
    static let pasidDevice = "mock-pasid"

    func pasidBeforeKill() throws {
        let c = try connected()
        let ioas: IOASCreateResult = try c.call("ioas.create", IOASCreateParams(owner: Self.owner))
        func pasidHWPT() throws -> ObjectID {
            var params = HWPTAllocParams(ioas: ioas.ioas, device: Self.pasidDevice)
            params.pasid = true
            return try c.call("hwpt.alloc", params, as: HWPTInfo.self).hwpt
        }
        let first = try pasidHWPT()
        let second = try pasidHWPT()
        _ = try c.call("device.attach", DeviceAttachParams(owner: Self.owner, device: Self.pasidDevice, hwpt: first), as: DeviceAttachResult.self)
        let info: DeviceInfo = try c.call("device.info", DeviceInfoParams(device: Self.pasidDevice))
        try expect(info.capabilities?.pasidWidth == 20, "mock-pasid's PASID width: \(String(describing: info.capabilities))")
        for (pasid, hwpt) in [(UInt32(100), first), (200, second)] {
            let r: DevicePASIDResult = try c.call("device.attach_pasid", DevicePASIDParams(device: Self.pasidDevice, pasid: pasid, hwpt: hwpt))
            try expect(r.hwpt == hwpt, "device.attach_pasid \(pasid): \(r)")
        }
        RestartPASIDState.shared.first = first
        RestartPASIDState.shared.second = second
        print("      mock-pasid: RID and PASID 100 on HWPT \(first), PASID 200 on HWPT \(second)")
        // same-objects-same-ids compares every view (device.list with its PASIDs, hwpt.list,
        // owner.info) after the restart with this one.
        state.before = try state.snapshot(c)
    }

    func pasidAfterRestart() throws {
        let c = try connected()
        let (first, second) = (RestartPASIDState.shared.first, RestartPASIDState.shared.second)
        let info: DeviceInfo = try c.call("device.info", DeviceInfoParams(device: Self.pasidDevice))
        try expect(
            info.pasids == [PASIDAttachmentInfo(pasid: 100, hwpt: first), PASIDAttachmentInfo(pasid: 200, hwpt: second)],
            "device.info pasids after the restart: \(String(describing: info.pasids))")
        try c.expectError("iommufdd.Busy", "hwpt.destroy of HWPT \(second) with PASID 200 attached") {
            _ = try c.call("hwpt.destroy", HWPTDestroyParams(hwpt: second), as: HWPTDestroyResult.self)
        }
        let moved: DevicePASIDResult = try c.call("device.replace_pasid", DevicePASIDParams(device: Self.pasidDevice, pasid: 200, hwpt: first))
        try expect(moved.previousHWPT == second && moved.hwpt == first, "device.replace_pasid after the restart: \(moved)")
        _ = try c.call("hwpt.destroy", HWPTDestroyParams(hwpt: second), as: HWPTDestroyResult.self)
        // PASIDs 100 and 200 stay on `first` for owner.release to detach before it goes.
    }
}
