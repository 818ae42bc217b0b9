import IommufdCore
import Testing

@testable import IommufdSim

/// `iopt_alloc_iova` edge cases on the simulator's page table model.
@Suite("IOVA allocator")
struct IOVAAllocatorTests {
    let page: UInt64 = 4096
    let huge: UInt64 = 2 << 20

    func table() -> IOPageTable { IOPageTable(pageSize: page, hugePageSize: huge) }

    func pages() -> SimPages { SimPages(backing: .user(address: 0x7f00_0000_0000), writable: true) }

    @Test func neverPicksZeroAndStartsAtPageSize() throws {
        #expect(try table().allocIOVA(sourceAddress: 0, length: page) == page)
        #expect(try table().allocIOVA(sourceAddress: 0, length: 1) == page)
    }

    @Test func alignmentIsCappedAtTheHugePageSize() throws {
        var t = table()
        _ = try t.insert(slices: [(pages(), 0, page)], totalLength: page, fixedIOVA: page, readable: true, writeable: true)
        // 8 MiB would round up to 8 MiB alignment; HPAGE_SIZE caps it at 2 MiB.
        let iova = try t.allocIOVA(sourceAddress: 0, length: 8 << 20)
        #expect(iova == huge)
    }

    @Test func sourceAddressLimitsAlignmentAndKeepsPageOffset() throws {
        // Lowest set bit of the address (4 KiB) caps the 64 KiB length's alignment.
        var t = table()
        _ = try t.insert(slices: [(pages(), 0, page)], totalLength: page, fixedIOVA: page, readable: true, writeable: true)
        #expect(try t.allocIOVA(sourceAddress: 0x3000, length: 0x10000) == 2 * page)
        // A sub-page source offset is carried into the IOVA.
        #expect(try table().allocIOVA(sourceAddress: 0x10800, length: 0x1000) % page == 0x800)
    }

    @Test func sourceAlignmentBelowTheIOASAlignmentIsEINVAL() throws {
        var t = table()
        try t.addDomain(hwpt: 9, minPageSize: page, aperture: IOVARange(start: 0, last: .max))
        #expect(throws: Errno.EINVAL) { try t.allocIOVA(sourceAddress: 0x10800, length: page) }
    }

    @Test func skipsAreasAndReservedRangesAndStaysInAllowed() throws {
        var t = table()
        try t.reserve(IOVARange(start: page, last: 16 * page - 1), owner: .test)
        #expect(try t.allocIOVA(sourceAddress: 0, length: page) == 16 * page)
        try t.setAllowed([IOVARange(start: 0x100000, last: 0x100000 + 2 * page - 1)])
        #expect(try t.allocIOVA(sourceAddress: 0, length: 2 * page) == 0x100000)
        #expect(throws: Errno.ENOSPC) { try t.allocIOVA(sourceAddress: 0, length: 4 * page) }
    }

    @Test func hugeLengthsOverflowCleanly() {
        #expect(throws: Errno.EOVERFLOW) { try table().allocIOVA(sourceAddress: 0, length: UInt64.max / 2) }
        #expect(throws: Errno.EOVERFLOW) { try table().allocIOVA(sourceAddress: 0, length: 0) }
    }

    @Test func spanHelpersMergeAdjacentRanges() {
        let merged = mergedSpans([IOVARange(start: 10, last: 19), IOVARange(start: 0, last: 9), IOVARange(start: 30, last: .max)])
        #expect(merged == [IOVARange(start: 0, last: 19), IOVARange(start: 30, last: .max)])
        #expect(holes(of: merged, within: IOVARange(start: 0, last: .max)) == [IOVARange(start: 20, last: 29)])
        #expect(holes(of: [], within: IOVARange(start: 5, last: 6)) == [IOVARange(start: 5, last: 6)])
        #expect(roundUpPowerOfTwo(5) == 8)
        #expect(roundUpPowerOfTwo(4096) == 4096)
    }

    @Test func deviceReservedRegionsShapeTheIOAS() throws {
        let bench = try SimBench()
        let ioas = try bench.backend.allocIOAS()
        try bench.backend.attach(deviceID: bench.id("sim2"), to: ioas)
        let ranges = try bench.backend.iovaRanges(ioas: ioas, capacity: 8)
        // dmar1: 39-bit aperture and the x86 MSI window.
        #expect(ranges.ranges == [IOVARange(start: 0, last: 0xfedf_ffff), IOVARange(start: 0xfef0_0000, last: (1 << 39) - 1)])
        #expect(ranges.alignment == page)
        let inWindow = #expect(throws: IommuError.self) {
            try bench.backend.map(ioas: ioas, source: .userAddress(0x7f00_0000_0000), length: page, iova: 0xfee0_0000, flags: [.fixedIOVA, .readWrite])
        }
        #expect(inWindow?.errno == .EINVAL)
        #expect(throws: IommuError.self) {
            try bench.backend.allowIOVAs(ioas: ioas, ranges: [IOVARange(start: 0xfe00_0000, last: 0xff00_0000)])
        }
    }
}
