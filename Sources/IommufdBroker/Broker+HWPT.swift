import IommufdContract
import IommufdCore

extension Broker {
    func hwptInfo(_ h: HWPTRecord) -> HWPTInfo {
        HWPTInfo(
            hwpt: h.id, owner: h.owner, ioas: h.ioas, dirtyTracking: h.flags.contains(.dirtyTracking),
            nestParent: h.flags.contains(.nestParent), auto: h.auto, iommuInstance: h.iommuInstance,
            devices: h.devices.sorted(), viommus: h.viommus.sorted(), tracking: h.tracking,
            nested: h.nested.map { NestedHWPTInfo(parent: $0.parent, viommu: $0.viommu, dataType: HWPTDataType.name($0.data.type)) },
            faultQueue: h.faultQueue,
            pasid: h.flags.contains(.pasid) ? true : nil,
            pasids: h.pasids.isEmpty ? nil : h.pasids.sorted().map { PASIDAttachmentInfo(pasid: $0.pasid, device: $0.device) })
    }

    /// `hwpt.list`: the HWPTs the caller may see, optionally of one owner or IOAS.
    public func hwptList(_ caller: Caller, _ params: HWPTListParams) throws -> HWPTListResult {
        try reading {
            if let name = params.owner { _ = try readableOwner(caller, name) }
            if let id = params.ioas { _ = try ioas(caller, id) }
            let list = hwptTable.values
                .filter { h in
                    (params.owner == nil || h.owner == params.owner) && (params.ioas == nil || h.ioas == params.ioas)
                        && canSee(caller, owner: h.owner)
                }
                .sorted { $0.id < $1.id }
                .map(hwptInfo)
            return HWPTListResult(hwpts: list)
        }
    }

    /// `hwpt.alloc`: an HWPT with explicit flags, for a device of the IOAS's owner (leased to
    /// it on first use). It lives until `hwpt.destroy` or `owner.release`.
    public func hwptAlloc(_ caller: Caller, _ params: HWPTAllocParams) throws -> HWPTInfo {
        if params.parent != nil || params.viommu != nil || params.data != nil { return try hwptAllocNested(caller, params) }
        guard let ioasID = params.ioas else {
            throw BrokerError.invalid("hwpt.alloc: name 'ioas' (a paging HWPT), or 'parent' or 'viommu' with 'data' (a nested HWPT)")
        }
        return try locked {
            let ioas = try ioas(caller, ioasID, write: "hwpt.alloc")
            guard let owner = owners[ioas.owner] else { throw BrokerError.notFound("owner of IOAS \(ioas.id) is gone") }
            let dev = try device(params.device)
            guard !dev.descriptor.isMdev else {
                throw BrokerError(.unsupported, "device '\(dev.name)' is mdev-like and has no IOMMU page table; attach it to the IOAS directly")
            }
            var flags: HWPTAllocFlags = []
            if params.dirtyTracking == true {
                guard backend.features.contains(.dirtyTracking) else {
                    throw BrokerError(.unsupported, "this kernel has no IOMMU dirty tracking (Linux >= 6.7 needed)")
                }
                flags.insert(.dirtyTracking)
            }
            if params.nestParent == true { flags.insert(.nestParent) }
            if params.pasid == true { flags.insert(try pasidAllocFlag()) }  // pasid
            // queues: an HWPT whose I/O page faults go to a fault queue of the owner.
            var faultQueue: ObjectID?
            if let id = params.faultQueue {
                guard params.nestParent != true else {
                    throw BrokerError.invalid("hwpt.alloc: an HWPT with a fault_queue cannot be a nest parent (IOMMU_HWPT_ALLOC refuses FAULT_ID_VALID with NEST_PARENT); drop one of them")
                }
                faultQueue = try faultQueueForHWPT(caller, id, owner: owner).id
            }
            let leased = try lease(dev, to: owner)
            do {
                guard let bound = dev.bound else { throw BrokerError(.conflict, "device '\(dev.name)' is not bound") }
                if flags.contains(.dirtyTracking) && !dev.dirtyCapable {
                    throw BrokerError(.unsupported, "device '\(dev.name)': its IOMMU (\(dev.descriptor.iommuInstance ?? "unknown instance")) lacks dirty tracking (IOMMU_HW_CAP_DIRTY_TRACKING)")
                }
                let id = try kcall("allocating an HWPT for device '\(dev.name)' in IOAS \(ioas.id)") {
                    if let faultQueue { return try backend.allocHWPT(deviceID: bound.id, ptID: ioas.id, flags: flags, faultQueue: faultQueue) }
                    return try backend.allocHWPT(deviceID: bound.id, ptID: ioas.id, flags: flags)
                }
                let record = HWPTRecord(id: id, owner: owner.name, ioas: ioas.id, flags: flags, auto: false, iommuInstance: dev.descriptor.iommuInstance)
                record.faultQueue = faultQueue
                record.hwInfoType = dev.hwInfo?.type
                if ioas.dirtyEnabled && flags.contains(.dirtyTracking) {
                    // The IOAS is tracked: so is every dirty-capable HWPT that joins it.
                    do {
                        try kcall("starting dirty tracking on new HWPT \(id)") { try backend.setDirtyTracking(hwpt: id, enabled: true) }
                        record.tracking = true
                    } catch {
                        try? backend.destroy(id)
                        throw error
                    }
                }
                hwptTable[id] = record
                ioas.hwpts.insert(id)
                owner.hwpts.insert(id)
                emit(.objectCreated(owner: owner.name, kind: .hwpt, id: id))
                return hwptInfo(record)
            } catch {
                if leased { try? releaseDevice(dev, owner: owner) }
                throw error
            }
        }
    }

