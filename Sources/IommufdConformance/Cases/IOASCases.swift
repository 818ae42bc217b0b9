import IommufdCore

/// IOAS mappings, IOVA allocation and ranges (ioas.c, io_pagetable.c; selftest fixture
/// `iommufd_ioas`). IOVAs come from IOMMU_IOAS_IOVA_RANGES, never from a fixed constant.
enum IOASCases {
    /// `1 << ffs(length) - 1`: the alignment the selftest checks kernel-chosen IOVAs against.
    static func lowestBit(_ value: UInt64) -> UInt64 { UInt64(1) << UInt64(value.trailingZeroBitCount) }

    static let all: [ConformanceCase] = mappings + unmapping + allocation + ranges + lifecycle

    static let mappings: [ConformanceCase] = [
        // selftest iommufd_ioas.area: "Over map fails"; iopt_check_iova.
        ConformanceCase(
            "ioas.map.fixed-overlap-is-EEXIST",
            "A fixed-IOVA map that overlaps an existing mapping in any way is EEXIST."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 32 * p)
            try ctx.mapFixed(ioas: ioas, iova: base + 16 * p, length: 2 * p)
            for (offset, pages) in [(16, 2), (16, 1), (17, 1), (15, 2), (15, 3)] as [(UInt64, UInt64)] {
                try ctx.expectErrno(.EEXIST, "map of \(pages) pages at page \(offset) over pages 16-17") {
                    try ctx.mapFixed(ioas: ioas, iova: base + offset * p, length: pages * p)
                }
            }
        },

