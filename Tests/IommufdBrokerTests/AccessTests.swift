import Foundation
import IommufdCore
import Testing

@testable import IommufdBroker
import IommufdContract

@Suite("Access control and owner isolation")
struct AccessTests {
    @Test func resolvesUIDsGroupsAndRefusesStrangers() throws {
        let access = AccessControl(
            rules: [
                AccessRule(.uid(500), role: .manager, name: "libvirt", quotaBytes: 1 << 30),
                AccessRule(.gid(80), role: .reader, name: "monitoring"),
                AccessRule(.gid(81), role: .admin, name: "operators"),
            ],
            rootIsAdmin: true,
            groupsOf: { uid, _ in uid == 700 ? [80, 81] : uid == 701 ? [80] : [] })
        let libvirt = try #require(access.resolve(uid: 500, gid: 500, pid: 42))
        #expect(libvirt.role == .manager)
        #expect(libvirt.identity == "libvirt")
        #expect(libvirt.quotaBytes == 1 << 30)
        #expect(libvirt.pid == 42)
        // Supplementary groups count; the highest role among matching groups wins.
        #expect(access.resolve(uid: 700, gid: 700, pid: 1)?.role == .admin)
        #expect(access.resolve(uid: 701, gid: 701, pid: 1)?.identity == "monitoring")
        // The primary gid alone also matches.
        #expect(access.resolve(uid: 9, gid: 80, pid: 1)?.role == .reader)
        #expect(access.resolve(uid: 12345, gid: 12345, pid: 1) == nil)
        #expect(access.resolve(uid: 0, gid: 0, pid: 1)?.role == .admin)
        let strict = AccessControl(rules: [], rootIsAdmin: false, groupsOf: { _, _ in [] })
        #expect(strict.resolve(uid: 0, gid: 0, pid: 1) == nil)
    }

    @Test func systemGroupsOfRootIncludeItsPrimaryGroup() {
        // getgrouplist always reports the group it is given.
        #expect(AccessControl.systemGroups(0, 0).contains(0))
    }

    @Test func secondManagerFindsNothingOfTheFirstOnesOwner() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS("vm-a")
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-a", device: "sim0", ioas: ioas))
        let fd = try memfd(pages: 4)
        defer { close(fd) }

