import Foundation
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker
import IommufdContract

@Suite("Dirty tracking")
struct DirtyTests {
    /// vm-1 with an IOAS, 64 pages mapped at `base`, sim0 attached with dirty tracking.
    static let base: UInt64 = 0x100_0000

    func setUp(_ f: Fixture) throws -> (ioas: ObjectID, hwpt: ObjectID) {
        let ioas = try f.ownerWithIOAS()
        let fd = try memfd(pages: 64)
        defer { close(fd) }
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 64 * page, iova: Self.base), fd: fd)
        let r = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas, dirty: .required))
        return (ioas, r.pt)
    }

    @Test func startReadRunsClearAndNoClear() throws {
        let f = try Fixture()
        let (ioas, hwpt) = try setUp(f)
        expectBrokerError(.conflict) { try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page)) }
        let status = try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas))
        #expect(status.enabled && status.trackingHWPTs == [hwpt])
        // A device writes pages 1-2 and 10.
        try f.sim.simulateDeviceWrite(hwpt: hwpt, iova: Self.base + page, length: 2 * page, pageSize: page)
        try f.sim.simulateDeviceWrite(hwpt: hwpt, iova: Self.base + 10 * page, length: page, pageSize: page)

        let peek = try f.broker.dirtyRead(f.reader, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page, clear: false))
        #expect(peek.result.runs == [DirtyRun(iova: Self.base + page, length: 2 * page), DirtyRun(iova: Self.base + 10 * page, length: page)])
        #expect(peek.result.dirtyPages == 3 && !peek.result.cleared && peek.fds.isEmpty)
        // Readers may not clear.
        expectBrokerError(.permissionDenied) { try f.broker.dirtyRead(f.reader, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page)) }
        let read = try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page))
        #expect(read.result.runs?.count == 2 && read.result.cleared)
        let again = try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page))
        #expect(again.result.runs == [] && again.result.dirtyPages == 0)

        let stopped = try f.broker.dirtyStop(f.a, DirtyParams(ioas: ioas))
        #expect(!stopped.enabled && stopped.trackingHWPTs.isEmpty)
        #expect(errnoOf { try f.sim.simulateDeviceWrite(hwpt: hwpt, iova: Self.base, length: page, pageSize: page) } == .EINVAL)
    }

    @Test func bitmapComesBackInAMemfd() throws {
        let f = try Fixture()
        let (ioas, hwpt) = try setUp(f)
        _ = try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas))
        try f.sim.simulateDeviceWrite(hwpt: hwpt, iova: Self.base + 63 * page, length: page, pageSize: page)
        try f.sim.simulateDeviceWrite(hwpt: hwpt, iova: Self.base, length: page, pageSize: page)
        let out = try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page, format: .bitmap))
        #expect(out.fds.count == 1 && out.result.bitmap == FDRef(fd: 0) && out.result.bitmapBytes == 8)
        let fd = try #require(out.fds.first)
        defer { close(fd) }
        var word: UInt64 = 0
        #expect(pread(fd, &word, 8, 0) == 8)
        #expect(word == (UInt64(1) << 63) | 1)
        #expect(out.result.dirtyPages == 2)
    }

    @Test func readIsTheUnionOfEveryTrackingHWPT() throws {
        let f = try Fixture()
        let (ioas, auto) = try setUp(f)
        let second = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas, device: "sim0", dirtyTracking: true)).hwpt
        let status = try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas))
        #expect(status.trackingHWPTs == [auto, second].sorted())
        try f.sim.simulateDeviceWrite(hwpt: auto, iova: Self.base, length: 2 * page, pageSize: page)
        try f.sim.simulateDeviceWrite(hwpt: second, iova: Self.base + 2 * page, length: page, pageSize: page)
        try f.sim.simulateDeviceWrite(hwpt: second, iova: Self.base + 5 * page, length: page, pageSize: page)
        let read = try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page))
        #expect(read.result.runs == [DirtyRun(iova: Self.base, length: 3 * page), DirtyRun(iova: Self.base + 5 * page, length: page)])
    }

    @Test func startRollsBackWhenOneHWPTFails() throws {
        let f = try Fixture()
        let (ioas, auto) = try setUp(f)
        let second = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas, device: "sim0", dirtyTracking: true)).hwpt
        f.backend.failDirty(on: [max(auto, second)])
        let error = expectBrokerError(.kernel) { try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas)) }
        #expect(error?.errnoName == "EIO" && error?.ioctl == "IOMMU_HWPT_SET_DIRTY_TRACKING")
        #expect(error?.message.contains("stopped again on HWPT \(min(auto, second))") == true)
        // The first HWPT is not tracking any more, in the broker and in the backend.
        let status = try f.broker.dirtyStatus(f.a, DirtyParams(ioas: ioas))
        #expect(!status.enabled && status.trackingHWPTs.isEmpty)
        #expect(errnoOf { try f.sim.simulateDeviceWrite(hwpt: min(auto, second), iova: Self.base, length: page, pageSize: page) } == .EINVAL)
        // Once the fault is gone, start works.
        f.backend.failDirty(on: [])
        #expect(try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas)).trackingHWPTs.count == 2)
    }

    @Test func startIsRefusedWhenSomeDMACannotBeTracked() throws {
        let f = try Fixture()
        let (ioas, _) = try setUp(f)
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim1", ioas: ioas, dirty: .preferred))
        let refused = expectBrokerError(.policyRefused) { try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas)) }
        #expect(refused?.message.contains("sim1") == true)
    }

    @Test func newDirtyHWPTsJoinARunningTracking() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        _ = try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas))
        let r = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas, dirty: .required))
        #expect(try f.broker.dirtyStatus(f.a, DirtyParams(ioas: ioas)).trackingHWPTs == [r.pt])
    }

    @Test func untrackableAttachIsRefusedWhileTracking() throws {
        let f = try Fixture()
        let (ioas, _) = try setUp(f)
        _ = try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas))
        let refused = expectBrokerError(.policyRefused) {
            try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim1", ioas: ioas, dirty: .preferred))
        }
        #expect(refused?.message.contains("sim1") == true)
        #expect(try f.broker.deviceInfo(f.a, DeviceInfoParams(device: "sim1")).leased == false)
        _ = try f.broker.dirtyStop(f.a, DirtyParams(ioas: ioas))
        #expect(try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim1", ioas: ioas, dirty: .preferred)).dirtyTracking == false)
    }

    @Test func readParametersAreChecked() throws {
        let f = try Fixture()
        let (ioas, _) = try setUp(f)
        _ = try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas))
        expectBrokerError(.invalidParams) { try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base + 1, length: page)) }
        expectBrokerError(.invalidParams) { try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base, length: page, pageSize: 3000)) }
        expectBrokerError(.invalidParams) { try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base, length: 0)) }
        expectBrokerError(.limitExceeded) { try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: 0, length: 1 << 62)) }
    }
}

