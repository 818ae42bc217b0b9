import Foundation
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker
import IommufdContract

@Suite("Nested HWPTs across a restart")
struct NestedRestartTests {
    @Test("nested HWPTs (on a parent and on a vIOMMU), their attachment and IOTLB state are taken back; owner.release then tears them down in order")
    func nestedAdoptedAfterRestart() throws {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let a = Incarnation.admin
        let b = first.broker
        _ = try b.ownerCreate(a, OwnerCreateParams(name: "vm"))
        let ioas = try b.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        _ = try b.deviceAttach(a, DeviceAttachParams(owner: "vm", device: "sim0", ioas: ioas))
        let v = try b.viommuCreate(a, VIOMMUCreateParams(device: "sim0"))
        _ = try b.vdeviceCreate(a, VDeviceCreateParams(viommu: v.viommu, device: "sim0", virtualID: 7))
        let onVIOMMU = try b.hwptAlloc(a, HWPTAllocParams(device: "sim0", viommu: v.viommu, data: NestedDataParams(type: "selftest", iotlb: 9))).hwpt
        let onParent = try b.hwptAlloc(a, HWPTAllocParams(device: "sim0", parent: v.nestParent, data: NestedDataParams(type: "selftest", iotlb: 5))).hwpt
        _ = try b.deviceReplace(a, DeviceReplaceParams(device: "sim0", hwpt: onParent))
        let r = try b.hwptInvalidate(a, HWPTInvalidateParams(hwpt: onParent, entries: [.init(iotlbID: 1)]))
        #expect(r.done == 1)
        let before = try b.hwptList(a, HWPTListParams(ioas: ioas))

        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems.isEmpty)
        #expect(second.recovery?.problems == [])
        let after = try second.broker.hwptList(a, HWPTListParams(ioas: ioas))
        #expect(after == before)
        #expect(after.hwpts.first { $0.hwpt == onParent }?.nested?.parent == v.nestParent)
        #expect(after.hwpts.first { $0.hwpt == onVIOMMU }?.nested?.viommu == v.viommu)
        for (i, value) in [5, 0, 5, 5].enumerated() { try second.sim.checkNestedIOTLB(hwpt: onParent, index: UInt32(i), value: UInt32(value)) }
        for i in 0..<4 { try second.sim.checkNestedIOTLB(hwpt: onVIOMMU, index: UInt32(i), value: 9) }
        // The restarted daemon still knows what depends on what.
        expectBusy { try second.broker.hwptDestroy(a, HWPTDestroyParams(hwpt: v.nestParent)) }
        expectBusy { try second.broker.viommuDestroy(a, VIOMMUDestroyParams(viommu: v.viommu)) }
        #expect(try second.broker.hwptInvalidate(a, HWPTInvalidateParams(hwpt: onParent, entries: [.init(all: true)])).done == 1)

        let released = try second.broker.ownerRelease(a, OwnerReleaseParams(name: "vm"))
        #expect(released.released && released.failures.isEmpty, "\(released)")
        #expect(released.destroyed["hwpt"] == 3)

        // And that teardown is journaled too: a third start finds nothing left.
        let (third, replay3) = try Incarnation.restarted(store)
        #expect(replay3.problems.isEmpty && third.recovery?.problems == [])
        #expect(try third.broker.hwptList(a, HWPTListParams()).hwpts.isEmpty)
    }

    func expectBusy<T>(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) {
        do {
            _ = try body()
            Issue.record("expected Busy, it succeeded", sourceLocation: sourceLocation)
        } catch let e as BrokerError {
            #expect(e.kind == .busy, "\(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
    }
}
