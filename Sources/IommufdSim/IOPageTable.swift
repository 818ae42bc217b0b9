import Foundation
import IommufdCore

/// One open memory file behind mappings: the simulator's own dup of the fd passed to
/// `IOMMU_IOAS_MAP_FILE`, closed when the last mapping (or copy) of it goes. Mappings of one
/// regular file share it, so a million mappings of a memfd hold one fd.
final class SimFile {
    let fd: Int32

    init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }
}

/// The memory behind one or more areas (`struct iopt_pages`): a user address range of this
/// process or a range of a file. Copies share it; it never changes once made.
struct SimPages {
    enum Backing {
        /// Exact user virtual address of byte 0.
        case user(address: UInt64)
        /// The file, and the file offset of byte 0.
        case file(SimFile, offset: UInt64)
    }
    let backing: Backing
    /// `pages->writable`: whether the first mapping asked for IOMMU_WRITE.
    let writable: Bool
    /// `IOPT_ADDRESS_DMABUF` pages: the dma-buf attachment (revoked or not) behind `backing`.
    var dmabuf: SimDmabufAttachment?

    init(backing: Backing, writable: Bool, dmabuf: SimDmabufAttachment? = nil) {
        self.backing = backing
        self.writable = writable
        self.dmabuf = dmabuf
    }

    /// The address (user VA or file offset) of byte `offset`: what `iopt_alloc_area_pages`
    /// feeds to `iopt_alloc_iova` to pick an IOVA alignment.
    func sourceAddress(at offset: UInt64) -> UInt64 {
        switch backing {
        case .user(let address): address &+ offset
        case .file(_, let fileOffset): fileOffset &+ offset
        }
    }

    /// The same memory from byte `offset` on: what an area starting `offset` bytes in sees.
    func advanced(by offset: UInt64) -> SimPages {
        switch backing {
        case .user(let address): SimPages(backing: .user(address: address &+ offset), writable: writable, dmabuf: dmabuf)
        case .file(let file, let fileOffset): SimPages(backing: .file(file, offset: fileOffset &+ offset), writable: writable, dmabuf: dmabuf)
        }
    }
}

/// One mapping (`struct iopt_area`): unmapped only as a whole.
struct SimArea {
    var iova: UInt64
    var last: UInt64
    /// The memory from the byte at `iova` on.
    var pages: SimPages
    var readable: Bool
    var writeable: Bool

    var length: UInt64 { last - iova + 1 }
    var sourceAddress: UInt64 { pages.sourceAddress(at: 0) }
}

/// Who put a reserved range into an IOAS (`iopt_reserved->owner`).
enum ReservedOwner: Hashable {
    /// `IOMMU_TEST_OP_ADD_RESERVED` (owner NULL).
    case test
    /// The aperture limits of an HWPT's domain (`iopt_table_add_domain`).
    case domain(ObjectID)
    /// A device's reserved regions (`iopt_table_enforce_dev_resv_regions`).
    case device(ObjectID)
}

/// An IOAS's `struct io_pagetable`: areas, reserved and allowed ranges, the IOVA alignment.
/// Every rule cites the kernel function it mirrors (drivers/iommu/iommufd/io_pagetable.c).
struct IOPageTable {
    /// Sorted by `iova`, never overlapping.
    private(set) var areas = AreaIndex()
    private(set) var reserved: [(range: IOVARange, owner: ReservedOwner)] = []
    /// Sorted, never overlapping (`iommufd_ioas_load_iovas` rejects overlaps).
    private(set) var allowed: [IOVARange] = []
    /// `iopt->iova_alignment`: starts at 1 (`iopt_init_table`).
    private(set) var iovaAlignment: UInt64 = 1
    /// `iopt->disable_large_pages` (IOMMU_OPTION_HUGE_PAGES = 0).
    private(set) var disableLargePages = false
    /// Minimum page size of each domain (HWPT) added to this table, by HWPT ID, in add order.
    private(set) var domains: [(hwpt: ObjectID, minPageSize: UInt64)] = []
    /// Accesses (mdev-like devices) attached, each needing PAGE_SIZE alignment.
    private(set) var accessCount = 0
    // MARK: hwqueue
    /// Ranges pinned by internal accesses (a HW queue's, `iommufd_hw_queue_alloc_phys`), by the
    /// owning object: an area they touch has `num_locks` and cannot be unmapped (EBUSY).
    private(set) var locks: [ObjectID: IOVARange] = [:]

