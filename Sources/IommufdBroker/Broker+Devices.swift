#if canImport(Glibc)
import Glibc
#endif
import IommufdContract
import IommufdCore

extension Broker {
    // MARK: Queries

    /// `device.list`: every device the backend knows, with allow-list and lease state; the
    /// lease owner is named only when the caller may see it.
    public func deviceList(_ caller: Caller, _ params: DeviceListParams) throws -> DeviceListResult {
        try reading {
            if let name = params.owner { _ = try readableOwner(caller, name) }
            let list = devices.values
                .filter { params.owner == nil || $0.owner == params.owner }
                .sorted { $0.name < $1.name }
                .map { deviceInfo(caller, $0) }
            return DeviceListResult(devices: list)
        }
    }

    /// `device.info`.
    public func deviceInfo(_ caller: Caller, _ params: DeviceInfoParams) throws -> DeviceInfo {
        try reading { deviceInfo(caller, try device(params.device)) }
    }

    func deviceInfo(_ caller: Caller, _ dev: DeviceRecord) -> DeviceInfo {
        let visible = dev.owner.map { canSee(caller, owner: $0) } ?? false
        let d = dev.descriptor
        return DeviceInfo(
            name: d.name, kind: d.kind, pciAddress: d.pciAddress, iommuGroup: d.iommuGroup,
            iommuInstance: d.iommuInstance, driver: d.driver, vendorDevice: d.vendorDevice,
            allowed: config.allowList.allows(d), leased: dev.owner != nil,
            owner: visible ? dev.owner : nil,
            deviceID: visible ? dev.bound?.id : nil,
            ioas: visible ? dev.ioas : nil, pt: visible ? dev.pt : nil,
            capabilities: dev.hwInfo.map(DeviceCapabilities.init),
            pasids: visible && !dev.pasids.isEmpty ? dev.pasids.sorted { $0.key < $1.key }.map { PASIDAttachmentInfo(pasid: $0.key, hwpt: $0.value) } : nil)
    }

    // MARK: Leases

    /// Leases `dev` to `owner` (binding it to the iommufd) unless it already is.
    /// Returns true when this call took the lease (so a failing request can give it back).
    func lease(_ dev: DeviceRecord, to owner: OwnerRecord) throws -> Bool {
        if let current = dev.owner {
            if current == owner.name { return false }
            throw BrokerError(.conflict, "device '\(dev.name)' is leased to another owner; it must be released (device.release or owner.release) before another owner can use it")
        }
        guard config.allowList.allows(dev.descriptor) else {
            throw BrokerError.denied("device '\(dev.name)'\(dev.descriptor.pciAddress.map { " (\($0))" } ?? "") is not on the daemon's device allow-list; an administrator must add its name or PCI address to the config")
        }
        let bound = try kcall("binding device '\(dev.name)' to the iommufd") { try backend.bind(dev.descriptor) }
        // The device's IOMMU capabilities decide which HWPTs it may join and whether its DMA can
        // be dirty-tracked: without them the device is not leased (an unknown capability must
        // never quietly become "cannot track", nor an untracked HWPT under dirty=preferred).
        if !dev.descriptor.isMdev {
            do {
                dev.hwInfo = try kcall("reading the IOMMU capabilities of device '\(dev.name)' (IOMMU_GET_HW_INFO)") {
                    try backend.hwInfo(deviceID: bound.id)
                }
            } catch var failure as BrokerError {
                do {
                    try backend.unbind(deviceID: bound.id)
                    failure.message += " The device was unbound again; retry, or check the kernel log for its IOMMU driver."
                } catch {
                    failure.message += " Unbinding it again failed too (\(error)); the daemon's next start takes stock of it."
                }
                throw failure
            }
        }
        dev.bound = bound
        dev.owner = owner.name
        owner.devices.insert(dev.name)
        emit(.objectCreated(owner: owner.name, kind: .device, id: bound.id))
        return true
    }

