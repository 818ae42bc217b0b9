import IommufdContract
import IommufdCore

extension Broker {
    /// `viommu.create` for a device attached through an HWPT: one nest-parent HWPT per physical
    /// IOMMU instance per IOAS (allocated on first use with the dirty flag of the device's
    /// current HWPT, shared by every vIOMMU on that instance); the device is moved onto it
    /// (replace, no DMA window) if it is elsewhere, and the vIOMMU is allocated over it.
    /// nestedgaps (docs/nested.md): the first vIOMMU of an instance tries the IOAS's nest parents
    /// of other instances first (one shared stage 2); a device on a nested HWPT stays there and
    /// the vIOMMU goes over that HWPT's nest parent; a new nest parent gets the dirty flag while
    /// the IOAS is tracked.
    public func viommuCreate(_ caller: Caller, _ params: VIOMMUCreateParams) throws -> VIOMMUCreateResult {
        try locked {
            let (dev, owner) = try leasedDevice(caller, params.device, "viommu.create")
            guard backend.features.contains(.viommu) else {
                throw BrokerError(.unsupported, "this kernel has no vIOMMU support (IOMMU_VIOMMU_ALLOC, Linux >= 6.13)")
            }
            guard let bound = dev.bound, let ioasID = dev.ioas, let ioas = ioasTable[ioasID], let currentID = dev.pt,
                let current = hwptTable[currentID]
            else {
                throw BrokerError(.conflict, "device '\(dev.name)' is not attached through an HWPT (mdev-like devices have none); attach it to an IOAS first")
            }
            let key = NestParentKey(ioas: ioas.id, iommuInstance: dev.descriptor.iommuInstance ?? "device:\(dev.name)")
            // Decide the type before touching anything: a refusal must leave no nest parent behind
            // and the device where it was.
            if params.type == nil, dev.hwInfo?.type == HWInfoType.intelVTd {
                throw BrokerError(
                    .unsupported,
                    "device '\(dev.name)' is behind an Intel VT-d IOMMU (\(dev.descriptor.iommuInstance ?? "unnamed")), which has no vIOMMU in Linux 7.3 (its driver has no viommu ops: IOMMU_VIOMMU_ALLOC is EOPNOTSUPP); VT-d nests through a nested HWPT on a nest-parent HWPT instead (hwpt.alloc with 'parent' and 'vtd_s1' data, then hwpt.invalidate). Give the VM a vIOMMU for a device behind an ARM SMMUv3 IOMMU, or nest its VT-d that way")
            }
            guard let type = params.type ?? Self.viommuType(for: dev.hwInfo) ?? config.defaultVIOMMUType else {
                throw BrokerError.invalid("viommu.create: no vIOMMU type is known for the IOMMU of device '\(dev.name)' (hw_info type \(dev.hwInfo?.type ?? 0)); pass 'type' (enum iommu_viommu_type)")
            }
            var created = false
            let parent: HWPTRecord
            // nestedgaps: set when a nest parent of another instance took this vIOMMU (the device
            // was moved onto it and the vIOMMU allocated over it).
            var sharedVIOMMU: ObjectID?
            if let onNested = nestParentOfNestedDevice(current) {
                // nestedgaps: the device is on a nested HWPT (a stage 1 of the guest's) over a
                // nest parent: IOMMU_VIOMMU_ALLOC needs the device only to name the physical
                // IOMMU, not attached anywhere in particular, so the device stays where it is and
                // the vIOMMU shares that nest parent (its stage 2).
                parent = onNested
            } else if let id = nestParents[key], let existing = hwptTable[id] {
                parent = existing
                if ioas.dirtyEnabled && !parent.tracking && current.id != parent.id {
                    throw BrokerError(.policyRefused, "IOAS \(ioas.id) is being dirty-tracked and its nest parent HWPT \(parent.id) (\(key.iommuInstance)) was allocated without dirty tracking, so moving device '\(dev.name)' onto it would leave its DMA unseen; stop dirty tracking first (dirty.stop), or destroy the vIOMMUs over HWPT \(parent.id) so the daemon makes a new nest parent with dirty tracking")
                }
            } else if let shared = try shareNestParent(dev, bound: bound, owner: owner, ioas: ioas, current: current, key: key, type: type) {
                // nestedgaps: one shared stage 2 (docs/nested.md).
                parent = shared.parent
                sharedVIOMMU = shared.viommu
            } else {
                var flags: HWPTAllocFlags = [.nestParent]
                // Dirty tracking lives on the nest parent (stage 2): it gets the flag when the
                // device's HWPT has it, or when the IOAS is being tracked (nestedgaps).
                if dirtyTracker(of: current).flags.contains(.dirtyTracking) || (ioas.dirtyEnabled && dev.dirtyCapable) {
                    flags.insert(.dirtyTracking)
                }
                let id = try kcall("allocating the nest-parent HWPT of \(key.iommuInstance) in IOAS \(ioas.id)") {
                    try backend.allocHWPT(deviceID: bound.id, ptID: ioas.id, flags: flags)
                }
                parent = HWPTRecord(id: id, owner: owner.name, ioas: ioas.id, flags: flags, auto: true, iommuInstance: dev.descriptor.iommuInstance)
                parent.hwInfoType = dev.hwInfo?.type
                if ioas.dirtyEnabled && flags.contains(.dirtyTracking) {
                    do {
                        try kcall("starting dirty tracking on nest-parent HWPT \(id)") { try backend.setDirtyTracking(hwpt: id, enabled: true) }
                        parent.tracking = true
                    } catch {
                        try? backend.destroy(id)
                        throw error
                    }
                }
                created = true
            }
            func undoParent() {
                if created { try? backend.destroy(parent.id) }
            }
            let moved = current.id != parent.id && current.nested == nil
            if moved && sharedVIOMMU == nil {
                do {
                    _ = try kcall("moving device '\(dev.name)' onto nest-parent HWPT \(parent.id)") { try backend.replace(deviceID: bound.id, with: parent.id) }
                } catch {
                    undoParent()
                    throw error
                }
            }
            let id: ObjectID
            do {
                id = try sharedVIOMMU ?? kcall("allocating a vIOMMU (type \(type)) for device '\(dev.name)'") {
                    try backend.allocVIOMMU(deviceID: bound.id, hwpt: parent.id, type: type)
                }
            } catch {
                if moved { _ = try? backend.replace(deviceID: bound.id, with: current.id) }
                undoParent()
                throw error
            }
            if !created && nestParents[key] == nil && parent.flags.contains(.nestParent) && parent.ioas == ioas.id {
                // The nest parent found under a nested HWPT becomes this instance's shared one.
                nestParents[key] = parent.id
            }
            if created {
                hwptTable[parent.id] = parent
                ioas.hwpts.insert(parent.id)
                owner.hwpts.insert(parent.id)
                nestParents[key] = parent.id
                emit(.objectCreated(owner: owner.name, kind: .hwpt, id: parent.id))
            }
            if moved {
                leave(dev, pt: current.id, cleanup: true, afterCommit: true)
                dev.pt = parent.id
                parent.devices.insert(dev.name)
                emit(.deviceAttached(owner: owner.name, device: dev.name, ioas: ioas.id, pt: parent.id))
            }
            viommuTable[id] = VIOMMURecord(id: id, owner: owner.name, ioas: ioas.id, hwpt: parent.id, device: dev.name, iommuInstance: dev.descriptor.iommuInstance)
            parent.viommus.insert(id)
            owner.viommus.insert(id)
            emit(.objectCreated(owner: owner.name, kind: .viommu, id: id))
            return VIOMMUCreateResult(
                viommu: id, ioas: ioas.id, nestParent: parent.id, nestParentCreated: created,
                iommuInstance: dev.descriptor.iommuInstance, movedFrom: moved ? current.id : nil)
        }
    }

