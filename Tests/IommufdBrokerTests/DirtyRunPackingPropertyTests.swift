import Foundation
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker
import IommufdContract

/// The `packed_runs` answer packed straight from the bitmap (`DirtyRunPacking.packBitmap`, issue
/// 16 target 4) against the reference path it replaced: `DirtyBitmap.runs` then
/// `DirtyRunPacking.pack`, over random bitmaps; and the broker's packed answers against its JSON
/// runs answers, cut short or not, clearing or not.
@Suite("Dirty harvest: packed runs straight from the bitmap")
struct DirtyRunPackingPropertyTests {
    /// xorshift64: a fixed, reproducible sequence.
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
    }

    /// A random bitmap of `count` words mixing clean, sparse, dense, full and alternating words,
    /// and clean stretches long enough for the four-word skip.
    static func bitmap(_ rng: inout Rng, words count: Int) -> [UInt64] {
        var words: [UInt64] = []
        while words.count < count {
            switch rng.next() % 7 {
            case 0: words += [UInt64](repeating: 0, count: Int(rng.next() % 12))
            case 1: words.append(rng.next() & rng.next() & rng.next())
            case 2: words.append(rng.next() | rng.next())
            case 3: words += [UInt64](repeating: ~0, count: 1 + Int(rng.next() % 3))
            case 4: words.append(0x5555_5555_5555_5555)
            case 5: words.append(UInt64(1) << (rng.next() % 64))
            default: words.append(0)
            }
        }
        return Array(words.prefix(count))
    }

    static func packed(_ words: [UInt64], bitCount: Int, maxRuns: Int, zeroing: Bool, buffer: inout DirtyRunPacking.Bytes) -> (String, DirtyRunPacking.BitmapPacking, [UInt64]) {
        var copy = words
        buffer.removeAll()
        let packing = copy.withUnsafeMutableBufferPointer {
            DirtyRunPacking.packBitmap($0, bitCount: bitCount, maxRuns: maxRuns, zeroing: zeroing, into: &buffer)
        }
        return (DirtyRunPacking.base64(buffer.buffer), packing, copy)
    }

    @Test("packed from the bitmap, byte for byte the runs packed; unpacks to the same runs; zeroes what it read")
    func agreesWithTheReferenceOverRandomBitmaps() {
        var rng = Rng(state: 0x9E37_79B9_7F4A_7C15)
        // One buffer for every round, as the broker keeps one per owner: it must not carry
        // anything from one answer into the next.
        var buffer = DirtyRunPacking.Bytes()
        defer { buffer.deallocate() }
        let base: UInt64 = 0x4000_0000
        for round in 0..<600 {
            let count = 1 + Int(rng.next() % 40)
            let words = Self.bitmap(&rng, words: count)
            // Whole words, a cut inside the last word, and more bits than the words hold.
            let bitCount = switch round % 3 {
            case 0: count * 64
            case 1: max(1, count * 64 - Int(rng.next() % 64))
            default: count * 64 + 7
            }
            let maxRuns = round % 4 == 0 ? 1 + Int(rng.next() % 20) : .max
            for pageSize: UInt64 in [4096, 2 << 20] {
                let reference = words.withUnsafeBufferPointer {
                    DirtyBitmap.runs($0, bitCount: bitCount, base: base, pageSize: pageSize, maxRuns: maxRuns)
                }
                let zeroing = round % 2 == 0
                let (string, packing, after) = Self.packed(words, bitCount: bitCount, maxRuns: maxRuns, zeroing: zeroing, buffer: &buffer)
                #expect(string == DirtyRunPacking.pack(reference.runs, base: base, pageSize: pageSize), "round \(round)")
                #expect(DirtyRunPacking.unpack(string, base: base, pageSize: pageSize) == reference.runs, "round \(round)")
                #expect(packing.runs == reference.runs.count && packing.dirtyPages == reference.dirtyPages, "round \(round)")
                #expect(packing.resumeBit.map { base + UInt64($0) * pageSize } == reference.resumeIOVA, "round \(round)")
                if zeroing {
                    // Every word before the one holding the resume point (all of them when not
                    // cut short) is zero; any other word is zero (read past it, in a run open
                    // across words) or untouched.
                    let stopWord = packing.resumeBit.map { $0 / 64 } ?? min(count, (bitCount + 63) / 64)
                    #expect(after[..<stopWord].allSatisfy { $0 == 0 }, "round \(round): a word the scan read was left set")
                    #expect(zip(after, words).allSatisfy { $0 == 0 || $0 == $1 }, "round \(round)")
                } else {
                    #expect(after == words, "round \(round): a scan without zeroing changed the bitmap")
                }
            }
        }
    }

    @Test("a bitmap of more runs than the buffer starts with grows it, and every varint width packs")
    func largeAndWideAnswers() {
        var buffer = DirtyRunPacking.Bytes()
        defer { buffer.deallocate() }
        // 1 Mi bits alternating: 512 Ki one-page runs, more than the 64 Ki reserved up front.
        let alternating = [UInt64](repeating: 0x5555_5555_5555_5555, count: 1 << 14)
        let (string, packing, _) = Self.packed(alternating, bitCount: 1 << 20, maxRuns: .max, zeroing: false, buffer: &buffer)
        #expect(packing.runs == 1 << 19 && packing.dirtyPages == 1 << 19 && packing.resumeBit == nil)
        let runs = DirtyRunPacking.unpack(string, base: 0, pageSize: 4096)
        #expect(runs?.count == 1 << 19 && runs?.last == DirtyRun(iova: ((1 << 20) - 2) * 4096, length: 4096))
        // Gaps and lengths of 1 to 4 varint bytes: a clean stretch of 2^21 pages, then a run of
        // 2^14 + 1 pages.
        var wide = [UInt64](repeating: 0, count: (1 << 15) + 300)
        for w in (1 << 15)..<((1 << 15) + 256) { wide[w] = ~0 }
        wide[(1 << 15) + 256] = 1
        let (w, p, _) = Self.packed(wide, bitCount: wide.count * 64, maxRuns: .max, zeroing: true, buffer: &buffer)
        #expect(p.runs == 1 && DirtyRunPacking.unpack(w, base: 0, pageSize: 4096) == [DirtyRun(iova: (1 << 21) * 4096, length: ((1 << 14) + 1) * 4096)])
        // Nothing dirty: an empty string, as before.
        let (empty, none, _) = Self.packed([0, 0, 0], bitCount: 192, maxRuns: .max, zeroing: true, buffer: &buffer)
        #expect(empty == "" && none.runs == 0 && none.dirtyPages == 0)
    }

    @Test("unpack refuses what is not a packed answer")
    func unpackRefusesGarbage() {
        for bad in ["AQI", "A*I=", "gA==", "AQ==", "A===", "=AAA", "AQI=AQI=", "/////////////w=="] {
            // "AQ==" is one varint (a gap without its length); "AQI=AQI=" has padding inside;
            // the last is ten bytes that all say another follows.
            #expect(DirtyRunPacking.unpack(bad, base: 0, pageSize: 4096) == nil, "\(bad)")
        }
        #expect(DirtyRunPacking.unpack("", base: 0, pageSize: 4096) == [])
        #expect(DirtyRunPacking.unpack("AQI=", base: 0, pageSize: 4096) == [DirtyRun(iova: 4096, length: 8192)])
    }

    /// vm-1 with an IOAS of `pages` pages at `base`, sim0 attached with dirty tracking on.
    func setUp(_ f: Fixture, pages: UInt64) throws -> (ioas: ObjectID, hwpt: ObjectID) {
        _ = try f.broker.ownerCreate(f.b, OwnerCreateParams(name: "vm-1"))
        let ioas = try f.broker.ioasCreate(f.b, IOASCreateParams(owner: "vm-1", hugePages: false)).ioas
        let fd = try memfd(pages: pages)
        defer { close(fd) }
        _ = try f.broker.ioasMap(f.b, IOASMapParams(ioas: ioas, length: pages * page, iova: DirtyHarvestTests.base), fd: fd)
        let r = try f.broker.deviceAttach(f.b, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas, dirty: .required))
        _ = try f.broker.dirtyStart(f.b, DirtyParams(ioas: ioas))
        return (ioas, r.pt)
    }

    @Test("the broker's packed answers are its runs answers, cut short, clearing or not, read after read")
    func brokerPackedMatchesRuns() throws {
        let pages: UInt64 = 1024
        let base = DirtyHarvestTests.base
        var rng = Rng(state: 0xD1B5_4A32_D192_ED03)
        // Two daemons with the same writes: one answers runs, the other packed_runs. Each keeps
        // its scratch and packed buffer between reads, so stale bits would show up as a
        // difference in a later round.
        let plain = try Fixture(), packed = try Fixture()
        let (ioasR, hwptR) = try setUp(plain, pages: pages)
        let (ioasP, hwptP) = try setUp(packed, pages: pages)
        for round in 0..<60 {
            for _ in 0..<(rng.next() % 40) {
                let first = rng.next() % pages
                let length = min(1 + rng.next() % 6, pages - first)
                for (f, h) in [(plain, hwptR), (packed, hwptP)] {
                    try f.sim.simulateDeviceWrite(hwpt: h, iova: base + first * page, length: length * page, pageSize: page)
                }
            }
            let offset = rng.next() % 64
            let length = (pages - offset) - rng.next() % 64
            let clear = round % 3 != 0
            let maxRuns: Int? = round % 2 == 0 ? 1 + Int(rng.next() % 12) : nil
            let r = try plain.broker.dirtyRead(plain.b, DirtyReadParams(
                ioas: ioasR, iova: base + offset * page, length: length * page, clear: clear, maxRuns: maxRuns)).result
            let p = try packed.broker.dirtyRead(packed.b, DirtyReadParams(
                ioas: ioasP, iova: base + offset * page, length: length * page, clear: clear, format: .packedRuns, maxRuns: maxRuns)).result
            let string = try #require(p.packedRuns)
            let unpacked = try #require(DirtyRunPacking.unpack(string, base: p.iova, pageSize: p.pageSize))
            #expect(unpacked == r.runs, "round \(round)")
            #expect(p.runCount == r.runs?.count && p.dirtyPages == r.dirtyPages && p.resumeIOVA == r.resumeIOVA, "round \(round)")
            #expect(p.runs == nil && p.cleared == clear, "round \(round)")
        }
        // Both harvested the same: what is left is the same too.
        let restR = try plain.broker.dirtyRead(plain.b, DirtyReadParams(ioas: ioasR, iova: base, length: pages * page, clear: false)).result
        let restP = try packed.broker.dirtyRead(packed.b, DirtyReadParams(ioas: ioasP, iova: base, length: pages * page, clear: false, format: .packedRuns)).result
        let rest = try #require(restP.packedRuns)
        #expect(DirtyRunPacking.unpack(rest, base: base, pageSize: page) == restR.runs)
    }

    /// The pages of a bitmap of `count` pages (bit n = page n).
    static func pages(ofBitmap words: [UInt64], count: Int) -> [UInt64] {
        (0..<count).filter { words[$0 / 64] >> UInt64($0 % 64) & 1 == 1 }.map(UInt64.init)
    }

    @Test("the kept scratch, packed buffer and mapped memfd stay clean whatever order the formats come in")
    func mixedFormatsReadAfterRead() throws {
        let pages: UInt64 = 640
        let base = DirtyHarvestTests.base
        var rng = Rng(state: 0x2545_F491_4F6C_DD1D)
        let reference = try Fixture(), mixed = try Fixture()
        let (ioasR, hwptR) = try setUp(reference, pages: pages)
        let (ioasM, hwptM) = try setUp(mixed, pages: pages)
        let sealable = try Memfd.create(name: "mixed-into", allowSealing: true)
        defer { close(sealable) }
        try #require(ftruncate(sealable, 4096) == 0)
        let plain = try memfd(pages: 1)
        defer { close(plain) }
        for round in 0..<80 {
            for _ in 0..<(rng.next() % 30) {
                let first = rng.next() % pages
                let length = min(1 + rng.next() % 70, pages - first)
                for (f, h) in [(reference, hwptR), (mixed, hwptM)] {
                    try f.sim.simulateDeviceWrite(hwpt: h, iova: base + first * page, length: length * page, pageSize: page)
                }
            }
            let clear = rng.next() % 4 != 0
            let count = Int(pages)
            let r = try reference.broker.dirtyRead(reference.b, DirtyReadParams(ioas: ioasR, iova: base, length: pages * page, clear: clear)).result
            let want = (r.runs ?? []).flatMap { run in (0..<run.length / page).map { (run.iova - base) / page + $0 } }
            var got: [UInt64]
            let params = DirtyReadParams(ioas: ioasM, iova: base, length: pages * page, clear: clear, format: .bitmap)
            switch rng.next() % 5 {
            case 0:
                var p = params
                p.format = .packedRuns
                let m = try mixed.broker.dirtyRead(mixed.b, p).result
                let string = try #require(m.packedRuns)
                let runs = try #require(DirtyRunPacking.unpack(string, base: base, pageSize: page))
                got = runs.flatMap { run in (0..<run.length / page).map { (run.iova - base) / page + $0 } }
                #expect(m.dirtyPages == UInt64(got.count), "round \(round)")
            case 1:
                var p = params
                p.format = .runs
                let m = try mixed.broker.dirtyRead(mixed.b, p).result
                got = (m.runs ?? []).flatMap { run in (0..<run.length / page).map { (run.iova - base) / page + $0 } }
            case 2, 3:
                let fd = rng.next() % 5 == 2 ? sealable : plain
                // Junk from the client between reads: the read overwrites its bitmap whole.
                var junk = [UInt64](repeating: rng.next(), count: (count + 63) / 64)
                _ = junk.withUnsafeMutableBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                let m = try mixed.broker.dirtyRead(mixed.b, params, into: fd).result
                var words = [UInt64](repeating: 0, count: (count + 63) / 64)
                _ = words.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
                got = Self.pages(ofBitmap: words, count: count)
                #expect(m.dirtyPages == UInt64(got.count), "round \(round)")
            default:
                let m = try mixed.broker.dirtyRead(mixed.b, params)
                defer { for fd in m.fds { close(fd) } }
                var words = [UInt64](repeating: 0, count: (count + 63) / 64)
                _ = words.withUnsafeMutableBytes { pread(m.fds[0], $0.baseAddress, $0.count, 0) }
                got = Self.pages(ofBitmap: words, count: count)
                #expect(m.result.dirtyPages == UInt64(got.count), "round \(round)")
            }
            #expect(got == want, "round \(round): \(got.count) pages against \(want.count)")
        }
    }
}
