import Testing

@testable import IommufdBroker

/// Branch unmapfast: `IOVAIndex`'s search within a chunk is branch-free; every answer that goes
/// through it (lookup, floor, range, removal) is checked against a sorted array, for chunks of
/// every size from 1 to full and keys below, between, on and above the stored ones.
@Suite("IOVA index: the branch-free search against a sorted array")
struct IOVAIndexSearchTests {
    @Test("lookups, floors, ranges and removals agree with a sorted array", arguments: [1, 2, 3, 7, 64, 511, 512, 513, 1500, 4000])
    func againstSortedArray(_ n: Int) {
        var rng = SplitMix(seed: UInt64(n) &* 0x9E37_79B9)
        var index = IOVAIndex<Int>()
        var keys = Set<UInt64>()
        while keys.count < n { keys.insert((rng.next() % UInt64(n * 8)) * 2 + 2) }  // even keys >= 2
        for k in keys.shuffled(using: &rng) {
            let inserted = index.insert(Int(k), at: k)
            #expect(inserted)
        }
        var sorted = keys.sorted()
        func check() {
            #expect(index.all.map(\.key) == sorted)
            for probe in [0, 1, sorted.first ?? 0, (sorted.last ?? 0) + 1, .max] + (0..<64).map({ _ in rng.next() % UInt64(n * 16 + 8) }) {
                let lower = sorted.firstIndex { $0 >= probe } ?? sorted.count
                #expect(index[probe] == (lower < sorted.count && sorted[lower] == probe ? Int(probe) : nil), "lookup \(probe)")
                let floor = sorted.last { $0 <= probe }
                #expect(index.floor(probe)?.key == floor, "floor \(probe)")
                let hi = probe &+ UInt64(rng.next() % 64)
                #expect(index.entries(from: probe, through: max(hi, probe)).map(\.key) == sorted.filter { $0 >= probe && $0 <= max(hi, probe) }, "range from \(probe)")
            }
        }
        check()
        // Remove a random half (present and absent keys), then check again.
        for _ in 0..<(n / 2 + 1) {
            let k = (rng.next() % UInt64(n * 8)) * 2 + 2
            let removed = index.remove(at: k)
            #expect(removed == (keys.contains(k) ? Int(k) : nil))
            keys.remove(k)
        }
        sorted = keys.sorted()
        check()
        // And the batch removal (runs of keys), every third remaining key.
        let gone = Array(sorted.enumerated().filter { $0.offset % 3 == 0 }.map(\.element))
        var seen: [UInt64] = []
        index.remove(gone) { seen.append($0.key) }
        #expect(seen == gone)
        sorted = sorted.filter { !Set(gone).contains($0) }
        check()
    }
}

extension IOVAIndexSearchTests {
    @Test("keys across the whole 64-bit range (the search's borrow at 2^63 and at the top)")
    func wholeRange() {
        let top = UInt64.max, mid = UInt64(1) << 63
        let keys: [UInt64] = [0, 1, 0x1000, mid - 0x1000, mid - 1, mid, mid + 1, mid + 0x1000, top - 0x1000, top - 1, top]
        for count in 1...keys.count {
            let stored = Array(keys.prefix(count))
            var index = IOVAIndex<Int>()
            for (i, k) in stored.enumerated().reversed() {
                let inserted = index.insert(i, at: k)
                #expect(inserted)
            }
            for probe in keys + [2, mid - 2, mid + 2, top - 2] {
                let expected = stored.firstIndex(of: probe)
                #expect(index[probe] == expected, "\(count) keys, lookup \(probe)")
                #expect(index.floor(probe)?.key == stored.last { $0 <= probe }, "\(count) keys, floor \(probe)")
            }
        }
    }
}

/// A small deterministic generator (the tests repeat exactly).
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
