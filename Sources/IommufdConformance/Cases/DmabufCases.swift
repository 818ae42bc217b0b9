#if canImport(Glibc)
import Glibc
#endif
import IommufdCore

// MARK: p2p

/// P2P by dma-buf: `IOMMU_IOAS_MAP_FILE` of a dma-buf (io_pagetable.c `iopt_map_file_pages`,
/// pages.c `iopt_alloc_dmabuf_pages` / `iopt_map_dmabuf` / `iopt_revoke_notify`) with the
/// selftest's mock exporter (`IOMMU_TEST_OP_DMABUF_GET` / `IOMMU_TEST_OP_DMABUF_REVOKE`;
/// selftest `iommufd_ioas.dmabuf_simple` and `dmabuf_revoke`, which on Linux 7.3 map fd 0
/// instead of the dma-buf because DMABUF_GET answers 0: see `Iommufd.testDmabufGet`).
enum DmabufCases {
    typealias Hooks = any DmabufTestHooks

    static func hooks(_ ctx: ConformanceContext) throws -> Hooks {
        guard let b = ctx.backend as? Hooks else { throw ConformanceSkip("the backend has no dma-buf support") }
        guard b.features.contains(.dmabufMap) else { throw ConformanceSkip("IOMMU_IOAS_MAP_FILE of dma-bufs needs Linux 6.19") }
        return b
    }

    /// A new mock dma-buf of `pages` pages, closed when `body` returns.
    static func withDmabuf(_ ctx: ConformanceContext, pages: UInt64 = 4, _ body: (Hooks, Int32, UInt64) throws -> Void) throws {
        let b = try hooks(ctx)
        let size = pages * ctx.pageSize
        let fd = try ctx.expectSuccess("IOMMU_TEST_OP_DMABUF_GET of \(size) bytes") { try b.testDmabufGet(length: UInt32(size)) }
        defer { close(fd) }
        try body(b, fd, size)
    }

    static func mapDmabuf(_ b: Hooks, ioas: ObjectID, fd: Int32, offset: UInt64, length: UInt64, flags: MapFlags = .readWrite) throws -> UInt64 {
        try b.map(ioas: ioas, source: .file(fd: fd, offset: offset), length: length, iova: 0, flags: flags)
    }

