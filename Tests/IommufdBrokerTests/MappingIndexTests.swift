import IommufdCore
import Testing

@testable import IommufdBroker

/// The broker's packed mapping index: 16 bytes a usual mapping, unusual ones kept whole, and
/// every record comes back as it went in.
@Suite("Mapping index")
struct MappingIndexTests {
    typealias Key = MemoryFileTable.Key

    static func same(_ a: MappingRecord, _ b: MappingRecord) -> Bool {
        guard a.length == b.length, a.charged == b.charged, a.flags == b.flags else { return false }
        switch (a.backing, b.backing) {
        case (.copy, .copy): return true
        case (.file(let x), .file(let y)): return x == y
        case (.mmap(let x, let p), .mmap(let y, let q)): return x == y && p == q
        default: return false
        }
    }

    @Test func packedWordIs16BytesAMapping() {
        #expect(MemoryLayout<IOVAIndex<UInt64>.Entry>.stride == 16)
    }

    @Test func recordsComeBackAsTheyWentIn() {
        let f1 = Key(device: 0x2c, inode: 77), f2 = Key(device: 0x2c, inode: 78)
        let records: [(UInt64, MappingRecord)] = [
            (0x1000, MappingRecord(length: 0x1000, charged: 0x1000, backing: .file(f1), flags: [.readable, .writeable])),
            (0x2000, MappingRecord(length: 0x20_0000, charged: 0x20_0000, backing: .file(f2), flags: [.readable])),
            (0x40_0000, MappingRecord(length: 0x1000, charged: 0x1000, backing: .copy, flags: [.writeable])),
            // Unusual: kept whole.
            (0x50_0000, MappingRecord(length: 0x1800, charged: 0x1800, backing: .file(f1), flags: .readWrite)),
            (0x60_0000, MappingRecord(length: 0x2000, charged: 0x1000, backing: .file(f1), flags: .readWrite)),
            (0x70_0000, MappingRecord(length: 0x1000, charged: 0x1000, backing: .mmap(f2, address: 0x7f00_dead_0000), flags: .readWrite)),
            (0x80_0000, MappingRecord(length: 0x1000, charged: 0x1000, backing: .file(f2), flags: MapFlags(rawValue: 0x10 | 0x4))),
            (1 << 50, MappingRecord(length: 1 << 46, charged: 1 << 46, backing: .file(f1), flags: .readWrite)),
        ]
        var index = MappingIndex()
        for (iova, record) in records.reversed() {
            let inserted = index.insert(record, at: iova)
            #expect(inserted)
        }
        #expect(index.count == records.count)
        let again = index.insert(records[0].1, at: records[0].0)
        #expect(!again)  // present: refused, no change
        for (iova, record) in records {
            #expect(index[iova].map { Self.same($0, record) } == true, "record at \(iova)")
        }
        #expect(zip(index.all, records).allSatisfy { $0.key == $1.0 && Self.same($0.value, $1.1) })
        #expect(index.floor(0x2fff).map { $0.key == 0x2000 && Self.same($0.value, records[1].1) } == true)
        #expect(index.entries(from: 0x2000, through: 0x60_0000).map(\.key) == [0x2000, 0x40_0000, 0x50_0000, 0x60_0000])
        #expect(index.prefix(2).map(\.key) == [0x1000, 0x2000])
        #expect(index.internedFiles == 2)  // only usual file mappings take a number
        for (iova, record) in records {
            let removed = index.remove(at: iova)
            #expect(removed.map { Self.same($0, record) } == true)
        }
        let missing = index.remove(at: 0x1000)
        #expect(index.isEmpty && index.internedFiles == 0 && missing == nil)
    }

    @Test func fileNumbersAreReusedAndNeverMixedUp() {
        var index = MappingIndex()
        let files = (0..<50).map { Key(device: 1, inode: UInt64($0)) }
        for (i, f) in files.enumerated() {
            index.insert(MappingRecord(length: 0x1000, charged: 0x1000, backing: .file(f), flags: .readWrite), at: UInt64(i) * 0x1000)
        }
        // Drop every other file, then map new files: they take the freed numbers.
        for i in stride(from: 0, to: 50, by: 2) { index.remove(at: UInt64(i) * 0x1000) }
        #expect(index.internedFiles == 25)
        let fresh = (0..<25).map { Key(device: 2, inode: UInt64($0)) }
        for (i, f) in fresh.enumerated() {
            index.insert(MappingRecord(length: 0x1000, charged: 0x1000, backing: .file(f), flags: .readWrite), at: 0x100_0000 + UInt64(i) * 0x1000)
        }
        #expect(index.internedFiles == 50)
        for i in stride(from: 1, to: 50, by: 2) {
            guard case .file(let key) = index[UInt64(i) * 0x1000]?.backing else { Issue.record("mapping \(i) lost its file"); continue }
            #expect(key == files[i])
        }
        for (i, f) in fresh.enumerated() {
            guard case .file(let key) = index[0x100_0000 + UInt64(i) * 0x1000]?.backing else { Issue.record("fresh mapping \(i) lost its file"); continue }
            #expect(key == f)
        }
    }
}