    /// `hwpt.destroy`: Busy while devices or vIOMMUs use it. Under the owner's gate, then
    /// `lock`: an invalidation of the HWPT in flight (gated, outside `lock`) ends first.
    public func hwptDestroy(_ caller: Caller, _ params: HWPTDestroyParams) throws -> HWPTDestroyResult {
        try serialized({ try ownerRecord(try hwpt(caller, params.hwpt, write: "hwpt.destroy").owner) }) { _ in try locked {
            let hwpt = try hwpt(caller, params.hwpt, write: "hwpt.destroy")
            guard hwpt.isUnused else {
                if !hwpt.pasids.isEmpty {  // pasid
                    throw BrokerError(.busy, "HWPT \(hwpt.id) has device PASIDs attached (\(hwpt.pasids.sorted().map { "'\($0.device)' PASID \($0.pasid)" }.joined(separator: ", "))), and the kernel refuses to destroy it (EBUSY) while they are; detach them (device.detach_pasid) or move them (device.replace_pasid) first\(hwpt.devices.isEmpty && hwpt.viommus.isEmpty && hwpt.nestedChildren.isEmpty ? "" : ", and detach or replace its devices \(hwpt.devices.sorted()), destroy its nested HWPTs \(hwpt.nestedChildren.sorted()) and vIOMMUs \(hwpt.viommus.sorted())")")
                }
                throw BrokerError(.busy, "HWPT \(hwpt.id) is in use by devices \(hwpt.devices.sorted()), vIOMMUs \(hwpt.viommus.sorted()) and nested HWPTs \(hwpt.nestedChildren.sorted()); detach or replace the devices and destroy the nested HWPTs and vIOMMUs first")
            }
            try destroyHWPT(hwpt)
            return HWPTDestroyResult(hwpt: params.hwpt)
        } }
    }

    func destroyHWPT(_ hwpt: HWPTRecord) throws {
        do {
            try backend.destroy(hwpt.id)
        } catch let error as IommuError where error.errno == .EBUSY {
            throw BrokerError(.busy, "HWPT \(hwpt.id) is still in use in the kernel (\(error.operation) returned EBUSY); detach what uses it first", kernel: error)
        } catch let error as IommuError {
            throw BrokerError.kernel(error, "destroying HWPT \(hwpt.id)")
        }
        hwptTable[hwpt.id] = nil
        unlinkNested(hwpt)
        ioasTable[hwpt.ioas]?.hwpts.remove(hwpt.id)
        owners[hwpt.owner]?.hwpts.remove(hwpt.id)
        for (key, id) in nestParents where id == hwpt.id { nestParents[key] = nil }
        emit(.objectDestroyed(owner: hwpt.owner, kind: .hwpt, id: hwpt.id))
    }
}
