import IommufdCore

/// HW queues of a vIOMMU (viommu.c `iommufd_hw_queue_alloc_ioctl`, `iommufd_hw_queue_alloc_phys`;
/// selftest.c `mock_hw_queue_init_phys`; selftest `iommufd_viommu.hw_queue`). Branch `hwqueue`.
/// Every case runs on a selftest mock vIOMMU over a nest parent (the kernel's mock driver is the
/// only one the test VM has with HW queues).
enum HWQueueCases {
    static let selftest = HWQueueType.selftest

    /// The backend's HW queues, or a skip where it has none (a kernel before 6.17).
    static func backend(_ ctx: ConformanceContext) throws -> any HWQueueIommuBackend {
        guard ctx.backend.features.contains(.hwQueue), let b = ctx.backend.hwQueues else {
            throw ConformanceSkip("this backend has no IOMMU_HW_QUEUE_ALLOC")
        }
        return b
    }

    /// A mock vIOMMU, its IOAS and a usable IOVA of two pages in it (nothing mapped yet).
    static func setUp(_ ctx: ConformanceContext) throws -> (hw: any HWQueueIommuBackend, ioas: ObjectID, viommu: ObjectID, iova: UInt64) {
        let hw = try backend(ctx)
        let (ioas, _, viommu) = try VIOMMUCases.setUp(ctx)
        let iova = try ctx.baseIOVA(ioas: ioas, length: 2 * ctx.pageSize)
        return (hw, ioas, viommu, iova)
    }

    /// Maps one page at `iova` and the next page of memory at `iova + PAGE_SIZE`, as two
    /// mappings (the selftest maps `buffer` and `buffer + PAGE_SIZE` separately).
    static func mapTwoPages(_ ctx: ConformanceContext, _ ioas: ObjectID, _ iova: UInt64) throws {
        try ctx.mapFixed(ioas: ioas, iova: iova, length: ctx.pageSize)
        try ctx.mapFixed(ioas: ioas, iova: iova + ctx.pageSize, length: ctx.pageSize, offset: ctx.pageSize)
    }

