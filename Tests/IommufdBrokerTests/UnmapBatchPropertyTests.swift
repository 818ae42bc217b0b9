#if canImport(Glibc)
import Glibc
#endif
import IommufdCore
import Testing
import IommufdContract

@testable import IommufdBroker

/// `ioasUnmapBatch` against the same entries sent one `ioas.unmap` at a time, over random
/// mappings and random batches: two identical worlds (a broker with its journal over a
/// fault-injecting simulator, `SweepWorld`), one unmapping the batch, the other entry by entry.
/// Both must give the same results and error, leave the same records, pinned bytes, memory-file
/// references and simulator state, and journals that replay to the same mappings through the
/// same changes (the batch's in one record a group), each reading back as its broker's records
/// (`BatchAgainstOneByOne`). The batches mix single mappings in ascending order (a VMM's usual),
/// ranges over several mappings, jumps backwards (a new group), `all`, entries of a second
/// owner, and in some seeds refusals (cuts, unaligned ranges, missing ranges, unknown IOAS) and
/// a kernel failure at a random unmap; some seeds map through `mmap` (a kernel without
/// `IOMMU_IOAS_MAP_FILE`) and some mappings are `ioas.copy`s. Issue 16 target 2.
@Suite("IOAS: batched unmap against one by one, random batches")
struct UnmapBatchPropertyTests {
    static let slots = 24
    static let slotPages: UInt64 = 3  // a mapping of 1 or 2 pages a slot: the third page is always a gap
    static let base: UInt64 = 0x100_0000

    static func iova(_ slot: Int) -> UInt64 { base + UInt64(slot) * slotPages * page }

    /// One step of building the mappings (the same in both worlds).
    enum Setup {
        case map(ioas: String, slot: Int, pages: UInt64, second: Bool, offsetPages: UInt64)
        case copy(from: Int, to: Int, pages: UInt64)  // X's slot into Y's slot
    }

    /// Mappings for owner "vm" (IOAS X and Y) and "vm2" (IOAS Z), within their quotas of 64
    /// pages; `layout` gets each mapped slot's pages.
    static func setup(_ rng: inout StressRandom, layout: inout [String: [Int: UInt64]]) -> [Setup] {
        var steps: [Setup] = []
        var pinned: [String: UInt64] = ["vm": 0, "vm2": 0]
        for key in ["X", "Y", "Z"] {
            let owner = key == "Z" ? "vm2" : "vm"
            for slot in 0..<slots where Int.random(in: 0..<4, using: &rng) != 0 {
                let pages = UInt64.random(in: 1...2, using: &rng)
                guard pinned[owner]! + pages <= SweepWorld.quotaPages else { continue }
                if key == "Y", let source = layout["X"]?[slot], source == pages, Bool.random(using: &rng) {
                    steps.append(.copy(from: slot, to: slot, pages: pages))
                } else {
                    steps.append(.map(
                        ioas: key, slot: slot, pages: pages, second: Bool.random(using: &rng),
                        offsetPages: UInt64.random(in: 0..<(SweepWorld.ramPages - 2), using: &rng)))
                }
                pinned[owner]! += pages
                layout[key, default: [:]][slot] = pages
            }
        }
        return steps
    }