        // iopt_alloc_pages / iopt_map_file_pages: !length.
        ConformanceCase(
            "ioas.map.zero-length-is-EINVAL",
            "Mapping zero bytes is EINVAL."
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: ctx.pageSize)
            try ctx.expectErrno(.EINVAL, "fixed map of length 0") { try ctx.mapFixed(ioas: ioas, iova: base, length: 0) }
            try ctx.expectErrno(.EINVAL, "kernel-chosen map of length 0") {
                try ctx.backend.map(ioas: ioas, source: ctx.source(), length: 0, iova: 0, flags: .readWrite)
            }
        },

        // iommufd_ioas_map: flags outside FIXED_IOVA | WRITEABLE | READABLE.
        ConformanceCase(
            "ioas.map.unknown-flag-is-EOPNOTSUPP",
            "A map with a flag the uAPI does not define is EOPNOTSUPP."
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: ctx.pageSize)
            try ctx.expectErrno(.EOPNOTSUPP, "map with flag bit 5") {
                try ctx.backend.map(
                    ioas: ioas, source: ctx.source(), length: ctx.pageSize, iova: base,
                    flags: MapFlags.readWrite.union([.fixedIOVA, MapFlags(rawValue: 1 << 5)]))
            }
        },

        // iommufd_ioas_map: neither READABLE nor WRITEABLE.
        ConformanceCase(
            "ioas.map.no-access-flags-is-EINVAL",
            "A map with neither READABLE nor WRITEABLE is EINVAL."
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: ctx.pageSize)
            try ctx.expectErrno(.EINVAL, "map with flags FIXED_IOVA only") {
                try ctx.backend.map(ioas: ioas, source: ctx.source(), length: ctx.pageSize, iova: base, flags: .fixedIOVA)
            }
        },

        // iopt_check_iova: iova & (iova_alignment - 1); selftest ioas_align_change.
        ConformanceCase(
            "ioas.map.unaligned-iova-is-EINVAL",
            "With a domain attached, a fixed IOVA not aligned to the IOAS alignment is EINVAL.",
            requires: [.device]
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            try ctx.backend.attach(deviceID: try ctx.device(.primary).id, to: ioas)
            let alignment = try ctx.backend.iovaRanges(ioas: ioas, capacity: 64).alignment
            try ctx.expect(alignment > 1, "IOAS alignment with a domain attached is \(alignment), expected > 1")
            let base = try ctx.baseIOVA(ioas: ioas, length: 4 * p)
            try ctx.expectErrno(.EINVAL, "fixed map at IOVA base + \(alignment / 2)") {
                try ctx.mapFixed(ioas: ioas, iova: base + alignment / 2, length: p)
            }
        },

        // iopt_alloc_area_pages: length & (iova_alignment - 1); selftest ioas_iova_alloc.
        ConformanceCase(
            "ioas.map.unaligned-length-is-EINVAL",
            "With a domain attached, a length not a multiple of the IOAS alignment is EINVAL.",
            requires: [.device]
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            try ctx.backend.attach(deviceID: try ctx.device(.primary).id, to: ioas)
            let alignment = try ctx.backend.iovaRanges(ioas: ioas, capacity: 64).alignment
            try ctx.expect(alignment > 1, "IOAS alignment with a domain attached is \(alignment), expected > 1")
            let base = try ctx.baseIOVA(ioas: ioas, length: 4 * p)
            try ctx.expectErrno(.EINVAL, "fixed map of length \(p + alignment / 2)") {
                try ctx.mapFixed(ioas: ioas, iova: base, length: p + alignment / 2)
            }
            try ctx.expectErrno(.EINVAL, "kernel-chosen map of length \(p + alignment / 2)") {
                try ctx.backend.map(ioas: ioas, source: ctx.source(), length: p + alignment / 2, iova: 0, flags: .readWrite)
            }
        },

        // iopt_check_iova: a reserved IOVA intersecting the range is EINVAL (not EEXIST).
        ConformanceCase(
            "ioas.map.fixed-in-reserved-is-EINVAL",
            "A fixed-IOVA map touching a reserved range is EINVAL."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 16 * p)
            try ctx.addReserved(ioas: ioas, IOVARange(start: base + 4 * p, length: 4 * p))
            try ctx.expectErrno(.EINVAL, "map inside the reserved range") { try ctx.mapFixed(ioas: ioas, iova: base + 4 * p, length: p) }
            try ctx.expectErrno(.EINVAL, "map straddling the start of the reserved range") {
                try ctx.mapFixed(ioas: ioas, iova: base + 3 * p, length: 2 * p)
            }
            try ctx.expectSuccess("map just below the reserved range") { try ctx.mapFixed(ioas: ioas, iova: base + 3 * p, length: p) }
        },
    ]

    static let unmapping: [ConformanceCase] = [
        // selftest iommufd_ioas.area: "Unmap fails if nothing is mapped"; iommufd_ioas_unmap.
        ConformanceCase(
            "ioas.unmap.hole-is-ENOENT",
            "Unmapping a range where nothing is mapped is ENOENT."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 8 * p)
            try ctx.expectErrno(.ENOENT, "unmap on an empty IOAS") { try ctx.backend.unmap(ioas: ioas, iova: base, length: p) }
            try ctx.mapFixed(ioas: ioas, iova: base, length: p)
            try ctx.expectErrno(.ENOENT, "unmap of the hole after a mapping") {
                try ctx.backend.unmap(ioas: ioas, iova: base + 2 * p, length: p)
            }
        },

        // selftest iommufd_ioas.area: "Split fails"; iopt_unmap_iova_range.
        ConformanceCase(
            "ioas.unmap.part-of-mapping-is-ENOENT",
            "Unmapping part of a mapping is ENOENT and leaves the mapping whole."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 8 * p)
            try ctx.mapFixed(ioas: ioas, iova: base, length: 2 * p)
            try ctx.expectErrno(.ENOENT, "unmap of the first page of a 2-page mapping") {
                try ctx.backend.unmap(ioas: ioas, iova: base, length: p)
            }
            try ctx.expectErrno(.ENOENT, "unmap of the second page of a 2-page mapping") {
                try ctx.backend.unmap(ioas: ioas, iova: base + p, length: p)
            }
            try ctx.expectEqual(try ctx.backend.unmap(ioas: ioas, iova: base, length: 2 * p), 2 * p, "bytes unmapped by the exact range")
        },

        // selftest iommufd_ioas.unmap_fully_contained_areas.
        ConformanceCase(
            "ioas.unmap.covering-range-removes-all",
            "A range fully covering several mappings unmaps them all and returns the total length; one that cuts a mapping is ENOENT."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 128 * p) + 4 * p
            for i: UInt64 in 0..<4 { try ctx.mapFixed(ioas: ioas, iova: base + i * 16 * p, length: 8 * p) }
            try ctx.expectErrno(.ENOENT, "unmap cutting the first mapping") {
                try ctx.backend.unmap(ioas: ioas, iova: base - 4 * p, length: 8 * p)
            }
            try ctx.expectErrno(.ENOENT, "unmap cutting the last mapping") {
                try ctx.backend.unmap(ioas: ioas, iova: base + 3 * 16 * p + 8 * p - 4 * p, length: 8 * p)
            }
            let unmapped = try ctx.backend.unmap(ioas: ioas, iova: base - 4 * p, length: 3 * 16 * p + 8 * p + 4 * p)
            try ctx.expectEqual(unmapped, 32 * p, "bytes unmapped by a range covering all four mappings")
            try ctx.expectEqual(try ctx.backend.unmap(ioas: ioas, iova: 0, length: .max), 0, "bytes left to unmap-all")
        },

        // iopt_unmap_all: "If the IOVAs are empty then unmap all succeeds".
        ConformanceCase(
            "ioas.unmap.all-on-empty-succeeds",
            "Unmapping [0, UINT64_MAX] of an empty IOAS succeeds and returns 0."
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectEqual(try ctx.backend.unmap(ioas: ioas, iova: 0, length: .max), 0, "bytes unmapped from an empty IOAS")
        },

        // iommufd_ioas_unmap: iova 0, length U64_MAX is unmap-all.
        ConformanceCase(
            "ioas.unmap.all-returns-total",
            "Unmapping [0, UINT64_MAX] removes every mapping and returns their total length."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 16 * p)
            try ctx.mapFixed(ioas: ioas, iova: base, length: p)
            try ctx.mapFixed(ioas: ioas, iova: base + 8 * p, length: 3 * p)
            try ctx.expectEqual(try ctx.backend.unmap(ioas: ioas, iova: 0, length: .max), 4 * p, "bytes unmapped by unmap-all")
            try ctx.expectErrno(.ENOENT, "unmap of a mapping unmap-all removed") { try ctx.backend.unmap(ioas: ioas, iova: base, length: p) }
        },

        // iopt_unmap_iova: !length.
        ConformanceCase(
            "ioas.unmap.zero-length-is-EINVAL",
            "Unmapping zero bytes is EINVAL."
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: ctx.pageSize)
            try ctx.mapFixed(ioas: ioas, iova: base, length: ctx.pageSize)
            try ctx.expectErrno(.EINVAL, "unmap of length 0") { try ctx.backend.unmap(ioas: ioas, iova: base, length: 0) }
        },
    ]

    static let allocation: [ConformanceCase] = [
        // selftest iommufd_ioas.area_auto_iova: "Kernel automatically aligns IOVAs properly".
        ConformanceCase(
            "ioas.map.auto-iova-aligned-to-length",
            "A kernel-chosen IOVA for an aligned source is aligned to the lowest set bit of the length."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            var iovas: [(UInt64, UInt64)] = []
            for i: UInt64 in 1...10 {
                let length = p * i
                let iova = try ctx.backend.map(ioas: ioas, source: ctx.source(), length: length, iova: 0, flags: .readWrite)
                try ctx.expectEqual(iova % lowestBit(length), 0, "IOVA 0x\(String(iova, radix: 16)) modulo the alignment of length \(length)")
                try ctx.expect(iova != 0, "the kernel never picks IOVA 0 (iopt_alloc_iova)")
                iovas.append((iova, length))
            }
            for (iova, length) in iovas {
                try ctx.expectEqual(try ctx.backend.unmap(ioas: ioas, iova: iova, length: length), length, "unmap of kernel-chosen IOVA")
            }
        },

        // iopt_alloc_iova: page_offset = addr % PAGE_SIZE is kept in the IOVA.
        ConformanceCase(
            "ioas.map.auto-iova-keeps-page-offset",
            "A kernel-chosen IOVA keeps the source's offset within its page."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let iova = try ctx.backend.map(ioas: ioas, source: ctx.source(offset: p / 2), length: p, iova: 0, flags: .readWrite)
            try ctx.expectEqual(iova % p, p / 2, "offset in page of the IOVA chosen for a source at page offset \(p / 2)")
        },

        // selftest iommufd_ioas.area_auto_iova: "Avoids a reserved region".
        ConformanceCase(
            "ioas.map.auto-iova-avoids-reserved",
            "Kernel-chosen IOVAs never intersect a reserved range."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let reserved = IOVARange(start: p * 4, length: p * 100)
            try ctx.addReserved(ioas: ioas, reserved)
            for i: UInt64 in 1...10 {
                let length = p * i
                let iova = try ctx.backend.map(ioas: ioas, source: ctx.source(), length: length, iova: 0, flags: .readWrite)
                try ctx.expectEqual(iova % lowestBit(length), 0, "alignment of IOVA 0x\(String(iova, radix: 16)) for length \(length)")
                try ctx.expect(
                    iova + length - 1 < reserved.start || iova > reserved.last,
                    "IOVA 0x\(String(iova, radix: 16))+\(length) intersects reserved \(reserved)")
            }
        },

        // selftest iommufd_ioas.area_auto_iova: "Allocate from an allowed region".
        ConformanceCase(
            "ioas.map.auto-iova-within-allowed",
            "With IOMMU_IOAS_ALLOW_IOVAS set, kernel-chosen IOVAs lie inside the allowed ranges."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 1024 * p)
            let allowed = IOVARange(start: base + p, last: base + 600 * p - 1)
            try ctx.backend.allowIOVAs(ioas: ioas, ranges: [allowed])
            for i: UInt64 in 1...10 {
                let length = p * i
                let iova = try ctx.backend.map(ioas: ioas, source: ctx.source(), length: length, iova: 0, flags: .readWrite)
                try ctx.expectEqual(iova % lowestBit(length), 0, "alignment of IOVA 0x\(String(iova, radix: 16)) for length \(length)")
                try ctx.expect(
                    iova >= allowed.start && iova + length - 1 <= allowed.last,
                    "IOVA 0x\(String(iova, radix: 16))+\(length) is outside the allowed range \(allowed)")
            }
        },

        // selftest iommufd_ioas.area_allowed: "Allowed intersects a reserved"; iopt_set_allow_iova.
        ConformanceCase(
            "ioas.allow-iovas.reserved-overlap-is-EADDRINUSE",
            "Allowing a range that intersects a reserved range is EADDRINUSE."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 1024 * p)
            try ctx.addReserved(ioas: ioas, IOVARange(start: base + p, length: p))
            try ctx.expectErrno(.EADDRINUSE, "allow [base, base + 600 pages] over a reserved page") {
                try ctx.backend.allowIOVAs(ioas: ioas, ranges: [IOVARange(start: base, last: base + 600 * p)])
            }
        },

        // selftest iommufd_ioas.area_allowed: "Reserved intersects an allowed"; iopt_reserve_iova.
        ConformanceCase(
            "ioas.reserve.allowed-overlap-is-EADDRINUSE",
            "Reserving a range that intersects an allowed range is EADDRINUSE."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 1024 * p)
            try ctx.backend.allowIOVAs(ioas: ioas, ranges: [IOVARange(start: base, last: base + 600 * p)])
            try ctx.expectErrno(.EADDRINUSE, "reserve a page inside the allowed range") {
                try ctx.backend.addReservedIOVA(ioas: ioas, range: IOVARange(start: base + p, length: p))
            }
            try ctx.backend.allowIOVAs(ioas: ioas, ranges: [])
            try ctx.expectSuccess("reserve once no range is allowed") { try ctx.addReserved(ioas: ioas, IOVARange(start: base + p, length: p)) }
        },

        // iommufd_ioas_load_iovas: start >= last, or overlapping ranges.
        ConformanceCase(
            "ioas.allow-iovas.invalid-ranges-are-EINVAL",
            "An allowed range with start >= last, or two overlapping allowed ranges, is EINVAL."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 64 * p)
            try ctx.expectErrno(.EINVAL, "allowed range with start == last") {
                try ctx.backend.allowIOVAs(ioas: ioas, ranges: [IOVARange(start: base, last: base)])
            }
            try ctx.expectErrno(.EINVAL, "two overlapping allowed ranges") {
                try ctx.backend.allowIOVAs(ioas: ioas, ranges: [
                    IOVARange(start: base, last: base + 8 * p - 1), IOVARange(start: base + 4 * p, last: base + 16 * p - 1),
                ])
            }
        },

        // selftest iommufd_ioas.reserved_overflow; iopt_alloc_iova returns -ENOSPC.
        ConformanceCase(
            "ioas.map.auto-iova-no-space-is-ENOSPC",
            "When no hole fits, a kernel-chosen map is ENOSPC (and the search does not overflow)."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let reservedLength: UInt64 = p == 4096 ? 0xffff_ffff_ffff_8001 : 0xffff_ffff_ffff_ffff - 2048 * 16
            let mapLength: UInt64 = p == 4096 ? 0x5000 : 2048 * 10
            try ctx.addReserved(ioas: ioas, IOVARange(start: 6, length: reservedLength))
            try ctx.expectErrno(.ENOSPC, "kernel-chosen map of \(mapLength) bytes") {
                try ctx.backend.map(ioas: ioas, source: ctx.source(), length: mapLength, iova: 0, flags: .readWrite)
            }
        },
    ]

    static let ranges: [ConformanceCase] = [
        // selftest iommufd_ioas.iova_ranges (no_domain variant).
        ConformanceCase(
            "ioas.iova-ranges.fresh-ioas-is-everything",
            "A fresh IOAS without domains reports one range [0, UINT64_MAX] and alignment 1."
        ) { ctx in
            let ranges = try ctx.backend.iovaRanges(ioas: try ctx.backend.allocIOAS(), capacity: 8)
            try ctx.expectEqual(ranges.ranges, [IOVARange(start: 0, last: .max)], "ranges of a fresh IOAS")
            try ctx.expectEqual(ranges.alignment, 1, "alignment of a fresh IOAS")
        },

        // selftest iommufd_ioas.iova_ranges: "Buffer too small"; iommufd_ioas_iova_ranges.
        ConformanceCase(
            "ioas.iova-ranges.short-buffer-is-EMSGSIZE",
            "IOMMU_IOAS_IOVA_RANGES with room for fewer ranges than exist is EMSGSIZE and reports how many there are."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let error = try ctx.expectErrno(.EMSGSIZE, "ranges with capacity 0") { try ctx.backend.iovaRanges(ioas: ioas, capacity: 0) }
            try ctx.expectEqual(error.requiredCount, 1, "required count reported with EMSGSIZE")
            try ctx.addReserved(ioas: ioas, IOVARange(start: p, length: p))
            let second = try ctx.expectErrno(.EMSGSIZE, "ranges with capacity 1 after a reservation split the space") {
                try ctx.backend.iovaRanges(ioas: ioas, capacity: 1)
            }
            try ctx.expectEqual(second.requiredCount, 2, "required count after the split")
        },

        // selftest iommufd_ioas.iova_ranges: "2 ranges".
        ConformanceCase(
            "ioas.iova-ranges.reserved-splits-range",
            "A reserved range is cut out of the reported IOVA ranges."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            try ctx.addReserved(ioas: ioas, IOVARange(start: p, length: p))
            try ctx.expectEqual(
                try ctx.backend.iovaRanges(ioas: ioas, capacity: 8).ranges,
                [IOVARange(start: 0, last: p - 1), IOVARange(start: 2 * p, last: .max)], "ranges after reserving page 1")
        },

        // iopt_table_add_domain reserves outside the aperture; iopt_table_remove_domain undoes it.
        ConformanceCase(
            "ioas.iova-ranges.follow-domains",
            "Attaching a device narrows the ranges to what its domain can translate and raises the alignment; detaching the last device restores them.",
            requires: [.device]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            let device = try ctx.device(.primary)
            try ctx.backend.attach(deviceID: device.id, to: ioas)
            let attached = try ctx.backend.iovaRanges(ioas: ioas, capacity: 64)
            try ctx.expect(attached.alignment > 1, "alignment with a domain is \(attached.alignment), expected > 1")
            try ctx.expect(
                attached.alignment & (attached.alignment - 1) == 0, "alignment \(attached.alignment) is not a power of two")
            try ctx.expect(
                attached.ranges != [IOVARange(start: 0, last: .max)], "ranges with a domain still cover all of [0, UINT64_MAX]")
            try ctx.backend.detach(deviceID: device.id)
            let detached = try ctx.backend.iovaRanges(ioas: ioas, capacity: 64)
            try ctx.expectEqual(detached.ranges, [IOVARange(start: 0, last: .max)], "ranges after the last detach")
            try ctx.expectEqual(detached.alignment, 1, "alignment after the last detach")
        },

        // iopt_table_add_domain / iopt_table_enforce_dev_resv_regions: iopt_reserve_iova
        // finds an area in the way.
        ConformanceCase(
            "ioas.attach.mapping-outside-domain-is-EADDRINUSE",
            "Attaching a device to an IOAS that maps an IOVA its domain cannot use is EADDRINUSE.",
            requires: [.device]
        ) { ctx in
            let p = ctx.pageSize
            let device = try ctx.device(.primary)
            let probe = try ctx.backend.allocIOAS()
            try ctx.backend.attach(deviceID: device.id, to: probe)
            let usable = try ctx.backend.iovaRanges(ioas: probe, capacity: 64).ranges
            try ctx.backend.detach(deviceID: device.id)
            // The first page-aligned IOVA page the domain cannot use.
            var forbidden: UInt64?
            var next: UInt64? = 0
            for range in usable {
                guard let gapStart = next else { break }
                let candidate = (gapStart + p - 1) & ~(p - 1)
                if range.start > gapStart, candidate < range.start, range.start - candidate >= p {
                    forbidden = candidate
                    break
                }
                next = range.last == .max ? nil : range.last + 1
            }
            if forbidden == nil, let gapStart = next, gapStart < UInt64.max - 2 * p {
                forbidden = (gapStart + p - 1) & ~(p - 1)
            }
            guard let forbidden else { throw ConformanceSkip("the device's domain can use every IOVA") }
            let ioas = try ctx.backend.allocIOAS()
            try ctx.mapFixed(ioas: ioas, iova: forbidden, length: p)
            try ctx.expectErrno(.EADDRINUSE, "attach with a mapping at unusable IOVA 0x\(String(forbidden, radix: 16))") {
                try ctx.backend.attach(deviceID: device.id, to: ioas)
            }
        },
    ]

    static let lifecycle: [ConformanceCase] = [
        // selftest iommufd_ioas.ioas_destroy: "IOAS cannot be freed while a device has a HWPT using it".
        ConformanceCase(
            "ioas.destroy.in-use-is-EBUSY",
            "Destroying an IOAS that an HWPT (or attached device) uses is EBUSY.",
            requires: [.device]
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.backend.attach(deviceID: try ctx.device(.primary).id, to: ioas)
            try ctx.expectErrno(.EBUSY, "destroy of IOAS \(ioas) with a device attached") { try ctx.backend.destroy(ioas) }
        },

        // selftest iommufd_ioas.ioas_area_destroy (no_domain variant).
        ConformanceCase(
            "ioas.destroy.with-mappings-succeeds",
            "An IOAS with mappings but no users can be destroyed; its ID is then gone."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            try ctx.mapFixed(ioas: ioas, iova: try ctx.baseIOVA(ioas: ioas, length: p), length: p)
            try ctx.expectSuccess("destroy of an IOAS with one mapping") { try ctx.backend.destroy(ioas) }
            try ctx.expectErrno(.ENOENT, "unmap-all on the destroyed IOAS") { try ctx.backend.unmap(ioas: ioas, iova: 0, length: .max) }
        },

        // selftest iommufd_ioas.copy_area; iopt_get_pages.
        ConformanceCase(
            "ioas.copy.maps-source-pages",
            "IOMMU_IOAS_COPY maps the pages behind a source range into another IOAS."
        ) { ctx in
            let p = ctx.pageSize
            let src = try ctx.backend.allocIOAS()
            let dst = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: src, length: 8 * p)
            try ctx.mapFixed(ioas: src, iova: base, length: 2 * p)
            let copied = try ctx.backend.copy(dst: dst, src: src, srcIOVA: base, length: 2 * p, dstIOVA: base + 4 * p, flags: [.fixedIOVA, .readWrite])
            try ctx.expectEqual(copied, base + 4 * p, "destination IOVA of a fixed copy")
            try ctx.expectEqual(try ctx.backend.unmap(ioas: dst, iova: base + 4 * p, length: 2 * p), 2 * p, "bytes unmapped from the copy")
        },

        // iopt_insert_area: IOMMU_WRITE on pages that were mapped without write access.
        ConformanceCase(
            "ioas.copy.writeable-from-read-only-is-EPERM",
            "Copying a read-only mapping into a writeable one is EPERM; a read-only copy works."
        ) { ctx in
            let p = ctx.pageSize
            let src = try ctx.backend.allocIOAS()
            let dst = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: src, length: 8 * p)
            try ctx.mapFixed(ioas: src, iova: base, length: p, flags: .readable)
            try ctx.expectErrno(.EPERM, "writeable copy of a read-only mapping") {
                try ctx.backend.copy(dst: dst, src: src, srcIOVA: base, length: p, dstIOVA: base, flags: [.fixedIOVA, .readWrite])
            }
            try ctx.expectSuccess("read-only copy of a read-only mapping") {
                try ctx.backend.copy(dst: dst, src: src, srcIOVA: base, length: p, dstIOVA: base, flags: [.fixedIOVA, .readable])
            }
        },

        // iopt_get_pages: the source range must be fully mapped.
        ConformanceCase(
            "ioas.copy.source-hole-is-ENOENT",
            "IOMMU_IOAS_COPY of a source range that is not fully mapped is ENOENT."
        ) { ctx in
            let p = ctx.pageSize
            let src = try ctx.backend.allocIOAS()
            let dst = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: src, length: 8 * p)
            try ctx.mapFixed(ioas: src, iova: base, length: p)
            try ctx.expectErrno(.ENOENT, "copy of 2 pages where only 1 is mapped") {
                try ctx.backend.copy(dst: dst, src: src, srcIOVA: base, length: 2 * p, dstIOVA: 0, flags: .readWrite)
            }
            try ctx.expectErrno(.ENOENT, "copy of an unmapped range") {
                try ctx.backend.copy(dst: dst, src: src, srcIOVA: base + 4 * p, length: p, dstIOVA: 0, flags: .readWrite)
            }
        },
    ]
}
