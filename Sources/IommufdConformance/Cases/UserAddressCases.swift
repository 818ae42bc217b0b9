import IommufdCore

/// `IOMMU_IOAS_MAP`: mappings of the caller's own memory by user virtual address (ioas.c
/// `iommufd_ioas_map`, io_pagetable.c `iopt_map_user_pages`, pages.c `iopt_alloc_user_pages`
/// and `pfn_reader_user_pin`). The other IOAS cases map by file wherever the backend has
/// `IOMMU_IOAS_MAP_FILE`; these keep the user-address path covered on every backend.
enum UserAddressCases {
    static let all: [ConformanceCase] = [
        // selftest iommufd_ioas.area; iommufd_ioas_map → iopt_map_user_pages.
        ConformanceCase(
            "ioas.map-user.fixed-iova-and-unmap",
            "IOMMU_IOAS_MAP of the caller's memory at a fixed IOVA maps exactly there; unmapping it returns its length, and unmapping it again is ENOENT."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 8 * p)
            let iova = try ctx.expectSuccess("IOMMU_IOAS_MAP of 2 pages at a fixed IOVA") {
                try ctx.backend.map(ioas: ioas, source: ctx.userSource(), length: 2 * p, iova: base, flags: [.fixedIOVA, .readWrite])
            }
            try ctx.expectEqual(iova, base, "IOVA returned for a fixed map")
            try ctx.expectErrno(.EEXIST, "a second fixed map of the same IOVA") {
                try ctx.backend.map(ioas: ioas, source: ctx.userSource(offset: 2 * p), length: p, iova: base + p, flags: [.fixedIOVA, .readWrite])
            }
            try ctx.expectEqual(try ctx.backend.unmap(ioas: ioas, iova: base, length: 2 * p), 2 * p, "bytes unmapped")
            try ctx.expectErrno(.ENOENT, "unmap of the mapping already unmapped") { try ctx.backend.unmap(ioas: ioas, iova: base, length: 2 * p) }
        },

        // selftest iommufd_ioas.area_auto_iova; iopt_alloc_area_pages → iopt_alloc_iova with
        // start = uptr: the alignment comes from the length and the address.
        ConformanceCase(
            "ioas.map-user.auto-iova",
            "IOMMU_IOAS_MAP without FIXED_IOVA picks a non-zero IOVA aligned to the length's lowest set bit, keeps the address's offset in its page, never reuses a mapped IOVA, and the IOVA it returns unmaps."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            var mapped: [IOVARange] = []
            for i: UInt64 in 1...6 {
                let length = p * i
                let iova = try ctx.backend.map(ioas: ioas, source: ctx.userSource(), length: length, iova: 0, flags: .readWrite)
                try ctx.expect(iova != 0, "the kernel never picks IOVA 0 (iopt_alloc_iova)")
                try ctx.expectEqual(iova % IOASCases.lowestBit(length), 0, "IOVA 0x\(String(iova, radix: 16)) modulo the alignment of length \(length)")
                let range = IOVARange(start: iova, length: length)
                if let other = mapped.first(where: { $0.start <= range.last && range.start <= $0.last }) {
                    throw ctx.fail("kernel-chosen \(range) overlaps the earlier mapping \(other)")
                }
                mapped.append(range)
            }
            let offsetIOVA = try ctx.backend.map(ioas: ioas, source: ctx.userSource(offset: p / 2), length: p, iova: 0, flags: .readWrite)
            try ctx.expectEqual(offsetIOVA % p, p / 2, "offset in page of the IOVA chosen for an address at page offset \(p / 2)")
            for range in mapped {
                try ctx.expectEqual(try ctx.backend.unmap(ioas: ioas, iova: range.start, length: range.last - range.start + 1), range.last - range.start + 1, "unmap of kernel-chosen \(range)")
            }
        },

