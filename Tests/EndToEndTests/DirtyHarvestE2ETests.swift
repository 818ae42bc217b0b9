import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `dirty.read` loses nothing and reports nothing twice, against the real `iommufdd` on the
/// simulator: random device writes (`sim.dma`) against random reads (`max_runs`, `page_size`,
/// `format`, `clear`, ranges that start in a hole), checked against a model of which pages are
/// dirty since they were last reported.
///
/// The guest memory is two mappings with a hole between them, so every read that spans the hole
/// also shows that the daemon reads past it (the kernel's own read stops silently at a hole).
@Suite("End to end: dirty harvest loses no page")
struct DirtyHarvestE2ETests {
    static let base: UInt64 = 0x100_0000
    static let first = (start: base, pages: UInt64(256))
    static let hole: UInt64 = 64 * pageSize
    static var second: (start: UInt64, pages: UInt64) { (first.start + first.pages * pageSize + hole, 192) }
    static var end: UInt64 { second.start + second.pages * pageSize }
    /// Bitmap page sizes tried: every mapping bound is a multiple of each.
    static let pageSizes: [UInt64] = [2048, 4096, 16384, 65536]

    /// A running daemon with vm-h: one IOAS (huge pages off: a write dirties one 4 KiB page),
    /// the two mappings, sim-pci0 attached with dirty tracking, tracking started.
    struct Harness {
        let daemon: DaemonProcess
        let client: RPCClient
        let ioas: Int64

        init() throws {
            daemon = try DaemonProcess()
            client = try daemon.client()
            try client.call("owner.create", ["name": "vm-h", "dirty": "required"])
            ioas = try #require(try client.call("ioas.create", ["owner": "vm-h", "huge_pages": false])["ioas"]?.int)
            for part in [DirtyHarvestE2ETests.first, DirtyHarvestE2ETests.second] {
                let ram = try makeMemfd(bytes: Int(part.pages * pageSize))
                defer { close(ram) }
                try client.call("ioas.map", [
                    "ioas": .int(ioas), "fd": ["fd": 0], "offset": 0, "length": .unsigned(part.pages * pageSize), "iova": .unsigned(part.start),
                ], fds: [ram])
            }
            try client.call("device.attach", ["owner": "vm-h", "device": "sim-pci0", "ioas": .int(ioas)])
            try client.call("dirty.start", ["ioas": .int(ioas)])
        }

        func dma(_ client: RPCClient? = nil, page: UInt64, count: UInt64 = 1) throws {
            try (client ?? self.client).call("sim.dma", ["device": "sim-pci0", "iova": .unsigned(page * pageSize), "length": .unsigned(count * pageSize)])
        }