    static let all: [ConformanceCase] = [
        // selftest.c iommufd_test_dmabuf_get: ALIGN(len, PAGE_SIZE), 0 or > 512 pages EINVAL.
        ConformanceCase(
            "dmabuf.get.length-rules",
            "The mock exporter rounds a dma-buf up to whole pages; a length of 0 or above 512 pages is EINVAL. fdinfo names the exporter \"iommufd\" and the rounded size; a memfd is no dma-buf."
        ) { ctx in
            let b = try hooks(ctx)
            try ctx.expectErrno(.EINVAL, "DMABUF_GET of 0 bytes") { try b.testDmabufGet(length: 0) }
            try ctx.expectErrno(.EINVAL, "DMABUF_GET of 513 pages") { try b.testDmabufGet(length: UInt32(513 * ctx.pageSize)) }
            let fd = try ctx.expectSuccess("DMABUF_GET of 100 bytes") { try b.testDmabufGet(length: 100) }
            defer { close(fd) }
            let info = try ctx.expectSuccess("dmabufInfo of the new dma-buf") { try b.dmabufInfo(fd: fd) }
            try ctx.expectEqual(info?.size, ctx.pageSize, "the dma-buf's size (100 bytes rounded up)")
            try ctx.expectEqual(info?.exporter, "iommufd", "the dma-buf's exporter")
            guard case .file(let memfd, _) = ctx.source() else { throw ConformanceSkip("no IOMMU_IOAS_MAP_FILE") }
            try ctx.expectEqual(try b.dmabufInfo(fd: memfd), nil, "dmabufInfo of a memfd")
        },

        // selftest dmabuf_simple; iopt_map_file_pages / iopt_alloc_dmabuf_pages.
        ConformanceCase(
            "dmabuf.map.range-rules",
            "A dma-buf maps with IOMMU_IOAS_MAP_FILE when [start, start+length) lies inside it: length 0, a range past its end or starting at its end is EINVAL; the whole buffer maps read-write or read-only."
        ) { ctx in
            try withDmabuf(ctx) { b, fd, size in
                let p = ctx.pageSize
                let ioas = try b.allocIOAS()
                try ctx.expectErrno(.EINVAL, "map 0 bytes of the dma-buf") { try mapDmabuf(b, ioas: ioas, fd: fd, offset: 0, length: 0) }
                try ctx.expectErrno(.EINVAL, "map from the dma-buf's end") { try mapDmabuf(b, ioas: ioas, fd: fd, offset: size, length: size) }
                try ctx.expectErrno(.EINVAL, "map one byte more than the dma-buf") { try mapDmabuf(b, ioas: ioas, fd: fd, offset: 0, length: size + 1) }
                try ctx.expectErrno(.EINVAL, "map the dma-buf's size from its second page") { try mapDmabuf(b, ioas: ioas, fd: fd, offset: p, length: size) }
                let iova = try ctx.expectSuccess("map the whole dma-buf") { try mapDmabuf(b, ioas: ioas, fd: fd, offset: 0, length: size) }
                try ctx.expectSuccess("map its second page read-only") { try mapDmabuf(b, ioas: ioas, fd: fd, offset: p, length: p, flags: [.readable]) }
                try ctx.expectEqual(try b.unmap(ioas: ioas, iova: iova, length: size), size, "bytes unmapped of the whole-buffer mapping")
                try ctx.expectEqual(try b.dmabufRevoked(fd: fd), false, "the dma-buf is revoked")
            }
        },

        // selftest dmabuf_revoke; iopt_revoke_notify, the mock exporter's ENODEV.
        ConformanceCase(
            "dmabuf.revoke.map-is-ENODEV-until-restored",
            "While the exporter has revoked a dma-buf, mapping it is ENODEV; the mapping made before the revoke still unmaps; once restored it maps again, also at the old IOVA."
        ) { ctx in
            try withDmabuf(ctx) { b, fd, size in
                let ioas = try b.allocIOAS()
                let iova = try mapDmabuf(b, ioas: ioas, fd: fd, offset: 0, length: size)
                try ctx.expectSuccess("revoke the dma-buf") { try b.testDmabufRevoke(fd: fd, revoked: true) }
                try ctx.expectEqual(try b.dmabufRevoked(fd: fd), true, "the dma-buf is revoked")
                try ctx.expectErrno(.ENODEV, "map the revoked dma-buf") { try mapDmabuf(b, ioas: ioas, fd: fd, offset: 0, length: size) }
                try ctx.expectSuccess("restore the dma-buf") { try b.testDmabufRevoke(fd: fd, revoked: false) }
                try ctx.expectEqual(try b.dmabufRevoked(fd: fd), false, "the restored dma-buf is revoked")
                let second = try ctx.expectSuccess("map the restored dma-buf") { try mapDmabuf(b, ioas: ioas, fd: fd, offset: 0, length: size) }
                try ctx.expect(second != iova, "the new mapping got a new IOVA")
                try ctx.expectEqual(try b.unmap(ioas: ioas, iova: iova, length: size), size, "bytes unmapped of the mapping revoked earlier")
                try ctx.expectSuccess("map the dma-buf at the old IOVA again") {
                    try b.map(ioas: ioas, source: .file(fd: fd, offset: 0), length: size, iova: iova, flags: [.readable, .writeable, .fixedIOVA])
                }
            }
        },

        // iopt_fill_domain / iopt_area_fill_domain skip revoked pages; IOAS_COPY shares them.
        ConformanceCase(
            "dmabuf.revoke.attach-and-copy-still-work",
            "An IOAS holding a revoked dma-buf mapping still takes a device (the revoked pages are skipped), and IOMMU_IOAS_COPY of the revoked mapping succeeds.",
            requires: [.device]
        ) { ctx in
            try withDmabuf(ctx) { b, fd, size in
                let ioas = try b.allocIOAS()
                // Inside every device's aperture (the mock IOMMU's starts at 16 MiB).
                let iova = try b.map(ioas: ioas, source: .file(fd: fd, offset: 0), length: size, iova: 1 << 24, flags: [.readable, .writeable, .fixedIOVA])
                try b.testDmabufRevoke(fd: fd, revoked: true)
                let device = try ctx.device(.primary)
                try ctx.expectSuccess("attach a device to the IOAS with the revoked mapping") { try b.attach(deviceID: device.id, to: ioas) }
                let other = try b.allocIOAS()
                try ctx.expectSuccess("copy the revoked mapping") {
                    try b.copy(dst: other, src: ioas, srcIOVA: iova, length: size, dstIOVA: 0, flags: .readWrite)
                }
                try b.detach(deviceID: device.id)
            }
        },

        // iommufd_test_dmabuf_revoke: dma_buf_get's EBADF / EINVAL.
        ConformanceCase(
            "dmabuf.revoke.not-a-dmabuf",
            "DMABUF_REVOKE of a closed fd is EBADF and of a memfd EINVAL; a closed dma-buf fd maps as EBADF."
        ) { ctx in
            let b = try hooks(ctx)
            guard case .file(let memfd, _) = ctx.source() else { throw ConformanceSkip("no IOMMU_IOAS_MAP_FILE") }
            try ctx.expectErrno(.EINVAL, "revoke a memfd") { try b.testDmabufRevoke(fd: memfd, revoked: true) }
            let got = try ctx.expectSuccess("DMABUF_GET of one page") { try b.testDmabufGet(length: UInt32(ctx.pageSize)) }
            // A closed number that stays closed: the kernel hands out the lowest free fd, so a
            // low one may be reused by another thread of this process before the map below. The
            // dma-buf moves high (F_DUPFD: the lowest free number >= 900), then both close.
            let fd = fcntl(got, F_DUPFD_CLOEXEC, 900)
            close(got)
            guard fd >= 0 else { throw ConformanceSkip("F_DUPFD_CLOEXEC to 900 failed (errno \(errno)): a soft fd limit below 901") }
            close(fd)
            try ctx.expectErrno(.EBADF, "revoke a closed fd") { try b.testDmabufRevoke(fd: fd, revoked: true) }
            let ioas = try b.allocIOAS()
            try ctx.expectErrno(.EBADF, "map a closed fd") { try mapDmabuf(b, ioas: ioas, fd: fd, offset: 0, length: ctx.pageSize) }
        },

        // The dma-buf holds the exporter's memory: a mapping outlives the fd it was made from.
        ConformanceCase(
            "dmabuf.map.outlives-its-fd",
            "A dma-buf mapping stays after its fd is closed and unmaps whole."
        ) { ctx in
            let b = try hooks(ctx)
            let size = 2 * ctx.pageSize
            let fd = try ctx.expectSuccess("DMABUF_GET") { try b.testDmabufGet(length: UInt32(size)) }
            let ioas = try b.allocIOAS()
            let iova: UInt64
            do {
                iova = try mapDmabuf(b, ioas: ioas, fd: fd, offset: 0, length: size)
            } catch {
                close(fd)
                throw error
            }
            close(fd)
            try ctx.expectEqual(try b.unmap(ioas: ioas, iova: 0, length: .max), size, "bytes unmapped after the fd was closed")
            _ = iova
        },
    ]
}