    /// `viommu.destroy`: Busy while it has vDevices. A daemon-created nest parent left without
    /// devices or vIOMMUs is destroyed too.
    /// `viommu.list`: the vIOMMUs the caller may see, optionally of one owner or IOAS.
    public func viommuList(_ caller: Caller, _ params: VIOMMUListParams) throws -> VIOMMUListResult {
        try reading {
            if let name = params.owner { _ = try readableOwner(caller, name) }
            if let id = params.ioas { _ = try ioas(caller, id) }
            let list = viommuTable.values
                .filter { v in
                    (params.owner == nil || v.owner == params.owner) && (params.ioas == nil || v.ioas == params.ioas)
                        && canSee(caller, owner: v.owner)
                }
                .sorted { $0.id < $1.id }
                .map { v in
                    VIOMMUInfo(
                        viommu: v.id, owner: v.owner, ioas: v.ioas, nestParent: v.hwpt, device: v.device,
                        iommuInstance: v.iommuInstance,
                        vdevices: v.vdevices.sorted().compactMap { id in
                            vdeviceTable[id].map { VDeviceCreateResult(vdevice: $0.id, viommu: $0.viommu, device: $0.device, virtualID: $0.virtualID) }
                        })
                }
                .map { info in
                    var info = info
                    info.hwQueues = hwQueueInfos(ofVIOMMU: info.viommu)  // hwqueue3
                    return info
                }
            return VIOMMUListResult(viommus: list)
        }
    }

