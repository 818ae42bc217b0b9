#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdCore

// MARK: replay
// Figure 8, compaction rows: what a journal compaction costs at 1,000 and 10,000 owners (issue 16,
// target 5). A compaction writes the whole state, one slice per owner and the global one in one
// `stateSet` record, then every mapping in `mapBatch` records, into a new memfd. It runs inside
// the commit of the request whose records took the log past four times its size after the last
// compaction (and past 16 MiB), under the broker's lock: that request, and every request of any
// owner that arrives meanwhile, waits for it. Each owner here has one IOAS with one 4 KiB
// mapping. The floor: one `pwrite` of as many bytes into a fresh memfd (the write alone).

/// Compaction time (median of `runs`) and journal size at `owners` owners.
func compactionRow(_ report: Report, _ options: Options, owners ownerCount: Int) throws {
    let daemon = try InProcessDaemon(path: temporarySocketPath("compaction"))
    defer { daemon.stop() }
    guard let caller = daemon.broker.resolve(uid: getuid(), gid: getgid(), pid: getpid()) else { throw BenchError("no caller") }
    let ram = try makeMemfd(size: 4096)
    defer { close(ram) }
    try daemon.journalInMemfd()
    for o in 0..<ownerCount {
        let name = "owner-\(o)"
        _ = try daemon.broker.ownerCreate(caller, OwnerCreateParams(name: name))
        let ioas = try daemon.broker.ioasCreate(caller, IOASCreateParams(owner: name)).ioas
        _ = try daemon.broker.ioasMap(caller, IOASMapParams(ioas: ioas, length: 4096, iova: 1 << 30), fd: ram)
    }
    let runs = options.quick ? 3 : 9
    var samples = Samples()
    var floor = Samples()
    var bytes = 0
    for _ in 0..<runs {
        guard let cost = try daemon.broker.compactJournalNow() else { throw BenchError("the in-process daemon has no journal") }
        samples.add(cost.nanoseconds)
        bytes = cost.bytes
        // The floor, alternating with the compactions: the same number of bytes in one pwrite.
        let fd = try makeMemfd(size: 0)
        let buffer = [UInt8](repeating: 0x5a, count: bytes)
        let t0 = now()
        let n = buffer.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        floor.add(now() - t0)
        close(fd)
        guard n == bytes else { throw BenchError.errno("pwrite") }
    }
    let ms = samples.median / 1e6
    report.add(Row(
        figure: "journal compaction, \(ownerCount) owners (\(formatBytes(Double(bytes))); p99 \(formatNanos(samples.percentile(99))))",
        value: formatNanos(samples.median), floor: "\(formatNanos(floor.median)) pwrite of as many bytes",
        ratio: samples.median / floor.median, target: .atMost(100, "ms"), met: ms <= 100))
}

/// The compaction rows of figure 8.
func figureCompaction(_ report: Report, _ options: Options) throws {
    print("Figure 8, compaction: one journal compaction (under the broker's lock) at 1,000 and 10,000 owners of one IOAS and one mapping each; median of \(options.quick ? 3 : 9)")
    for owners in [1_000, 10_000] { try compactionRow(report, options, owners: owners) }
}
