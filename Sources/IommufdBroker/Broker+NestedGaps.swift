import IommufdCore

// MARK: nestedgaps

/// The gaps of nested translation closed on branch `nestedgaps`: a nested HWPT with a fault
/// queue, dirty tracking through a nested HWPT's parent, and `viommu.create` for a device that
/// is already on a nested HWPT.
extension Broker {
    var nestedFaultBackend: any NestedFaultIommuBackend {
        get throws {
            guard let b = backend as? any NestedFaultIommuBackend else {
                throw BrokerError(.unsupported, "this iommufd backend cannot give a nested HWPT a fault queue (IOMMU_HWPT_ALLOC with IOMMU_HWPT_FAULT_ID_VALID and driver data); allocate the nested HWPT without fault_queue")
            }
            return b
        }
    }

    /// The fault queue a nested HWPT's `fault_queue` names: the owner's, on a backend that has
    /// fault queues.
    func nestedFaultQueue(_ caller: Caller, _ id: ObjectID, owner: OwnerRecord) throws -> ObjectID {
        guard backend.features.contains(.faultQueue) else {
            throw BrokerError(.unsupported, "this kernel has no fault queues (IOMMU_FAULT_QUEUE_ALLOC, Linux >= 6.11), so a nested HWPT cannot deliver I/O page faults; allocate it without fault_queue")
        }
        return try faultQueueForHWPT(caller, id, owner: owner).id
    }
}

// MARK: nestedgaps: dirty tracking through a nested HWPT

extension Broker {
    /// The HWPT whose IOPTEs record the DMA writes made through `h`: for a nested HWPT its nest
    /// parent (stage 2: `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`, `IOMMU_HWPT_SET_DIRTY_TRACKING` and
    /// `IOMMU_HWPT_GET_DIRTY_BITMAP` are the parent's; a nested HWPT answers ENOENT to them),
    /// else `h` itself.
    func dirtyTracker(of h: HWPTRecord) -> HWPTRecord {
        guard let n = h.nested, let parent = hwptTable[n.parent] else { return h }
        return parent
    }

    /// The nested HWPTs over the nest parents of `ioas` (they are not in `ioas.hwpts`: the
    /// kernel keeps only paging HWPTs in an IOAS).
    func nestedHWPTs(of ioas: IOASRecord) -> [HWPTRecord] {
        ioas.hwpts.sorted().compactMap { hwptTable[$0] }.flatMap { parent in
            parent.nestedChildren.sorted().compactMap { hwptTable[$0] }
        }
    }

    /// The devices whose DMA goes through `h`'s page table: its own, and for a nest parent
    /// those on its nested HWPTs too.
    func devicesThrough(_ h: HWPTRecord) -> Set<String> {
        h.nestedChildren.reduce(into: h.devices) { all, id in all.formUnion(hwptTable[id]?.devices ?? []) }
    }
}

// MARK: nestedgaps: viommu.create for a device on a nested HWPT

extension Broker {
    /// The nest parent under `current` when `current` is a nested HWPT (the device keeps its
    /// stage 1 and the vIOMMU is allocated over that parent); nil for any other page table.
    func nestParentOfNestedDevice(_ current: HWPTRecord) -> HWPTRecord? {
        guard let n = current.nested else { return nil }
        return hwptTable[n.parent]
    }
}

extension Broker {
    /// The HWPT whose dirty bits a DMA write through page table `pt` sets (`sim.dma`): the nest
    /// parent of a nested HWPT, else `pt`. The caller checked that it may see `pt`.
    public func dirtyWriteTarget(_ pt: ObjectID) -> ObjectID {
        readLocked { hwptTable[pt].map { dirtyTracker(of: $0).id } } ?? pt
    }
}

// MARK: nestedgaps: one shared stage 2

extension Broker {
    /// The first vIOMMU of an IOMMU instance in an IOAS that already has nest parents for other
    /// instances: tries each of them (same owner and driver; tracking when the IOAS is tracked,
    /// dirty-capable when the device's HWPT is),
    /// moving the device onto it and allocating the vIOMMU over it. `EINVAL` from either (the
    /// driver will not use another instance's stage 2) undoes the move and tries the next; nil
    /// when every candidate refused, and the caller makes a nest parent for this instance.
    func shareNestParent(
        _ dev: DeviceRecord, bound: BoundDevice, owner: OwnerRecord, ioas: IOASRecord, current: HWPTRecord, key: NestParentKey, type: UInt32
    ) throws -> (parent: HWPTRecord, viommu: ObjectID)? {
        let driver = dev.hwInfo?.type
        let candidates = Set(nestParents.filter { $0.key.ioas == ioas.id && $0.key != key }.values).sorted()
            .compactMap { hwptTable[$0] }
            .filter { $0.owner == owner.name && $0.flags.contains(.nestParent) && (driver == nil || driverType(of: $0) == driver) }
            // Never lose dirty tracking by sharing: a device whose HWPT could track (or an IOAS
            // being tracked) needs a parent that can (that tracks).
            .filter { !ioas.dirtyEnabled || $0.tracking }
            .filter { !dirtyTracker(of: current).flags.contains(.dirtyTracking) || $0.flags.contains(.dirtyTracking) }
        for candidate in candidates {
            let move = current.id != candidate.id
            if move {
                do {
                    _ = try backend.replace(deviceID: bound.id, with: candidate.id)
                } catch let error as IommuError where error.errno == .EINVAL {
                    logger.info("nest parent not shared: the device's IOMMU will not attach to it", metadata: [
                        "hwpt": "\(candidate.id)", "device": "\(dev.name)", "instance": "\(key.iommuInstance)",
                    ])
                    continue
                } catch let error as IommuError {
                    throw BrokerError.kernel(error, "moving device '\(dev.name)' onto the nest parent HWPT \(candidate.id) of IOAS \(ioas.id) to share it")
                }
            }
            do {
                let id = try backend.allocVIOMMU(deviceID: bound.id, hwpt: candidate.id, type: type)
                return (candidate, id)
            } catch let error as IommuError {
                if move { _ = try? backend.replace(deviceID: bound.id, with: current.id) }
                guard error.errno == .EINVAL else {
                    throw BrokerError.kernel(error, "allocating a vIOMMU (type \(type)) for device '\(dev.name)' over the nest parent HWPT \(candidate.id)")
                }
                logger.info("nest parent not shared: IOMMU_VIOMMU_ALLOC refused it", metadata: [
                    "hwpt": "\(candidate.id)", "device": "\(dev.name)", "instance": "\(key.iommuInstance)",
                ])
            }
        }
        return nil
    }
}
