import IommufdCore

/// Dirty tracking (hw_pagetable.c: iommufd_hwpt_set_dirty_tracking / _get_dirty_bitmap;
/// io_pagetable.c: iommufd_check_iova_range, iopt_set_dirty_tracking; selftest fixture
/// `iommufd_dirty_tracking`, helper `test_mock_dirty_bitmaps`).
enum DirtyCases {
    /// A dirty-tracking HWPT over `pages` pages mapped at a 2 MiB-aligned IOVA, with huge pages
    /// off so every write dirties exactly one CPU page on any backend.
    struct Setup {
        var ioas: ObjectID
        var hwpt: ObjectID
        var iova: UInt64
        var length: UInt64
    }

    static func setUp(_ ctx: ConformanceContext, pages: UInt64 = 128, tracking: Bool = true) throws -> Setup {
        let ioas = try ctx.backend.allocIOAS()
        try ctx.backend.setOption(.hugePages, objectID: ioas, value: 0)
        let hwpt = try ctx.backend.allocHWPT(deviceID: try ctx.device(.primary).id, ptID: ioas, flags: .dirtyTracking)
        let length = pages * ctx.pageSize
        let iova = try ctx.baseIOVA(ioas: ioas, length: length)
        try ctx.mapFixed(ioas: ioas, iova: iova, length: length)
        if tracking { try ctx.backend.setDirtyTracking(hwpt: hwpt, enabled: true) }
        return Setup(ioas: ioas, hwpt: hwpt, iova: iova, length: length)
    }

    /// A tracking HWPT over two 8-page mappings with an 8-page hole between them: pages 0-7 and
    /// 16-23 of `iova` are mapped, 8-15 are not.
    static func holeSetUp(_ ctx: ConformanceContext) throws -> Setup {
        let p = ctx.pageSize
        let ioas = try ctx.backend.allocIOAS()
        try ctx.backend.setOption(.hugePages, objectID: ioas, value: 0)
        let hwpt = try ctx.backend.allocHWPT(deviceID: try ctx.device(.primary).id, ptID: ioas, flags: .dirtyTracking)
        let iova = try ctx.baseIOVA(ioas: ioas, length: 24 * p)
        try ctx.mapFixed(ioas: ioas, iova: iova, length: 8 * p)
        try ctx.mapFixed(ioas: ioas, iova: iova + 16 * p, length: 8 * p, offset: 8 * p)
        try ctx.backend.setDirtyTracking(hwpt: hwpt, enabled: true)
        return Setup(ioas: ioas, hwpt: hwpt, iova: iova, length: 24 * p)
    }

    /// A u64 word with the given bits set.
    static func word(_ bits: [UInt64]) -> UInt64 {
        var value: UInt64 = 0
        for bit in bits { value |= UInt64(1) << bit }
        return value
    }

    static func bits(_ words: [UInt64]) -> [UInt64] {
        var result: [UInt64] = []
        for (index, word) in words.enumerated() {
            for bit in 0..<64 where word & (UInt64(1) << UInt64(bit)) != 0 { result.append(UInt64(index * 64 + bit)) }
        }
        return result
    }

