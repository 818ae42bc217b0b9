import IommufdCore

/// HWPT allocation, dirty tracking, vIOMMU and vDevice, after hw_pagetable.c, io_pagetable.c
/// and viommu.c.
extension SimBackend {
    private static let validHWPTFlags: HWPTAllocFlags = [.nestParent, .dirtyTracking, .faultIDValid, .pasid]

    /// `iommufd_hwpt_alloc`: a paging HWPT from an IOAS. Not attached to anything yet.
    public func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags) throws -> ObjectID {
        try allocHWPTWithoutData(deviceID: deviceID, ptID: ptID, flags: flags, faultQueue: nil)
    }

    /// `iommufd_hwpt_alloc` without driver data, with `IOMMU_HWPT_FAULT_ID_VALID` and
    /// `faultQueue` as `fault_id` when it is given: a paging HWPT from an IOAS. An HWPT or vIOMMU
    /// parent takes a nested HWPT, which needs driver data (`allocNestedHWPT`).
    func allocHWPTWithoutData(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags, faultQueue: ObjectID?) throws -> ObjectID {
        try locked("IOMMU_HWPT_ALLOC") {
            // iommufd_get_device: an mdev-like device (an access) is not a device object.
            let device = try physicalDevice(deviceID)
            guard let iommu = device.iommu else { throw Errno.ENOENT }
            // A pt_id that does not resolve is EINVAL here, not ENOENT.
            guard let target = objects[ptID] else { throw Errno.EINVAL }
            switch target {
            case .ioas(let ioas):
                let flags = faultQueue == nil ? flags : flags.union(.faultIDValid)
                return try allocPagingHWPT(device, iommu, ioasID: ptID, ioas, flags: flags, faultQueue: faultQueue)
            case .hwpt(let parent):
                // A nested HWPT is no pt_id for IOMMU_HWPT_ALLOC (EINVAL); on a paging HWPT,
                // iommufd_hwpt_nested_alloc: nested domains need driver data (none here).
                if parent.nested != nil { throw Errno.EINVAL }
                throw Errno.EOPNOTSUPP
            case .viommu(let viommu):
                if viommu.iommuName != iommu.name { throw Errno.EINVAL }
                throw Errno.EOPNOTSUPP
            default:
                throw Errno.EINVAL
            }
        }
    }

    /// `iommufd_hwpt_paging_alloc` with immediate_attach = false.
    func allocPagingHWPT(
        _ device: SimDevice, _ iommu: SimTopology.IOMMU, ioasID: ObjectID, _ ioas: SimIOAS, flags: HWPTAllocFlags,
        faultQueue: ObjectID? = nil
    ) throws -> ObjectID {
        if !flags.subtracting(Self.validHWPTFlags).isEmpty { throw Errno.EOPNOTSUPP }
        if flags.contains(.dirtyTracking) && !device.dirtyCapable { throw Errno.EOPNOTSUPP }
        if flags.contains(.faultIDValid) && flags.contains(.nestParent) { throw Errno.EOPNOTSUPP }
        // The driver's domain_alloc_paging_flags refuses a nest parent it cannot nest.
        if flags.contains(.nestParent) && !iommu.nesting { throw Errno.EOPNOTSUPP }
        // arm_smmu_domain_finalise: a nest parent is a stage-2 domain, which has no dirty ops.
        if flags.contains(.nestParent) && flags.contains(.dirtyTracking) && iommu.nestParentCannotTrackDirty {
            throw Errno.EOPNOTSUPP
        }
        let id = try allocateID()
        let hwpt = SimHWPT(ioas: ioasID, iommu: iommu, flags: flags, autoDomain: false)
        try ioas.table.addDomain(hwpt: id, minPageSize: iommu.minPageSize, aperture: iommu.aperture)
        if flags.contains(.faultIDValid) {
            // iommufd_get_fault: ENOENT for anything but a fault object (fault_id 0 included).
            guard let faultQueue, case .eventQueue(let queue) = objects[faultQueue], queue.kind == .fault else {
                ioas.table.removeDomain(hwpt: id)
                throw Errno.ENOENT
            }
            queue.users += 1
            hwpt.faultQueue = faultQueue
        }
        objects[id] = .hwpt(hwpt)
        ioas.hwpts.append(id)
        return id
    }

    // MARK: Dirty tracking

    /// `iommufd_hwpt_set_dirty_tracking` → `iopt_set_dirty_tracking`: EOPNOTSUPP without dirty
    /// ops; enabling clears the dirty bits first for a clean snapshot.
    public func setDirtyTracking(hwpt hwptID: ObjectID, enabled: Bool) throws {
        try locked("IOMMU_HWPT_SET_DIRTY_TRACKING") {
            let hwpt = try hwpt(hwptID)
            if !hwpt.hasDirtyOps { throw Errno.EOPNOTSUPP }
            if enabled { hwpt.dirty.removeAll() }
            hwpt.dirtyTrackingEnabled = enabled
        }
    }

    /// `iommufd_hwpt_get_dirty_bitmap` → `iopt_read_and_clear_dirty_data`. Bits are OR-ed into
    /// `bitmap` (the kernel only sets bits; the caller zeroes it). Like the kernel, reporting
    /// walks the contiguous areas from `iova` and stops silently at the first hole.
    public func readDirtyBitmap(
        hwpt hwptID: ObjectID, iova: UInt64, length: UInt64, pageSize bitmapPageSize: UInt64, clear: Bool,
        into bitmap: UnsafeMutableRawBufferPointer
    ) throws {
        try locked("IOMMU_HWPT_GET_DIRTY_BITMAP") {
            let hwpt = try hwpt(hwptID)
            let table = try ioas(hwpt.ioas).table
            let last = try checkDirtyRange(table, iova: iova, length: length, pageSize: bitmapPageSize)
            if !hwpt.hasDirtyOps { throw Errno.EOPNOTSUPP }

            // iova_bitmap_alloc: pgshift = __ffs(page_size).
            let shift = UInt64(bitmapPageSize.trailingZeroBitCount)
            let bitCount = ((last - iova) >> shift) + 1
            if UInt64(bitmap.count) < (bitCount + 63) / 64 * 8 {
                throw IommuError(
                    .EFAULT, "IOMMU_HWPT_GET_DIRTY_BITMAP",
                    detail: "bitmap of \(bitmap.count) bytes cannot hold \(bitCount) bits")
            }
            let covered = contiguousCoverage(table, from: iova, to: last)
            guard let coveredLast = covered else { return }
            var cleared: [UInt64] = []
            for (start, size) in hwpt.dirty {
                let unitLast = start + size - 1
                let lo = max(start, iova)
                let hi = min(unitLast, coveredLast)
                if lo > hi { continue }
                Self.setBits(bitmap, from: (lo - iova) >> shift, through: (hi - iova) >> shift)
                cleared.append(start)
            }
            if clear { for start in cleared { hwpt.dirty[start] = nil } }
        }
    }

    /// Sets bits `first...last` of `bitmap` (bit n is bit n % 8 of byte n / 8, the byte order
    /// of the kernel's u64 words on a little-endian host): edge bytes bit by bit, whole bytes
    /// between them at once.
    static func setBits(_ bitmap: UnsafeMutableRawBufferPointer, from first: UInt64, through last: UInt64) {
        let firstByte = Int(first / 8)
        let lastByte = Int(last / 8)
        let headMask = UInt8(truncatingIfNeeded: 0xFF << (first % 8))
        let tailMask = UInt8(truncatingIfNeeded: 0xFF >> (7 - last % 8))
        if firstByte == lastByte {
            bitmap[firstByte] |= headMask & tailMask
            return
        }
        bitmap[firstByte] |= headMask
        if lastByte - firstByte > 1 {
            (bitmap.baseAddress! + firstByte + 1).initializeMemory(as: UInt8.self, repeating: 0xFF, count: lastByte - firstByte - 1)
        }
        bitmap[lastByte] |= tailMask
    }

    /// `iommufd_check_iova_range`. Returns the last IOVA.
    private func checkDirtyRange(_ table: IOPageTable, iova: UInt64, length: UInt64, pageSize: UInt64) throws -> UInt64 {
        if length == 0 { throw Errno.EINVAL }
        let (last, overflow) = iova.addingReportingOverflow(length - 1)
        if overflow { throw Errno.EOVERFLOW }
        let alignmentMask = table.iovaAlignment - 1
        if iova & alignmentMask != 0 || (last &+ 1) & alignmentMask != 0 { throw Errno.EINVAL }
        if pageSize == 0 { throw Errno.EINVAL }
        if iova & (pageSize - 1) != 0 || (last &+ 1) & (pageSize - 1) != 0 { throw Errno.EINVAL }
        return last
    }

    /// The end of the run of back-to-back areas that starts at `start` (capped at `last`), as
    /// `iopt_for_each_contig_area` walks it; nil when nothing is mapped at `start`.
    private func contiguousCoverage(_ table: IOPageTable, from start: UInt64, to last: UInt64) -> UInt64? {
        guard var area = table.area(containing: start) else { return nil }
        while area.last < last {
            guard let next = table.area(containing: area.last + 1) else { return area.last }
            area = next
        }
        return last
    }

    /// Marks the IOPTEs behind [iova, last] dirty, as the IOMMU does on a DMA write. With huge
    /// pages allowed, a mapping is held in the largest IOPTE that fits it (aligned IOVA and
    /// source address), so one write dirties the whole huge page.
    func markDirty(_ hwpt: SimHWPT, _ table: IOPageTable, iova: UInt64, last: UInt64) {
        var address = iova
        while address <= last {
            guard let area = table.area(containing: address) else {
                // Unmapped IOVA: no IOPTE to dirty; skip to the next base page.
                let next = (address | (hwpt.iommu.minPageSize - 1)) &+ 1
                if next == 0 || next <= address { return }
                address = next
                continue
            }
            let size = ioptSize(hwpt, table, area, at: address)
            let start = address & ~(size - 1)
            hwpt.dirty[start] = size
            let next = start &+ size
            if next == 0 { return }
            address = next
        }
    }

    private func ioptSize(_ hwpt: SimHWPT, _ table: IOPageTable, _ area: SimArea, at address: UInt64) -> UInt64 {
        let base = hwpt.iommu.minPageSize
        // batch_iommu_map_small: without large pages every IOPTE is a base page.
        guard !table.disableLargePages else { return base }
        for size in hwpt.iommu.pageSizes.sorted(by: >) where size > base {
            let start = address & ~(size - 1)
            let (end, overflow) = start.addingReportingOverflow(size - 1)
            if overflow || start < area.iova || end > area.last { continue }
            if area.pages.sourceAddress(at: start - area.iova) % size != 0 { continue }
            return size
        }
        return base
    }

    /// `IOMMU_TEST_OP_DIRTY` (`iommufd_test_dirty`).
    public func simulateDeviceWrite(hwpt hwptID: ObjectID, iova: UInt64, length: UInt64, pageSize writePageSize: UInt64) throws {
        try locked("IOMMU_TEST_OP_DIRTY") {
            if writePageSize == 0 || length == 0 || iova % writePageSize != 0 || length % writePageSize != 0 {
                throw Errno.EINVAL
            }
            if length / writePageSize > (16 << 20) * 8 { throw Errno.EOVERFLOW }
            let hwpt = try hwpt(hwptID)
            if !hwpt.dirtyTrackingEnabled { throw Errno.EINVAL }
            let table = try ioas(hwpt.ioas).table
            markDirty(hwpt, table, iova: iova, last: iova &+ (length - 1))
        }
    }

    // MARK: vIOMMU and vDevice

    /// `iommufd_viommu_alloc_ioctl`.
    public func allocVIOMMU(deviceID: ObjectID, hwpt hwptID: ObjectID, type: UInt32) throws -> ObjectID {
        try locked("IOMMU_VIOMMU_ALLOC") {
            if type == VIOMMUType.default { throw Errno.EOPNOTSUPP }
            let device = try physicalDevice(deviceID)
            // No viommu ops (Intel VT-d: empty viommuTypes), or get_viommu_size() == 0 for
            // this type.
            guard let iommu = device.iommu, iommu.nesting, iommu.viommuTypes.contains(type) else {
                throw Errno.EOPNOTSUPP
            }
            let parent = try hwpt(hwptID)
            if !parent.isNestParent { throw Errno.EINVAL }
            // The driver's viommu_init refuses a parent domain of another IOMMU instance, unless
            // both share nest parents (SimTopology.IOMMU.sharesNestParent).
            if !iommu.acceptsNestParent(of: parent.iommu) { throw Errno.EINVAL }
            let id = try allocateID()
            objects[id] = .viommu(SimVIOMMU(hwpt: hwptID, iommuName: iommu.name, type: type))
            parent.viommuUsers += 1
            return id
        }
    }

    /// `iommufd_vdevice_alloc_ioctl`: one vDevice per device, one device per virtual ID.
    public func allocVDevice(viommu viommuID: ObjectID, deviceID: ObjectID, virtualID: UInt64) throws -> ObjectID {
        try locked("IOMMU_VDEVICE_ALLOC") {
            let viommu = try viommu(viommuID)
            let device = try physicalDevice(deviceID)
            if device.iommu?.name != viommu.iommuName { throw Errno.EINVAL }
            if device.vdevice != nil { throw Errno.EEXIST }
            if viommu.vdevices[virtualID] != nil { throw Errno.EEXIST }
            let id = try allocateID()
            objects[id] = .vdevice(SimVDevice(viommu: viommuID, device: deviceID, virtualID: virtualID))
            viommu.vdevices[virtualID] = id
            device.vdevice = id
            return id
        }
    }
}