    /// Unbinds a detached device and ends its lease.
    func releaseDevice(_ dev: DeviceRecord, owner: OwnerRecord) throws {
        guard dev.pasids.isEmpty else {  // pasid
            throw BrokerError(.busy, "device '\(dev.name)' still has PASIDs \(dev.pasids.keys.sorted()) attached; detach them first (device.detach_pasid)")
        }
        guard dev.pt == nil else {
            throw BrokerError(.busy, "device '\(dev.name)' is still attached to \(dev.pt ?? 0); detach it first")
        }
        guard dev.vdevices.isEmpty else {
            throw BrokerError(.busy, "device '\(dev.name)' still has vDevices \(dev.vdevices.sorted()); destroy them first")
        }
        if let bound = dev.bound {
            try kcall("unbinding device '\(dev.name)'") { try backend.unbind(deviceID: bound.id) }
            emit(.objectDestroyed(owner: owner.name, kind: .device, id: bound.id))
        }
        dev.bound = nil
        dev.hwInfo = nil
        dev.owner = nil
        owner.devices.remove(dev.name)
        emit(.deviceReleased(owner: owner.name, device: dev.name))
    }

    // MARK: Attach / detach / replace

    /// `device.attach`: leases and binds the device to `owner` if needed, then attaches it to
    /// the named HWPT, or under the auto-domain policy to the named IOAS.
    public func deviceAttach(_ caller: Caller, _ params: DeviceAttachParams) throws -> DeviceAttachResult {
        try locked {
            let owner = try writableOwner(caller, params.owner, "device.attach")
            let dev = try device(params.device)
            let target = try attachTarget(caller, owner: owner, ioas: params.ioas, hwpt: params.hwpt)
            if dev.owner == owner.name, let pt = dev.pt {
                throw BrokerError(.conflict, "device '\(dev.name)' is already attached to \(pt); use device.replace to move it, or device.detach first")
            }
            let leased = try lease(dev, to: owner)
            do {
                return try connect(dev, owner: owner, target: target, policy: params.dirty ?? owner.policy.dirty, replacing: false)
            } catch {
                if leased { try? releaseDevice(dev, owner: owner) }
                throw error
            }
        }
    }

    /// `device.replace`: moves an attached device to another IOAS or HWPT of the same owner
    /// without a window of blocked DMA. A daemon-created HWPT it leaves is destroyed when empty.
    public func deviceReplace(_ caller: Caller, _ params: DeviceReplaceParams) throws -> DeviceAttachResult {
        try locked {
            let (dev, owner) = try leasedDevice(caller, params.device, "device.replace")
            guard dev.pt != nil else {
                throw BrokerError(.conflict, "device '\(dev.name)' is not attached; use device.attach")
            }
            let target = try attachTarget(caller, owner: owner, ioas: params.ioas, hwpt: params.hwpt)
            try refuseRIDMoveOffPASIDHWPT(dev, target)  // pasid
            return try connect(dev, owner: owner, target: target, policy: params.dirty ?? owner.policy.dirty, replacing: true)
        }
    }

    /// `device.detach`. A daemon-created HWPT is destroyed when its last device leaves. The
    /// device stays bound and leased (`device.release` gives it back).
    public func deviceDetach(_ caller: Caller, _ params: DeviceDetachParams) throws -> DeviceDetachResult {
        try locked {
            let (dev, _) = try leasedDevice(caller, params.device, "device.detach")
            guard let pt = dev.pt else {
                throw BrokerError(.conflict, "device '\(dev.name)' is not attached")
            }
            try refuseRIDDetachWithPASIDs(dev)  // pasid
            let destroyed = try detachDevice(dev, cleanup: true)
            return DeviceDetachResult(device: dev.name, previousPT: pt, destroyedHWPTs: destroyed)
        }
    }