        // selftest iommufd_ioas.area: "Over map fails"; iopt_check_iova.
        ConformanceCase(
            "ioas.map-user.fixed-overlap-is-EEXIST",
            "A fixed-IOVA IOMMU_IOAS_MAP that overlaps an existing mapping in any way is EEXIST; one next to it succeeds."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 32 * p)
            let user = ctx.userSource()
            _ = try ctx.backend.map(ioas: ioas, source: user, length: 2 * p, iova: base + 16 * p, flags: [.fixedIOVA, .readWrite])
            for (offset, pages) in [(16, 2), (16, 1), (17, 1), (15, 2), (15, 3), (14, 8)] as [(UInt64, UInt64)] {
                try ctx.expectErrno(.EEXIST, "map of \(pages) pages at page \(offset) over pages 16-17") {
                    try ctx.backend.map(ioas: ioas, source: user, length: pages * p, iova: base + offset * p, flags: [.fixedIOVA, .readWrite])
                }
            }
            try ctx.expectSuccess("map of page 18, right after the mapping") {
                try ctx.backend.map(ioas: ioas, source: user, length: p, iova: base + 18 * p, flags: [.fixedIOVA, .readWrite])
            }
        },

        // iopt_check_iova (IOVA), iopt_alloc_area_pages (length), iopt_insert_area (the
        // address's page offset) and iopt_alloc_iova (alignment below iova_alignment).
        ConformanceCase(
            "ioas.map-user.unaligned-is-EINVAL",
            "With a domain attached, IOMMU_IOAS_MAP with an IOVA, a length or a user address not aligned to the IOAS alignment is EINVAL, at a fixed IOVA and at a kernel-chosen one.",
            requires: [.device]
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            try ctx.backend.attach(deviceID: try ctx.device(.primary).id, to: ioas)
            let alignment = try ctx.backend.iovaRanges(ioas: ioas, capacity: 64).alignment
            try ctx.expect(alignment > 1, "IOAS alignment with a domain attached is \(alignment), expected > 1")
            let half = alignment / 2
            let base = try ctx.baseIOVA(ioas: ioas, length: 8 * p)
            let fixed: MapFlags = [.fixedIOVA, .readWrite]
            try ctx.expectErrno(.EINVAL, "fixed map at IOVA base + \(half)") {
                try ctx.backend.map(ioas: ioas, source: ctx.userSource(), length: p, iova: base + half, flags: fixed)
            }
            try ctx.expectErrno(.EINVAL, "fixed map of length \(p + half)") {
                try ctx.backend.map(ioas: ioas, source: ctx.userSource(), length: p + half, iova: base, flags: fixed)
            }
            try ctx.expectErrno(.EINVAL, "fixed map of an address at page offset \(half)") {
                try ctx.backend.map(ioas: ioas, source: ctx.userSource(offset: half), length: p, iova: base, flags: fixed)
            }
            try ctx.expectErrno(.EINVAL, "kernel-chosen map of an address at page offset \(half)") {
                try ctx.backend.map(ioas: ioas, source: ctx.userSource(offset: half), length: p, iova: 0, flags: .readWrite)
            }
            try ctx.expectSuccess("the same fixed map with everything aligned") {
                try ctx.backend.map(ioas: ioas, source: ctx.userSource(offset: p), length: p, iova: base, flags: fixed)
            }
        },

        // iopt_map_pages: without a domain (and no access) nothing is pinned at map time.
        ConformanceCase(
            "ioas.map-user.no-domain-pins-nothing",
            "Without a domain, IOMMU_IOAS_MAP does not touch the memory: an address range no page can be pinned from maps, and unmaps."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 8 * p)
            let nowhere = try ctx.inaccessibleAddress(length: 4 * p)
            try ctx.expectSuccess("fixed map of 4 PROT_NONE pages into an IOAS without a domain") {
                try ctx.backend.map(ioas: ioas, source: .userAddress(nowhere), length: 4 * p, iova: base, flags: [.fixedIOVA, .readWrite])
            }
            try ctx.expectEqual(try ctx.backend.unmap(ioas: ioas, iova: base, length: 4 * p), 4 * p, "bytes unmapped")
        },

        // iopt_map_pages → iopt_fill_domains_pages → pfn_reader_user_pin: pin_user_pages
        // refuses pages with no access, and write access to read-only pages.
        ConformanceCase(
            "ioas.map-user.unpinnable-with-domain-is-EFAULT",
            "With a domain attached, IOMMU_IOAS_MAP of memory that cannot be pinned (no access, or read-only mapped writeable) is EFAULT and leaves the IOVA free; read-only memory maps read-only.",
            requires: [.device]
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            try ctx.backend.attach(deviceID: try ctx.device(.primary).id, to: ioas)
            let base = try ctx.baseIOVA(ioas: ioas, length: 8 * p)
            let fixed: MapFlags = [.fixedIOVA, .readWrite]
            let nowhere = try ctx.inaccessibleAddress(length: 2 * p)
            try ctx.expectErrno(.EFAULT, "fixed map of 2 PROT_NONE pages") {
                try ctx.backend.map(ioas: ioas, source: .userAddress(nowhere), length: 2 * p, iova: base, flags: fixed)
            }
            try ctx.expectErrno(.EFAULT, "kernel-chosen map of 2 PROT_NONE pages") {
                try ctx.backend.map(ioas: ioas, source: .userAddress(nowhere), length: 2 * p, iova: 0, flags: .readWrite)
            }
            let readOnly = try ctx.readOnlyAddress(length: 2 * p)
            try ctx.expectErrno(.EFAULT, "writeable map of 2 read-only pages") {
                try ctx.backend.map(ioas: ioas, source: .userAddress(readOnly), length: 2 * p, iova: base, flags: fixed)
            }
            try ctx.expectSuccess("read-only map of the read-only pages at the IOVA the failed maps left free") {
                try ctx.backend.map(ioas: ioas, source: .userAddress(readOnly), length: 2 * p, iova: base, flags: [.fixedIOVA, .readable])
            }
            try ctx.expectEqual(try ctx.backend.unmap(ioas: ioas, iova: 0, length: .max), 2 * p, "bytes unmapped by unmap-all (only the read-only map)")
        },

        // iopt_table_add_domain → iopt_fill_domain: the first domain pins every mapping.
        ConformanceCase(
            "ioas.attach.unpinnable-user-mapping-is-EFAULT",
            "Attaching a device to an IOAS that maps memory which cannot be pinned is EFAULT; once that mapping is gone the attach succeeds.",
            requires: [.device]
        ) { ctx in
            let p = ctx.pageSize
            let device = try ctx.device(.primary)
            // An IOVA the device's domain can use (else the attach is EADDRINUSE first).
            let probe = try ctx.backend.allocIOAS()
            try ctx.backend.attach(deviceID: device.id, to: probe)
            let base = try ctx.baseIOVA(ioas: probe, length: 8 * p)
            try ctx.backend.detach(deviceID: device.id)
            let ioas = try ctx.backend.allocIOAS()
            let nowhere = try ctx.inaccessibleAddress(length: p)
            _ = try ctx.backend.map(ioas: ioas, source: ctx.userSource(), length: p, iova: base, flags: [.fixedIOVA, .readWrite])
            _ = try ctx.backend.map(ioas: ioas, source: .userAddress(nowhere), length: p, iova: base + 4 * p, flags: [.fixedIOVA, .readWrite])
            try ctx.expectErrno(.EFAULT, "attach to an IOAS mapping a PROT_NONE page") {
                try ctx.backend.attach(deviceID: device.id, to: ioas)
            }
            try ctx.expectEqual(try ctx.backend.unmap(ioas: ioas, iova: base + 4 * p, length: p), p, "bytes unmapped (the PROT_NONE page)")
            try ctx.expectSuccess("attach once only pinnable memory is mapped") { try ctx.backend.attach(deviceID: device.id, to: ioas) }
        },

        // iommufd_ioas_copy → iopt_map_pages on the destination: its domain pins the pages
        // the source (without a domain) never pinned.
        ConformanceCase(
            "ioas.copy.unpinnable-into-domain-is-EFAULT",
            "IOMMU_IOAS_COPY of a user mapping that cannot be pinned into an IOAS with a domain is EFAULT and leaves the destination IOVA free; into one without a domain it succeeds.",
            requires: [.device]
        ) { ctx in
            let p = ctx.pageSize
            let src = try ctx.backend.allocIOAS()
            let dst = try ctx.backend.allocIOAS()
            try ctx.backend.attach(deviceID: try ctx.device(.primary).id, to: dst)
            let base = try ctx.baseIOVA(ioas: dst, length: 8 * p)
            let nowhere = try ctx.inaccessibleAddress(length: p)
            _ = try ctx.backend.map(ioas: src, source: .userAddress(nowhere), length: p, iova: base, flags: [.fixedIOVA, .readWrite])
            try ctx.expectErrno(.EFAULT, "copy of the PROT_NONE page into the IOAS with a domain") {
                try ctx.backend.copy(dst: dst, src: src, srcIOVA: base, length: p, dstIOVA: base, flags: [.fixedIOVA, .readWrite])
            }
            try ctx.expectErrno(.ENOENT, "unmap at the destination IOVA of the failed copy") { try ctx.backend.unmap(ioas: dst, iova: base, length: p) }
            let other = try ctx.backend.allocIOAS()
            try ctx.expectSuccess("copy of the PROT_NONE page into an IOAS without a domain") {
                try ctx.backend.copy(dst: other, src: src, srcIOVA: base, length: p, dstIOVA: base, flags: [.fixedIOVA, .readWrite])
            }
        },
    ]
}
