import Foundation
import IommufdCore
import IommufdSim
import Testing
import IommufdContract

@testable import IommufdBroker

@Suite("PASID attachments across a restart")
struct PASIDRestartTests {
    @Test("PASID attachments (on a paging and a nested HWPT) are journaled, checked against the iommufd and taken back; they still hold their HWPTs, and owner.release detaches them first")
    func pasidsAdoptedAfterRestart() throws {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let a = Incarnation.admin
        let b = first.broker
        _ = try b.ownerCreate(a, OwnerCreateParams(name: "vm"))
        let ioas = try b.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        var ridParams = HWPTAllocParams(ioas: ioas, device: "sim-pasid0")
        ridParams.pasid = true
        let rid = try b.hwptAlloc(a, ridParams).hwpt
        let deviceID = try b.deviceAttach(a, DeviceAttachParams(owner: "vm", device: "sim-pasid0", hwpt: rid)).deviceID
        let parent = try b.hwptAlloc(a, HWPTAllocParams(ioas: ioas, device: "sim-pasid0", nestParent: true)).hwpt
        var nestedParams = HWPTAllocParams(device: "sim-pasid0", parent: parent, data: NestedDataParams(type: "selftest", iotlb: 3))
        nestedParams.pasid = true
        let nested = try b.hwptAlloc(a, nestedParams).hwpt
        _ = try b.deviceAttachPASID(a, DevicePASIDParams(device: "sim-pasid0", pasid: 100, hwpt: rid))
        _ = try b.deviceAttachPASID(a, DevicePASIDParams(device: "sim-pasid0", pasid: 1024, hwpt: nested))
        let before = try b.deviceInfo(a, DeviceInfoParams(device: "sim-pasid0"))
        #expect(before.pasids?.count == 2)

        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems.isEmpty)
        #expect(second.recovery?.problems == [])
        #expect(try second.broker.deviceInfo(a, DeviceInfoParams(device: "sim-pasid0")) == before)
        // The simulated kernel has them too (replayed from its log), on the same HWPTs.
        try second.sim.checkPASID(deviceID: deviceID, pasid: 100, hwpt: rid)
        try second.sim.checkPASID(deviceID: deviceID, pasid: 1024, hwpt: nested)
        // The restarted daemon still knows what they hold.
        do {
            _ = try second.broker.hwptDestroy(a, HWPTDestroyParams(hwpt: nested))
            Issue.record("destroying nested HWPT \(nested) with PASID 1024 attached succeeded")
        } catch let e as BrokerError {
            #expect(e.kind == .busy && e.message.contains("PASID 1024"), "\(e)")
        }
        let moved = try second.broker.deviceReplacePASID(a, DevicePASIDParams(device: "sim-pasid0", pasid: 100, hwpt: nested))
        #expect(moved.previousHWPT == rid)

        let released = try second.broker.ownerRelease(a, OwnerReleaseParams(name: "vm"))
        #expect(released.released && released.failures.isEmpty, "\(released)")
        #expect(released.destroyed["pasid_attachment"] == 2)

        let (third, replay3) = try Incarnation.restarted(store)
        #expect(replay3.problems.isEmpty && third.recovery?.problems == [])
        #expect(try third.broker.hwptList(a, HWPTListParams()).hwpts.isEmpty)
    }

    @Test("a journaled PASID attachment the iommufd does not have is reported and kept for owner.release")
    func missingAttachmentIsReported() throws {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let a = Incarnation.admin
        let b = first.broker
        _ = try b.ownerCreate(a, OwnerCreateParams(name: "vm"))
        let ioas = try b.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        var ridParams = HWPTAllocParams(ioas: ioas, device: "sim-pasid0")
        ridParams.pasid = true
        let rid = try b.hwptAlloc(a, ridParams).hwpt
        let deviceID = try b.deviceAttach(a, DeviceAttachParams(owner: "vm", device: "sim-pasid0", hwpt: rid)).deviceID
        _ = try b.deviceAttachPASID(a, DevicePASIDParams(device: "sim-pasid0", pasid: 5, hwpt: rid))
        // Behind the daemon's back (as a lost kernel state would be): detached in the iommufd only.
        try first.sim.detachPASID(deviceID: deviceID, pasid: 5)

        let (second, _) = try Incarnation.restarted(store)
        let problems = second.recovery?.problems ?? []
        #expect(problems.contains { $0.contains("PASID 5 of device 'sim-pasid0'") && $0.contains("owner.release") }, "\(problems)")
        #expect(try second.broker.deviceInfo(a, DeviceInfoParams(device: "sim-pasid0")).pasids == [PASIDAttachmentInfo(pasid: 5, hwpt: rid)])
        let released = try second.broker.ownerRelease(a, OwnerReleaseParams(name: "vm"))
        #expect(released.released && released.failures.isEmpty, "\(released)")
    }
}
