import IommufdCore

// MARK: hwqueue

/// `iommufd_hw_queue_alloc_ioctl` (drivers/iommu/iommufd/viommu.c) with the selftest mock
/// driver's `mock_viommu_get_hw_queue_size` / `mock_hw_queue_init_phys` (selftest.c): only a
/// mock vIOMMU (`VIOMMUType.selftest`) has HW queues, of `HWQueueType.selftest`, at indexes 0
/// and 1, each index after 0 depending on its predecessor.
///
/// Physical contiguity is not modelled: the simulator's user memory has no physical pages, so
/// a queue whose pinned span is more than one page is refused EFAULT, as the kernel refuses one
/// over ordinary (not physically contiguous) memory.
extension SimBackend: HWQueueIommuBackend {
    public func allocHWQueue(viommu viommuID: ObjectID, type: UInt32, index: UInt32, baseAddress: UInt64, length: UInt64, flags: UInt32) throws -> ObjectID {
        try locked("IOMMU_HW_QUEUE_ALLOC") {
            if flags != 0 || type == HWQueueType.default { throw Errno.EOPNOTSUPP }
            if length == 0 { throw Errno.EINVAL }
            if baseAddress.addingReportingOverflow(length - 1).overflow { throw Errno.EOVERFLOW }
            let viommu = try viommu(viommuID)
            // viommu->ops->get_hw_queue_size: 0 (EOPNOTSUPP) for a driver without HW queues or
            // a type it does not take.
            guard viommu.type == VIOMMUType.selftest, type == HWQueueType.selftest else { throw Errno.EOPNOTSUPP }
            let id = try allocateID()
            // iommufd_hw_queue_alloc_phys: pin [PAGE_ALIGN_DOWN(base), PAGE_ALIGN(offset + length))
            // of the nest parent's IOAS through an internal access.
            let alignedStart = baseAddress - baseAddress % pageSize
            let (span, o1) = (baseAddress % pageSize).addingReportingOverflow(length)
            let (rounded, o2) = span.addingReportingOverflow(pageSize - 1)
            if o1 || o2 { throw Errno.ERANGE }
            let pages = rounded / pageSize
            guard case .hwpt(let parent) = objects[viommu.hwpt] else { throw Errno.ENOENT }
            let ioas = try ioas(parent.ioas)
            let pinned = IOVARange(start: alignedStart, last: alignedStart + pages * pageSize - 1)
            try ioas.table.lock(pinned, owner: id)
            do {
                if pages > 1 { throw Errno.EFAULT }
                // mock_hw_queue_init_phys
                if index >= HWQueueType.selftestMaxQueues { throw Errno.EINVAL }
                if viommu.hwQueues[index] != nil { throw Errno.EEXIST }
                if index > 0 {
                    guard let prevID = viommu.hwQueues[index - 1], case .hwQueue(let prev) = objects[prevID] else { throw Errno.EIO }
                    prev.dependents += 1
                }
            } catch {
                ioas.table.unlock(owner: id)
                throw error
            }
            objects[id] = .hwQueue(SimHWQueue(viommu: viommuID, type: type, index: index, ioas: parent.ioas, pinned: pinned))
            viommu.hwQueues[index] = id
            return id
        }
    }

    /// `iommufd_object_remove` of a HW queue: EBUSY while the next index depends on it; then
    /// `mock_hw_queue_destroy` (undepend) and `iommufd_hw_queue_destroy` (unpin, drop the
    /// vIOMMU's users reference).
    func destroyHWQueue(_ id: ObjectID, _ queue: SimHWQueue) throws(Errno) {
        if queue.dependents > 0 { throw .EBUSY }
        if case .viommu(let viommu) = objects[queue.viommu] {
            viommu.hwQueues[queue.index] = nil
            if queue.index > 0, let prevID = viommu.hwQueues[queue.index - 1], case .hwQueue(let prev) = objects[prevID] {
                prev.dependents -= 1
            }
        }
        if case .ioas(let ioas) = objects[queue.ioas] { ioas.table.unlock(owner: id) }
        removeObject(id)
    }
}

/// Logged as its own operation kind (a log without it replays as before); the destroy is the
/// generic one.
extension PersistentSimBackend: HWQueueIommuBackend {
    public func allocHWQueue(viommu: ObjectID, type: UInt32, index: UInt32, baseAddress: UInt64, length: UInt64, flags: UInt32) throws -> ObjectID {
        try logged(.allocHWQueue, { try sim.allocHWQueue(viommu: viommu, type: type, index: index, baseAddress: baseAddress, length: length, flags: flags) }) { w, id in
            w.u32(id); w.u32(viommu); w.u32(type); w.u32(index); w.u64(baseAddress); w.u64(length); w.u32(flags)
        }
    }

    func replayHWQueue(_ r: inout ByteReader, _ expect: (ObjectID, UInt32, String) throws -> Void) throws {
        let id = r.u32(), viommu = r.u32(), type = r.u32(), index = r.u32(), base = r.u64(), length = r.u64(), flags = r.u32()
        try expect(
            try sim.allocHWQueue(viommu: viommu, type: type, index: index, baseAddress: base, length: length, flags: flags),
            id, "IOMMU_HW_QUEUE_ALLOC")
    }
}
