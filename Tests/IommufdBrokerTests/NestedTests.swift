import Foundation
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker
import IommufdContract

/// The selftest mock (nested HWPTs the simulator models) and a nesting VT-d unit (whose data
/// the daemon checks, and the simulator then refuses as not modelled).
let nestedTopology = SimTopology(
    iommus: [
        .selftestMock(name: "mock0", dirtyTracking: false, nesting: true),
        .intelVTd(name: "dmar0", dirtyTracking: false, nesting: true),
    ],
    devices: [
        .init(name: "gpu0", iommu: "mock0", pciAddress: "0000:01:00.0"),
        .init(name: "vtd0", iommu: "dmar0", pciAddress: "0000:02:00.0"),
    ])

@Suite("Nested HWPTs and batched invalidation in the broker")
struct NestedTests {
    func selftest(_ iotlb: UInt32) -> NestedDataParams { NestedDataParams(type: "selftest", iotlb: iotlb) }

    /// Owner vm-1 with gpu0 attached to its IOAS and a nest parent for it.
    func setUp(_ f: Fixture) throws -> (ioas: ObjectID, parent: ObjectID) {
        let ioas = try f.ownerWithIOAS()
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "gpu0", ioas: ioas))
        let parent = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas, device: "gpu0", nestParent: true)).hwpt
        return (ioas, parent)
    }

    @Test func nestedHWPTOnAParentAttachInvalidateAndRelease() throws {
        let f = try Fixture(topology: nestedTopology)
        let s = try setUp(f)
        let nested = try f.broker.hwptAlloc(f.a, HWPTAllocParams(device: "gpu0", parent: s.parent, data: selftest(5)))
        #expect(nested.nested == NestedHWPTInfo(parent: s.parent, viommu: nil, dataType: "selftest") && nested.ioas == s.ioas)
        for i in 0..<4 { try f.sim.checkNestedIOTLB(hwpt: nested.hwpt, index: UInt32(i), value: 5) }

        let r = try f.broker.hwptInvalidate(f.a, HWPTInvalidateParams(hwpt: nested.hwpt, entries: [.init(iotlbID: 0), .init(iotlbID: 2)]))
        #expect(r.done == 2 && r.requested == 2 && r.stopped == nil && r.dataType == "selftest")
        for (i, v) in [0, 5, 0, 5].enumerated() { try f.sim.checkNestedIOTLB(hwpt: nested.hwpt, index: UInt32(i), value: UInt32(v)) }

        // The device moves onto the nested HWPT without a gap; the parent is busy with it.
        let replaced = try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "gpu0", hwpt: nested.hwpt))
        #expect(replaced.pt == nested.hwpt)
        expectBrokerError(.busy) { try f.broker.hwptDestroy(f.a, HWPTDestroyParams(hwpt: s.parent)) }
        expectBrokerError(.busy) { try f.broker.hwptDestroy(f.a, HWPTDestroyParams(hwpt: nested.hwpt)) }
        let listed = try f.broker.hwptList(f.a, HWPTListParams(ioas: s.ioas)).hwpts
        #expect(listed.first { $0.hwpt == nested.hwpt }?.devices == ["gpu0"])
        #expect(listed.first { $0.hwpt == s.parent }?.nested == nil)

        // Another manager sees neither the nested HWPT nor the parent.
        expectBrokerError(.notFound) { try f.broker.hwptInvalidate(f.b, HWPTInvalidateParams(hwpt: nested.hwpt, entries: [.init(all: true)])) }
        expectBrokerError(.notFound) { try f.broker.hwptAlloc(f.b, HWPTAllocParams(device: "gpu0", parent: s.parent, data: selftest(1))) }
        // A reader may not invalidate.
        expectBrokerError(.permissionDenied) { try f.broker.hwptInvalidate(f.reader, HWPTInvalidateParams(hwpt: nested.hwpt, entries: [])) }

        // owner.release: device back onto the parent, nested HWPT, then the rest.
        let released = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(released.released && released.failures.isEmpty, "\(released)")
        #expect(errnoOf { try f.sim.destroy(nested.hwpt) } == .ENOENT)
        #expect(errnoOf { try f.sim.destroy(s.parent) } == .ENOENT)
    }

    @Test func dataIsCheckedFieldByFieldBeforeTheKernel() throws {
        let f = try Fixture(topology: nestedTopology)
        let s = try setUp(f)
        func invalid(_ params: HWPTAllocParams, _ mentions: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let e = expectBrokerError(.invalidParams, sourceLocation: sourceLocation) { try f.broker.hwptAlloc(f.a, params) }
            #expect(e?.message.contains(mentions) == true, "\(e?.message ?? "") should name \(mentions)", sourceLocation: sourceLocation)
        }
        invalid(HWPTAllocParams(device: "gpu0", parent: s.parent, data: NestedDataParams(type: "selftest")), "data.iotlb")
        invalid(HWPTAllocParams(device: "gpu0", parent: s.parent, data: NestedDataParams(type: "selftest", iotlb: 1, ste: [1, 2])), "data.ste")
        invalid(HWPTAllocParams(device: "gpu0", parent: s.parent, data: NestedDataParams(type: "vtd_s1", flags: 0, pgtblAddr: 0x1000, addrWidth: 48)), "data.type")
        invalid(HWPTAllocParams(device: "gpu0", parent: s.parent, data: NestedDataParams(type: "sparc")), "data.type")
        invalid(HWPTAllocParams(device: "gpu0", parent: s.parent, viommu: 1, data: selftest(1)), "not both")
        var withIOAS = HWPTAllocParams(device: "gpu0", parent: s.parent, data: selftest(1))
        withIOAS.ioas = s.ioas
        invalid(withIOAS, "'ioas'")
        var dirty = HWPTAllocParams(device: "gpu0", parent: s.parent, data: selftest(1))
        dirty.dirtyTracking = true
        invalid(dirty, "dirty_tracking")
        var noData = HWPTAllocParams(ioas: 0, device: "gpu0")
        noData.ioas = nil
        noData.parent = s.parent
        invalid(noData, "'data'")
        let plain = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: s.ioas, device: "gpu0")).hwpt
        invalid(HWPTAllocParams(device: "gpu0", parent: plain, data: selftest(1)), "nest parent")
        let nested = try f.broker.hwptAlloc(f.a, HWPTAllocParams(device: "gpu0", parent: s.parent, data: selftest(1))).hwpt
        invalid(HWPTAllocParams(device: "gpu0", parent: nested, data: selftest(1)), "itself nested")

        // VT-d data on a VT-d nest parent: the daemon checks the fields it knows.
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "vtd0", ioas: s.ioas))
        let vtdParent = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: s.ioas, device: "vtd0", nestParent: true)).hwpt
        func vtd(_ flags: UInt64, _ addr: UInt64, _ width: UInt32) -> HWPTAllocParams {
            HWPTAllocParams(device: "vtd0", parent: vtdParent, data: NestedDataParams(type: "vtd_s1", flags: flags, pgtblAddr: addr, addrWidth: width))
        }
        invalid(vtd(8, 0x1000, 48), "data.flags")
        invalid(vtd(1, 0x1001, 48), "data.pgtbl_addr")
        invalid(vtd(1, 0x1000, 39), "data.addr_width")
        invalid(HWPTAllocParams(device: "vtd0", parent: vtdParent, data: NestedDataParams(type: "vtd_s1", flags: 0, addrWidth: 48)), "data.pgtbl_addr")
        // Valid VT-d data reaches the simulator, which models only the selftest driver's nesting.
        let unsupported = expectBrokerError(.unsupported) { try f.broker.hwptAlloc(f.a, vtd(1, 0x1000, 57)) }
        #expect(unsupported?.message.contains("selftest mock driver only") == true)

        // Invalidation entries are checked the same way.
        let e = expectBrokerError(.invalidParams) {
            try f.broker.hwptInvalidate(f.a, HWPTInvalidateParams(hwpt: nested, entries: [.init(iotlbID: 1), .init(iotlbID: 4)]))
        }
        #expect(e?.message.contains("entries[1].iotlb_id") == true)
        let wrongField = expectBrokerError(.invalidParams) {
            try f.broker.hwptInvalidate(f.a, HWPTInvalidateParams(hwpt: nested, entries: [.init(vdevID: 1)]))
        }
        #expect(wrongField?.message.contains("entries[0].vdev_id") == true)
        expectBrokerError(.invalidParams) { try f.broker.hwptInvalidate(f.a, HWPTInvalidateParams(hwpt: s.parent, entries: [.init(all: true)])) }
        // Nothing went to the kernel: every IOTLB entry is still 1.
        for i in 0..<4 { try f.sim.checkNestedIOTLB(hwpt: nested, index: UInt32(i), value: 1) }
    }

    @Test func viommuNestedHWPTAndInvalidationThatStopsEarly() throws {
        let f = try Fixture(topology: nestedTopology)
        let ioas = try f.ownerWithIOAS()
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "gpu0", ioas: ioas))
        let v = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "gpu0"))
        _ = try f.broker.vdeviceCreate(f.a, VDeviceCreateParams(viommu: v.viommu, device: "gpu0", virtualID: 7))
        let nested = try f.broker.hwptAlloc(f.a, HWPTAllocParams(device: "gpu0", viommu: v.viommu, data: selftest(3)))
        #expect(nested.nested?.viommu == v.viommu && nested.nested?.parent == v.nestParent)
        _ = try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "gpu0", hwpt: nested.hwpt))
        let busy = expectBrokerError(.busy) { try f.broker.viommuDestroy(f.a, VIOMMUDestroyParams(viommu: v.viommu)) }
        #expect(busy?.message.contains("nested HWPTs") == true || busy?.message.contains("vDevices") == true)

        let gpu = try f.deviceID("gpu0")
        let r = try f.broker.viommuInvalidate(f.a, VIOMMUInvalidateParams(viommu: v.viommu, entries: [.init(vdevID: 7, cacheID: 0), .init(vdevID: 8, cacheID: 1)]))
        #expect(r.requested == 2 && r.done == 1 && r.stopped?.errno == "EINVAL" && r.stopped?.ioctl == "IOMMU_HWPT_INVALIDATE")
        try f.sim.checkDeviceCache(deviceID: gpu, index: 0, value: 0)
        try f.sim.checkDeviceCache(deviceID: gpu, index: 1, value: 0xbaddad)
        // Nothing done at all is an error naming the errno.
        let none = expectBrokerError(.kernel) { try f.broker.viommuInvalidate(f.a, VIOMMUInvalidateParams(viommu: v.viommu, entries: [.init(vdevID: 8, cacheID: 1)])) }
        #expect(none?.errnoName == "EINVAL" && none?.message.contains("none done") == true)
        let all = try f.broker.viommuInvalidate(f.a, VIOMMUInvalidateParams(viommu: v.viommu, entries: Array(repeating: .init(all: true, vdevID: 7), count: 64)))
        #expect(all.done == 64 && all.stopped == nil)
        for i in 0..<4 { try f.sim.checkDeviceCache(deviceID: gpu, index: UInt32(i), value: 0) }
        expectBrokerError(.notFound) { try f.broker.viommuInvalidate(f.b, VIOMMUInvalidateParams(viommu: v.viommu, entries: [])) }

        let released = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(released.released && released.failures.isEmpty, "\(released)")
        #expect(errnoOf { try f.sim.destroy(v.viommu) } == .ENOENT)
    }
}
