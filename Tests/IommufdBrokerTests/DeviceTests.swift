import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker
import IommufdContract

@Suite("Devices: allow-list, leases, auto-domains, dirty policy")
struct DeviceTests {
    @Test func allowListRefusesOtherDevicesAndMatchesPCIAddresses() throws {
        let f = try Fixture(allow: DeviceAllowList(["sim0", "0000:00:03.0"]))
        let ioas = try f.ownerWithIOAS()
        let refused = expectBrokerError(.permissionDenied) {
            try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim2", ioas: ioas, dirty: .off))
        }
        #expect(refused?.message.contains("allow-list") == true)
        #expect(try f.broker.deviceInfo(f.a, DeviceInfoParams(device: "sim2")).leased == false)
        // sim1 is allowed through its PCI address, and can be named by it.
        let r = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "0000:00:03.0", ioas: ioas, dirty: .off))
        #expect(r.device == "sim1")
        let list = try f.broker.deviceList(f.a, DeviceListParams()).devices
        #expect(list.filter(\.allowed).map(\.name) == ["sim0", "sim1"])
    }

    @Test func oneLeasePerDevice() throws {
        let f = try Fixture()
        let ioasA = try f.ownerWithIOAS("vm-a")
        let ioasB = try f.ownerWithIOAS("vm-b", as: f.b)
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-a", device: "sim0", ioas: ioasA))
        let conflict = expectBrokerError(.conflict) {
            try f.broker.deviceAttach(f.b, DeviceAttachParams(owner: "vm-b", device: "sim0", ioas: ioasB))
        }
        #expect(conflict?.message.contains("vm-a") == false)  // does not leak the other owner
        // Manager B sees that it is leased, not by whom.
        let seenByB = try f.broker.deviceInfo(f.b, DeviceInfoParams(device: "sim0"))
        #expect(seenByB.leased && seenByB.owner == nil && seenByB.deviceID == nil)
        #expect(try f.broker.deviceInfo(f.a, DeviceInfoParams(device: "sim0")).owner == "vm-a")
        // Released, the device can go to B.
        _ = try f.broker.deviceRelease(f.a, DeviceReleaseParams(device: "sim0"))
        let r = try f.broker.deviceAttach(f.b, DeviceAttachParams(owner: "vm-b", device: "sim0", ioas: ioasB))
        #expect(r.ioas == ioasB)
    }

    @Test func failedFirstAttachGivesTheLeaseBack() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        expectBrokerError(.policyRefused) {
            try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim2", ioas: ioas, dirty: .required))
        }
        let info = try f.broker.deviceInfo(f.a, DeviceInfoParams(device: "sim2"))
        #expect(!info.leased && info.deviceID == nil)
        #expect(try f.broker.ownerInfo(f.a, OwnerInfoParams(name: "vm-1")).devices.isEmpty)
    }

    @Test func autoDomainReusesAllocatesAndFallsBackForMdevs() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        // sim0 and sim1 share mock0: with dirty off they share one HWPT.
        let r0 = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas, dirty: .off))
        #expect(r0.hwptCreated && !r0.dirtyTracking && r0.pt != ioas)
        let r1 = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim1", ioas: ioas, dirty: .off))
        #expect(!r1.hwptCreated && r1.pt == r0.pt)
        // sim2 is behind dmar1: the kernel refuses mock0's HWPT (EINVAL), so a new one.
        let r2 = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim2", ioas: ioas, dirty: .off))
        #expect(r2.hwptCreated && r2.pt != r0.pt)
        #expect(f.backend.attachAttempts.suffix(2) == [r0.pt, r2.pt])
        // mdev0 has no HWPT: attached to the IOAS itself.
        let rm = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "mdev0", ioas: ioas))
        #expect(rm.pt == ioas && !rm.hwptCreated)

        let info = try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas))
        #expect(info.hwpts == [r0.pt, r2.pt].sorted())
        #expect(info.devices == ["mdev0", "sim0", "sim1", "sim2"])

        // The shared HWPT goes when its last device leaves, not before.
        #expect(try f.broker.deviceDetach(f.a, DeviceDetachParams(device: "sim0")).destroyedHWPTs.isEmpty)
        #expect(try f.broker.hwptList(f.a, HWPTListParams(ioas: ioas)).hwpts.map(\.hwpt).contains(r0.pt))
        let last = try f.broker.deviceDetach(f.a, DeviceDetachParams(device: "sim1"))
        #expect(last.destroyedHWPTs == [r0.pt])
        #expect(errnoOf { try f.sim.destroy(r0.pt) } == .ENOENT)  // gone from the backend
        #expect(try f.broker.hwptList(f.a, HWPTListParams(ioas: ioas)).hwpts.map(\.hwpt) == [r2.pt])
        // mdev detach leaves no HWPT behind either.
        #expect(try f.broker.deviceDetach(f.a, DeviceDetachParams(device: "mdev0")).previousPT == ioas)
    }

    @Test func instancesThatShareDomainsShareOneHWPT() throws {
        let topology = SimTopology(
            iommus: [
                .init(name: "dmar0", dirtyTracking: true, nesting: false, domainGroup: "vtd"),
                .init(name: "dmar1", dirtyTracking: true, nesting: false, domainGroup: "vtd"),
            ],
            devices: [.init(name: "d0", iommu: "dmar0"), .init(name: "d1", iommu: "dmar1")])
        let f = try Fixture(topology: topology)
        let ioas = try f.ownerWithIOAS()
        let r0 = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "d0", ioas: ioas, dirty: .required))
        let r1 = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "d1", ioas: ioas, dirty: .required))
        #expect(r1.pt == r0.pt && !r1.hwptCreated)
    }

    @Test func einvalFromAttachMeansTryTheNextHWPT() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        // Two dirty-off HWPTs on mock0: an explicit one and sim0's automatic one.
        let explicit = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas, device: "sim0")).hwpt
        let r0 = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas, dirty: .off))
        #expect(r0.pt == explicit && !r0.hwptCreated)  // reused the explicit HWPT
        f.backend.failAttach(onto: explicit, with: .EINVAL)
        let r1 = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim1", ioas: ioas, dirty: .off))
        #expect(r1.hwptCreated && r1.pt != explicit)
        #expect(f.backend.attachAttempts.suffix(2) == [explicit, r1.pt])
        // Any other errno is an error, not "incompatible".
        f.backend.failAttach(onto: explicit, with: .ENOMEM)
        _ = try f.broker.deviceDetach(f.a, DeviceDetachParams(device: "sim1"))
        let e = expectBrokerError(.kernel) {
            try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim1", ioas: ioas, dirty: .off))
        }
        #expect(e?.errnoName == "ENOMEM")
        #expect(e?.ioctl == "VFIO_DEVICE_ATTACH_IOMMUFD_PT")
    }

    @Test func dirtyPolicyRequiredRefusesAndPreferredFallsBack() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let refused = expectBrokerError(.policyRefused) {
            try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim1", ioas: ioas, dirty: .required))
        }
        #expect(refused?.message.contains("sim1") == true)
        #expect(refused?.message.contains("dirty tracking") == true)
        expectBrokerError(.policyRefused) {
            try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "mdev0", ioas: ioas, dirty: .required))
        }
        let required = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas, dirty: .required))
        #expect(required.dirtyTracking && required.hwptCreated)
        // preferred on a device without the capability: a plain HWPT (not sim0's dirty one).
        let preferred = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim1", ioas: ioas, dirty: .preferred))
        #expect(!preferred.dirtyTracking && preferred.hwptCreated && preferred.pt != required.pt)
        let caps = try f.broker.deviceInfo(f.a, DeviceInfoParams(device: "sim0")).capabilities
        #expect(caps?.dirtyTracking == true)
    }

    @Test func replaceMovesBetweenIOASAndFreesTheOldHWPT() throws {
        let f = try Fixture()
        let ioas1 = try f.ownerWithIOAS()
        let ioas2 = try f.broker.ioasCreate(f.a, IOASCreateParams(owner: "vm-1")).ioas
        let first = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas1))
        let moved = try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim0", ioas: ioas2))
        #expect(moved.ioas == ioas2 && moved.previousPT == first.pt && moved.destroyedHWPTs == [first.pt])
        #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas1)).hwpts.isEmpty)
        // Replacing onto the IOAS it is on, with the same policy, changes nothing.
        let same = try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim0", ioas: ioas2))
        #expect(same.pt == moved.pt && !same.hwptCreated && same.destroyedHWPTs.isEmpty)
        // A different dirty policy on the same IOAS moves it to a fitting HWPT.
        let off = try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim0", ioas: ioas2, dirty: .off))
        #expect(off.hwptCreated && !off.dirtyTracking && off.destroyedHWPTs == [moved.pt])
        // Replace onto another owner's IOAS is refused.
        let other = try f.ownerWithIOAS("vm-2")
        expectBrokerError(.invalidParams) {
            try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim0", ioas: other))
        }
        expectBrokerError(.conflict) {
            try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas1))
        }
    }

    @Test func hwptDestroyIsBusyWhileUsed() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let hwpt = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas, device: "sim0", dirtyTracking: true))
        #expect(hwpt.dirtyTracking && !hwpt.auto)
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", hwpt: hwpt.hwpt))
        expectBrokerError(.busy) { try f.broker.hwptDestroy(f.a, HWPTDestroyParams(hwpt: hwpt.hwpt)) }
        expectBrokerError(.busy) { try f.broker.ioasDestroy(f.a, IOASDestroyParams(ioas: ioas)) }
        // An explicit HWPT survives its last detach; then it can be destroyed.
        #expect(try f.broker.deviceDetach(f.a, DeviceDetachParams(device: "sim0")).destroyedHWPTs.isEmpty)
        #expect(try f.broker.hwptDestroy(f.a, HWPTDestroyParams(hwpt: hwpt.hwpt)).hwpt == hwpt.hwpt)
        expectBrokerError(.notFound) { try f.broker.hwptDestroy(f.a, HWPTDestroyParams(hwpt: hwpt.hwpt)) }
        expectBrokerError(.unsupported) { try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas, device: "sim1", dirtyTracking: true)) }
    }
}
