import Foundation

/// What `pin_user_pages` (mm/gup.c, `check_vma_flags`) decides about a user address range of
/// this process: the simulator's stand-in for the kernel pinning the memory behind an
/// `IOMMU_IOAS_MAP` once a domain needs it (`pfn_reader_user_pin`).
///
/// The simulator serves the process it runs in, so a user address is memory of this process,
/// as it is of the calling process for the kernel. The range is pinnable when mappings of this
/// process (`/proc/self/maps`) cover every page of it without a gap, each readable, and each
/// writable too when the pin is for writing (`FOLL_WRITE`, pages mapped `IOMMU_WRITE`);
/// anything else is EFAULT, as `pin_user_pages_fast` answers. Not modelled: device memory
/// (`VM_IO`/`VM_PFNMAP`, which the kernel refuses too) and the locked-memory limit (ENOMEM
/// without `CAP_IPC_LOCK`).
enum UserMemory {
    static let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    /// Whether the pages behind `[address, address + length)` could be pinned, for writing
    /// when `write`.
    /// `regions` is this process's map (`regions()`), read once for several checks.
    static func isPinnable(address: UInt64, length: UInt64, write: Bool, in regions: [Region]) -> Bool {
        guard length > 0 else { return true }
        let start = address & ~(pageSize - 1)
        let (end, overflow) = address.addingReportingOverflow(length)
        if overflow { return false }
        var cursor = start
        for region in regions where region.end > cursor {
            // Sorted by address: a region starting after the cursor leaves a hole.
            if region.start > cursor { return false }
            if !region.readable || (write && !region.writable) { return false }
            cursor = region.end
            if cursor >= end { return true }
        }
        return false
    }

    struct Region {
        var start: UInt64
        var end: UInt64
        var readable: Bool
        var writable: Bool
    }

    /// This process's mappings, in address order, from `/proc/self/maps`
    /// (`start-end perms offset dev inode path`); none (so nothing is pinnable) when it cannot
    /// be read.
    static func regions() -> [Region] {
        let fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { return [] }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        var regions: [Region] = []
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 2)
            guard fields.count >= 2 else { continue }
            let bounds = fields[0].split(separator: UInt8(ascii: "-"))
            guard bounds.count == 2,
                let start = UInt64(String(decoding: bounds[0], as: UTF8.self), radix: 16),
                let end = UInt64(String(decoding: bounds[1], as: UTF8.self), radix: 16)
            else { continue }
            let perms = Array(fields[1])
            regions.append(Region(
                start: start, end: end,
                readable: perms.first == UInt8(ascii: "r"),
                writable: perms.count > 1 && perms[1] == UInt8(ascii: "w")))
        }
        return regions
    }
}