    /// `viommu.destroy`: under the owner's gate, then `lock` (an invalidation of the vIOMMU in
    /// flight ends first; see `gatedInvalidation`).
    public func viommuDestroy(_ caller: Caller, _ params: VIOMMUDestroyParams) throws -> VIOMMUDestroyResult {
        try serialized({ try ownerRecord(try viommu(caller, params.viommu, write: "viommu.destroy").owner) }) { _ in try locked {
            let v = try viommu(caller, params.viommu, write: "viommu.destroy")
            let destroyed = try destroyVIOMMU(v.id, cleanup: true)
            return VIOMMUDestroyResult(viommu: params.viommu, destroyedHWPTs: destroyed)
        } }
    }

    /// The vIOMMU type an IOMMU's hardware-info type implies.
    static func viommuType(for info: HWInfo?) -> UInt32? {
        switch info?.type {
        case HWInfoType.armSMMUv3: VIOMMUType.armSMMUv3
        case HWInfoType.tegra241CMDQV: VIOMMUType.tegra241CMDQV
        case HWInfoType.selftest: VIOMMUType.selftest
        default: nil
        }
    }

    @discardableResult
    func destroyVIOMMU(_ id: ObjectID, cleanup: Bool) throws -> [ObjectID] {
        guard let v = viommuTable[id] else { return [] }
        guard v.vdevices.isEmpty else {
            throw BrokerError(.busy, "vIOMMU \(id) still has vDevices \(v.vdevices.sorted()); destroy them first")
        }
        guard v.nestedHWPTs.isEmpty else {
            throw BrokerError(.busy, "vIOMMU \(id) still has nested HWPTs \(v.nestedHWPTs.sorted()); move their devices off them and destroy them (hwpt.destroy) first")
        }
        try checkNoQueues(viommu: id)
        try checkNoHWQueues(viommu: id)  // hwqueue3
        try kcall("destroying vIOMMU \(id)") { try backend.destroy(id) }
        viommuTable[id] = nil
        owners[v.owner]?.viommus.remove(id)
        emit(.objectDestroyed(owner: v.owner, kind: .viommu, id: id))
        guard let parent = hwptTable[v.hwpt] else { return [] }
        parent.viommus.remove(id)
        if cleanup && parent.auto && parent.isUnused {
            do {
                try destroyHWPT(parent)
                return [parent.id]
            } catch {
                logger.warning("could not destroy unused nest parent", metadata: ["hwpt": "\(parent.id)", "error": "\(error)"])
            }
        }
        return []
    }

    /// `vdevice.create`: gives a device of the vIOMMU's owner its guest-visible ID on it.
    public func vdeviceCreate(_ caller: Caller, _ params: VDeviceCreateParams) throws -> VDeviceCreateResult {
        try locked {
            let v = try viommu(caller, params.viommu, write: "vdevice.create")
            let (dev, owner) = try leasedDevice(caller, params.device, "vdevice.create")
            guard owner.name == v.owner, let bound = dev.bound else {
                throw BrokerError.invalid("device '\(dev.name)' and vIOMMU \(v.id) belong to different owners")
            }
            let id = try kcall("allocating vDevice \(params.virtualID) of device '\(dev.name)' on vIOMMU \(v.id)") {
                try backend.allocVDevice(viommu: v.id, deviceID: bound.id, virtualID: params.virtualID)
            }
            vdeviceTable[id] = VDeviceRecord(id: id, owner: owner.name, viommu: v.id, device: dev.name, virtualID: params.virtualID)
            v.vdevices.insert(id)
            dev.vdevices.insert(id)
            owner.vdevices.insert(id)
            emit(.objectCreated(owner: owner.name, kind: .vdevice, id: id))
            return VDeviceCreateResult(vdevice: id, viommu: v.id, device: dev.name, virtualID: params.virtualID)
        }
    }

    /// `vdevice.destroy`.
    public func vdeviceDestroy(_ caller: Caller, _ params: VDeviceDestroyParams) throws -> VDeviceDestroyResult {
        try locked {
            let record = try vdevice(caller, params.vdevice, write: "vdevice.destroy")
            try destroyVDevice(record.id)
            return VDeviceDestroyResult(vdevice: params.vdevice)
        }
    }

    func destroyVDevice(_ id: ObjectID) throws {
        guard let record = vdeviceTable[id] else { return }
        try kcall("destroying vDevice \(id)") { try backend.destroy(id) }
        vdeviceTable[id] = nil
        viommuTable[record.viommu]?.vdevices.remove(id)
        devices[record.device]?.vdevices.remove(id)
        owners[record.owner]?.vdevices.remove(id)
        emit(.objectDestroyed(owner: record.owner, kind: .vdevice, id: id))
    }
}
