import Foundation
import IommufdCore

/// IOAS ioctls, after drivers/iommu/iommufd/ioas.c.
extension SimBackend {
    private static let knownMapFlags: MapFlags = [.fixedIOVA, .readable, .writeable]

    public func allocIOAS() throws -> ObjectID {
        try locked("IOMMU_IOAS_ALLOC") {
            let id = try allocateID()
            objects[id] = .ioas(SimIOAS(table: IOPageTable(pageSize: pageSize, hugePageSize: hugePageSize)))
            return id
        }
    }

    /// `iommufd_ioas_map` / `iommufd_ioas_map_file`, in their order of checks.
    public func map(ioas ioasID: ObjectID, source: MemorySource, length: UInt64, iova: UInt64, flags: MapFlags) throws -> UInt64 {
        let operation: String
        if case .file = source { operation = "IOMMU_IOAS_MAP_FILE" } else { operation = "IOMMU_IOAS_MAP" }
        let (mapped, pinned) = try locked(operation) { () throws -> (UInt64, UInt64) in
            if !flags.subtracting(Self.knownMapFlags).isEmpty { throw Errno.EOPNOTSUPP }
            if iova >= UInt64.max || length >= UInt64.max { throw Errno.EOVERFLOW }
            if flags.intersection([.readable, .writeable]).isEmpty { throw Errno.EINVAL }
            let ioas = try ioas(ioasID)
            let pages: SimPages
            switch source {
            case .userAddress(let address):
                // iopt_alloc_user_pages / iopt_alloc_pages
                if address.addingReportingOverflow(length).overflow { throw Errno.EOVERFLOW }
                if length == 0 || length > UInt64.max - pageSize { throw Errno.EINVAL }
                pages = SimPages(backing: .user(address: address), writable: flags.contains(.writeable))
            case .file(let fd, let offset):
                // iopt_map_file_pages
                if length == 0 { throw Errno.EINVAL }
                if offset.addingReportingOverflow(length - 1).overflow { throw Errno.EOVERFLOW }
                if let dmabuf = dmabuf(for: fd) {
                    pages = try mapDmabufPages(dmabuf, offset: offset, length: length, writable: flags.contains(.writeable))
                } else {
                    let file = try sharedFile(for: fd)
                    pages = SimPages(backing: .file(file, offset: offset), writable: flags.contains(.writeable))
                }
            }
            let mapped = try ioas.table.insert(
                slices: [(pages, 0, length)], totalLength: length,
                fixedIOVA: flags.contains(.fixedIOVA) ? iova : nil,
                readable: flags.contains(.readable), writeable: flags.contains(.writeable))
            // iopt_map_pages → iopt_fill_domains_pages: with a domain the pages are pinned now
            // (pfn_reader_user_pin); memory that cannot be pinned undoes the area.
            if !ioas.table.domains.isEmpty, !Self.pinnable([(pages, 0, length)]) {
                _ = ioas.table.unmap(start: mapped, last: mapped + (length - 1))
                throw IommuError(
                    .EFAULT, operation,
                    detail: "user address 0x\(String(pages.sourceAddress(at: 0), radix: 16))+0x\(String(length, radix: 16)) is not "
                        + (pages.writable ? "readable and writable" : "readable") + " memory of this process")
            }
            // dma-buf pages are the exporter's, never pinned (IOPT_PAGES_ACCOUNT_NONE).
            return (mapped, ioas.table.domains.isEmpty || pages.dmabuf != nil ? 0 : length)
        }
        payPinCost(bytes: pinned)
        return mapped
    }