    let pageSize: UInt64
    let hugePageSize: UInt64

    init(pageSize: UInt64, hugePageSize: UInt64) {
        self.pageSize = pageSize
        self.hugePageSize = hugePageSize
    }

    // MARK: Lookups

    func areas(intersecting start: UInt64, _ last: UInt64) -> [SimArea] {
        areas.areas(intersecting: start, last)
    }

    func area(containing iova: UInt64) -> SimArea? {
        areas.area(containing: iova)
    }

    private func reservedIntersects(_ start: UInt64, _ last: UInt64) -> Bool {
        reserved.contains { $0.range.start <= last && $0.range.last >= start }
    }

    private func allowedIntersects(_ start: UInt64, _ last: UInt64) -> Bool {
        allowed.contains { $0.start <= last && $0.last >= start }
    }

    // MARK: IOVA allocation (iopt_alloc_iova)

    /// Picks an IOVA as `iopt_alloc_iova` does: alignment from the length and the source
    /// address, capped at the huge page size; the first fitting hole of (reserved ∪ areas)
    /// inside an allowed range (or [PAGE_SIZE, ULONG_MAX - PAGE_SIZE] when none is set).
    func allocIOVA(sourceAddress addr: UInt64, length: UInt64) throws(Errno) -> UInt64 {
        // "Protect roundup_pow-of_two() from overflow"
        if length == 0 || length >= UInt64.max / 2 { throw .EOVERFLOW }
        let pageOffset = addr % pageSize
        var alignment = roundUpPowerOfTwo(length)
        if addr != 0 { alignment = min(alignment, UInt64(1) << UInt64(addr.trailingZeroBitCount)) }
        if alignment >= hugePageSize { alignment = hugePageSize }
        if alignment < iovaAlignment { throw .EINVAL }

        let windowStart = pageSize
        let windowLast = UInt64.max - pageSize
        let allowedSpans: [IOVARange] =
            allowed.isEmpty
            ? [IOVARange(start: windowStart, last: windowLast)]
            : mergedSpans(allowed).compactMap { clip($0, windowStart, windowLast) }

        // The holes of (reserved ∪ areas): the holes between areas big enough for `length`,
        // less the (few) reserved ranges. A smaller hole can never pass checkRange.
        let usedByReserved = mergedSpans(reserved.map(\.range))
        for span in allowedSpans {
            var probe = span.start
            guard checkRange(&probe, span.last, length, alignment, pageOffset) else { continue }
            // The kernel walks the holes from the aligned start of the allowed span.
            var found: UInt64?
            areas.forEachHole(within: IOVARange(start: probe, last: span.last), minimumSize: length) { areaHole in
                for hole in holes(of: usedByReserved, within: areaHole) {
                    var start = hole.start
                    if checkRange(&start, hole.last, length, alignment, pageOffset) {
                        found = start
                        return false
                    }
                }
                return true
            }
            if let found { return found }
        }
        throw .ENOSPC
    }

    /// `__alloc_iova_check_range`.
    private func checkRange(
        _ start: inout UInt64, _ last: UInt64, _ length: UInt64, _ alignment: UInt64, _ pageOffset: UInt64
    ) -> Bool {
        let (sum, overflow) = start.addingReportingOverflow(alignment - 1)
        if overflow { return false }
        let alignedStart = (sum & ~(alignment - 1)) | pageOffset
        if alignedStart >= last || last - alignedStart < length - 1 { return false }
        start = alignedStart
        return true
    }

    // MARK: Map / unmap

