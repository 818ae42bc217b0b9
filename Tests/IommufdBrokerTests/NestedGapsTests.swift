import Foundation
import IommufdCore
import IommufdSim
import Testing
import IommufdContract

@testable import IommufdBroker

// MARK: nestedgaps

/// One message from a queue's fd, waiting up to two seconds.
private func receive(_ fd: Int32) -> [UInt8]? {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    guard poll(&p, 1, 2000) == 1 else { return nil }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    return n < 0 ? nil : Array(buffer[0..<n])
}

/// A nested HWPT with a fault queue, dirty tracking through a nested HWPT's nest parent, and
/// `viommu.create` for a device already on a nested HWPT, on the simulator's selftest mock
/// (`SimTopology.default`: sim0 behind mock0, which tracks dirty pages and nests).
@Suite("Nested translation: fault queues, dirty tracking, vIOMMU on a nested device")
struct NestedGapsTests {
    static let base: UInt64 = 0x100_0000
    let selftest = NestedDataParams(type: "selftest", iotlb: 0)

    /// vm-1 with an IOAS holding 16 pages at `base`, sim0 attached with `dirty`.
    func setUp(_ f: Fixture, dirty: DirtyPolicy = .required) throws -> ObjectID {
        let ioas = try f.ownerWithIOAS()
        let fd = try memfd(pages: 16)
        defer { close(fd) }
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 16 * page, iova: Self.base), fd: fd)
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas, dirty: dirty))
        return ioas
    }

    @Test func aNestedHWPTDeliversItsPageFaultsToTheOwnersFaultQueue() throws {
        let f = try Fixture()
        _ = try setUp(f)
        let v = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "sim0"))
        let created = try f.broker.faultCreate(f.a, FaultCreateParams(owner: "vm-1"))
        let fd = try #require(created.fds.first)
        defer { close(fd) }
        let queue = created.result.queue.queue

        // Another manager's queue is NotFound to this one, like an absent one; a reader may not.
        _ = try f.ownerWithIOAS("vm-2", as: f.b)
        let other = try f.broker.faultCreate(f.b, FaultCreateParams(owner: "vm-2"))
        defer { other.fds.forEach { close($0) } }
        expectBrokerError(.notFound) {
            try f.broker.hwptAlloc(f.a, HWPTAllocParams(device: "sim0", parent: v.nestParent, data: selftest, faultQueue: other.result.queue.queue))
        }
        expectBrokerError(.notFound) { try f.broker.hwptAlloc(f.a, HWPTAllocParams(device: "sim0", parent: v.nestParent, data: selftest, faultQueue: 999)) }
        expectBrokerError(.permissionDenied) {
            try f.broker.hwptAlloc(f.reader, HWPTAllocParams(device: "sim0", parent: v.nestParent, data: selftest, faultQueue: queue))
        }

        // On the nest parent: the HWPT delivers to the queue, which is busy while it does.
        let nested = try f.broker.hwptAlloc(f.a, HWPTAllocParams(device: "sim0", parent: v.nestParent, data: selftest, faultQueue: queue))
        #expect(nested.faultQueue == queue && nested.nested?.parent == v.nestParent)
        #expect(try f.broker.queueList(f.a, QueueListParams()).queues.first { $0.queue == queue }?.hwpts == [nested.hwpt])
        _ = try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim0", hwpt: nested.hwpt))
        expectBrokerError(.busy) { try f.broker.faultDestroy(f.a, QueueParams(queue: queue)) }
        try f.sim.triggerIOPF(deviceID: try f.deviceID("sim0"), pasid: 0, groupID: 7, perm: 1, address: 0x8000)
        let message = try #require(receive(fd), "no fault reached the holder")
        #expect(PageFault.parse(message).first?.address == 0x8000 && PageFault.parse(message).first?.groupID == 7)

        // On the vIOMMU too, with the same queue.
        _ = try f.broker.vdeviceCreate(f.a, VDeviceCreateParams(viommu: v.viommu, device: "sim0", virtualID: 0x10))
        let onVIOMMU = try f.broker.hwptAlloc(f.a, HWPTAllocParams(device: "sim0", viommu: v.viommu, data: selftest, faultQueue: queue))
        #expect(onVIOMMU.faultQueue == queue && onVIOMMU.nested?.viommu == v.viommu)

        // owner.release: device off the nested HWPTs, the HWPTs, then the queue.
        let released = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(released.released && released.failures.isEmpty, "\(released)")
        #expect(try f.broker.queueList(f.admin, QueueListParams(owner: "vm-2")).queues.count == 1)
        #expect(try f.broker.queueList(f.admin, QueueListParams()).queues.map(\.queue) == [other.result.queue.queue])
        #expect(errnoOf { try f.sim.destroy(nested.hwpt) } == .ENOENT)
        #expect(errnoOf { try f.sim.destroy(queue) } == .ENOENT)
    }

    @Test func aNestParentMadeWhileTheIOASIsTrackedTracksAndItsNestedHWPTsCount() throws {
        let f = try Fixture()
        let ioas = try setUp(f)
        _ = try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas))
        // viommu.create under tracking: the nest parent gets the flag and tracks at once.
        let v = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "sim0"))
        let parent = try #require(try f.broker.hwptList(f.a, HWPTListParams(ioas: ioas)).hwpts.first { $0.hwpt == v.nestParent })
        #expect(parent.dirtyTracking && parent.tracking && parent.nestParent)
        _ = try f.broker.vdeviceCreate(f.a, VDeviceCreateParams(viommu: v.viommu, device: "sim0", virtualID: 0x10))
        let nested = try f.broker.hwptAlloc(f.a, HWPTAllocParams(device: "sim0", viommu: v.viommu, data: selftest))

        // Attaching onto the nested HWPT is no longer refused as "not tracking": its parent is.
        let moved = try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim0", hwpt: nested.hwpt, dirty: .required))
        #expect(moved.pt == nested.hwpt && moved.dirtyTracking)
        let status = try f.broker.dirtyStatus(f.a, DirtyParams(ioas: ioas))
        // (The auto HWPT sim0 left stays tracking until dirty.stop: its bits are not read yet.)
        #expect(status.trackingHWPTs.contains(v.nestParent) && status.untrackedDevices.isEmpty, "\(status)")

        // The device's writes land in the parent's (stage 2) bitmap, which dirty.read reads.
        try f.sim.simulateDeviceWrite(hwpt: v.nestParent, iova: Self.base + 3 * page, length: page, pageSize: page)
        #expect(errnoOf { try f.sim.simulateDeviceWrite(hwpt: nested.hwpt, iova: Self.base, length: page, pageSize: page) } == .ENOENT)
        let read = try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base, length: 16 * page))
        #expect(read.result.runs == [DirtyRun(iova: Self.base + 3 * page, length: page)])
    }

    @Test func dirtyStartCountsTheDevicesOnANestParentsNestedHWPTs() throws {
        let f = try Fixture()
        let ioas = try setUp(f, dirty: .off)
        // A nest parent without dirty tracking, its device on a nested HWPT over it.
        let v = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "sim0"))
        let parent = try #require(try f.broker.hwptList(f.a, HWPTListParams(ioas: ioas)).hwpts.first { $0.hwpt == v.nestParent })
        #expect(!parent.dirtyTracking)
        let nested = try f.broker.hwptAlloc(f.a, HWPTAllocParams(device: "sim0", parent: v.nestParent, data: selftest))
        _ = try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim0", hwpt: nested.hwpt))
        #expect(try f.broker.hwptList(f.a, HWPTListParams(ioas: ioas)).hwpts.first { $0.hwpt == v.nestParent }?.devices == [])
        let refused = expectBrokerError(.policyRefused) { try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas)) }
        #expect(refused?.message.contains("HWPT \(v.nestParent) (devices sim0)") == true, "\(refused?.message ?? "")")
        let required = expectBrokerError(.policyRefused) {
            try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim0", hwpt: nested.hwpt, dirty: .required))
        }
        #expect(required?.message.contains("nest parent HWPT \(v.nestParent)") == true, "\(required?.message ?? "")")
    }

    @Test func viommuCreateLeavesADeviceOnItsNestedHWPT() throws {
        let f = try Fixture()
        let ioas = try setUp(f)
        // A nest parent the owner made itself, a nested HWPT over it with the device on it.
        let own = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas, device: "sim0", nestParent: true))
        let nested = try f.broker.hwptAlloc(f.a, HWPTAllocParams(device: "sim0", parent: own.hwpt, data: selftest))
        _ = try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim0", hwpt: nested.hwpt))

        let v = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "sim0"))
        #expect(v.nestParent == own.hwpt && !v.nestParentCreated && v.movedFrom == nil, "\(v)")
        #expect(try f.broker.deviceInfo(f.a, DeviceInfoParams(device: "sim0")).pt == nested.hwpt)
        // The second vIOMMU shares the same stage 2 and the device still does not move.
        let second = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "sim0"))
        #expect(second.nestParent == own.hwpt && second.movedFrom == nil)
        #expect(try f.broker.deviceInfo(f.a, DeviceInfoParams(device: "sim0")).pt == nested.hwpt)
        // Another manager cannot do it for this owner's device.
        expectBrokerError(.notFound) { try f.broker.viommuCreate(f.b, VIOMMUCreateParams(device: "sim0")) }
        let released = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(released.released && released.failures.isEmpty, "\(released)")
    }
}