    /// `device.release`: detaches (if attached), unbinds, and ends the owner's lease.
    public func deviceRelease(_ caller: Caller, _ params: DeviceReleaseParams) throws -> DeviceReleaseResult {
        try locked {
            let (dev, owner) = try leasedDevice(caller, params.device, "device.release")
            guard dev.vdevices.isEmpty else {
                throw BrokerError(.busy, "device '\(dev.name)' still has vDevices \(dev.vdevices.sorted()); destroy them first")
            }
            try detachPASIDs(dev)  // pasid: before the RID, as VFIO's unbind does
            if dev.pt != nil { _ = try detachDevice(dev, cleanup: true) }
            try releaseDevice(dev, owner: owner)
            return DeviceReleaseResult(device: dev.name, owner: owner.name)
        }
    }

    /// `device.fd`: a duplicate of the bound device fd, for a `trusted_vmm` identity only —
    /// whoever holds it can re-attach the device to any page table of the shared iommufd.
    public func deviceFD(_ caller: Caller, _ params: DeviceFDParams) throws -> WithFDs<DeviceFDResult> {
        try locked {
            guard caller.trustedVMM else {
                throw BrokerError.denied("device.fd hands out an fd that can re-attach the device to any IOAS of the shared iommufd, so it is only for identities marked trusted_vmm in the config; '\(caller.identity)' is not")
            }
            let (dev, _) = try leasedDevice(caller, params.device, "device.fd")
            guard let bound = dev.bound, let fd = bound.fd else {
                throw BrokerError(.unsupported, "device '\(dev.name)' has no device fd (a \(dev.descriptor.kind.rawValue) device of the \(backend.kind.rawValue) backend)")
            }
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
            guard copy >= 0 else {
                let err = Errno.current
                throw BrokerError(.io, "duplicating the fd of device '\(dev.name)' failed with \(err.name) (\(err.message))")
            }
            return WithFDs(result: DeviceFDResult(device: dev.name, deviceID: bound.id, fd: FDRef(fd: 0)), fds: [copy])
        }
    }

    // MARK: Policy core

    enum AttachTarget {
        case ioas(IOASRecord)
        case hwpt(HWPTRecord)
    }

    func attachTarget(_ caller: Caller, owner: OwnerRecord, ioas: ObjectID?, hwpt: ObjectID?) throws -> AttachTarget {
        switch (ioas, hwpt) {
        case (let i?, nil):
            let record = try self.ioas(caller, i, write: "device.attach")
            guard record.owner == owner.name else {
                throw BrokerError.invalid("IOAS \(i) belongs to owner '\(record.owner)', not '\(owner.name)'; a device can only use its own owner's IOAS")
            }
            return .ioas(record)
        case (nil, let h?):
            let record = try self.hwpt(caller, h, write: "device.attach")
            guard record.owner == owner.name else {
                throw BrokerError.invalid("HWPT \(h) belongs to owner '\(record.owner)', not '\(owner.name)'")
            }
            return .hwpt(record)
        default:
            throw BrokerError.invalid("name exactly one of 'ioas' (the auto-domain policy picks or creates an HWPT) or 'hwpt'")
        }
    }

    private func link(_ dev: DeviceRecord, _ ptID: ObjectID, replacing: Bool) throws -> ObjectID {
        guard let bound = dev.bound else {
            throw BrokerError(.conflict, "device '\(dev.name)' is not bound")
        }
        if replacing {
            return try backend.replace(deviceID: bound.id, with: ptID)
        }
        return try backend.attach(deviceID: bound.id, to: ptID)
    }

