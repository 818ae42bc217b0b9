import IommufdCore

/// IOMMU_OPTION (ioas.c: iommufd_option_rlimit_mode, iommufd_ioas_option_huge_pages).
enum OptionCases {
    static let all: [ConformanceCase] = [
        // selftest iommufd_ioas.ioas_option_huge_pages.
        ConformanceCase(
            "option.huge-pages.get-set",
            "HUGE_PAGES is 1 on a new IOAS, can be set to 0 and back to 1, and any value above 1 is EINVAL."
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectEqual(try ctx.backend.getOption(.hugePages, objectID: ioas), 1, "HUGE_PAGES of a new IOAS")
            try ctx.backend.setOption(.hugePages, objectID: ioas, value: 0)
            try ctx.expectEqual(try ctx.backend.getOption(.hugePages, objectID: ioas), 0, "HUGE_PAGES after setting 0")
            try ctx.expectErrno(.EINVAL, "set HUGE_PAGES to 2") { try ctx.backend.setOption(.hugePages, objectID: ioas, value: 2) }
            try ctx.backend.setOption(.hugePages, objectID: ioas, value: 1)
            try ctx.expectEqual(try ctx.backend.getOption(.hugePages, objectID: ioas), 1, "HUGE_PAGES after setting 1")
        },

        // selftest iommufd.global_options: HUGE_PAGES with object_id 0.
        ConformanceCase(
            "option.huge-pages.object-0-is-ENOENT",
            "HUGE_PAGES is per IOAS: object 0 (or any non-IOAS ID) is ENOENT."
        ) { ctx in
            try ctx.expectErrno(.ENOENT, "get HUGE_PAGES of object 0") { try ctx.backend.getOption(.hugePages, objectID: 0) }
            try ctx.expectErrno(.ENOENT, "set HUGE_PAGES of object 0") { try ctx.backend.setOption(.hugePages, objectID: 0, value: 1) }
        },

        // iopt_disable_large_pages → iopt_calculate_iova_alignment: PAGE_SIZE.
        ConformanceCase(
            "option.huge-pages.off-aligns-to-page-size",
            "With HUGE_PAGES 0 the IOAS alignment becomes the CPU page size."
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.backend.setOption(.hugePages, objectID: ioas, value: 0)
            try ctx.expectEqual(try ctx.backend.iovaRanges(ioas: ioas, capacity: 8).alignment, ctx.pageSize, "alignment with HUGE_PAGES 0")
            try ctx.backend.setOption(.hugePages, objectID: ioas, value: 1)
            try ctx.expectEqual(try ctx.backend.iovaRanges(ioas: ioas, capacity: 8).alignment, 1, "alignment with HUGE_PAGES back to 1")
        },

        // iopt_disable_large_pages: "Won't do it if domains already have pages mapped in them".
        ConformanceCase(
            "option.huge-pages.off-with-mapped-domain-is-EINVAL",
            "Turning HUGE_PAGES off is EINVAL once an IOAS has both a domain and mappings.",
            requires: [.device]
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            try ctx.backend.attach(deviceID: try ctx.device(.primary).id, to: ioas)
            try ctx.mapFixed(ioas: ioas, iova: try ctx.baseIOVA(ioas: ioas, length: p), length: p)
            try ctx.expectErrno(.EINVAL, "set HUGE_PAGES 0 with a mapped domain") {
                try ctx.backend.setOption(.hugePages, objectID: ioas, value: 0)
            }
            try ctx.expectEqual(try ctx.backend.getOption(.hugePages, objectID: ioas), 1, "HUGE_PAGES after the refused change")
        },

        // selftest iommufd_ioas.ioas_align_change; iopt_check_iova_alignment / iopt_insert_area.
        ConformanceCase(
            "option.huge-pages.off-with-misaligned-mapping-is-EADDRINUSE",
            "Turning HUGE_PAGES off is EADDRINUSE while a mapping is not page aligned; once off, such a mapping is EINVAL."
        ) { ctx in
            let p = ctx.pageSize
            let ioas = try ctx.backend.allocIOAS()
            let base = try ctx.baseIOVA(ioas: ioas, length: 4 * p)
            try ctx.mapFixed(ioas: ioas, iova: base, length: p)
            try ctx.expectSuccess("set HUGE_PAGES 0 with an aligned mapping") { try ctx.backend.setOption(.hugePages, objectID: ioas, value: 0) }
            try ctx.expectErrno(.EINVAL, "map from half a page into the source with HUGE_PAGES 0") {
                try ctx.mapFixed(ioas: ioas, iova: base + p, length: p, offset: p / 2)
            }
            try ctx.backend.setOption(.hugePages, objectID: ioas, value: 1)
            try ctx.expectSuccess("the same map with HUGE_PAGES 1") { try ctx.mapFixed(ioas: ioas, iova: base + p, length: p, offset: p / 2) }
            try ctx.expectErrno(.EADDRINUSE, "set HUGE_PAGES 0 with a mapping at a sub-page source offset") {
                try ctx.backend.setOption(.hugePages, objectID: ioas, value: 0)
            }
        },

        // selftest iommufd.global_options; iommufd_option_rlimit_mode.
        ConformanceCase(
            "option.rlimit-mode.get-set",
            "RLIMIT_MODE (object 0) reads 0 on a new iommufd, takes 0 or 1, and any other value is EINVAL."
        ) { ctx in
            try ctx.expectEqual(try ctx.backend.getOption(.rlimitMode, objectID: 0), 0, "RLIMIT_MODE of a new iommufd")
            try ctx.backend.setOption(.rlimitMode, objectID: 0, value: 1)
            try ctx.expectErrno(.EINVAL, "set RLIMIT_MODE to 2") { try ctx.backend.setOption(.rlimitMode, objectID: 0, value: 2) }
            try ctx.expectEqual(try ctx.backend.getOption(.rlimitMode, objectID: 0), 1, "RLIMIT_MODE after setting 1")
            try ctx.backend.setOption(.rlimitMode, objectID: 0, value: 0)
            try ctx.expectEqual(try ctx.backend.getOption(.rlimitMode, objectID: 0), 0, "RLIMIT_MODE after setting 0")
        },

        // iommufd_option_rlimit_mode: !xa_empty(&ictx->objects).
        ConformanceCase(
            "option.rlimit-mode.with-objects-is-EBUSY",
            "RLIMIT_MODE can only be set while the iommufd holds no objects; otherwise EBUSY."
        ) { ctx in
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectErrno(.EBUSY, "set RLIMIT_MODE with IOAS \(ioas) alive") {
                try ctx.backend.setOption(.rlimitMode, objectID: 0, value: 1)
            }
            try ctx.backend.destroy(ioas)
            try ctx.expectSuccess("set RLIMIT_MODE once the IOAS is gone") { try ctx.backend.setOption(.rlimitMode, objectID: 0, value: 1) }
        },

        // iommufd_option_rlimit_mode: cmd->object_id != 0.
        ConformanceCase(
            "option.rlimit-mode.object-id-is-EOPNOTSUPP",
            "RLIMIT_MODE is global: a non-zero object ID is EOPNOTSUPP."
        ) { ctx in
            try ctx.expectErrno(.EOPNOTSUPP, "get RLIMIT_MODE of object 1") { try ctx.backend.getOption(.rlimitMode, objectID: 1) }
            try ctx.expectErrno(.EOPNOTSUPP, "set RLIMIT_MODE of object 1") { try ctx.backend.setOption(.rlimitMode, objectID: 1, value: 0) }
        },
    ]
}