    /// A random batch over that layout; `refusals` lets entries that may be refused in.
    static func batch(
        _ rng: inout StressRandom, ids: [String: ObjectID], layout: [String: [Int: UInt64]], count: Int, refusals: Bool
    ) -> [IOASUnmapParams] {
        var out: [IOASUnmapParams] = []
        var next: [String: Int] = [:]
        for _ in 0..<count {
            let key = ["X", "X", "X", "Y", "Y", "Z"].randomElement(using: &rng)!
            let ioas = ids[key]!
            var slot = next[key, default: 0]
            if slot >= slots || Int.random(in: 0..<10, using: &rng) == 0 { slot = Int.random(in: 0..<slots, using: &rng) }  // a jump
            let at = iova(slot)
            let tolerate: Bool? = refusals ? [true, true, true, nil, false].randomElement(using: &rng)! : true
            let roll = Int.random(in: 0..<100, using: &rng)
            switch roll {
            case 0..<62:  // one mapping, by its length
                out.append(IOASUnmapParams(ioas: ioas, iova: at, length: (layout[key]?[slot] ?? 1) * page, tolerateMissing: tolerate))
                next[key] = slot + 1
            case 62..<88:  // several slots
                let k = Int.random(in: 2...5, using: &rng)
                out.append(IOASUnmapParams(ioas: ioas, iova: at, length: UInt64(k) * slotPages * page, tolerateMissing: tolerate))
                next[key] = slot + k
            case 88..<92:  // the gap after a slot's mapping: nothing there
                out.append(IOASUnmapParams(ioas: ioas, iova: at + 2 * page, length: page, tolerateMissing: tolerate))
            case 92..<95:
                out.append(IOASUnmapParams(ioas: ioas, all: true))
            case 95..<97 where refusals:  // the second page of a slot: cuts a 2-page mapping still there
                out.append(IOASUnmapParams(ioas: ioas, iova: at + page, length: page, tolerateMissing: tolerate))
            case 97..<98 where refusals:  // unaligned
                out.append(IOASUnmapParams(ioas: ioas, iova: at + 512, length: page))
            case 98..<99 where refusals:  // no such IOAS
                out.append(IOASUnmapParams(ioas: 9999, iova: at, length: page))
            case 99 where refusals:  // neither a range nor all
                out.append(IOASUnmapParams(ioas: ioas, iova: at))
            default:
                out.append(IOASUnmapParams(ioas: ioas, iova: at, length: page, tolerateMissing: true))
            }
        }
        return out
    }

    /// The seeds: refusals in odd ones, `mmap` mappings in every fourth, a kernel failure in
    /// every fifth.
    @Test("a random batch does what its entries do one by one: results, error, records, journal", arguments: 0..<48)
    func randomBatch(_ seed: Int) throws {
        var rng = StressRandom(seed: 0x5eed_0000 + UInt64(seed))
        let ram = try memfd(pages: SweepWorld.ramPages), ram2 = try memfd(pages: SweepWorld.ramPages)
        defer {
            close(ram)
            close(ram2)
        }
        var layout: [String: [Int: UInt64]] = [:]
        let steps = Self.setup(&rng, layout: &layout)
        let without: Set<Feature> = seed % 4 == 3 ? [.ioasMapFile] : []
        let count = Int.random(in: 1...maxChannelEntries, using: &rng)
        let failAt: Int? = seed % 5 == 4 ? Int.random(in: 1...max(1, count / 2), using: &rng) : nil
        let entries = rng
        let run = BatchAgainstOneByOne<IOASUnmapParams, IOASUnmapResult>(
            without: without, failAt: failAt,
            setUp: { w in
                try w.owner("vm")
                try w.owner("vm2")
                try w.ioas("X")
                try w.ioas("Y")
                w.ids["Z"] = try w.broker.ioasCreate(w.caller, IOASCreateParams(owner: "vm2")).ioas
                for step in steps {
                    switch step {
                    case .map(let key, let slot, let pages, let second, let offset):
                        _ = try w.broker.ioasMap(
                            w.caller, IOASMapParams(ioas: try w.id(key), offset: offset * page, length: pages * page, iova: Self.iova(slot)),
                            fd: second ? ram2 : ram)
                    case .copy(let from, let to, let pages):
                        _ = try w.broker.ioasCopy(w.caller, IOASCopyParams(
                            dstIOAS: try w.id("Y"), srcIOAS: try w.id("X"), srcIOVA: Self.iova(from), length: pages * page, dstIOVA: Self.iova(to)))
                    }
                }
            },
            makeBatch: { w in
                var rng = entries
                return Self.batch(&rng, ids: w.ids, layout: layout, count: count, refusals: seed % 2 == 1)
            },
            one: { w, params in try w.broker.ioasUnmap(w.caller, params) },
            batch: { w, entries in
                let outcome = w.broker.ioasUnmapBatch(w.caller, entries)
                return (outcome.results, outcome.failure)
            })
        try run.check(ram: ram, "seed \(seed)")
    }
}

/// The channel's largest batch (`ChannelWire.maxEntries`; the broker tests do not link the channel).
private let maxChannelEntries = 256