@Suite("Dirty bitmap coalescing")
struct DirtyBitmapTests {
    func runs(_ words: [UInt64], bits: Int? = nil, maxRuns: Int = .max) -> DirtyBitmap.Coalesced {
        words.withUnsafeBufferPointer { DirtyBitmap.runs($0, bitCount: bits ?? words.count * 64, base: 0x1000, pageSize: 0x1000, maxRuns: maxRuns) }
    }

    func pages(_ start: UInt64, _ count: UInt64) -> DirtyRun {
        DirtyRun(iova: 0x1000 + start * 0x1000, length: count * 0x1000)
    }

    @Test func emptyAndFull() {
        #expect(runs([0, 0, 0]).runs == [])
        #expect(runs([~0, ~0, ~0]).runs == [pages(0, 192)])
        #expect(runs([~0, ~0, ~0]).dirtyPages == 192)
    }

    @Test func runsAcrossWordBoundaries() {
        // Bits 60...67: the end of word 0 and the start of word 1 are one run.
        #expect(runs([0xF << 60, 0xF]).runs == [pages(60, 8)])
        // Bit 63 and bit 64: adjacent, one run.
        #expect(runs([1 << 63, 1]).runs == [pages(63, 2)])
        // A run through a full middle word.
        #expect(runs([1 << 63, ~0, 0b11]).runs == [pages(63, 67)])
        // A run ending exactly at a word end, then one starting at the next word's bit 1.
        #expect(runs([1 << 63, 0b10]).runs == [pages(63, 1), pages(65, 1)])
    }

    @Test func severalRunsInOneWord() {
        #expect(runs([0b1011_0111]).runs == [pages(0, 3), pages(4, 2), pages(7, 1)])
        #expect(runs([0x5555_5555_5555_5555]).runs.count == 32)
    }

    @Test func bitsBeyondTheRangeAreIgnored() {
        #expect(runs([~0], bits: 10).runs == [pages(0, 10)])
        #expect(runs([~0, ~0], bits: 70).runs == [pages(0, 70)])
        #expect(runs([1 << 20], bits: 10).runs == [])
        #expect(runs([~0], bits: 0).runs == [] && runs([~0], bits: -5).runs == [])
        #expect(runs([], bits: 64).runs == [])
        #expect(DirtyBitmap.wordCount(length: .max, pageSize: 1) == Int(clamping: UInt64.max / 64 + 1))
        #expect(DirtyBitmap.wordCount(length: 65 * 4096, pageSize: 4096) == 2)
    }

    @Test func maxRunsTruncatesWithAResumePoint() {
        let r = runs([0b1010_1010], maxRuns: 2)
        #expect(r.runs == [pages(1, 1), pages(3, 1)])
        // A typed right-hand side: with a literal the check goes through AnyHashable, whose
        // compiler-generated thunk for UInt64? reads 9 bytes from an 8-byte slot (ASan report).
        #expect(r.resumeIOVA == Optional(UInt64(0x1000 + 5 * 0x1000)))
        #expect(runs([0b1010_1010], maxRuns: 4).resumeIOVA == nil)
    }

    @Test func agreesWithABitByBitReference() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {  // xorshift64: a fixed, reproducible sequence
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        for round in 0..<200 {
            let count = 1 + round % 9
            // Mix sparse, dense, full and empty words.
            let words: [UInt64] = (0..<count).map { i in
                switch (round + i) % 4 {
                case 0: next() & next() & next()
                case 1: next() | next()
                case 2: ~0
                default: 0
                }
            }
            let bits = count * 64 - Int(next() % 64)
            var expected: [DirtyRun] = []
            var open: Int? = nil
            for bit in 0...bits {
                let set = bit < bits && (words[bit / 64] >> UInt64(bit % 64)) & 1 == 1
                if set, open == nil { open = bit }
                if !set, let s = open {
                    expected.append(pages(UInt64(s), UInt64(bit - s)))
                    open = nil
                }
            }
            let got = runs(words, bits: bits)
            #expect(got.runs == expected, "round \(round)")
            #expect(got.dirtyPages == expected.reduce(0) { $0 + $1.length / 0x1000 })
        }
    }
}
