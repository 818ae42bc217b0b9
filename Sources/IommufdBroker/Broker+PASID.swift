import IommufdCore
import IommufdContract

// MARK: pasid

/// PASID attachments (branch `pasid`): `device.attach_pasid`, `device.replace_pasid`,
/// `device.detach_pasid`, their part of `device.release`, `device.detach` and `owner.release`,
/// and the `pasid` flag of `hwpt.alloc`.
///
/// Who may: a writer whose owner holds the device's lease; the HWPT must be that owner's too
/// (another manager's HWPT answers NotFound, like an absent one). The daemon checks its own
/// records first, so every backend answers with the iommufd core's semantics: an attach of an
/// attached PASID is refused (a VFIO cdev would silently replace), a replace of an unattached
/// one too (a VFIO cdev would attach).
extension Broker {
    /// The PASID backend, or Unsupported.
    var pasidBackend: any PASIDIommuBackend {
        get throws {
            guard let b = backend.pasid, backend.features.contains(.pasid) else {
                throw BrokerError(.unsupported, "this iommufd backend has no PASID attachments (VFIO_DEVICE_ATTACH_PASID and IOMMU_HWPT_ALLOC_PASID need Linux >= 6.15)")
            }
            return b
        }
    }

    /// `IOMMU_HWPT_ALLOC_PASID` for `hwpt.alloc pasid=true`, or Unsupported.
    func pasidAllocFlag() throws -> HWPTAllocFlags {
        _ = try pasidBackend
        return .pasid
    }

    /// `device.attach_pasid`.
    public func deviceAttachPASID(_ caller: Caller, _ params: DevicePASIDParams) throws -> DevicePASIDResult {
        try locked {
            let (dev, hwpt, bound) = try pasidTarget(caller, params, "device.attach_pasid")
            if let current = dev.pasids[params.pasid] {
                throw BrokerError(.conflict, "PASID \(params.pasid) of device '\(dev.name)' is already attached to HWPT \(current); use device.replace_pasid to move it, or device.detach_pasid first")
            }
            let b = try pasidBackend
            try kcall("attaching PASID \(params.pasid) of device '\(dev.name)' to HWPT \(hwpt.id)\(ridHint(dev))") {
                try b.attachPASID(deviceID: bound.id, pasid: params.pasid, to: hwpt.id)
            }
            link(dev, params.pasid, hwpt)
            return DevicePASIDResult(device: dev.name, deviceID: bound.id, pasid: params.pasid, hwpt: hwpt.id, previousHWPT: nil)
        }
    }

    /// `device.replace_pasid`.
    public func deviceReplacePASID(_ caller: Caller, _ params: DevicePASIDParams) throws -> DevicePASIDResult {
        try locked {
            let (dev, hwpt, bound) = try pasidTarget(caller, params, "device.replace_pasid")
            guard let previous = dev.pasids[params.pasid] else {
                throw BrokerError(.conflict, "PASID \(params.pasid) of device '\(dev.name)' is not attached; use device.attach_pasid")
            }
            if previous != hwpt.id {
                let b = try pasidBackend
                try kcall("replacing the HWPT of PASID \(params.pasid) of device '\(dev.name)' (HWPT \(previous)) with HWPT \(hwpt.id)\(ridHint(dev))") {
                    try b.replacePASID(deviceID: bound.id, pasid: params.pasid, with: hwpt.id)
                }
                unlink(dev, params.pasid)
                link(dev, params.pasid, hwpt)
            }
            return DevicePASIDResult(device: dev.name, deviceID: bound.id, pasid: params.pasid, hwpt: hwpt.id, previousHWPT: previous)
        }
    }

    /// `device.detach_pasid`.
    public func deviceDetachPASID(_ caller: Caller, _ params: DevicePASIDDetachParams) throws -> DevicePASIDResult {
        try locked {
            let (dev, _) = try leasedDevice(caller, params.device, "device.detach_pasid")
            guard let previous = dev.pasids[params.pasid] else {
                throw BrokerError(.conflict, "PASID \(params.pasid) of device '\(dev.name)' is not attached\(dev.pasids.isEmpty ? "" : " (its attached PASIDs: \(dev.pasids.keys.sorted().map(String.init).joined(separator: ", ")))")")
            }
            try detachPASID(dev, params.pasid)
            return DevicePASIDResult(device: dev.name, deviceID: dev.bound?.id ?? 0, pasid: params.pasid, hwpt: nil, previousHWPT: previous)
        }
    }

    // MARK: Checks

