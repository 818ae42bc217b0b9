import IommufdCore
import Testing

@testable import IommufdBroker

/// Removing many keys at once (`IOVAIndex.remove(_:_:)`, `MappingIndex.remove(_:)`: a batch of
/// unmaps) leaves what removing them one by one leaves, in any order, across chunks.
@Suite("Index: removing runs of keys")
struct IndexRunRemovalTests {
    @Test("random keys, in random and in ascending order, against remove(at:) one by one", arguments: 0..<16)
    func iovaIndexRuns(_ seed: Int) {
        var rng = StressRandom(seed: 0x1d3c_0000 + UInt64(seed))
        var batched = IOVAIndex<Int>(), single = IOVAIndex<Int>()
        let n = Int.random(in: 1...3000, using: &rng)  // up to several chunks
        for i in 0..<n where Int.random(in: 0..<5, using: &rng) != 0 {
            batched.insert(i, at: UInt64(i) * 0x1000)
            single.insert(i, at: UInt64(i) * 0x1000)
        }
        // Keys present and absent, runs and single keys, duplicates; sorted in even seeds.
        var keys: [UInt64] = []
        let wanted = Int.random(in: 0...n, using: &rng)
        while keys.count < wanted {
            let start = Int.random(in: 0..<(n + 8), using: &rng)
            for k in start..<(start + Int.random(in: 1...80, using: &rng)) { keys.append(UInt64(k) * 0x1000) }
            if Bool.random(using: &rng) { keys.append(UInt64(start) * 0x1000 + 0x10) }  // never a key
        }
        if seed % 2 == 0 { keys.sort() } else { keys.shuffle(using: &rng) }
        var removed: [Int] = []
        batched.remove(keys) { removed.append($0.value) }
        var expected: [Int] = []
        for k in keys { if let v = single.remove(at: k) { expected.append(v) } }
        #expect(batched.count == single.count)
        #expect(batched.all.map(\.key) == single.all.map(\.key))
        #expect(batched.all.map(\.value) == single.all.map(\.value))
        #expect(removed.sorted() == expected.sorted())
        if seed % 2 == 0 { #expect(removed == expected) }  // ascending keys: removed in order
        // The index still works after: inserts, floors and ranges across the changed chunks.
        for i in stride(from: 0, to: n, by: 7) {
            #expect(batched.insert(-i, at: UInt64(i) * 0x1000 + 0x800) == single.insert(-i, at: UInt64(i) * 0x1000 + 0x800))
        }
        #expect(batched.all.map(\.key) == single.all.map(\.key))
        #expect(batched.floor(UInt64(n / 2) * 0x1000)?.key == single.floor(UInt64(n / 2) * 0x1000)?.key)
        #expect(batched.entries(from: 0x5000, through: 0x40_0000).map(\.key) == single.entries(from: 0x5000, through: 0x40_0000).map(\.key))
        var collected: [UInt64] = []
        batched.forEach(from: 0x5000, through: 0x40_0000) { collected.append($0.key) }
        #expect(collected == single.entries(from: 0x5000, through: 0x40_0000).map(\.key))
        // The entry handed first is floor's when no key is `lo`; with a key `lo`, the one
        // below it, or none (an unmap's check for a cut mapping needs none then).
        for lo in stride(from: UInt64(0), to: UInt64(n + 2) * 0x1000, by: 0x7ff) {
            var below: UInt64?
            var first: UInt64?
            batched.forEach(from: lo, through: lo + 0x3000, before: { below = $0.key; return true }) { if first == nil { first = $0.key } }
            if single[lo] == nil {
                #expect(below == single.floor(lo)?.key, "lo \(lo)")
            } else if let below {
                #expect(below == single.floor(lo - 1)?.key, "lo \(lo)")
            }
            #expect(first == single.entries(from: lo, through: lo + 0x3000).first?.key, "lo \(lo)")
        }
    }

    @Test("mapping index: files interned by the removed mappings are given back, unusual ones dropped")
    func mappingIndexRuns() {
        typealias Key = MemoryFileTable.Key
        let f1 = Key(device: 0x2c, inode: 77), f2 = Key(device: 0x2c, inode: 78), f3 = Key(device: 0x2c, inode: 79)
        var index = MappingIndex(), single = MappingIndex()
        for i in 0..<600 {
            let record: MappingRecord = switch i % 5 {
            case 0: MappingRecord(length: 0x1000, charged: 0x1000, backing: .file(f1), flags: [.readable, .writeable])
            case 1: MappingRecord(length: 0x2000, charged: 0x2000, backing: .file(f2), flags: [.readable])
            case 2: MappingRecord(length: 0x1000, charged: 0x1000, backing: .copy, flags: [.readable, .writeable])
            case 3: MappingRecord(length: 0x1000, charged: 0x1000, backing: .mmap(f3, address: 0x7f00_0000_0000 + UInt64(i) * 0x1000), flags: [.writeable])
            default: MappingRecord(length: 0x1800, charged: 0x1800, backing: .file(f3), flags: [.readable])  // not a 4 KiB multiple: unusual
            }
            index.insert(record, at: UInt64(i) * 0x10000)
            single.insert(record, at: UInt64(i) * 0x10000)
        }
        #expect(index.internedFiles == 2)  // f1 and f2 (f3 only in unusual mappings)
        // Every mapping of f1 and the first 300 of everything.
        var keys: [UInt64] = []
        for i in 0..<600 where i < 300 || i % 5 == 0 { keys.append(UInt64(i) * 0x10000) }
        index.remove(keys)
        for k in keys { single.remove(at: k) }
        #expect(index.count == single.count && index.count == 240)
        #expect(index.internedFiles == 1)  // f1's number freed
        let a = index.all, b = single.all
        #expect(a.map(\.key) == b.map(\.key))
        #expect(zip(a, b).allSatisfy { MappingIndexTests.same($0.value, $1.value) })
        // A new file takes the freed number and is told apart from f2.
        let f4 = Key(device: 0x2c, inode: 80)
        index.insert(MappingRecord(length: 0x1000, charged: 0x1000, backing: .file(f4), flags: [.readable]), at: 0x1)
        #expect(index.internedFiles == 2)
        if case .file(let key) = index[0x1]?.backing { #expect(key == f4) } else { Issue.record("not a file mapping") }
        if case .file(let key) = index[301 * 0x10000]?.backing { #expect(key == f2) } else { Issue.record("not a file mapping") }
        index.remove(index.all.map(\.key))
        #expect(index.isEmpty && index.internedFiles == 0)
    }
}