    /// Attaches (or replaces) `dev` onto `target` under `policy`, updates the records and
    /// cleans up the page table the device left.
    func connect(_ dev: DeviceRecord, owner: OwnerRecord, target: AttachTarget, policy: DirtyPolicy, replacing: Bool) throws -> DeviceAttachResult {
        let verb = replacing ? "replacing the page table of" : "attaching"
        let previous = dev.pt
        var created = false
        let ioas: IOASRecord
        let chosen: ObjectID

        switch target {
        case .hwpt(let hwpt):
            guard let record = ioasTable[hwpt.ioas] else { throw BrokerError.notFound("IOAS \(hwpt.ioas) of HWPT \(hwpt.id) is gone") }
            ioas = record
            // A nested HWPT's DMA is tracked by its nest parent (stage 2): see dirtyTracker(of:).
            let tracker = dirtyTracker(of: hwpt)
            let via = tracker === hwpt ? "" : " (nested: its nest parent HWPT \(tracker.id) tracks its DMA)"
            if policy == .required && !tracker.flags.contains(.dirtyTracking) {
                throw BrokerError(.policyRefused, "dirty policy 'required' but HWPT \(tracker.id) was allocated without dirty tracking\(via); name an HWPT allocated with dirty_tracking, or attach to the IOAS")
            }
            if ioas.dirtyEnabled && !tracker.tracking {
                throw BrokerError(.policyRefused, "IOAS \(ioas.id) is being dirty-tracked and HWPT \(tracker.id) is not tracking\(via), so DMA of device '\(dev.name)' would go unseen; attach to a tracking HWPT, or stop dirty tracking first")
            }
            if previous == hwpt.id { return result(dev, ioas: ioas, pt: hwpt.id, created: false, previous: previous, destroyed: []) }
            if let driver = dev.hwInfo?.type, let other = driverType(of: hwpt), other != driver {
                // Refused here rather than left to the kernel (see HWPTRecord.hwInfoType).
                throw BrokerError.invalid("HWPT \(hwpt.id) belongs to an IOMMU of another driver (hw_info type \(other)) than device '\(dev.name)' (type \(driver)); attach the device to the IOAS and let the daemon pick or make a domain")
            }
            _ = try kcall("\(verb) device '\(dev.name)' to HWPT \(hwpt.id)") { try link(dev, hwpt.id, replacing: replacing) }
            chosen = hwpt.id

        case .ioas(let record):
            ioas = record
            if dev.descriptor.isMdev {
                // No HWPT of its own: DMA is emulated through an access on the IOAS.
                if policy == .required {
                    throw BrokerError(.policyRefused, "dirty policy 'required' refused for device '\(dev.name)': it is an mdev-like device without an IOMMU page table, so its DMA cannot be dirty-tracked by the IOMMU; attach it with dirty=off or preferred")
                }
                if previous == record.id { return result(dev, ioas: ioas, pt: record.id, created: false, previous: previous, destroyed: []) }
                chosen = try kcall("\(verb) device '\(dev.name)' to IOAS \(record.id)") { try link(dev, record.id, replacing: replacing) }
            } else {
                (chosen, created) = try autoDomain(dev, owner: owner, ioas: record, policy: policy, replacing: replacing)
            }
        }

        // Bookkeeping: leave the old page table, join the new one.
        var destroyed: [ObjectID] = []
        if let previous, previous != chosen {
            destroyed = leave(dev, pt: previous, cleanup: true, afterCommit: true)
        }
        dev.ioas = ioas.id
        dev.pt = chosen
        if let hwpt = hwptTable[chosen] {
            hwpt.devices.insert(dev.name)
        } else {
            ioas.directDevices.insert(dev.name)
        }
        emit(.deviceAttached(owner: owner.name, device: dev.name, ioas: ioas.id, pt: chosen))
        return result(dev, ioas: ioas, pt: chosen, created: created, previous: previous, destroyed: destroyed)
    }

    private func result(_ dev: DeviceRecord, ioas: IOASRecord, pt: ObjectID, created: Bool, previous: ObjectID?, destroyed: [ObjectID]) -> DeviceAttachResult {
        DeviceAttachResult(
            device: dev.name, deviceID: dev.bound?.id ?? 0, ioas: ioas.id, pt: pt, hwptCreated: created,
            dirtyTracking: hwptTable[pt].map { dirtyTracker(of: $0).flags.contains(.dirtyTracking) } ?? false,
            previousPT: previous, destroyedHWPTs: destroyed)
    }

