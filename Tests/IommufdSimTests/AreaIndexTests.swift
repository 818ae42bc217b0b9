import IommufdCore
import TestProcesses
import Testing

@testable import IommufdSim

/// The simulator's ordered area index against a plain sorted array, across many chunk splits,
/// merges and skipped chunks.
@Suite("Area index")
struct AreaIndexTests {
    let pages = SimPages(backing: .user(address: 0x7f00_0000_0000), writable: true)

    func area(_ iova: UInt64, _ length: UInt64) -> SimArea {
        SimArea(iova: iova, last: iova + length - 1, pages: pages, readable: true, writeable: true)
    }

    /// A deterministic sequence (SplitMix64, TestProcesses): numbers below a bound.
    struct Sequence {
        var rng: SplitMix64
        init(state: UInt64) { rng = SplitMix64(seed: state) }
        mutating func next(_ bound: UInt64) -> UInt64 { rng.next() % bound }
    }

    func holes(_ model: [SimArea], within window: IOVARange, minimumSize: UInt64) -> [IOVARange] {
        let used = model.map { IOVARange(start: $0.iova, last: $0.last) }
        return IommufdSim.holes(of: used, within: window).filter { $0.last - $0.start >= minimumSize - 1 }
    }

    @Test func agreesWithASortedArray() {
        var index = AreaIndex()
        var model: [SimArea] = []
        var random = Sequence(state: 42)
        let slot: UInt64 = 0x10000
        for step in 0..<6000 {
            // Mostly inserts at first (so chunks split), then as many removals (so they merge).
            let slotIndex = random.next(4096)
            let start = slotIndex * slot + random.next(4) * 0x1000
            let length = (random.next(3) + 1) * 0x1000
            let removing = step >= 3000 ? random.next(3) != 0 : random.next(5) == 0
            if removing, !model.isEmpty {
                let victim = model[Int(random.next(UInt64(model.count)))]
                let position = index.firstIntersecting(victim.iova, victim.last)
                #expect(position.map { index[$0].iova } == victim.iova)
                if let position { index.remove(at: position) }
                model.removeAll { $0.iova == victim.iova }
            } else if !model.contains(where: { $0.iova <= start + length - 1 && $0.last >= start }) {
                #expect(!index.intersects(start, start + length - 1))
                index.insert(area(start, length))
                model.append(area(start, length))
                model.sort { $0.iova < $1.iova }
            } else {
                #expect(index.intersects(start, start + length - 1))
            }
            if step % 250 == 0 {
                #expect(index.count == model.count)
                var listed: [UInt64] = []
                index.forEach { listed.append($0.iova); return true }
                #expect(listed == model.map(\.iova))
                for probe in [UInt64(0), slot * 7 + 0x1000, slot * 2048 + 0x2fff, slot * 4095 + 0x3000] {
                    #expect(index.area(containing: probe)?.iova == model.first { $0.iova <= probe && probe <= $0.last }?.iova)
                }
                let window = IOVARange(start: slot * 100 + 0x800, last: slot * 3000)
                for minimum in [UInt64(1), 0x1000, 0x9000, slot * 3] {
                    var found: [IOVARange] = []
                    index.forEachHole(within: window, minimumSize: minimum) { found.append($0); return true }
                    #expect(found == holes(model, within: window, minimumSize: minimum), "holes of at least \(minimum)")
                }
            }
        }
        #expect(index.chunks.count > 1)
    }

    @Test func holeWalkStopsWhenAsked() {
        var index = AreaIndex()
        for i in 0..<UInt64(2000) { index.insert(area(0x1000 + i * 0x2000, 0x1000)) }
        var seen = 0
        index.forEachHole(within: IOVARange(start: 0, last: .max), minimumSize: 0x1000) { _ in
            seen += 1
            return seen < 3
        }
        #expect(seen == 3)
        // Every hole between the areas is one page: none of two pages until the end.
        var big: [IOVARange] = []
        index.forEachHole(within: IOVARange(start: 0, last: .max), minimumSize: 0x2000) { big.append($0); return true }
        #expect(big == [IOVARange(start: 0x1000 + 2000 * 0x2000 - 0x1000, last: .max)])
    }
}
