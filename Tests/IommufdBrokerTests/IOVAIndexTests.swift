import Testing

@testable import IommufdBroker
import IommufdContract

@Suite("IOVA index")
struct IOVAIndexTests {
    @Test func insertFindFloorRangeRemoveAcrossManyChunks() {
        var index = IOVAIndex<Int>()
        let n = 5000  // several chunk splits
        // Insert in a scrambled order.
        for i in 0..<n {
            let k = (i * 7919) % n
            let inserted = index.insert(k, at: UInt64(k) * 0x1000)
            #expect(inserted)
        }
        #expect(index.count == n)
        let duplicate = index.insert(-1, at: 0x1000)
        #expect(!duplicate)  // duplicate key refused
        #expect(index.all.map(\.key) == (0..<n).map { UInt64($0) * 0x1000 })
        #expect(index[UInt64(1234) * 0x1000] == 1234)
        #expect(index[0x1234] == nil)
        #expect(index.floor(0x1234)?.key == 0x1000)
        #expect(index.floor(UInt64(n) * 0x1000 + 5)?.value == n - 1)
        #expect(index.entries(from: 0x1001, through: 0x4000).map(\.value) == [2, 3, 4])
        #expect(index.entries(from: UInt64(n) * 0x1000, through: .max).isEmpty)
        #expect(index.prefix(3).map(\.value) == [0, 1, 2])
        for k in stride(from: 0, to: n, by: 2) {
            let removed = index.remove(at: UInt64(k) * 0x1000)
            #expect(removed == k)
        }
        let missing = index.remove(at: 0)
        #expect(missing == nil)
        #expect(index.count == n / 2)
        #expect(index.floor(0x2000)?.value == 1)
        #expect(index.floor(0) == nil)
        for k in stride(from: 1, to: n, by: 2) { index.remove(at: UInt64(k) * 0x1000) }
        #expect(index.isEmpty && index.all.isEmpty && index.floor(.max) == nil)
    }
}