    /// The auto-domain policy (BRIEF section 5): reuse a compatible HWPT of the IOAS whose
    /// dirty-tracking flag matches what the policy wants (EINVAL from attach = incompatible, try
    /// the next), else allocate one.
    private func autoDomain(_ dev: DeviceRecord, owner: OwnerRecord, ioas: IOASRecord, policy: DirtyPolicy, replacing: Bool) throws -> (ObjectID, Bool) {
        let verb = replacing ? "replacing the page table of" : "attaching"
        let kernelTracks = backend.features.contains(.dirtyTracking)
        let wantDirty: Bool
        switch policy {
        case .off: wantDirty = false
        case .preferred: wantDirty = kernelTracks && dev.dirtyCapable
        case .required:
            guard kernelTracks else {
                throw BrokerError(.policyRefused, "dirty policy 'required' refused for device '\(dev.name)': this kernel has no IOMMU dirty tracking (Linux >= 6.7 needed); attach with dirty=preferred or off")
            }
            guard dev.dirtyCapable else {
                throw BrokerError(.policyRefused, "dirty policy 'required' refused for device '\(dev.name)': its IOMMU (\(dev.descriptor.iommuInstance ?? "unknown instance")) lacks dirty tracking (IOMMU_HW_CAP_DIRTY_TRACKING); attach it with dirty=preferred or off, or use a device behind a dirty-capable IOMMU")
            }
            wantDirty = true
        }
        if ioas.dirtyEnabled && !wantDirty {
            throw BrokerError(.policyRefused, "IOAS \(ioas.id) is being dirty-tracked and device '\(dev.name)' would get an HWPT without dirty tracking (policy '\(policy.rawValue)'\(dev.dirtyCapable ? "" : ", its IOMMU cannot track")), so its DMA would go unseen; stop dirty tracking first or attach a dirty-capable device with dirty=preferred or required")
        }
        // Already on a fitting HWPT of this IOAS (a replace onto the same IOAS): nothing to do.
        if let currentID = dev.pt, ioas.hwpts.contains(currentID), let current = hwptTable[currentID],
            !current.flags.contains(.nestParent), current.flags.contains(.dirtyTracking) == wantDirty
        {
            return (currentID, false)
        }
        let instance = dev.descriptor.iommuInstance
        // Only the kernel knows which domains a device can join (VT-d units may share domains
        // across instances): try every HWPT with the right flags, the same instance's first.
        // Never a domain of another IOMMU driver, though: the kernel does not always refuse
        // those with EINVAL (see HWPTRecord.hwInfoType).
        // (The IOAS indexes its HWPTs by flags and instance: an IOAS may hold hundreds of HWPTs,
        // and only those that could fit are looked at.)
        let driver = dev.hwInfo?.type
        let candidates = ioas.hwpts.candidates(dirtyTracking: wantDirty, instance: instance) { hwptTable[$0] }
            .compactMap { hwptTable[$0] }
            .filter { driver == nil || driverType(of: $0) == nil || driverType(of: $0) == driver }
        for candidate in candidates where candidate.id != dev.pt {
            do {
                _ = try link(dev, candidate.id, replacing: replacing)
                return (candidate.id, false)
            } catch let error as IommuError where error.errno == .EINVAL {
                continue  // incompatible domain: try the next
            } catch let error as IommuError {
                throw BrokerError.kernel(error, "\(verb) device '\(dev.name)' to HWPT \(candidate.id) of IOAS \(ioas.id)")
            }
        }
        guard let bound = dev.bound else { throw BrokerError(.conflict, "device '\(dev.name)' is not bound") }
        let flags: HWPTAllocFlags = wantDirty ? [.dirtyTracking] : []
        let id = try kcall("allocating an HWPT for device '\(dev.name)' in IOAS \(ioas.id)") {
            try backend.allocHWPT(deviceID: bound.id, ptID: ioas.id, flags: flags)
        }
        let record = HWPTRecord(id: id, owner: owner.name, ioas: ioas.id, flags: flags, auto: true, iommuInstance: instance)
        record.hwInfoType = dev.hwInfo?.type
        do {
            if ioas.dirtyEnabled {
                // Tracking is on for this IOAS: the new HWPT tracks before any DMA goes through it.
                try kcall("starting dirty tracking on new HWPT \(id)") { try backend.setDirtyTracking(hwpt: id, enabled: true) }
                record.tracking = true
            }
            _ = try kcall("\(verb) device '\(dev.name)' to its new HWPT \(id)") { try link(dev, id, replacing: replacing) }
        } catch {
            try? backend.destroy(id)
            throw error
        }
        hwptTable[id] = record
        ioas.hwpts.insert(id)
        owner.hwpts.insert(id)
        emit(.objectCreated(owner: owner.name, kind: .hwpt, id: id))
        return (id, true)
    }