/// Four instances of the selftest mock driver: mockA and mockB share nest parents; mockC
/// refuses another instance's (attach is EINVAL); mockD shares domains with mockA (a
/// `domainGroup`, so the attach works) but its IOMMU_VIOMMU_ALLOC refuses mockA's parent.
let sharedStage2Topology: SimTopology = {
    var a = SimTopology.IOMMU.selftestMock(name: "mockA", dirtyTracking: true, nesting: true)
    a.domainGroup = "g"
    let b = SimTopology.IOMMU.selftestMock(name: "mockB", dirtyTracking: true, nesting: true)
    let c = SimTopology.IOMMU.selftestMock(name: "mockC", dirtyTracking: true, nesting: true, sharesNestParent: false)
    var d = SimTopology.IOMMU.selftestMock(name: "mockD", dirtyTracking: true, nesting: true, sharesNestParent: false)
    d.domainGroup = "g"
    return SimTopology(
        iommus: [a, b, c, d],
        devices: [
            .init(name: "a0", iommu: "mockA", pciAddress: "0000:01:00.0"), .init(name: "b0", iommu: "mockB", pciAddress: "0000:02:00.0"),
            .init(name: "c0", iommu: "mockC", pciAddress: "0000:03:00.0"), .init(name: "d0", iommu: "mockD", pciAddress: "0000:04:00.0"),
        ])
}()

