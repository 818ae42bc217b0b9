#if canImport(Glibc)
import Glibc
#endif
import IommufdContract
import IommufdChannel
import IommufdCore

// MARK: pasidch

/// The channel's PASID ops (version 1.2) on the real kernel: mock-pasid (the selftest's mock
/// device with MOCK_FLAGS_DEVICE_PASID, 20-bit PASIDs) of owner `pasidOwner`, its RID on an HWPT
/// allocated with IOMMU_HWPT_ALLOC_PASID, a second such HWPT and one without the flag; the VMM
/// attaches, replaces and detaches PASIDs over the channel (VFIO_DEVICE_ATTACH_IOMMUFD_PT and
/// VFIO_DEVICE_DETACH_IOMMUFD_PT with VFIO_DEVICE_ATTACH_PASID, made by the daemon on its own
/// device fd) and the control plane sees each change.
extension ChannelNestedChecks {
    static let pasidOwner = "vm-pasid-ch"
    static let pasidDevice = "mock-pasid"

    static func pasidOps(_ client: DaemonClient) throws {
        defer { _ = try? client.release(pasidOwner) }
        _ = try client.call("owner.create", OwnerCreateParams(name: pasidOwner), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: pasidOwner))
        func hwpt(pasid: Bool) throws -> ObjectID {
            var params = HWPTAllocParams(ioas: ioas.ioas, device: pasidDevice)
            params.pasid = pasid ? true : nil
            let r: HWPTInfo = try client.call("hwpt.alloc", params)
            return r.hwpt
        }
        let rid = try hwpt(pasid: true)
        let attached: DeviceAttachResult = try client.call("device.attach", DeviceAttachParams(owner: pasidOwner, device: pasidDevice, hwpt: rid))
        let other = try hwpt(pasid: true), plain = try hwpt(pasid: false)
        let (delegated, fds) = try client.json("owner.delegate", ["name": .string(pasidOwner)])
        guard fds.count == 1 else {
            for fd in fds { close(fd) }
            throw CheckFailure(description: "owner.delegate answered \(delegated) with \(fds.count) fds, not 1")
        }
        let ch = ChannelClient(adopting: fds[0])
        defer { ch.close() }
        let hello = try ch.hello()
        try expect(hello.major == 1 && hello.minor == 2, "HELLO answered \(hello.major).\(hello.minor), not 1.2")
        func pasids() throws -> [PASIDAttachmentInfo] {
            let info: DeviceInfo = try client.call("device.info", DeviceInfoParams(device: pasidDevice))
            return info.pasids ?? []
        }

        let a = try ch.pasidAttach(device: pasidDevice, pasid: 5, hwpt: rid)
        try expect(a == .init(deviceID: attached.deviceID, pasid: 5, hwpt: rid, previous: 0), "PASID_ATTACH answered \(a)")
        let top: UInt32 = (1 << 20) - 1
        _ = try ch.pasidAttach(device: pasidDevice, pasid: top, hwpt: other)
        let both = try pasids()
        try expect(both == [PASIDAttachmentInfo(pasid: 5, hwpt: rid), PASIDAttachmentInfo(pasid: top, hwpt: other)], "device.info: \(both)")
        // PASID_REPLACE: the kernel moves the PASID in one attach call (no gap).
        let r = try ch.pasidReplace(device: pasidDevice, pasid: 5, hwpt: other)
        try expect(r.hwpt == other && r.previous == rid, "PASID_REPLACE answered \(r)")
        let afterReplace = try pasids()
        try expect(afterReplace.first { $0.pasid == 5 }?.hwpt == other, "device.info after the replace: \(afterReplace)")
        // Refused before the kernel, as device.attach_pasid refuses them.
        let refusals: [(String, () throws -> Void, String, Int32)] = [
            ("an HWPT without IOMMU_HWPT_ALLOC_PASID", { _ = try ch.pasidAttach(device: pasidDevice, pasid: 6, hwpt: plain) }, "iommufdd.InvalidParams", EINVAL),
            ("a PASID past 20 bits", { _ = try ch.pasidAttach(device: pasidDevice, pasid: 1 << 20, hwpt: rid) }, "iommufdd.InvalidParams", EINVAL),
            ("an absent HWPT", { _ = try ch.pasidAttach(device: pasidDevice, pasid: 6, hwpt: 999_999) }, "iommufdd.NotFound", ENOENT),
            ("an attached PASID", { _ = try ch.pasidAttach(device: pasidDevice, pasid: 5, hwpt: rid) }, "iommufdd.Conflict", EEXIST),
            ("detaching a PASID not attached", { _ = try ch.pasidDetach(device: pasidDevice, pasid: 6) }, "iommufdd.Conflict", EEXIST),
            ("destroying an HWPT a PASID is on", { try ch.hwptDestroy(other) }, "iommufdd.Busy", EBUSY),
        ]
        for (what, body, name, errno) in refusals {
            let e = failure(body)
            try expect(e?.name == name && e?.errno == errno, "\(what): \(String(describing: e))")
        }
        let d = try ch.pasidDetach(device: pasidDevice, pasid: 5)
        try expect(d.hwpt == 0 && d.previous == other, "PASID_DETACH answered \(d)")
        _ = try ch.pasidDetach(device: pasidDevice, pasid: top)
        let left = try pasids()
        try expect(left.isEmpty, "PASIDs left: \(left)")
        try ch.hwptDestroy(other)
        print("      mock-pasid (device \(attached.deviceID)): PASIDs 5 and \(top) attached, 5 replaced from HWPT \(rid) to \(other), both detached over the channel; refusals as device.attach_pasid's")
    }
}
