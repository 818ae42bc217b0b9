import Foundation
import IommufdCore
import IommufdSim
import Testing
import IommufdContract

@testable import IommufdBroker

/// PASID attachments through the broker, on the default simulated topology: sim-pasid0 (20-bit
/// PASIDs) and sim0 (none) behind the selftest mock IOMMU mock0, mdev0 without an IOMMU.
@Suite("PASID attachments in the broker")
struct PASIDTests {
    /// Owner vm-1 with an IOAS, and sim-pasid0's RID attached to an HWPT allocated with `pasid`.
    func setUp(_ f: Fixture) throws -> (ioas: ObjectID, rid: ObjectID, deviceID: ObjectID) {
        let ioas = try f.ownerWithIOAS()
        var params = HWPTAllocParams(ioas: ioas, device: "sim-pasid0")
        params.pasid = true
        let rid = try f.broker.hwptAlloc(f.a, params)
        #expect(rid.pasid == true)
        let attached = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim-pasid0", hwpt: rid.hwpt))
        return (ioas, rid.hwpt, attached.deviceID)
    }

    func pasidHWPT(_ f: Fixture, _ ioas: ObjectID, device: String = "sim-pasid0") throws -> ObjectID {
        var params = HWPTAllocParams(ioas: ioas, device: device)
        params.pasid = true
        return try f.broker.hwptAlloc(f.a, params).hwpt
    }

