#if canImport(Glibc)
import Glibc
#endif
import IommufdCore
import Testing
import IommufdContract

@testable import IommufdBroker

/// `ioasMapBatch` against the same entries sent one `ioas.map` at a time, over random batches:
/// two identical worlds (a broker with its journal over a fault-injecting simulator), one mapping
/// the batch, the other entry by entry (`BatchAgainstOneByOne`). Both must give the same results
/// and error, leave the same records, pinned bytes, memory-file references and simulator state,
/// and journals that replay to the same mappings through the same changes (the batch's in one
/// record a group), each reading back as its broker's records. The batches mix fixed
/// IOVAs in ascending order, IOVAs the kernel chooses, jumps back onto taken IOVAs (EEXIST), two
/// memory files, two owners, and in some seeds refusals of the parameters (unaligned, beyond the
/// file, neither readable nor writeable, no such IOAS), a small quota, a kernel failure at a
/// random map, or the `mmap` path (a kernel without `IOMMU_IOAS_MAP_FILE`). Issue 16 target 2.
@Suite("IOAS: batched map against one by one, random batches")
struct MapBatchPropertyTests {
    static let ramPages: UInt64 = 1024
    static let slotPages: UInt64 = 4
    static let base: UInt64 = 0x100_0000

    static func iova(_ slot: Int) -> UInt64 { base + UInt64(slot) * slotPages * page }

    /// A random batch; `fds` are the two memory files, `refusals` lets in entries that may be refused.
    /// `chosen`: some entries let the kernel choose the IOVA (not on the `mmap` path, where it
    /// follows the alignment of the daemon's own mapping, which differs from run to run).
    static func batch(
        _ rng: inout StressRandom, ids: [String: ObjectID], fds: (Int32, Int32), count: Int, refusals: Bool, chosen: Bool
    ) -> [(params: IOASMapParams, fd: Int32)] {
        var out: [(params: IOASMapParams, fd: Int32)] = []
        var next: [String: Int] = [:]
        for _ in 0..<count {
            let key = ["X", "X", "X", "Y", "Y", "Z"].randomElement(using: &rng)!
            var slot = next[key, default: 0]
            if Int.random(in: 0..<20, using: &rng) == 0 { slot = Int.random(in: 0..<max(1, slot), using: &rng) }  // back: maybe taken
            next[key] = max(next[key, default: 0], slot + 1)
            let pages = UInt64.random(in: 1...3, using: &rng)
            var params = IOASMapParams(
                ioas: ids[key]!, offset: UInt64.random(in: 0..<(ramPages - 3), using: &rng) * page, length: pages * page,
                iova: Int.random(in: 0..<10, using: &rng) == 0 && chosen ? nil : iova(slot),
                readable: Int.random(in: 0..<8, using: &rng) == 0 ? false : nil, writeable: Int.random(in: 0..<8, using: &rng) == 0 ? false : nil)
            if params.readable == false && params.writeable == false && !refusals { params.writeable = true }
            if refusals {
                switch Int.random(in: 0..<100, using: &rng) {
                case 0: params.offset += page / 2  // unaligned
                case 1: params.offset = ramPages * page  // beyond the end of the file
                case 2: params.ioas = 9999
                case 3: params.length = 0
                default: break
                }
            }
            out.append((params, Bool.random(using: &rng) ? fds.0 : fds.1))
        }
        return out
    }

    /// The seeds: refusals in odd ones, a 64-page quota in every third, `mmap` mappings in
    /// every fourth, a kernel failure in every fifth.
    @Test("a random batch does what its entries do one by one: results, error, records, journal", arguments: 0..<48)
    func randomBatch(_ seed: Int) throws {
        var rng = StressRandom(seed: 0x3a9_0000 + UInt64(seed))
        let ram = try memfd(pages: Self.ramPages), ram2 = try memfd(pages: Self.ramPages)
        defer {
            close(ram)
            close(ram2)
        }
        let without: Set<Feature> = seed % 4 == 3 ? [.ioasMapFile] : []
        let quota: UInt64 = seed % 3 == 2 ? 64 : 4096
        let count = Int.random(in: 1...256, using: &rng)
        let failAt: Int? = seed % 5 == 4 ? Int.random(in: 1...max(1, count / 2), using: &rng) : nil
        // Mappings already there: some of the slots the batch maps (EEXIST).
        let taken = (0..<8).map { _ in (["X", "Y", "Z"].randomElement(using: &rng)!, Int.random(in: 0..<64, using: &rng)) }
        let entries = rng
        let run = BatchAgainstOneByOne<(params: IOASMapParams, fd: Int32), IOASMapResult>(
            without: without, quotaPages: quota, failAt: failAt,
            setUp: { w in
                try w.owner("vm")
                try w.owner("vm2")
                try w.ioas("X")
                try w.ioas("Y")
                w.ids["Z"] = try w.broker.ioasCreate(w.caller, IOASCreateParams(owner: "vm2")).ioas
                for (key, slot) in taken {
                    _ = try? w.broker.ioasMap(w.caller, IOASMapParams(ioas: try w.id(key), offset: 0, length: page, iova: Self.iova(slot) + page), fd: ram)
                }
            },
            makeBatch: { w in
                var rng = entries
                return Self.batch(&rng, ids: w.ids, fds: (ram, ram2), count: count, refusals: seed % 2 == 1, chosen: without.isEmpty)
            },
            one: { w, entry in try w.broker.ioasMap(w.caller, entry.params, fd: entry.fd) },
            batch: { w, entries in
                let outcome = w.broker.ioasMapBatch(w.caller, entries)
                return (outcome.results, outcome.failure)
            })
        try run.check(ram: ram, "seed \(seed)")
    }
}