    /// `iopt_check_iova`: alignment, overflow, reserved (EINVAL) and existing areas (EEXIST).
    func checkFixedIOVA(_ iova: UInt64, length: UInt64) throws(Errno) {
        if iova & (iovaAlignment - 1) != 0 { throw .EINVAL }
        let (last, overflow) = iova.addingReportingOverflow(length - 1)
        if overflow { throw .EOVERFLOW }
        if reservedIntersects(iova, last) { throw .EINVAL }
        if areas.intersects(iova, last) { throw .EEXIST }
    }

    /// `iopt_alloc_area_pages` + `iopt_insert_area` for a list of page slices laid out back to
    /// back from the chosen IOVA. Returns the IOVA of the first slice.
    mutating func insert(
        slices: [(pages: SimPages, offset: UInt64, length: UInt64)], totalLength: UInt64,
        fixedIOVA: UInt64?, readable: Bool, writeable: Bool
    ) throws(Errno) -> UInt64 {
        guard let first = slices.first else { throw .EINVAL }
        if totalLength & (iovaAlignment - 1) != 0 || totalLength == 0 { throw .EINVAL }
        let start: UInt64
        if let fixedIOVA {
            try checkFixedIOVA(fixedIOVA, length: totalLength)
            start = fixedIOVA
        } else {
            start = try allocIOVA(sourceAddress: first.pages.sourceAddress(at: first.offset), length: totalLength)
        }
        var newAreas: [SimArea] = []
        var iova = start
        for slice in slices {
            // iopt_insert_area: a writeable mapping of pages that were pinned read-only.
            if writeable && !slice.pages.writable { throw .EPERM }
            if (slice.pages.sourceAddress(at: slice.offset) % pageSize) & (iovaAlignment - 1) != 0 { throw .EINVAL }
            let (last, overflow) = iova.addingReportingOverflow(slice.length - 1)
            if overflow { throw .EOVERFLOW }
            newAreas.append(
                SimArea(iova: iova, last: last, pages: slice.pages.advanced(by: slice.offset), readable: readable, writeable: writeable))
            iova = last &+ 1
        }
        for area in newAreas { areas.insert(area) }
        return start
    }

    /// `iopt_unmap_iova_range`: removes whole areas inside [start, last] in IOVA order; an area
    /// that sticks out stops the walk with ENOENT (areas already removed stay removed).
    mutating func unmap(start: UInt64, last: UInt64) -> (unmapped: UInt64, removed: [IOVARange], error: Errno?) {
        var unmapped: UInt64 = 0
        var removed: [IOVARange] = []
        if locks.isEmpty, let first = areas.first, let final = areas.last, first.iova >= start, final.last <= last {
            // Every area lies inside the range (unmap all): drop the index at once.
            removed.reserveCapacity(areas.count)
            areas.forEach { area in
                unmapped += area.length
                removed.append(IOVARange(start: area.iova, last: area.last))
                return true
            }
            areas.removeAll()
            return (unmapped, removed, nil)
        }
        while let position = areas.firstIntersecting(start, last) {
            let area = areas[position]
            // The area is locked by an object that has not been destroyed (a HW queue).
            if isLocked(area) { return (unmapped, removed, .EBUSY) }
            if area.iova < start || area.last > last { return (unmapped, removed, .ENOENT) }
            areas.remove(at: position)
            unmapped += area.length
            removed.append(IOVARange(start: area.iova, last: area.last))
            if area.last >= last { break }
        }
        return (unmapped, removed, nil)
    }

    /// `iopt_get_pages`: the slices behind [iova, iova+length), which contiguous areas must
    /// cover completely (ENOENT otherwise).
    func slices(iova: UInt64, length: UInt64) throws(Errno) -> [(pages: SimPages, offset: UInt64, length: UInt64)] {
        if length == 0 { throw .EINVAL }
        let (last, overflow) = iova.addingReportingOverflow(length - 1)
        if overflow { throw .EOVERFLOW }
        var result: [(pages: SimPages, offset: UInt64, length: UInt64)] = []
        var cursor = iova
        while true {
            guard let area = area(containing: cursor) else { throw .ENOENT }
            let end = min(last, area.last)
            result.append((area.pages, cursor - area.iova, end - cursor + 1))
            if end == last { return result }
            cursor = end + 1
        }
    }

