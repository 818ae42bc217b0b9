import Foundation
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker
import IommufdContract

/// Two dirty-capable devices on one nesting IOMMU, one on another, one mdev. The IOMMUs are
/// the kernel selftest's mock, the one driver with both vIOMMUs and dirty-tracking nest parents.
/// mock1 refuses another instance's nest parent, so each instance gets its own (sharing one
/// stage 2 across instances: SharedStage2Tests).
let nestingTopology = SimTopology(
    iommus: [
        .selftestMock(name: "mock0", dirtyTracking: true, nesting: true),
        .selftestMock(name: "mock1", dirtyTracking: true, nesting: true, sharesNestParent: false),
    ],
    devices: [
        .init(name: "gpu0", iommu: "mock0", pciAddress: "0000:01:00.0"),
        .init(name: "nic0", iommu: "mock0", pciAddress: "0000:02:00.0"),
        .init(name: "nvme0", iommu: "mock1", pciAddress: "0000:03:00.0"),
        .init(name: "mdev0", iommu: nil),
    ])

@Suite("vIOMMU, owner.release and events")
struct LifecycleTests {
    @Test func oneNestParentPerIOMMUInstanceSharedByItsVIOMMUs() throws {
        let f = try Fixture(topology: nestingTopology)
        let ioas = try f.ownerWithIOAS()
        let gpu = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "gpu0", ioas: ioas))
        let nic = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "nic0", ioas: ioas))
        #expect(gpu.pt == nic.pt)
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "nvme0", ioas: ioas))

        let v1 = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "gpu0", type: VIOMMUType.selftest))
        #expect(v1.nestParentCreated && v1.movedFrom == gpu.pt && v1.iommuInstance == "mock0")
        let v2 = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "nic0", type: VIOMMUType.selftest))
        #expect(!v2.nestParentCreated && v2.nestParent == v1.nestParent && v2.viommu != v1.viommu)
        // The old automatic HWPT went with its last device.
        #expect(errnoOf { try f.sim.destroy(gpu.pt) } == .ENOENT)
        let v3 = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "nvme0", type: VIOMMUType.selftest))
        #expect(v3.nestParentCreated && v3.nestParent != v1.nestParent)

        let parent = try #require(f.broker.hwptList(f.a, HWPTListParams(ioas: ioas)).hwpts.first { $0.hwpt == v1.nestParent })
        #expect(parent.nestParent && parent.auto && parent.devices == ["gpu0", "nic0"] && parent.viommus == [v1.viommu, v2.viommu].sorted())
        // The new nest parent kept the dirty tracking the device had.
        #expect(parent.dirtyTracking)

        let vd = try f.broker.vdeviceCreate(f.a, VDeviceCreateParams(viommu: v1.viommu, device: "gpu0", virtualID: 0x100))
        expectBrokerError(.busy) { try f.broker.viommuDestroy(f.a, VIOMMUDestroyParams(viommu: v1.viommu)) }
        expectBrokerError(.busy) { try f.broker.deviceDetach(f.a, DeviceDetachParams(device: "gpu0")) }
        expectBrokerError(.notFound) { try f.broker.vdeviceDestroy(f.b, VDeviceDestroyParams(vdevice: vd.vdevice)) }
        _ = try f.broker.vdeviceDestroy(f.a, VDeviceDestroyParams(vdevice: vd.vdevice))
        #expect(try f.broker.viommuDestroy(f.a, VIOMMUDestroyParams(viommu: v1.viommu)).destroyedHWPTs.isEmpty)
        expectBrokerError(.conflict) { try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "mdev0", type: VIOMMUType.selftest)) }
    }

    @Test func viommuListShowsNestParentsAndVDevicesToThoseWhoMaySeeThem() throws {
        let f = try Fixture(topology: nestingTopology)
        let ioas = try f.ownerWithIOAS()
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "gpu0", ioas: ioas))
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "nvme0", ioas: ioas))
        #expect(try f.broker.viommuList(f.a, VIOMMUListParams()).viommus.isEmpty)
        let v1 = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "gpu0", type: VIOMMUType.selftest))
        let v2 = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "nvme0", type: VIOMMUType.selftest))
        let vd = try f.broker.vdeviceCreate(f.a, VDeviceCreateParams(viommu: v1.viommu, device: "gpu0", virtualID: 0x100))

        let all = try f.broker.viommuList(f.a, VIOMMUListParams(owner: "vm-1")).viommus
        #expect(all.map(\.viommu) == [v1.viommu, v2.viommu])
        #expect(all[0].nestParent == v1.nestParent && all[0].iommuInstance == "mock0" && all[0].device == "gpu0" && all[0].ioas == ioas)
        #expect(all[0].vdevices.map(\.vdevice) == [vd.vdevice] && all[0].vdevices.first?.virtualID == 0x100)
        #expect(all[1].nestParent == v2.nestParent && all[1].iommuInstance == "mock1" && all[1].vdevices.isEmpty)
        // Readers see them; another manager sees none of them and may not name the owner or IOAS.
        #expect(try f.broker.viommuList(f.reader, VIOMMUListParams(ioas: ioas)).viommus.count == 2)
        #expect(try f.broker.viommuList(f.b, VIOMMUListParams()).viommus.isEmpty)
        expectBrokerError(.notFound) { try f.broker.viommuList(f.b, VIOMMUListParams(owner: "vm-1")) }
        expectBrokerError(.notFound) { try f.broker.viommuList(f.b, VIOMMUListParams(ioas: ioas)) }
        expectBrokerError(.notFound) { try f.broker.viommuList(f.a, VIOMMUListParams(ioas: 9999)) }

        _ = try f.broker.vdeviceDestroy(f.a, VDeviceDestroyParams(vdevice: vd.vdevice))
        _ = try f.broker.viommuDestroy(f.a, VIOMMUDestroyParams(viommu: v1.viommu))
        #expect(try f.broker.viommuList(f.a, VIOMMUListParams()).viommus.map(\.viommu) == [v2.viommu])
    }

    /// A driver whose hw_info names no vIOMMU type the broker knows (here AMD's, which has no
    /// `enum iommu_viommu_type` in Linux 7.3): the caller must pass `type`.
    @Test func viommuCreateWithoutATypeItCanInferIsInvalid() throws {
        let topology = SimTopology(
            iommus: [.init(name: "amd0", dirtyTracking: true, nesting: true, hwInfoType: HWInfoType.amd)],
            devices: [.init(name: "gpu0", iommu: "amd0")])
        let f = try Fixture(topology: topology)
        let ioas = try f.ownerWithIOAS()
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "gpu0", ioas: ioas))
        let e = expectBrokerError(.invalidParams) { try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "gpu0")) }
        #expect(e?.message.contains("type") == true)
        // Nothing was left behind by the refused request: not in the broker's books, and not in
        // the backend either (a leaked nest parent would make the IOAS undestroyable).
        #expect(try f.broker.hwptList(f.a, HWPTListParams(ioas: ioas)).hwpts.count == 1)
        let released = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(released.failures.isEmpty && released.released)
    }

    /// Intel VT-d has no vIOMMU in Linux 7.3: refused as Unsupported, saying so, before a nest
    /// parent is allocated or the device moves.
    @Test func viommuCreateOnIntelVTdIsUnsupported() throws {
        let topology = SimTopology(
            iommus: [.intelVTd(name: "dmar0", dirtyTracking: true, nesting: true)],
            devices: [.init(name: "gpu0", iommu: "dmar0")])
        let f = try Fixture(topology: topology)
        let ioas = try f.ownerWithIOAS()
        let attached = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "gpu0", ioas: ioas))
        let e = expectBrokerError(.unsupported) { try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "gpu0")) }
        #expect(e?.message.contains("Intel VT-d") == true && e?.message.contains("gpu0") == true)
        #expect(try f.broker.hwptList(f.a, HWPTListParams(ioas: ioas)).hwpts.map(\.hwpt) == [attached.pt])
        // Naming a type does not help: the kernel's answer (EOPNOTSUPP) comes back, nothing left behind.
        let kernel = expectBrokerError(.kernel) {
            try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "gpu0", type: VIOMMUType.armSMMUv3))
        }
        #expect(kernel?.message.contains("EOPNOTSUPP") == true)
        #expect(try f.broker.hwptList(f.a, HWPTListParams(ioas: ioas)).hwpts.map(\.hwpt) == [attached.pt])
    }

    @Test func ownerReleaseLeavesNothingBehind() throws {
        let f = try Fixture(topology: nestingTopology)
        let ioas = try f.ownerWithIOAS()
        let ioas2 = try f.broker.ioasCreate(f.a, IOASCreateParams(owner: "vm-1")).ioas
        let fd = try memfd(pages: 16)
        defer { close(fd) }
        let m = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 8 * page, iova: 0x100_0000), fd: fd)
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas2, offset: 8 * page, length: 8 * page), fd: fd)
        _ = try f.broker.ioasCopy(f.a, IOASCopyParams(dstIOAS: ioas2, srcIOAS: ioas, srcIOVA: m.iova, length: m.length))
        let gpu = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "gpu0", ioas: ioas, dirty: .required))
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "nvme0", ioas: ioas2))
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "mdev0", ioas: ioas))
        let explicit = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas2, device: "nvme0")).hwpt
        _ = try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas))
        let v = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "gpu0", type: VIOMMUType.selftest))
        let vd = try f.broker.vdeviceCreate(f.a, VDeviceCreateParams(viommu: v.viommu, device: "gpu0", virtualID: 7))
        let info = try f.broker.ownerInfo(f.a, OwnerInfoParams(name: "vm-1"))
        let kernelObjects = info.ioas + info.hwpts + info.viommus + info.vdevices
        // gpu0's first HWPT stays after it moved to the nest parent: dirty tracking is on and its
        // bitmap is unread. With the nest parent, nvme0's automatic HWPT and the explicit one: 4.
        #expect(v.movedFrom == gpu.pt && info.hwpts.count == 4 && info.hwpts.contains(v.nestParent) && info.hwpts.contains(gpu.pt))
        #expect(info.pinnedBytes == 24 * page)
        let deviceIDs = try ["gpu0", "nvme0", "mdev0"].map { try f.deviceID($0) }

        let result = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(result.released && result.failures.isEmpty)
        #expect(result.refundedBytes == 24 * page)
        #expect(result.destroyed["mapping"] == 3 && result.destroyed["ioas"] == 2 && result.destroyed["device"] == 3)
        #expect(result.destroyed["vdevice"] == 1 && result.destroyed["viommu"] == 1)

        // Every kernel object is gone from the backend.
        for id in kernelObjects + deviceIDs + [explicit, vd.vdevice] {
            #expect(errnoOf { try f.sim.destroy(id) } == .ENOENT, "object \(id) still exists")
        }
        // Devices are unbound (they can be bound again) and free for anyone.
        let again = try f.sim.bind(try #require(f.sim.discoverDevices().first { $0.name == "gpu0" }))
        try f.sim.unbind(deviceID: again.id)
        #expect(try f.broker.deviceList(f.admin, DeviceListParams()).devices.allSatisfy { !$0.leased })
        let counts = f.broker.counts()
        #expect(counts.owners == 0 && counts.ioas == 0 && counts.hwpts == 0 && counts.viommus == 0)
        #expect(counts.vdevices == 0 && counts.mappings == 0 && counts.pinnedBytes == 0 && counts.devicesLeased == 0)
        #expect(f.broker.heldFileCount == 0)
        expectBrokerError(.notFound) { try f.broker.ownerInfo(f.a, OwnerInfoParams(name: "vm-1")) }
    }

    @Test func eventsAreScopedToWhatTheSubscriberMaySee() throws {
        let f = try Fixture()
        let log = EventLog()
        _ = try f.broker.subscribe(f.a, EventsSubscribeParams()) { log.append("a", $0) }
        _ = try f.broker.subscribe(f.b, EventsSubscribeParams()) { log.append("b", $0) }
        let sub = try f.broker.subscribe(f.reader, EventsSubscribeParams()) { log.append("reader", $0) }
        let ioas = try f.ownerWithIOAS()
        let r = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas))
        _ = try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas))

        let expected: [BrokerEvent] = [
            .ownerCreated(owner: "vm-1"),
            .objectCreated(owner: "vm-1", kind: .ioas, id: ioas),
            .objectCreated(owner: "vm-1", kind: .device, id: r.deviceID),
            .objectCreated(owner: "vm-1", kind: .hwpt, id: r.pt),
            .deviceAttached(owner: "vm-1", device: "sim0", ioas: ioas, pt: r.pt),
            .dirtyTrackingStarted(owner: "vm-1", ioas: ioas),
        ]
        #expect(log.events("a") == expected)
        #expect(log.events("reader") == expected)
        #expect(log.events("b").isEmpty)
        // Manager B may not subscribe to A's owner: to B it does not exist.
        expectBrokerError(.notFound) { try f.broker.subscribe(f.b, EventsSubscribeParams(owner: "vm-1")) { _ in } }

        expectBrokerError(.notFound) { try f.broker.unsubscribe(f.a, EventsUnsubscribeParams(subscription: sub.subscription)) }
        try f.broker.unsubscribe(f.reader, EventsUnsubscribeParams(subscription: sub.subscription))
        _ = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(log.events("reader").count == expected.count)
        #expect(log.events("a").last == .ownerReleased(owner: "vm-1", complete: true))
        #expect(log.events("a").contains(.dirtyTrackingStopped(owner: "vm-1", ioas: ioas)))
    }

    @Test func eventsEncodeWithTheirParams() throws {
        let data = try JSONEncoder().encode(BrokerEvent.objectCreated(owner: "vm-1", kind: .hwpt, id: 3))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["owner"] as? String == "vm-1" && json["kind"] as? String == "hwpt" && json["id"] as? Int == 3)
        #expect(BrokerEvent.objectCreated(owner: "vm-1", kind: .hwpt, id: 3).method == "event.object_created")
    }
}

final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(String, BrokerEvent)] = []
    func append(_ who: String, _ event: BrokerEvent) { lock.withLock { entries.append((who, event)) } }
    func events(_ who: String) -> [BrokerEvent] { lock.withLock { entries.filter { $0.0 == who }.map(\.1) } }
}