    static let all: [ConformanceCase] = [
        // iopt_set_dirty_tracking: !domain->dirty_ops.
        ConformanceCase(
            "dirty.set-tracking.non-dirty-hwpt-is-EOPNOTSUPP",
            "Starting or stopping dirty tracking on an HWPT allocated without the dirty flag is EOPNOTSUPP.",
            requires: [.device]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let hwpt = try ctx.backend.allocHWPT(deviceID: try ctx.device(.primary).id, ptID: ioas, flags: [])
            try ctx.expectErrno(.EOPNOTSUPP, "enable dirty tracking") { try ctx.backend.setDirtyTracking(hwpt: hwpt, enabled: true) }
            try ctx.expectErrno(.EOPNOTSUPP, "disable dirty tracking") { try ctx.backend.setDirtyTracking(hwpt: hwpt, enabled: false) }
        },

        // iommu_read_and_clear_dirty: !ops->read_and_clear_dirty (after the range checks).
        ConformanceCase(
            "dirty.read.non-dirty-hwpt-is-EOPNOTSUPP",
            "Reading the dirty bitmap of an HWPT allocated without the dirty flag is EOPNOTSUPP.",
            requires: [.device]
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let hwpt = try ctx.backend.allocHWPT(deviceID: try ctx.device(.primary).id, ptID: ioas, flags: [])
            let iova = try ctx.baseIOVA(ioas: ioas, length: 8 * p)
            try ctx.mapFixed(ioas: ioas, iova: iova, length: 8 * p)
            try ctx.expectErrno(.EOPNOTSUPP, "read dirty bitmap") {
                try ctx.dirtyBitmap(hwpt: hwpt, iova: iova, length: 8 * p, pageSize: p, clear: true)
            }
        },

        // selftest iommufd_dirty_tracking.get_dirty_bitmap (read-and-clear).
        ConformanceCase(
            "dirty.read.clears-by-default",
            "A dirty-bitmap read reports the written pages and clears them: the next read is empty.",
            requires: [.dirtyDevice]
        ) { ctx in
            let p = ctx.pageSize
            let s = try setUp(ctx)
            try ctx.deviceWrite(hwpt: s.hwpt, iova: s.iova, length: p, pageSize: p)
            try ctx.deviceWrite(hwpt: s.hwpt, iova: s.iova + 3 * p, length: p, pageSize: p)
            let first = try ctx.dirtyBitmap(hwpt: s.hwpt, iova: s.iova, length: s.length, pageSize: p, clear: true)
            try ctx.expectEqual(bits(first), [0, 3], "dirty pages after writing pages 0 and 3")
            let second = try ctx.dirtyBitmap(hwpt: s.hwpt, iova: s.iova, length: s.length, pageSize: p, clear: true)
            try ctx.expectEqual(bits(second), [], "dirty pages on the second read")
        },

        // selftest iommufd_dirty_tracking.get_dirty_bitmap_no_clear.
        ConformanceCase(
            "dirty.read.no-clear-keeps-bits",
            "A NO_CLEAR read reports the dirty pages and leaves them dirty for the next read.",
            requires: [.dirtyDevice]
        ) { ctx in
            let p = ctx.pageSize
            let s = try setUp(ctx)
            try ctx.deviceWrite(hwpt: s.hwpt, iova: s.iova + p, length: p, pageSize: p)
            for attempt in 1...2 {
                let words = try ctx.dirtyBitmap(hwpt: s.hwpt, iova: s.iova, length: s.length, pageSize: p, clear: false)
                try ctx.expectEqual(bits(words), [1], "dirty pages on NO_CLEAR read \(attempt)")
            }
            try ctx.expectEqual(
                bits(try ctx.dirtyBitmap(hwpt: s.hwpt, iova: s.iova, length: s.length, pageSize: p, clear: true)), [1],
                "dirty pages on the clearing read")
            try ctx.expectEqual(
                bits(try ctx.dirtyBitmap(hwpt: s.hwpt, iova: s.iova, length: s.length, pageSize: p, clear: true)), [],
                "dirty pages after the clearing read")
        },

        // uAPI struct iommu_hwpt_get_dirty_bitmap: bit (iova - base) / page_size of u64 words.
        ConformanceCase(
            "dirty.bitmap.layout",
            "Dirty page n of the range is bit n % 64 of u64 word n / 64, counted from the range's start IOVA.",
            requires: [.dirtyDevice]
        ) { ctx in
            let p = ctx.pageSize
            let s = try setUp(ctx)
            for page: UInt64 in [0, 5, 63, 64, 70, 127] {
                try ctx.deviceWrite(hwpt: s.hwpt, iova: s.iova + page * p, length: p, pageSize: p)
            }
            let words = try ctx.dirtyBitmap(hwpt: s.hwpt, iova: s.iova, length: s.length, pageSize: p, clear: false)
            try ctx.expectEqual(words, [word([0, 5, 63]), word([0, 6, 63])], "bitmap words")
            // The same pages seen from a start IOVA 64 pages later.
            let tail = try ctx.dirtyBitmap(hwpt: s.hwpt, iova: s.iova + 64 * p, length: 64 * p, pageSize: p, clear: false)
            try ctx.expectEqual(tail, [word([0, 6, 63])], "bitmap of the second half")
            // Twice the page size: one bit per two pages.
            let coarse = try ctx.dirtyBitmap(hwpt: s.hwpt, iova: s.iova, length: s.length, pageSize: 2 * p, clear: false)
            try ctx.expectEqual(coarse, [word([0, 2, 31, 32, 35, 63])], "bitmap at 2-page granularity")
        },

        // iommufd_check_iova_range: iova and iova + length aligned to page_size.
        ConformanceCase(
            "dirty.read.unaligned-to-page-size-is-EINVAL",
            "A dirty-bitmap range whose start or end is not a multiple of the bitmap page size is EINVAL.",
            requires: [.dirtyDevice]
        ) { ctx in
            let p = ctx.pageSize
            let s = try setUp(ctx)
            try ctx.expectErrno(.EINVAL, "start one page into a 2-page granule") {
                try ctx.dirtyBitmap(hwpt: s.hwpt, iova: s.iova + p, length: 4 * p, pageSize: 2 * p, clear: true)
            }
            try ctx.expectErrno(.EINVAL, "length of 3 pages at 2-page granularity") {
                try ctx.dirtyBitmap(hwpt: s.hwpt, iova: s.iova, length: 3 * p, pageSize: 2 * p, clear: true)
            }
        },

        // iommufd_check_iova_range: iova and iova + length aligned to the IOAS alignment.
        ConformanceCase(
            "dirty.read.unaligned-to-ioas-alignment-is-EINVAL",
            "A dirty-bitmap range not aligned to the IOAS alignment is EINVAL, even at a bitmap page size that divides it.",
            requires: [.dirtyDevice]
        ) { ctx in
            let p = ctx.pageSize
            let s = try setUp(ctx)
            let alignment = try ctx.backend.iovaRanges(ioas: s.ioas, capacity: 64).alignment
            try ctx.expect(alignment > 1, "IOAS alignment with a dirty HWPT is \(alignment), expected > 1")
            try ctx.expectErrno(.EINVAL, "start at half the IOAS alignment, bitmap page size \(alignment / 2)") {
                try ctx.dirtyBitmap(hwpt: s.hwpt, iova: s.iova + alignment / 2, length: 2 * p, pageSize: alignment / 2, clear: true)
            }
        },

        // iommufd_check_iova_range: !page_size, !length.
        ConformanceCase(
            "dirty.read.zero-page-size-or-length-is-EINVAL",
            "A dirty-bitmap read with page size 0 or length 0 is EINVAL.",
            requires: [.dirtyDevice]
        ) { ctx in
            let p = ctx.pageSize
            let s = try setUp(ctx)
            var words = [UInt64](repeating: 0, count: 4)
            try ctx.expectErrno(.EINVAL, "page size 0") {
                try words.withUnsafeMutableBytes {
                    try ctx.backend.readDirtyBitmap(hwpt: s.hwpt, iova: s.iova, length: s.length, pageSize: 0, clear: true, into: $0)
                }
            }
            try ctx.expectErrno(.EINVAL, "length 0") {
                try words.withUnsafeMutableBytes {
                    try ctx.backend.readDirtyBitmap(hwpt: s.hwpt, iova: s.iova, length: 0, pageSize: p, clear: true, into: $0)
                }
            }
        },

        // iommufd_test_dirty: !(mock->flags & MOCK_DIRTY_TRACK).
        ConformanceCase(
            "dirty.device-write.tracking-off-is-EINVAL",
            "Simulating a device write on a dirty-capable HWPT whose tracking is off is EINVAL.",
            requires: [.dirtyDevice]
        ) { ctx in
            let p = ctx.pageSize
            let s = try setUp(ctx, tracking: false)
            try ctx.expectErrno(.EINVAL, "IOMMU_TEST_OP_DIRTY with tracking off") {
                try ctx.backend.simulateDeviceWrite(hwpt: s.hwpt, iova: s.iova, length: p, pageSize: p)
            }
        },

        // __iommu_read_and_clear_dirty: iopt_for_each_contig_area stops at the first hole and
        // returns -EINVAL, but iommu_read_and_clear_dirty does not pass iova_bitmap_for_each's
        // return value on: the ioctl succeeds with the bits read (and cleared) before the hole.
        ConformanceCase(
            "dirty.read.stops-silently-at-a-hole",
            "A dirty-bitmap read over two mappings with a hole between them succeeds, reports and clears only what lies before the hole, and leaves the pages after it dirty.",
            requires: [.dirtyDevice]
        ) { ctx in
            let p = ctx.pageSize
            let h = try holeSetUp(ctx)
            try ctx.deviceWrite(hwpt: h.hwpt, iova: h.iova + 2 * p, length: p, pageSize: p)
            try ctx.deviceWrite(hwpt: h.hwpt, iova: h.iova + 18 * p, length: p, pageSize: p)
            let across = try ctx.dirtyBitmap(hwpt: h.hwpt, iova: h.iova, length: 24 * p, pageSize: p, clear: true)
            try ctx.expectEqual(bits(across), [2], "dirty pages of a clearing read across the hole (page 18 lies after it)")
            let after = try ctx.dirtyBitmap(hwpt: h.hwpt, iova: h.iova + 16 * p, length: 8 * p, pageSize: p, clear: false)
            try ctx.expectEqual(bits(after), [2], "the mapping after the hole, read on its own: page 18 is still dirty")
            let before = try ctx.dirtyBitmap(hwpt: h.hwpt, iova: h.iova, length: 8 * p, pageSize: p, clear: false)
            try ctx.expectEqual(bits(before), [], "the mapping before the hole: page 2 was cleared by the read across the hole")
        },

        // The same walk from an IOVA with no area: nothing is read, and the ioctl still succeeds.
        ConformanceCase(
            "dirty.read.starting-in-a-hole-reports-nothing",
            "A dirty-bitmap read whose range starts in a hole succeeds and reports nothing, not even the dirty pages of a mapping later in the range, which stay dirty.",
            requires: [.dirtyDevice]
        ) { ctx in
            let p = ctx.pageSize
            let h = try holeSetUp(ctx)
            try ctx.deviceWrite(hwpt: h.hwpt, iova: h.iova + 18 * p, length: p, pageSize: p)
            let fromHole = try ctx.dirtyBitmap(hwpt: h.hwpt, iova: h.iova + 8 * p, length: 16 * p, pageSize: p, clear: true)
            try ctx.expectEqual(bits(fromHole), [], "dirty pages of a clearing read that starts in the hole")
            let after = try ctx.dirtyBitmap(hwpt: h.hwpt, iova: h.iova + 16 * p, length: 8 * p, pageSize: p, clear: true)
            try ctx.expectEqual(bits(after), [2], "the mapping after the hole, read on its own: page 18 is still dirty")
        },

        // iopt_set_dirty_tracking: "Clear dirty bits from PTEs to ensure a clean snapshot".
        ConformanceCase(
            "dirty.enable-clears-old-bits",
            "Starting dirty tracking discards dirty bits left from an earlier tracking period.",
            requires: [.dirtyDevice]
        ) { ctx in
            let p = ctx.pageSize
            let s = try setUp(ctx)
            try ctx.deviceWrite(hwpt: s.hwpt, iova: s.iova + 2 * p, length: p, pageSize: p)
            try ctx.backend.setDirtyTracking(hwpt: s.hwpt, enabled: false)
            try ctx.backend.setDirtyTracking(hwpt: s.hwpt, enabled: true)
            let words = try ctx.dirtyBitmap(hwpt: s.hwpt, iova: s.iova, length: s.length, pageSize: p, clear: true)
            try ctx.expectEqual(bits(words), [], "dirty pages after re-enabling tracking")
        },
    ]
}