    /// Sleeps for the pinning of `bytes` (`pinNanosecondsPerPage`), outside the lock.
    func payPinCost(bytes: UInt64) {
        guard pinNanosecondsPerPage > 0, bytes > 0 else { return }
        let (total, overflow) = (bytes / pageSize).multipliedReportingOverflow(by: pinNanosecondsPerPage)
        let ns = overflow ? UInt64.max : total
        var request = timespec(tv_sec: Int(clamping: ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    /// Whether the user memory behind `slices` can be pinned (file slices always can here).
    /// `regions` caches this process's map across calls (read at the first user slice).
    static func pinnable(_ slices: [(pages: SimPages, offset: UInt64, length: UInt64)], regions: inout [UserMemory.Region]?) -> Bool {
        slices.allSatisfy { slice in
            guard case .user = slice.pages.backing else { return true }
            if regions == nil { regions = UserMemory.regions() }
            return UserMemory.isPinnable(
                address: slice.pages.sourceAddress(at: slice.offset), length: slice.length, write: slice.pages.writable,
                in: regions ?? [])
        }
    }

    static func pinnable(_ slices: [(pages: SimPages, offset: UInt64, length: UInt64)]) -> Bool {
        var regions: [UserMemory.Region]?
        return pinnable(slices, regions: &regions)
    }

    /// `iommufd_ioas_unmap`: [0, UINT64_MAX] unmaps everything (and succeeds on an empty IOAS);
    /// any other range that unmaps nothing is ENOENT.
    public func unmap(ioas ioasID: ObjectID, iova: UInt64, length: UInt64) throws -> UInt64 {
        try locked("IOMMU_IOAS_UNMAP") {
            let ioas = try ioas(ioasID)
            if iova == 0 && length == UInt64.max {
                let result = ioas.table.unmap(start: 0, last: .max)
                dropDirtyBits(of: ioas, in: result.removed)
                if let error = result.error {
                    throw IommuError(
                        error, "IOMMU_IOAS_UNMAP",
                        detail: error == .EBUSY ? "a mapping of the IOAS is pinned by a HW queue (destroy the queue first)" : nil)
                }
                return result.unmapped
            }
            if iova >= UInt64.max || length >= UInt64.max { throw Errno.EOVERFLOW }
            // iopt_unmap_iova
            if length == 0 { throw Errno.EINVAL }
            let (last, overflow) = iova.addingReportingOverflow(length - 1)
            if overflow { throw Errno.EOVERFLOW }
            let result = ioas.table.unmap(start: iova, last: last)
            dropDirtyBits(of: ioas, in: result.removed)
            if let error = result.error {
                let why = error == .EBUSY
                    ? "takes in a mapping a HW queue has pinned (destroy the queue first)"
                    : "cuts a mapping"
                throw IommuError(
                    error, "IOMMU_IOAS_UNMAP",
                    detail: "range 0x\(String(iova, radix: 16))+0x\(String(length, radix: 16)) \(why)"
                        + (result.unmapped > 0 ? " (0x\(String(result.unmapped, radix: 16)) bytes before it were unmapped)" : ""))
            }
            if result.unmapped == 0 {
                throw IommuError(.ENOENT, "IOMMU_IOAS_UNMAP", detail: "nothing is mapped in 0x\(String(iova, radix: 16))+0x\(String(length, radix: 16))")
            }
            return result.unmapped
        }
    }

    /// Unmapping clears the IOPTEs, and their dirty bits with them.
    private func dropDirtyBits(of ioas: SimIOAS, in ranges: [IOVARange]) {
        guard !ranges.isEmpty else { return }
        for hwptID in ioas.hwpts {
            guard case .hwpt(let hwpt) = objects[hwptID], !hwpt.dirty.isEmpty else { continue }
            hwpt.dirty = hwpt.dirty.filter { start, size in
                !Self.intersects(sorted: ranges, start, start + size - 1)
            }
        }
    }

    /// Whether `[start, last]` meets one of `ranges` (sorted, disjoint): a binary search for
    /// the first range ending at or after `start`.
    private static func intersects(sorted ranges: [IOVARange], _ start: UInt64, _ last: UInt64) -> Bool {
        var lo = 0
        var hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].last < start { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].start <= last
    }

    /// `iommufd_ioas_copy`: the destination gets one area per source area the range spans.
    public func copy(dst: ObjectID, src: ObjectID, srcIOVA: UInt64, length: UInt64, dstIOVA: UInt64, flags: MapFlags) throws -> UInt64 {
        let (copied, pinned) = try locked("IOMMU_IOAS_COPY") { () throws -> (UInt64, UInt64) in
            if !flags.subtracting(Self.knownMapFlags).isEmpty { throw Errno.EOPNOTSUPP }
            if length >= UInt64.max || srcIOVA >= UInt64.max || dstIOVA >= UInt64.max { throw Errno.EOVERFLOW }
            if flags.intersection([.readable, .writeable]).isEmpty { throw Errno.EINVAL }
            let source = try ioas(src)
            let slices = try source.table.slices(iova: srcIOVA, length: length)
            let destination = try ioas(dst)
            let copied = try destination.table.insert(
                slices: slices, totalLength: length,
                fixedIOVA: flags.contains(.fixedIOVA) ? dstIOVA : nil,
                readable: flags.contains(.readable), writeable: flags.contains(.writeable))
            // Pages already pinned for a domain of the source stay pinned; otherwise filling
            // the destination's domains pins them now.
            if !destination.table.domains.isEmpty, source.table.domains.isEmpty, !Self.pinnable(slices) {
                _ = destination.table.unmap(start: copied, last: copied + (length - 1))
                throw IommuError(.EFAULT, "IOMMU_IOAS_COPY", detail: "the source's user memory is not pinnable memory of this process")
            }
            return (copied, !destination.table.domains.isEmpty && source.table.domains.isEmpty ? length : 0)
        }
        payPinCost(bytes: pinned)
        return copied
    }

    /// `iommufd_ioas_iova_ranges`: EMSGSIZE (with the count) when `capacity` is too small.
    public func iovaRanges(ioas ioasID: ObjectID, capacity: UInt32) throws -> IOVARanges {
        try locked("IOMMU_IOAS_IOVA_RANGES") {
            let table = try ioas(ioasID).table
            let ranges = table.usableRanges
            if ranges.count > Int(capacity) {
                throw IommuError(
                    .EMSGSIZE, "IOMMU_IOAS_IOVA_RANGES",
                    detail: "\(ranges.count) ranges, room for \(capacity)", requiredCount: UInt32(ranges.count))
            }
            return IOVARanges(ranges: ranges, alignment: table.iovaAlignment)
        }
    }

    public func allowIOVAs(ioas ioasID: ObjectID, ranges: [IOVARange]) throws {
        try locked("IOMMU_IOAS_ALLOW_IOVAS") {
            try ioas(ioasID).table.setAllowed(ranges)
        }
    }

    // MARK: IommuTestHooks

    /// `IOMMU_TEST_OP_ADD_RESERVED` (`iommufd_test_add_reserved`).
    public func addReservedIOVA(ioas ioasID: ObjectID, range: IOVARange) throws {
        try locked("IOMMU_TEST_OP_ADD_RESERVED") {
            let ioas = try ioas(ioasID)
            try ioas.table.reserve(range, owner: .test)
        }
    }
}