    // MARK: Reserved and allowed ranges

    /// `iopt_reserve_iova`: EADDRINUSE when an area or an allowed range intersects.
    mutating func reserve(_ range: IOVARange, owner: ReservedOwner) throws(Errno) {
        if areas.intersects(range.start, range.last) || allowedIntersects(range.start, range.last) {
            throw .EADDRINUSE
        }
        reserved.append((range, owner))
    }

    mutating func removeReserved(owner: ReservedOwner) {
        reserved.removeAll { $0.owner == owner }
    }

    /// `iommufd_ioas_load_iovas` + `iopt_set_allow_iova`.
    mutating func setAllowed(_ ranges: [IOVARange]) throws(Errno) {
        var loaded: [IOVARange] = []
        for range in ranges {
            if range.start >= range.last { throw .EINVAL }
            if loaded.contains(where: { $0.start <= range.last && $0.last >= range.start }) { throw .EINVAL }
            loaded.append(range)
        }
        for range in loaded where reservedIntersects(range.start, range.last) { throw .EADDRINUSE }
        allowed = loaded.sorted { $0.start < $1.start }
    }

    /// `IOMMU_IOAS_IOVA_RANGES`: the holes of the reserved tree over [0, ULONG_MAX].
    var usableRanges: [IOVARange] {
        holes(of: mergedSpans(reserved.map(\.range)), within: IOVARange(start: 0, last: .max))
    }

    // MARK: Domains, accesses and alignment

    /// `iopt_table_add_domain`.
    mutating func addDomain(hwpt: ObjectID, minPageSize: UInt64, aperture: IOVARange) throws(Errno) {
        let newAlignment = max(minPageSize, iovaAlignment)
        if newAlignment > pageSize { throw .EINVAL }
        if newAlignment != iovaAlignment { try checkAlignment(newAlignment) }
        let snapshot = reserved
        do {
            if aperture.start != 0 {
                try reserve(IOVARange(start: 0, last: aperture.start - 1), owner: .domain(hwpt))
            }
            if aperture.last != .max {
                try reserve(IOVARange(start: aperture.last + 1, last: .max), owner: .domain(hwpt))
            }
        } catch {
            reserved = snapshot
            throw error
        }
        // iopt_fill_domain: the first domain pins the pages of every area (later ones find
        // them pinned); user memory that cannot be pinned fails the add.
        if domains.isEmpty {
            var pinnable = true
            var regions: [UserMemory.Region]?
            areas.forEach { area in
                pinnable = SimBackend.pinnable([(area.pages, 0, area.length)], regions: &regions)
                return pinnable
            }
            if !pinnable {
                reserved = snapshot
                throw .EFAULT
            }
        }
        iovaAlignment = newAlignment
        domains.append((hwpt, minPageSize))
    }

    /// `iopt_table_remove_domain`.
    mutating func removeDomain(hwpt: ObjectID) {
        domains.removeAll { $0.hwpt == hwpt }
        removeReserved(owner: .domain(hwpt))
        _ = try? recalculateAlignment()
    }

    // MARK: hwqueue

    /// Whether a range pinned by an internal access touches `area` (`area->num_locks`).
    func isLocked(_ area: SimArea) -> Bool {
        locks.values.contains { $0.start <= area.last && $0.last >= area.iova }
    }

    /// `iommufd_access_pin_pages` of an internal access (flags 0: read) over `range`, which
    /// must be wholly mapped by contiguous areas (ENOENT) that are readable (EPERM).
    mutating func lock(_ range: IOVARange, owner: ObjectID) throws(Errno) {
        var cursor = range.start
        while true {
            guard let area = area(containing: cursor) else { throw .ENOENT }
            if !area.readable { throw .EPERM }
            if area.last >= range.last { break }
            cursor = area.last + 1
        }
        locks[owner] = range
    }