    /// The device (leased to the caller's owner, bound, PASID-capable, `pasid` in its width)
    /// and the HWPT (the same owner's, allocated with `pasid`).
    private func pasidTarget(_ caller: Caller, _ params: DevicePASIDParams, _ what: String) throws -> (DeviceRecord, HWPTRecord, BoundDevice) {
        let (dev, owner) = try leasedDevice(caller, params.device, what)
        let hwpt = try self.hwpt(caller, params.hwpt, write: what)
        guard hwpt.owner == owner.name else {
            throw BrokerError.invalid("\(what): HWPT \(hwpt.id) belongs to owner '\(hwpt.owner)', not '\(owner.name)' (the owner of device '\(dev.name)'); a device's PASIDs can only use its own owner's HWPTs")
        }
        _ = try pasidBackend
        if dev.descriptor.isMdev {
            throw BrokerError(.unsupported, "\(what): device '\(dev.name)' is mdev-like (an emulated device without an IOMMU page table) and has no PASIDs")
        }
        guard let bound = dev.bound else { throw BrokerError(.conflict, "device '\(dev.name)' is not bound") }
        if params.pasid == 0 {
            throw BrokerError.invalid("\(what): PASID 0 is IOMMU_NO_PASID, the device's requests without a PASID (its RID); attach that with device.attach or device.replace")
        }
        let width = dev.hwInfo?.maxPasidLog2 ?? 0
        if width == 0 {
            throw BrokerError.invalid("\(what): device '\(dev.name)' has no PASID support (IOMMU_GET_HW_INFO out_max_pasid_log2 is 0: the device or its IOMMU cannot issue PASIDs, or PASID is not enabled); the kernel refuses its PASIDs with EINVAL")
        }
        if UInt64(params.pasid) >= 1 << UInt64(width) {
            throw BrokerError.invalid("\(what): PASID \(params.pasid) is beyond the \(width)-bit PASIDs of device '\(dev.name)' (1 to \((1 << UInt64(width)) - 1)); the kernel refuses it with EINVAL")
        }
        if !hwpt.flags.contains(.pasid) {
            throw BrokerError.invalid("\(what): HWPT \(hwpt.id) was allocated without IOMMU_HWPT_ALLOC_PASID, so no PASID can attach to it (the kernel answers EINVAL); allocate one with hwpt.alloc pasid=true")
        }
        if let rid = dev.pt, let ridHWPT = hwptTable[rid], !ridHWPT.flags.contains(.pasid) {
            throw BrokerError.invalid("\(what): the RID of device '\(dev.name)' is attached to HWPT \(rid), which was allocated without IOMMU_HWPT_ALLOC_PASID, and the kernel refuses PASID attachments then (EINVAL); move the RID onto an HWPT allocated with pasid=true (device.replace hwpt=...) first")
        }
        return (dev, hwpt, bound)
    }

    /// Added to a kernel refusal of a PASID attach: what the kernel also checks.
    private func ridHint(_ dev: DeviceRecord) -> String {
        guard dev.pt == nil, backend.kind == .kernel, dev.descriptor.kind == .mock else { return "" }
        return " (a selftest mock device whose RID is not attached sits on an automatic domain, which refuses PASIDs: attach its RID to an HWPT allocated with pasid=true first)"
    }

    /// `device.detach`: refused while PASIDs are attached — on a mock device the kernel would
    /// move the RID onto a domain that refuses them, and a VMM that detaches the RID of a device
    /// whose PASIDs still translate has lost track of it.
    func refuseRIDDetachWithPASIDs(_ dev: DeviceRecord) throws {
        guard dev.pasids.isEmpty else {
            throw BrokerError(.busy, "device '\(dev.name)' has PASIDs \(dev.pasids.keys.sorted()) attached; detach them first (device.detach_pasid), or move the RID with device.replace")
        }
    }

    /// `device.replace` of the RID while PASIDs are attached: only onto an HWPT allocated with
    /// `pasid` (the kernel refuses any other domain with EINVAL, `iommufd_hwpt_pasid_compat`;
    /// an IOAS gives an automatic domain, never one).
    func refuseRIDMoveOffPASIDHWPT(_ dev: DeviceRecord, _ target: AttachTarget) throws {
        guard !dev.pasids.isEmpty else { return }
        let attached = "device '\(dev.name)' has PASIDs \(dev.pasids.keys.sorted()) attached, and the kernel refuses to move its RID onto a domain allocated without IOMMU_HWPT_ALLOC_PASID then (EINVAL)"
        switch target {
        case .ioas(let ioas):
            throw BrokerError.invalid("device.replace: \(attached), which an IOAS's automatic domain (IOAS \(ioas.id)) is; name an HWPT allocated with pasid=true, or detach the PASIDs first")
        case .hwpt(let hwpt) where !hwpt.flags.contains(.pasid):
            throw BrokerError.invalid("device.replace: \(attached), which HWPT \(hwpt.id) is; name an HWPT allocated with pasid=true, or detach the PASIDs first")
        case .hwpt:
            return
        }
    }

    // MARK: Records

    private func link(_ dev: DeviceRecord, _ pasid: UInt32, _ hwpt: HWPTRecord) {
        dev.pasids[pasid] = hwpt.id
        hwpt.pasids.insert(PASIDKey(device: dev.name, pasid: pasid))
    }

    private func unlink(_ dev: DeviceRecord, _ pasid: UInt32) {
        guard let id = dev.pasids.removeValue(forKey: pasid) else { return }
        hwptTable[id]?.pasids.remove(PASIDKey(device: dev.name, pasid: pasid))
    }

    /// Detaches one PASID in the backend and the records. A device not bound (one a restarted
    /// daemon could not take back) only loses the record.
    func detachPASID(_ dev: DeviceRecord, _ pasid: UInt32) throws {
        if let bound = dev.bound {
            let b = try pasidBackend
            try kcall("detaching PASID \(pasid) of device '\(dev.name)'") { try b.detachPASID(deviceID: bound.id, pasid: pasid) }
        }
        unlink(dev, pasid)
    }

    /// Every PASID of `dev`, lowest first.
    func detachPASIDs(_ dev: DeviceRecord) throws {
        for pasid in dev.pasids.keys.sorted() { try detachPASID(dev, pasid) }
    }

    /// `owner.release` step 1a: every PASID of the owner's devices, before any HWPT goes.
    func releasePASIDs(_ owner: OwnerRecord, destroyed: inout [String: Int], failures: inout [String]) {
        for name in owner.devices.sorted() {
            guard let dev = devices[name] else { continue }
            for pasid in dev.pasids.keys.sorted() {
                do {
                    try detachPASID(dev, pasid)
                    destroyed["pasid_attachment", default: 0] += 1
                } catch { failures.append("\(error)") }
            }
        }
    }
}