    /// The IOMMU driver (hw_info type) an HWPT belongs to: recorded at allocation, else (an HWPT
    /// recovered from the journal) that of a device on it; nil when unknown.
    func driverType(of hwpt: HWPTRecord) -> UInt32? {
        hwpt.hwInfoType ?? hwpt.devices.sorted().lazy.compactMap { self.devices[$0]?.hwInfo?.type }.first
    }

    /// Removes `dev` from the records of page table `pt`; with `cleanup`, destroys an auto HWPT
    /// left unused. Returns the HWPTs destroyed.
    ///
    /// Not one that is dirty-tracking: its bitmap holds the pages the device wrote since the last
    /// read, which destroying it would lose. It stays (unused, still in `dirty.read`'s union)
    /// until tracking stops on its IOAS (`dirty.stop`), the IOAS is destroyed or the owner released.
    @discardableResult
    /// `afterCommit`: the device was *moved* to another page table by this request: the unused
    /// HWPT leaves the records now but is destroyed in the backend only after the journal has
    /// recorded the move (`destroyAfterJournalCommit`), so a daemon killed in between can put the
    /// device back on it (issue 17's crash-point sweep found the move otherwise unrecoverable).
    func leave(_ dev: DeviceRecord, pt: ObjectID, cleanup: Bool, afterCommit: Bool = false) -> [ObjectID] {
        if let hwpt = hwptTable[pt] {
            hwpt.devices.remove(dev.name)
            emit(.deviceDetached(owner: hwpt.owner, device: dev.name, pt: pt))
            if cleanup && hwpt.auto && hwpt.isUnused && hwpt.tracking {
                logger.info("unused HWPT kept until dirty tracking stops: its dirty pages are not read yet", metadata: ["hwpt": "\(pt)", "ioas": "\(hwpt.ioas)"])
            } else if cleanup && hwpt.auto && hwpt.isUnused && afterCommit {
                destroyAfterJournalCommit(hwpt)
                return [pt]
            } else if cleanup && hwpt.auto && hwpt.isUnused {
                do {
                    try destroyHWPT(hwpt)
                    return [pt]
                } catch {
                    logger.warning("could not destroy unused HWPT", metadata: ["hwpt": "\(pt)", "error": "\(error)"])
                }
            }
        } else if let ioas = ioasTable[pt] {
            ioas.directDevices.remove(dev.name)
            emit(.deviceDetached(owner: ioas.owner, device: dev.name, pt: pt))
        }
        return []
    }

    /// Detaches `dev` in the kernel and the records. A device attached in the records but not
    /// bound (one a restarted daemon could not take back: the kernel has no attachment of it
    /// any more, or none this daemon can reach) only loses its attachment record.
    @discardableResult
    func detachDevice(_ dev: DeviceRecord, cleanup: Bool) throws -> [ObjectID] {
        guard let pt = dev.pt else { return [] }
        guard dev.vdevices.isEmpty else {
            throw BrokerError(.busy, "device '\(dev.name)' has vDevices \(dev.vdevices.sorted()); destroy them (vdevice.destroy) before detaching it")
        }
        if let bound = dev.bound {
            try kcall("detaching device '\(dev.name)'") { try backend.detach(deviceID: bound.id) }
        } else {
            logger.warning("device is not bound (not taken back after a restart): its attachment record is dropped, no kernel call", metadata: ["device": "\(dev.name)", "pt": "\(pt)"])
        }
        dev.pt = nil
        dev.ioas = nil
        return leave(dev, pt: pt, cleanup: cleanup)
    }
}