    /// `iommufd_access_unpin_pages` of the range `owner` pinned.
    mutating func unlock(owner: ObjectID) {
        locks[owner] = nil
    }

    /// `iopt_add_access` (a vfio emulated device needs pin_pages: PAGE_SIZE alignment).
    mutating func addAccess() throws(Errno) {
        accessCount += 1
        do { try recalculateAlignment() } catch {
            accessCount -= 1
            throw error
        }
    }

    mutating func removeAccess() {
        accessCount = max(0, accessCount - 1)
        _ = try? recalculateAlignment()
    }

    /// `iopt_disable_large_pages`: refused (EINVAL) once a domain holds mappings.
    mutating func setLargePages(enabled: Bool) throws(Errno) {
        if enabled {
            // iopt_enable_large_pages: lowering the alignment cannot fail.
            disableLargePages = false
            _ = try? recalculateAlignment()
            return
        }
        if disableLargePages { return }
        if !domains.isEmpty && !areas.isEmpty { throw .EINVAL }
        disableLargePages = true
        do { try recalculateAlignment() } catch {
            disableLargePages = false
            throw error
        }
    }

    /// `iopt_calculate_iova_alignment`.
    private mutating func recalculateAlignment() throws(Errno) {
        var alignment: UInt64 = disableLargePages ? pageSize : 1
        for domain in domains { alignment = max(alignment, domain.minPageSize) }
        if accessCount > 0 { alignment = max(alignment, pageSize) }
        if alignment > iovaAlignment { try checkAlignment(alignment) }
        iovaAlignment = alignment
    }

    /// `iopt_check_iova_alignment`: every area must conform to a raised alignment.
    private func checkAlignment(_ alignment: UInt64) throws(Errno) {
        let mask = alignment - 1
        var conforms = true
        areas.forEach { area in
            conforms = area.iova & mask == 0 && area.length & mask == 0 && (area.sourceAddress % pageSize) & mask == 0
            return conforms
        }
        if !conforms { throw .EADDRINUSE }
    }
}

// MARK: Interval helpers

func roundUpPowerOfTwo(_ value: UInt64) -> UInt64 {
    if value <= 1 { return 1 }
    let shift = 64 - (value - 1).leadingZeroBitCount
    return shift >= 64 ? 0 : UInt64(1) << UInt64(shift)
}

/// Sorted union of ranges, adjacent ranges merged (what `interval_tree_span_iter` walks).
func mergedSpans(_ ranges: [IOVARange]) -> [IOVARange] {
    var result: [IOVARange] = []
    for range in ranges.sorted(by: { $0.start < $1.start }) {
        if var lastSpan = result.last, lastSpan.last == .max || range.start <= lastSpan.last + 1 {
            lastSpan.last = max(lastSpan.last, range.last)
            result[result.count - 1] = lastSpan
        } else {
            result.append(range)
        }
    }
    return result
}

/// The gaps of sorted, merged `used` spans inside `window`.
func holes(of used: [IOVARange], within window: IOVARange) -> [IOVARange] {
    var result: [IOVARange] = []
    var cursor = window.start
    var exhausted = false
    for span in used {
        if span.last < cursor { continue }
        if span.start > window.last { break }
        if span.start > cursor { result.append(IOVARange(start: cursor, last: span.start - 1)) }
        if span.last >= window.last {
            exhausted = true
            break
        }
        cursor = span.last + 1
    }
    if !exhausted && cursor <= window.last { result.append(IOVARange(start: cursor, last: window.last)) }
    return result
}

func clip(_ range: IOVARange, _ start: UInt64, _ last: UInt64) -> IOVARange? {
    let s = max(range.start, start)
    let l = min(range.last, last)
    return s <= l ? IOVARange(start: s, last: l) : nil
}