    @Test func attachReplaceDetachAndWhatTheyShow() throws {
        let f = try Fixture()
        let s = try setUp(f)
        let other = try pasidHWPT(f, s.ioas)

        let attached = try f.broker.deviceAttachPASID(f.a, DevicePASIDParams(device: "sim-pasid0", pasid: 100, hwpt: s.rid))
        #expect(attached == DevicePASIDResult(device: "sim-pasid0", deviceID: s.deviceID, pasid: 100, hwpt: s.rid, previousHWPT: nil))
        try f.sim.checkPASID(deviceID: s.deviceID, pasid: 100, hwpt: s.rid)
        _ = try f.broker.deviceAttachPASID(f.a, DevicePASIDParams(device: "sim-pasid0", pasid: 7, hwpt: other))

        // device.info and hwpt.list show them; another manager sees the device but not its PASIDs.
        let info = try f.broker.deviceInfo(f.a, DeviceInfoParams(device: "sim-pasid0"))
        #expect(info.pasids == [PASIDAttachmentInfo(pasid: 7, hwpt: other), PASIDAttachmentInfo(pasid: 100, hwpt: s.rid)])
        #expect(info.capabilities?.pasidWidth == 20)
        #expect(try f.broker.deviceInfo(f.b, DeviceInfoParams(device: "sim-pasid0")).pasids == nil)
        let listed = try f.broker.hwptList(f.a, HWPTListParams(ioas: s.ioas)).hwpts
        #expect(listed.first { $0.hwpt == s.rid }?.pasids == [PASIDAttachmentInfo(pasid: 100, device: "sim-pasid0")])

        // An HWPT with a PASID attached cannot go, and the answer says what to detach.
        let busy = expectBrokerError(.busy) { try f.broker.hwptDestroy(f.a, HWPTDestroyParams(hwpt: other)) }
        #expect(busy?.message.contains("'sim-pasid0' PASID 7") == true && busy?.message.contains("device.detach_pasid") == true, "\(busy?.message ?? "")")

        // Attach of an attached PASID and replace of an unattached one are refused by the daemon,
        // whatever the backend would do (a VFIO cdev replaces or attaches instead).
        let again = expectBrokerError(.conflict) { try f.broker.deviceAttachPASID(f.a, DevicePASIDParams(device: "sim-pasid0", pasid: 100, hwpt: other)) }
        #expect(again?.message.contains("device.replace_pasid") == true)
        let unattached = expectBrokerError(.conflict) { try f.broker.deviceReplacePASID(f.a, DevicePASIDParams(device: "sim-pasid0", pasid: 5, hwpt: other)) }
        #expect(unattached?.message.contains("device.attach_pasid") == true)

        let moved = try f.broker.deviceReplacePASID(f.a, DevicePASIDParams(device: "sim-pasid0", pasid: 7, hwpt: s.rid))
        #expect(moved.hwpt == s.rid && moved.previousHWPT == other)
        try f.sim.checkPASID(deviceID: s.deviceID, pasid: 7, hwpt: s.rid)
        _ = try f.broker.hwptDestroy(f.a, HWPTDestroyParams(hwpt: other))

        // The RID cannot move onto an HWPT without pasid, or an IOAS, while PASIDs are attached.
        let plain = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: s.ioas, device: "sim-pasid0")).hwpt
        let off = expectBrokerError(.invalidParams) { try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim-pasid0", hwpt: plain)) }
        #expect(off?.message.contains("pasid=true") == true, "\(off?.message ?? "")")
        expectBrokerError(.invalidParams) { try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim-pasid0", ioas: s.ioas)) }
        _ = try f.broker.hwptDestroy(f.a, HWPTDestroyParams(hwpt: plain))

        // The RID cannot be detached while PASIDs are attached.
        let rid = expectBrokerError(.busy) { try f.broker.deviceDetach(f.a, DeviceDetachParams(device: "sim-pasid0")) }
        #expect(rid?.message.contains("device.detach_pasid") == true)

        let detached = try f.broker.deviceDetachPASID(f.a, DevicePASIDDetachParams(device: "sim-pasid0", pasid: 100))
        #expect(detached.hwpt == nil && detached.previousHWPT == s.rid)
        try f.sim.checkPASID(deviceID: s.deviceID, pasid: 100, hwpt: nil)
        expectBrokerError(.conflict) { try f.broker.deviceDetachPASID(f.a, DevicePASIDDetachParams(device: "sim-pasid0", pasid: 100)) }

        // device.release detaches the remaining PASID before the RID and the unbind.
        _ = try f.broker.deviceRelease(f.a, DeviceReleaseParams(device: "sim-pasid0"))
        #expect(f.sim.boundID(of: "sim-pasid0") == nil)
        #expect(try f.broker.hwptList(f.a, HWPTListParams(ioas: s.ioas)).hwpts.allSatisfy { $0.pasids == nil })
    }

    @Test func refusalsSayWhatIsWrongBeforeTheKernelSeesThem() throws {
        let f = try Fixture()
        let s = try setUp(f)
        func invalid(_ p: DevicePASIDParams, _ mentions: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let e = expectBrokerError(.invalidParams, sourceLocation: sourceLocation) { try f.broker.deviceAttachPASID(f.a, p) }
            #expect(e?.message.contains(mentions) == true, "\(e?.message ?? "") should say \(mentions)", sourceLocation: sourceLocation)
        }
        invalid(DevicePASIDParams(device: "sim-pasid0", pasid: 0, hwpt: s.rid), "IOMMU_NO_PASID")
        invalid(DevicePASIDParams(device: "sim-pasid0", pasid: 1 << 20, hwpt: s.rid), "beyond the 20-bit PASIDs")
        let plain = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: s.ioas, device: "sim-pasid0")).hwpt
        invalid(DevicePASIDParams(device: "sim-pasid0", pasid: 1, hwpt: plain), "pasid=true")
        // sim0 has no PASIDs.
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", hwpt: s.rid))
        invalid(DevicePASIDParams(device: "sim0", pasid: 1, hwpt: s.rid), "no PASID support")
        // The RID on an HWPT without pasid: the kernel would refuse, the daemon says why.
        _ = try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim-pasid0", hwpt: plain))
        invalid(DevicePASIDParams(device: "sim-pasid0", pasid: 1, hwpt: s.rid), "move the RID")
        // The mdev-like device has no PASIDs.
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "mdev0", ioas: s.ioas))
        expectBrokerError(.unsupported) { try f.broker.deviceAttachPASID(f.a, DevicePASIDParams(device: "mdev0", pasid: 1, hwpt: s.rid)) }
        // Nothing reached the simulator.
        try f.sim.checkPASID(deviceID: s.deviceID, pasid: 1, hwpt: nil)
    }

    @Test func onlyTheOwnersManagerMayAndOnlyWithItsOwnHWPTs() throws {
        let f = try Fixture()
        let s = try setUp(f)
        let p = DevicePASIDParams(device: "sim-pasid0", pasid: 3, hwpt: s.rid)
        // Another manager: the device is not leased to one of its owners, the HWPT is absent.
        expectBrokerError(.notFound) { try f.broker.deviceAttachPASID(f.b, p) }
        expectBrokerError(.notFound) { try f.broker.deviceReplacePASID(f.b, p) }
        expectBrokerError(.notFound) { try f.broker.deviceDetachPASID(f.b, DevicePASIDDetachParams(device: "sim-pasid0", pasid: 3)) }
        expectBrokerError(.permissionDenied) { try f.broker.deviceAttachPASID(f.reader, p) }
        // Manager B's own device cannot use A's HWPT: NotFound, like an absent HWPT.
        let bIOAS = try f.ownerWithIOAS("vm-b", as: f.b)
        _ = try f.broker.deviceAttach(f.b, DeviceAttachParams(owner: "vm-b", device: "sim1", ioas: bIOAS))
        expectBrokerError(.notFound) { try f.broker.deviceAttachPASID(f.b, DevicePASIDParams(device: "sim1", pasid: 3, hwpt: s.rid)) }
        // A's device with an HWPT of another of A's owners: refused with both owners named.
        let other = try f.ownerWithIOAS("vm-2")
        let foreign = try pasidHWPT(f, other, device: "sim0")  // sim0 leased to vm-2 by this
        let e = expectBrokerError(.invalidParams) { try f.broker.deviceAttachPASID(f.a, DevicePASIDParams(device: "sim-pasid0", pasid: 3, hwpt: foreign)) }
        #expect(e?.message.contains("vm-2") == true && e?.message.contains("vm-1") == true)
        try f.sim.checkPASID(deviceID: s.deviceID, pasid: 3, hwpt: nil)
    }

    @Test func ownerReleaseDetachesPASIDsBeforeItsHWPTsNestedOnesToo() throws {
        let f = try Fixture()
        let s = try setUp(f)
        let parent = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: s.ioas, device: "sim-pasid0", nestParent: true)).hwpt
        var nestedParams = HWPTAllocParams(device: "sim-pasid0", parent: parent, data: NestedDataParams(type: "selftest", iotlb: 1))
        nestedParams.pasid = true
        let nested = try f.broker.hwptAlloc(f.a, nestedParams)
        #expect(nested.pasid == true)
        _ = try f.broker.deviceAttachPASID(f.a, DevicePASIDParams(device: "sim-pasid0", pasid: 9, hwpt: nested.hwpt))
        _ = try f.broker.deviceAttachPASID(f.a, DevicePASIDParams(device: "sim-pasid0", pasid: 10, hwpt: s.rid))
        let released = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(released.released && released.failures.isEmpty, "\(released)")
        #expect(released.destroyed["pasid_attachment"] == 2)
        #expect(errnoOf { try f.sim.destroy(nested.hwpt) } == .ENOENT)
        #expect(errnoOf { try f.sim.destroy(s.rid) } == .ENOENT)
        #expect(f.sim.boundID(of: "sim-pasid0") == nil)
    }

    @Test func aBackendWithoutPASIDIsUnsupported() throws {
        let f = try Fixture(without: [.pasid])
        let ioas = try f.ownerWithIOAS()
        var params = HWPTAllocParams(ioas: ioas, device: "sim-pasid0")
        params.pasid = true
        let e = expectBrokerError(.unsupported) { try f.broker.hwptAlloc(f.a, params) }
        #expect(e?.message.contains("6.15") == true)
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim-pasid0", ioas: ioas))
        let hwpt = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas, device: "sim-pasid0")).hwpt
        expectBrokerError(.unsupported) { try f.broker.deviceAttachPASID(f.a, DevicePASIDParams(device: "sim-pasid0", pasid: 1, hwpt: hwpt)) }
    }
}