        let info = expectBrokerError(.notFound) { try f.broker.ownerInfo(f.b, OwnerInfoParams(name: "vm-a")) }
        #expect(info?.wireName == "iommufdd.NotFound")
        expectBrokerError(.notFound) { try f.broker.ioasCreate(f.b, IOASCreateParams(owner: "vm-a")) }
        expectBrokerError(.notFound) { try f.broker.ioasMap(f.b, IOASMapParams(ioas: ioas, length: page), fd: fd) }
        expectBrokerError(.notFound) { try f.broker.ioasInfo(f.b, IOASInfoParams(ioas: ioas)) }
        expectBrokerError(.notFound) { try f.broker.ownerRelease(f.b, OwnerReleaseParams(name: "vm-a")) }
        expectBrokerError(.notFound) {
            try f.broker.deviceAttach(f.b, DeviceAttachParams(owner: "vm-a", device: "sim1", ioas: ioas))
        }
        // A's leased device: B sees that it is leased (device.list), not to whom, and cannot use it.
        let detach = expectBrokerError(.notFound) { try f.broker.deviceDetach(f.b, DeviceDetachParams(device: "sim0")) }
        #expect(detach?.message.contains("vm-a") == false, "\(detach?.message ?? "")")
        #expect(try f.broker.ownerList(f.b).owners.isEmpty)
        #expect(try f.broker.ioasList(f.b, IOASListParams()).ioas.isEmpty)
        // The owner is intact, and admins see it.
        #expect(try f.broker.ownerList(f.admin).owners.map(\.name) == ["vm-a"])
        #expect(try f.broker.ownerInfo(f.a, OwnerInfoParams(name: "vm-a")).ioas == [ioas])
    }

    /// Another manager's owner, IOAS, HWPT, vIOMMU and vDevice get exactly the error (kind and
    /// message, but for the name or ID) of one that does not exist: nothing tells them apart.
    @Test func anotherManagersObjectsReadExactlyLikeAbsentOnes() throws {
        let f = try Fixture(topology: nestingTopology)
        let ioas = try f.ownerWithIOAS("vm-a")
        let attached = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-a", device: "gpu0", ioas: ioas))
        let viommu = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "gpu0", type: VIOMMUType.selftest))
        let vdevice = try f.broker.vdeviceCreate(f.a, VDeviceCreateParams(viommu: viommu.viommu, device: "gpu0", virtualID: 7))
        let absentID: ObjectID = 9999
        #expect(![ioas, attached.pt, viommu.viommu, viommu.nestParent, vdevice.vdevice].contains(absentID))

        func same(_ what: String, _ present: String, _ absent: String, _ call: (String) throws -> Void) {
            let theirs = expectBrokerError(.notFound) { try call(present) }
            let missing = expectBrokerError(.notFound) { try call(absent) }
            guard let theirs, let missing else { return }
            #expect(theirs.message == missing.message.replacingOccurrences(of: absent, with: present), "\(what): '\(theirs.message)' vs '\(missing.message)'")
            #expect(theirs.wireData == missing.wireData)
        }
        func id(_ text: String) -> ObjectID { ObjectID(text)! }
        let absent = "\(absentID)"
        same("owner.info", "vm-a", "vm-zz") { _ = try f.broker.ownerInfo(f.b, OwnerInfoParams(name: $0)) }
        same("owner.release", "vm-a", "vm-zz") { _ = try f.broker.ownerRelease(f.b, OwnerReleaseParams(name: $0)) }
        same("ioas.create", "vm-a", "vm-zz") { _ = try f.broker.ioasCreate(f.b, IOASCreateParams(owner: $0)) }
        same("ioas.info", "\(ioas)", absent) { _ = try f.broker.ioasInfo(f.b, IOASInfoParams(ioas: id($0))) }
        same("ioas.destroy", "\(ioas)", absent) { _ = try f.broker.ioasDestroy(f.b, IOASDestroyParams(ioas: id($0))) }
        same("dirty.start", "\(ioas)", absent) { _ = try f.broker.dirtyStart(f.b, DirtyParams(ioas: id($0))) }
        same("hwpt.destroy", "\(viommu.nestParent)", absent) { _ = try f.broker.hwptDestroy(f.b, HWPTDestroyParams(hwpt: id($0))) }
        same("viommu.destroy", "\(viommu.viommu)", absent) { _ = try f.broker.viommuDestroy(f.b, VIOMMUDestroyParams(viommu: id($0))) }
        same("vdevice.destroy", "\(vdevice.vdevice)", absent) { _ = try f.broker.vdeviceDestroy(f.b, VDeviceDestroyParams(vdevice: id($0))) }
        // What a reader may see but not change stays PermissionDenied.
        expectBrokerError(.permissionDenied) { try f.broker.ioasDestroy(f.reader, IOASDestroyParams(ioas: ioas)) }
        expectBrokerError(.permissionDenied) { try f.broker.vdeviceDestroy(f.reader, VDeviceDestroyParams(vdevice: vdevice.vdevice)) }
    }

    @Test func readerMayListButNotWrite() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS("vm-a")
        #expect(try f.broker.ownerList(f.reader).owners.map(\.name) == ["vm-a"])
        #expect(try f.broker.ioasInfo(f.reader, IOASInfoParams(ioas: ioas)).owner == "vm-a")
        expectBrokerError(.permissionDenied) { try f.broker.ownerCreate(f.reader, OwnerCreateParams(name: "vm-r")) }
        expectBrokerError(.permissionDenied) { try f.broker.ioasCreate(f.reader, IOASCreateParams(owner: "vm-a")) }
        expectBrokerError(.permissionDenied) { try f.broker.ioasDestroy(f.reader, IOASDestroyParams(ioas: ioas)) }
        expectBrokerError(.permissionDenied) { try f.broker.dirtyStart(f.reader, DirtyParams(ioas: ioas)) }
        #expect(try f.broker.ioasList(f.admin, IOASListParams()).ioas.map(\.ioas) == [ioas])
    }

    @Test func adminActsOnAnyOwner() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS("vm-a")
        #expect(try f.broker.ioasDestroy(f.admin, IOASDestroyParams(ioas: ioas)).ioas == ioas)
        #expect(try f.broker.ownerRelease(f.admin, OwnerReleaseParams(name: "vm-a")).released)
    }

    @Test func ownerNamesAreValidatedAndUnique() throws {
        let f = try Fixture()
        for bad in ["", "-x", ".x", "a b", "a/b", String(repeating: "x", count: 129), "vm\u{0}"] {
            expectBrokerError(.invalidParams) { try f.broker.ownerCreate(f.a, OwnerCreateParams(name: bad)) }
        }
        _ = try f.broker.ownerCreate(f.a, OwnerCreateParams(name: "6f1c2a44-93b1-4c8e-9d0e-1d2f3a4b5c6d"))
        expectBrokerError(.conflict) { try f.broker.ownerCreate(f.b, OwnerCreateParams(name: "6f1c2a44-93b1-4c8e-9d0e-1d2f3a4b5c6d")) }
    }

    @Test func deviceFDOnlyForTrustedVMM() throws {
        let f = try Fixture()
        let ioasA = try f.ownerWithIOAS("vm-a")
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-a", device: "sim0", ioas: ioasA))
        let refused = expectBrokerError(.permissionDenied) { try f.broker.deviceFD(f.a, DeviceFDParams(device: "sim0")) }
        #expect(refused?.message.contains("trusted_vmm") == true)
        // Trusted, but another identity's device: not leased to any owner it can see.
        expectBrokerError(.notFound) { try f.broker.deviceFD(f.vmm, DeviceFDParams(device: "sim0")) }
        let ioasV = try f.ownerWithIOAS("vm-v", as: f.vmm)
        _ = try f.broker.deviceAttach(f.vmm, DeviceAttachParams(owner: "vm-v", device: "sim2", ioas: ioasV))
        // Simulated devices have no cdev fd to hand out.
        expectBrokerError(.unsupported) { try f.broker.deviceFD(f.vmm, DeviceFDParams(device: "sim2")) }
    }
}