    static let all: [ConformanceCase] = [
        // iommufd_hw_queue_alloc_ioctl: the checks before the vIOMMU lookup, then the vIOMMU,
        // the driver's get_hw_queue_size, and the pin (iommufd_access_pin_pages: ENOENT).
        ConformanceCase(
            "hwqueue.alloc.refusals-before-the-pin-in-kernel-order",
            "IOMMU_HW_QUEUE_ALLOC refuses, in this order: nonzero flags or type DEFAULT (EOPNOTSUPP), length 0 (EINVAL), base+length overflowing (EOVERFLOW), an ID that is not a vIOMMU (ENOENT), a type the vIOMMU's driver has no queues of (EOPNOTSUPP), a range not mapped in the vIOMMU's IOAS (ENOENT, before any index check).",
            requires: [.nesting]
        ) { ctx in
            let (hw, ioas, viommu, iova) = try setUp(ctx)
            let page = ctx.pageSize
            try ctx.expectErrno(.EOPNOTSUPP, "flags 1, length 0, no vIOMMU") {
                try hw.allocHWQueue(viommu: 0, type: selftest, index: 0, baseAddress: iova, length: 0, flags: 1)
            }
            try ctx.expectErrno(.EOPNOTSUPP, "type DEFAULT, length 0, no vIOMMU") {
                try hw.allocHWQueue(viommu: 0, type: HWQueueType.default, index: 0, baseAddress: iova, length: 0)
            }
            try ctx.expectErrno(.EINVAL, "length 0, base overflowing, no vIOMMU") {
                try hw.allocHWQueue(viommu: 0, type: selftest, index: 0, baseAddress: .max, length: 0)
            }
            try ctx.expectErrno(.EOVERFLOW, "base 0xffffffffffffffff + one page, no vIOMMU") {
                try hw.allocHWQueue(viommu: 0, type: selftest, index: 0, baseAddress: .max, length: page)
            }
            try ctx.expectErrno(.ENOENT, "vIOMMU ID 0") {
                try hw.allocHWQueue(viommu: 0, type: selftest, index: 0, baseAddress: iova, length: page)
            }
            try ctx.expectErrno(.ENOENT, "the IOAS \(ioas) as the vIOMMU") {
                try hw.allocHWQueue(viommu: ioas, type: selftest, index: 0, baseAddress: iova, length: page)
            }
            try ctx.expectErrno(.EOPNOTSUPP, "type TEGRA241_CMDQV on the mock vIOMMU, range unmapped") {
                try hw.allocHWQueue(viommu: viommu, type: HWQueueType.tegra241CMDQV, index: 0, baseAddress: iova, length: page)
            }
            try ctx.expectErrno(.ENOENT, "an unmapped range") {
                try hw.allocHWQueue(viommu: viommu, type: selftest, index: 0, baseAddress: iova, length: page)
            }
            try ctx.expectErrno(.ENOENT, "an unmapped range at index 2 (the pin comes before the index checks)") {
                try hw.allocHWQueue(viommu: viommu, type: selftest, index: HWQueueType.selftestMaxQueues, baseAddress: iova, length: page)
            }
            // Half of the range mapped is still ENOENT.
            try ctx.mapFixed(ioas: ioas, iova: iova, length: page)
            try ctx.expectErrno(.ENOENT, "a range of which only the first page is mapped") {
                try hw.allocHWQueue(viommu: viommu, type: selftest, index: 0, baseAddress: iova + page / 2, length: page)
            }
        },

        // mock_hw_queue_init_phys: index ≥ IOMMU_TEST_HW_QUEUE_MAX, in use, or without its
        // predecessor.
        ConformanceCase(
            "hwqueue.alloc.mock-index-rules",
            "On the mock vIOMMU over a mapped range: index 1 before index 0 is EIO, index 2 is EINVAL, index 0 succeeds, a second index 0 is EEXIST, then index 1 succeeds (over half a page at an unaligned base) with IDs of their own.",
            requires: [.nesting]
        ) { ctx in
            let (hw, ioas, viommu, iova) = try setUp(ctx)
            let page = ctx.pageSize
            try mapTwoPages(ctx, ioas, iova)
            try ctx.expectErrno(.EIO, "index 1 before index 0") {
                try hw.allocHWQueue(viommu: viommu, type: selftest, index: 1, baseAddress: iova, length: page)
            }
            try ctx.expectErrno(.EINVAL, "index 2") {
                try hw.allocHWQueue(viommu: viommu, type: selftest, index: HWQueueType.selftestMaxQueues, baseAddress: iova, length: page)
            }
            let q0 = try ctx.expectSuccess("index 0") { try hw.allocHWQueue(viommu: viommu, type: selftest, index: 0, baseAddress: iova, length: page) }
            try ctx.expectErrno(.EEXIST, "a second index 0") {
                try hw.allocHWQueue(viommu: viommu, type: selftest, index: 0, baseAddress: iova, length: page)
            }
            let q1 = try ctx.expectSuccess("index 1 at base + PAGE_SIZE/2, length PAGE_SIZE/2") {
                try hw.allocHWQueue(viommu: viommu, type: selftest, index: 1, baseAddress: iova + page / 2, length: page / 2)
            }
            try ctx.expect(Set([q0, q1, viommu, ioas]).count == 4, "HW queue IDs \(q0), \(q1) collide with each other or with vIOMMU \(viommu) / IOAS \(ioas)")
            try ctx.expectSuccess("destroy of index 1") { try ctx.backend.destroy(q1) }
            try ctx.expectSuccess("destroy of index 0") { try ctx.backend.destroy(q0) }
            try ctx.expectErrno(.ENOENT, "second destroy of HW queue \(q0)") { try ctx.backend.destroy(q0) }
        },

        // iommufd_hw_queue_alloc_phys pins through an internal access: iopt_unmap_iova_range
        // finds area->num_locks and answers EBUSY; iommufd_hw_queue_destroy unpins.
        ConformanceCase(
            "hwqueue.pinned-range-unmap-is-EBUSY",
            "While a HW queue exists, unmapping the mapping it pinned is EBUSY (also as part of unmap-all), a mapping it did not pin unmaps; after the queue is destroyed the pinned mapping unmaps.",
            requires: [.nesting]
        ) { ctx in
            let (hw, ioas, viommu, iova) = try setUp(ctx)
            let page = ctx.pageSize
            try mapTwoPages(ctx, ioas, iova)
            let q0 = try hw.allocHWQueue(viommu: viommu, type: selftest, index: 0, baseAddress: iova, length: page)
            try ctx.expectErrno(.EBUSY, "unmap of the pinned page") { try ctx.backend.unmap(ioas: ioas, iova: iova, length: page) }
            try ctx.expectErrno(.EBUSY, "unmap of both pages") { try ctx.backend.unmap(ioas: ioas, iova: iova, length: 2 * page) }
            try ctx.expectErrno(.EBUSY, "unmap of everything") { try ctx.backend.unmap(ioas: ioas, iova: 0, length: .max) }
            try ctx.expectEqual(
                try ctx.expectSuccess("unmap of the page the queue did not pin") { try ctx.backend.unmap(ioas: ioas, iova: iova + page, length: page) },
                page, "bytes unmapped of the unpinned page")
            try ctx.backend.destroy(q0)
            try ctx.expectEqual(
                try ctx.expectSuccess("unmap of the page after its queue is destroyed") { try ctx.backend.unmap(ioas: ioas, iova: iova, length: page) },
                page, "bytes unmapped of the formerly pinned page")
        },

        // iommufd_hw_queue_depend (mock index 1 on 0) and the vIOMMU users reference.
        ConformanceCase(
            "hwqueue.destroy-order-is-EBUSY",
            "Destroying HW queue 0 while queue 1 depends on it is EBUSY, destroying the vIOMMU while it has HW queues is EBUSY; queue 1, then queue 0, then the vIOMMU destroy.",
            requires: [.nesting]
        ) { ctx in
            let (hw, ioas, viommu, iova) = try setUp(ctx)
            let page = ctx.pageSize
            try mapTwoPages(ctx, ioas, iova)
            let q0 = try hw.allocHWQueue(viommu: viommu, type: selftest, index: 0, baseAddress: iova, length: page)
            try ctx.expectErrno(.EBUSY, "destroy of vIOMMU \(viommu) with HW queue 0") { try ctx.backend.destroy(viommu) }
            let q1 = try hw.allocHWQueue(viommu: viommu, type: selftest, index: 1, baseAddress: iova + page, length: page)
            try ctx.expectErrno(.EBUSY, "destroy of HW queue 0 while queue 1 depends on it") { try ctx.backend.destroy(q0) }
            try ctx.backend.destroy(q1)
            try ctx.expectErrno(.EBUSY, "destroy of vIOMMU \(viommu) with HW queue 0 left") { try ctx.backend.destroy(viommu) }
            try ctx.expectSuccess("destroy of HW queue 0 after queue 1") { try ctx.backend.destroy(q0) }
            try ctx.expectSuccess("destroy of the vIOMMU without HW queues") { try ctx.backend.destroy(viommu) }
        },
    ]
}
