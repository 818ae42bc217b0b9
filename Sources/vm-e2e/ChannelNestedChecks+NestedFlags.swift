#if canImport(Glibc)
import Glibc
#endif
import IommufdContract
import IommufdChannel
import IommufdCore

// MARK: pasidnest

/// NESTED_ALLOC_FLAGS (op 19, channel 1.2) on the real kernel: mock-pasid's RID on an HWPT
/// allocated with IOMMU_HWPT_ALLOC_PASID and a nest parent of the same owner; the VMM allocates a
/// nested (selftest) HWPT on it with the PASID flag (IOMMU_HWPT_ALLOC with
/// IOMMU_HWPT_ALLOC_PASID and driver data: the selftest's mock_domain_alloc_nested takes that
/// flag), attaches a PASID to it over the channel, and is refused for a nested HWPT allocated
/// without the flag and for an undefined flag bit; the control plane sees each change.
extension ChannelNestedChecks {
    static let nestedFlagsOwner = "vm-pasid-nest"

    static func nestedAllocFlagsOps(_ client: DaemonClient) throws {
        defer { _ = try? client.release(nestedFlagsOwner) }
        _ = try client.call("owner.create", OwnerCreateParams(name: nestedFlagsOwner), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: nestedFlagsOwner))
        var ridParams = HWPTAllocParams(ioas: ioas.ioas, device: pasidDevice)
        ridParams.pasid = true
        let rid: HWPTInfo = try client.call("hwpt.alloc", ridParams)
        let attached: DeviceAttachResult = try client.call("device.attach", DeviceAttachParams(owner: nestedFlagsOwner, device: pasidDevice, hwpt: rid.hwpt))
        let parent: HWPTInfo = try client.call("hwpt.alloc", HWPTAllocParams(ioas: ioas.ioas, device: pasidDevice, nestParent: true))
        let (delegated, fds) = try client.json("owner.delegate", ["name": .string(nestedFlagsOwner)])
        guard fds.count == 1 else {
            for fd in fds { close(fd) }
            throw CheckFailure(description: "owner.delegate answered \(delegated) with \(fds.count) fds, not 1")
        }
        let ch = ChannelClient(adopting: fds[0])
        defer { ch.close() }
        func hwpts() throws -> [HWPTInfo] {
            let list: HWPTListResult = try client.call("hwpt.list", HWPTListParams(owner: nestedFlagsOwner))
            return list.hwpts
        }

        let nested = try ch.nestedAlloc(parent: parent.hwpt, dataType: HWPTDataType.selftest, device: pasidDevice, data: [0, 0, 0, 0, 0, 0, 0, 0], flags: ChannelWire.nestedAllocPASID)
        try expect(nested.nestParent == parent.hwpt, "NESTED_ALLOC_FLAGS answered nest parent \(nested.nestParent), not \(parent.hwpt)")
        let seen = try hwpts().first { $0.hwpt == nested.hwpt }
        try expect(seen?.pasid == true && seen?.nested?.parent == parent.hwpt, "hwpt.list shows \(String(describing: seen))")
        let a = try ch.pasidAttach(device: pasidDevice, pasid: 9, hwpt: nested.hwpt)
        try expect(a == .init(deviceID: attached.deviceID, pasid: 9, hwpt: nested.hwpt, previous: 0), "PASID_ATTACH answered \(a)")
        let info: DeviceInfo = try client.call("device.info", DeviceInfoParams(device: pasidDevice))
        try expect(info.pasids == [PASIDAttachmentInfo(pasid: 9, hwpt: nested.hwpt)], "device.info: \(String(describing: info.pasids))")

        let plain = try ch.nestedAlloc(parent: parent.hwpt, dataType: HWPTDataType.selftest, device: pasidDevice, data: [0, 0, 0, 0, 0, 0, 0, 0], flags: 0).hwpt
        try expect(try hwpts().first { $0.hwpt == plain }?.pasid == nil, "a nested HWPT allocated with flags 0 has pasid")
        let refusals: [(String, () throws -> Void, String, Int32)] = [
            ("a PASID onto a nested HWPT without the flag", { _ = try ch.pasidAttach(device: pasidDevice, pasid: 10, hwpt: plain) }, "iommufdd.InvalidParams", EINVAL),
            ("an undefined flag bit", { _ = try ch.nestedAlloc(parent: parent.hwpt, dataType: HWPTDataType.selftest, device: pasidDevice, data: [0, 0, 0, 0, 0, 0, 0, 0], flags: 0x2) }, "iommufdd.Unsupported", EOPNOTSUPP),
            ("destroying the nested HWPT a PASID is on", { try ch.hwptDestroy(nested.hwpt) }, "iommufdd.Busy", EBUSY),
        ]
        for (what, body, name, errno) in refusals {
            let e = failure(body)
            try expect(e?.name == name && e?.errno == errno, "\(what): \(String(describing: e))")
        }
        let d = try ch.pasidDetach(device: pasidDevice, pasid: 9)
        try expect(d.previous == nested.hwpt, "PASID_DETACH answered \(d)")
        try ch.hwptDestroy(nested.hwpt)
        try ch.hwptDestroy(plain)
        print("      mock-pasid (device \(attached.deviceID)): nested HWPT \(nested.hwpt) on nest parent \(parent.hwpt) allocated with IOMMU_HWPT_ALLOC_PASID over the channel, PASID 9 attached to it and detached; without the flag refused as device.attach_pasid refuses")
    }
}