        /// One `dirty.read`: the IOVAs of the bitmap pages it reports, and where to resume.
        /// `compact`: runs as `packed_runs`; a bitmap written into a memfd sent with the read (`into`).
        func read(iova: UInt64, length: UInt64, pageSize p: UInt64, clear: Bool, bitmap: Bool, maxRuns: Int?, compact: Bool = false) throws -> (pages: [UInt64], resume: UInt64?) {
            var params: [String: JSONValue] = [
                "ioas": .int(ioas), "iova": .unsigned(iova), "length": .unsigned(length), "page_size": .unsigned(p), "clear": .bool(clear),
                "format": bitmap ? "bitmap" : compact ? "packed_runs" : "runs",
            ]
            if let maxRuns { params["max_runs"] = .int(Int64(maxRuns)) }
            var into: Int32 = -1
            if bitmap && compact {
                into = try makeMemfd(bytes: Int((length / p + 63) / 64 * 8))
                params["into"] = ["fd": 0]
            }
            defer { if into >= 0 { close(into) } }
            let (answer, received) = try client.call("dirty.read", params: .object(params), fds: into >= 0 ? [into] : [], timeout: .seconds(60))
            defer { for fd in received { close(fd) } }
            let fds = into >= 0 ? [into] : received
            if into >= 0 { #expect(received.isEmpty && answer["bitmap"] == nil, "a read into the client's memfd answers no fd: \(answer)") }
            #expect(answer["clear_failures"] == nil, "no clearing read failed: \(answer)")
            var pages: [UInt64] = []
            if bitmap {
                let fd = try #require(fds.first)
                let bytes = Int(try #require(answer["bitmap_bytes"]?.int))
                var words = [UInt64](repeating: 0, count: bytes / 8)
                let n = words.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
                #expect(n == bytes)
                for (w, word) in words.enumerated() where word != 0 {
                    for bit in 0..<64 where word & (UInt64(1) << UInt64(bit)) != 0 { pages.append(iova + UInt64(w * 64 + bit) * p) }
                }
                return (pages, nil)
            }
            var runs: [(UInt64, UInt64)] = []
            if compact {
                #expect(answer["runs"] == nil)
                let packed = try #require(answer["packed_runs"]?.stringValue)
                let unpacked = try #require(DirtyRunPacking.unpack(packed, base: iova, pageSize: p))
                #expect(answer["run_count"]?.int == Int64(unpacked.count))
                runs = unpacked.map { ($0.iova, $0.length) }
            } else {
                for run in answer["runs"]?.arrayValue ?? [] { runs.append((try #require(run["iova"]?.uint), try #require(run["length"]?.uint))) }
            }
            for (start, len) in runs {
                #expect(start % p == 0 && len % p == 0 && len > 0)
                pages.append(contentsOf: stride(from: start, to: start + len, by: Int(p)).map { $0 })
            }
            #expect(answer["dirty_pages"]?.uint == UInt64(pages.count), "dirty_pages counts the pages of the runs")
            return (pages, answer["resume_iova"]?.uint)
        }
    }

    /// The model: 4 KiB pages written since a clearing read last reported them.
    struct Model {
        var dirty = Set<UInt64>()  // IOVAs of 4 KiB pages

        /// Bitmap pages of size `p` in `[lo, hi)` that hold a dirty 4 KiB page.
        func expected(_ lo: UInt64, _ hi: UInt64, _ p: UInt64) -> Set<UInt64> {
            Set(dirty.filter { $0 + pageSize > lo && $0 < hi }.map { max($0 / p * p, lo) }.flatMap { start -> [UInt64] in
                // A 4 KiB page covers several bitmap pages when p < 4 KiB.
                p >= pageSize ? [start] : stride(from: start, to: start + pageSize, by: Int(p)).map { $0 }
            })
        }

        mutating func cleared(_ lo: UInt64, _ hi: UInt64) { dirty = dirty.filter { !($0 >= lo && $0 < hi) } }
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func randomWritesAndReads(seed: UInt64) throws {
        let h = try Harness()
        var rng = SplitMix64(seed: seed)
        var model = Model()
        let mapped = (0..<Self.first.pages).map { Self.first.start / pageSize + $0 } + (0..<Self.second.pages).map { Self.second.start / pageSize + $0 }

        for round in 0..<12 {
            // Random writes: single pages and short runs, anywhere in either mapping.
            for _ in 0..<Int.random(in: 1...40, using: &rng) {
                let page = mapped[Int.random(in: 0..<mapped.count, using: &rng)]
                let count = min(UInt64.random(in: 1...5, using: &rng), mapped.filter { $0 >= page }.prefix(5).count == 5 ? 5 : 1)
                let pages = (0..<count).map { page + $0 }
                guard pages.allSatisfy({ mapped.contains($0) }) else { continue }
                try h.dma(page: page, count: count)
                for p in pages { model.dirty.insert(p * pageSize) }
            }
            // A harvest: from the start (or from inside the hole) to the end, resuming while the
            // answer says so, maybe with a peek (no clear) first; sometimes a write in between.
            let p = Self.pageSizes[Int.random(in: 0..<Self.pageSizes.count, using: &rng)]
            let bitmap = Int.random(in: 0..<4, using: &rng) == 0
            let maxRuns: Int? = Bool.random(using: &rng) ? Int.random(in: 1...6, using: &rng) : nil
            var iova = Bool.random(using: &rng) ? Self.base : Self.first.start + Self.first.pages * pageSize + Self.hole / 2 / p * p
            let compact = Bool.random(using: &rng)
            let what = "seed \(seed) round \(round): page_size \(p), \(bitmap ? "bitmap" : "runs")\(compact ? (bitmap ? " into a memfd" : " packed") : ""), max_runs \(maxRuns.map(String.init) ?? "-")"
            if Bool.random(using: &rng) {
                let peek = try h.read(iova: iova, length: Self.end - iova, pageSize: p, clear: false, bitmap: bitmap, maxRuns: maxRuns, compact: compact)
                let hi = peek.resume ?? Self.end
                expectSame(peek.pages, model.expected(iova, hi, p), "\(what): a read without clear reports what is dirty")
                #expect(peek.pages.count == Set(peek.pages).count)
            }
            var reads = 0
            while true {
                let r = try h.read(iova: iova, length: Self.end - iova, pageSize: p, clear: true, bitmap: bitmap, maxRuns: maxRuns, compact: compact)
                let hi = r.resume ?? Self.end
                #expect(hi > iova && hi <= Self.end, "\(what): resume_iova 0x\(String(hi, radix: 16)) moves forward")
                #expect(r.pages.count == Set(r.pages).count, "\(what): no page twice in one answer")
                expectSame(r.pages, model.expected(iova, hi, p), "\(what), read \(reads) from 0x\(String(iova, radix: 16)): every page dirty before resume_iova, and nothing else")
                model.cleared(iova / p * p, hi)
                reads += 1
                guard hi < Self.end, hi > iova, reads < 10_000 else { break }
                if Int.random(in: 0..<3, using: &rng) == 0 {  // a write between two reads of one harvest
                    let page = mapped[Int.random(in: 0..<mapped.count, using: &rng)]
                    try h.dma(page: page)
                    model.dirty.insert(page * pageSize)
                }
                iova = hi
            }
        }
        // Whatever is still dirty comes out of one full read.
        let last = try h.read(iova: Self.base, length: Self.end - Self.base, pageSize: pageSize, clear: true, bitmap: false, maxRuns: nil)
        expectSame(last.pages, model.expected(Self.base, Self.end, pageSize), "seed \(seed): the final full read")
    }

    /// The issue's reproduction: every 7th page of a 64 MiB mapping dirty (2,341 pages), read
    /// with `max_runs` 100 and resumed until done. All 2,341 come back, each once.
    /// `into` is refused, before anything is read or cleared, unless the read is a bitmap and the
    /// fd a writable memfd; the error says what to send instead.
    @Test func intoTakesOnlyAWritableMemfdForABitmap() throws {
        let h = try Harness()
        try h.dma(page: Self.first.start / pageSize)
        func refusal(_ format: String, _ fd: Int32) -> RPCError? {
            let params: JSONValue = [
                "ioas": .int(h.ioas), "iova": .unsigned(Self.base), "length": .unsigned(Self.end - Self.base), "format": .string(format),
                "into": ["fd": 0],
            ]
            do {
                _ = try h.client.call("dirty.read", params: params, fds: [fd], timeout: .seconds(30))
                return nil
            } catch let error as RPCError {
                return error
            } catch {
                Issue.record("not an RPC error: \(error)")
                return nil
            }
        }
        let memfd = try makeMemfd(bytes: 1 << 20)
        defer { close(memfd) }
        let runs = refusal("runs", memfd)
        #expect(runs?.code == -32602 && runs?.message.contains("format") == true, "\(String(describing: runs))")
        var pipeFDs: [Int32] = [-1, -1]
        try #require(pipe(&pipeFDs) == 0)
        defer { close(pipeFDs[0]); close(pipeFDs[1]) }
        let notMemfd = refusal("bitmap", pipeFDs[1])
        #expect(notMemfd?.code == -32602 && notMemfd?.message.contains("memfd_create") == true, "\(String(describing: notMemfd))")
        // Nothing was cleared by the refused reads.
        let after = try h.read(iova: Self.base, length: Self.end - Self.base, pageSize: pageSize, clear: true, bitmap: false, maxRuns: nil)
        #expect(after.pages == [Self.first.start])
    }

    @Test func everySeventhPageAtMaxRuns100() throws {
        let daemon = try DaemonProcess()
        let c = try daemon.client()
        try c.call("owner.create", ["name": "vm-7", "dirty": "required"])
        let ioas = try #require(try c.call("ioas.create", ["owner": "vm-7", "huge_pages": false])["ioas"]?.int)
        let length: UInt64 = 64 << 20
        let ram = try makeMemfd(bytes: Int(length))
        defer { close(ram) }
        try c.call("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 0], "offset": 0, "length": .unsigned(length), "iova": .unsigned(Self.base)], fds: [ram])
        try c.call("device.attach", ["owner": "vm-7", "device": "sim-pci0", "ioas": .int(ioas)])
        try c.call("dirty.start", ["ioas": .int(ioas)])
        var written = Set<UInt64>()
        for page in stride(from: UInt64(0), to: length / pageSize, by: 7) {
            try c.call("sim.dma", ["device": "sim-pci0", "iova": .unsigned(Self.base + page * pageSize), "length": .unsigned(pageSize)])
            written.insert(Self.base + page * pageSize)
        }
        #expect(written.count == 2341)
        var reported: [UInt64] = []
        var iova = Self.base
        var reads = 0
        while reads < 1000 {
            let r = try c.call("dirty.read", ["ioas": .int(ioas), "iova": .unsigned(iova), "length": .unsigned(Self.base + length - iova), "max_runs": 100])
            for run in r["runs"]?.arrayValue ?? [] {
                let start = try #require(run["iova"]?.uint), len = try #require(run["length"]?.uint)
                reported.append(contentsOf: stride(from: start, to: start + len, by: Int(pageSize)).map { $0 })
            }
            reads += 1
            guard let resume = r["resume_iova"]?.uint else { break }
            iova = resume
        }
        #expect(reported.count == 2341, "every dirty page reported, none twice (\(reported.count) in \(reads) reads)")
        expectSame(reported, written, "the pages reported over \(reads) reads")
    }

    /// A device keeps writing while a migration harvests: each of 3,000 distinct pages is written
    /// once by another client, in random order, during reads with a small `max_runs`; after the
    /// writer stops, one more harvest. Every page is reported exactly once.
    @Test func writesDuringTheHarvestAreReportedOnce() throws {
        let h = try Harness()
        let writer = try h.daemon.client()
        var rng = SplitMix64(seed: 77)
        let pages = ((0..<Self.first.pages).map { Self.first.start / pageSize + $0 } + (0..<Self.second.pages).map { Self.second.start / pageSize + $0 })
        let order = pages.shuffled(using: &rng)
        let done = Locked(false)
        let failure = Locked(false)
        let job = Unchecked((h, writer))
        let thread = Thread {
            defer { done.withLock { $0 = true } }
            let (h, writer) = job.value
            for page in order {
                do { try h.dma(writer, page: page) } catch { failure.withLock { $0 = true }; return }
            }
        }
        thread.start()
        var reported: [UInt64] = []
        func harvest(maxRuns: Int) throws {
            var iova = Self.base
            while true {
                let r = try h.read(iova: iova, length: Self.end - iova, pageSize: pageSize, clear: true, bitmap: false, maxRuns: maxRuns)
                reported.append(contentsOf: r.pages)
                guard let resume = r.resume else { return }
                iova = resume
            }
        }
        var harvests = 0
        while !done.withLock({ $0 }) {
            try harvest(maxRuns: 3)
            harvests += 1
        }
        try harvest(maxRuns: 3)
        #expect(!failure.withLock { $0 }, "the writer's sim.dma calls succeeded")
        #expect(reported.count == pages.count, "\(reported.count) pages reported over \(harvests + 1) harvests for \(pages.count) written once each")
        expectSame(reported, Set(pages.map { $0 * pageSize }), "the pages reported over \(harvests + 1) harvests")
    }
}

/// `reported` is `expected` (as a set), with the difference spelled out briefly when not.
func expectSame(_ reported: [UInt64], _ expected: Set<UInt64>, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let got = Set(reported)
    let missing = expected.subtracting(got).sorted(), extra = got.subtracting(expected).sorted()
    func hex(_ list: [UInt64]) -> String { list.prefix(5).map { "0x" + String($0, radix: 16) }.joined(separator: ", ") + (list.count > 5 ? ", ..." : "") }
    #expect(missing.isEmpty && extra.isEmpty,
            "\(what): \(missing.count) dirty pages not reported (\(hex(missing))), \(extra.count) reported but not dirty (\(hex(extra))) of \(expected.count)",
            sourceLocation: sourceLocation)
}