@Suite("One shared stage 2: a nest parent serves vIOMMUs of several instances where the kernel lets it")
struct SharedStage2Tests {
    @Test func aSecondInstanceSharesTheNestParentAndARefusingOneGetsItsOwn() throws {
        let f = try Fixture(topology: sharedStage2Topology)
        let ioas = try f.ownerWithIOAS()
        for name in ["a0", "b0", "c0", "d0"] {
            _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: name, ioas: ioas))
        }
        let first = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "a0"))
        #expect(first.nestParentCreated && first.iommuInstance == "mockA")

        // mockB takes mockA's stage 2: no second nest parent; b0 moved onto it.
        let shared = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "b0"))
        #expect(shared.nestParent == first.nestParent && !shared.nestParentCreated && shared.movedFrom != nil, "\(shared)")
        #expect(try f.broker.deviceInfo(f.a, DeviceInfoParams(device: "b0")).pt == first.nestParent)

        // mockC refuses the attach, mockD the vIOMMU: each falls back to a nest parent of its
        // own, and the refused try leaves nothing behind (the device is where the fall-back put it).
        let refusedAttach = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "c0"))
        #expect(refusedAttach.nestParentCreated && refusedAttach.nestParent != first.nestParent, "\(refusedAttach)")
        let refusedVIOMMU = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "d0"))
        #expect(refusedVIOMMU.nestParentCreated && ![first.nestParent, refusedAttach.nestParent].contains(refusedVIOMMU.nestParent), "\(refusedVIOMMU)")
        #expect(try f.broker.deviceInfo(f.a, DeviceInfoParams(device: "d0")).pt == refusedVIOMMU.nestParent)

        let parents = try f.broker.hwptList(f.a, HWPTListParams(ioas: ioas)).hwpts.filter(\.nestParent)
        #expect(parents.map(\.hwpt) == [first.nestParent, refusedAttach.nestParent, refusedVIOMMU.nestParent].sorted())
        #expect(parents.first { $0.hwpt == first.nestParent }?.viommus == [first.viommu, shared.viommu].sorted())
        #expect(parents.first { $0.hwpt == first.nestParent }?.devices == ["a0", "b0"])

        // A later vIOMMU of mockB reuses what mockB got; a nested HWPT works on the shared one.
        let again = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "b0"))
        #expect(again.nestParent == first.nestParent && again.movedFrom == nil)
        _ = try f.broker.vdeviceCreate(f.a, VDeviceCreateParams(viommu: shared.viommu, device: "b0", virtualID: 0x2))
        let nested = try f.broker.hwptAlloc(f.a, HWPTAllocParams(device: "b0", viommu: shared.viommu, data: NestedDataParams(type: "selftest", iotlb: 0)))
        _ = try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "b0", hwpt: nested.hwpt))

        let released = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(released.released && released.failures.isEmpty, "\(released)")
        #expect(errnoOf { try f.sim.destroy(first.nestParent) } == .ENOENT)
    }

    @Test func aNestParentOfAnotherIOASIsNeverShared() throws {
        let f = try Fixture(topology: sharedStage2Topology)
        let ioas1 = try f.ownerWithIOAS()
        let ioas2 = try f.ownerWithIOAS("vm-2", as: f.b)
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "a0", ioas: ioas1))
        _ = try f.broker.deviceAttach(f.b, DeviceAttachParams(owner: "vm-2", device: "b0", ioas: ioas2))
        let one = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "a0"))
        let two = try f.broker.viommuCreate(f.b, VIOMMUCreateParams(device: "b0"))
        #expect(two.nestParentCreated && two.nestParent != one.nestParent)
    }
}

extension SharedStage2Tests {
    /// A nest parent without dirty tracking is not shared with a device whose HWPT tracks: the
    /// device would lose tracking. It gets a parent of its own, with the flag.
    @Test func aParentWithoutDirtyTrackingIsNotSharedWithADirtyDevice() throws {
        let f = try Fixture(topology: sharedStage2Topology)
        let ioas = try f.ownerWithIOAS()
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "a0", ioas: ioas, dirty: .off))
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "b0", ioas: ioas, dirty: .required))
        let first = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "a0"))
        let second = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "b0"))
        #expect(second.nestParentCreated && second.nestParent != first.nestParent, "\(second)")
        let parents = try f.broker.hwptList(f.a, HWPTListParams(ioas: ioas)).hwpts.filter(\.nestParent)
        #expect(parents.first { $0.hwpt == first.nestParent }?.dirtyTracking == false)
        #expect(parents.first { $0.hwpt == second.nestParent }?.dirtyTracking == true)
    }
}
