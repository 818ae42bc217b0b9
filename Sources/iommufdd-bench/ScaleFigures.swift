#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC

// MARK: Figure 8: many owners, many clients (issue 16, target 5)

/// Latency of `daemon.ping` and `ioas.info` seen by one client of a daemon with 10,000 owners
/// (one IOAS each), then also with 1,000 more connections open and each sending a ping every
/// 100 ms (a thousand VMMs, idle but alive), against the same requests to a second, empty daemon
/// in this process (the floor). Both daemons journal into a memfd, as iommufdd does.
///
/// How it compares (a shared 2-CPU machine moves single runs by ±30 %):
/// - the two daemons are asked in turn, request by request, and the order flips every round
///   (populated first, then empty first), so a burst of load and any first-or-second effect
///   (a worker still lingering from the other daemon's answer) hits both alike;
/// - `repetitions` runs of `rounds` rounds each; per repetition the median ratio (populated
///   median / empty median) and the p99 ratio; the figure's ratio is the median of those;
/// - `daemon.ping` never reaches the broker, so its ratio is the control: how far two equal
///   daemons differ in this run.
///
/// Twice: with the RPC server's linger as iommufdd runs it, then with the linger off. The
/// linger (RPCLinger.swift) answers a lone client's next request on the thread that answered
/// the last one, and spins first while spinning is cheap; whether a repetition's requests got
/// that fast path (17 µs instead of 25 on this machine) depends on the spin's pause state of
/// each server, and a daemon with 1,000 other clients lingers less (it lingers only while no
/// other connection's handler runs). Without it, both daemons answer by the same path, and the
/// owners' and clients' own cost shows alone.
func figureOwnersAndClients(_ report: Report, _ options: Options) throws {
    // replay: IOMMUFDD_BENCH_COMPACTION_ONLY=1 runs the compaction rows alone.
    if ProcessInfo.processInfo.environment["IOMMUFDD_BENCH_COMPACTION_ONLY"] != nil { return try figureCompaction(report, options) }
    try ownersAndClientsPass(report, options, lingerMicroseconds: nil, label: "", mutating: true)
    try ownersAndClientsPass(report, options, lingerMicroseconds: 0, label: ", linger off", mutating: false)
    try figureCompaction(report, options)  // replay: FigureCompaction.swift
}

private func ownersAndClientsPass(_ report: Report, _ options: Options, lingerMicroseconds: Int?, label: String, mutating: Bool) throws {
    let ownerCount = 10_000
    let clientCount = 1_000
    let repetitions = options.quick ? 3 : 7
    let rounds = options.iterations(2_000)
    print("Figure 8\(label): \(ownerCount) owners and \(clientCount) concurrent clients against an empty daemon (both journaling; \(repetitions) repetitions of \(rounds) rounds, order flipped every round; ratio = median over repetitions)")
    let daemon = try InProcessDaemon(path: temporarySocketPath("owners"), lingerMicroseconds: lingerMicroseconds)
    defer { daemon.stop() }
    let emptyDaemon = try InProcessDaemon(path: temporarySocketPath("owners-empty"), lingerMicroseconds: lingerMicroseconds)
    defer { emptyDaemon.stop() }
    let probe = try LineClient(path: daemon.path)
    let emptyProbe = try LineClient(path: emptyDaemon.path)
    let rpc = try RPCClient(path: daemon.path)
    defer { rpc.close() }
    let emptyRPC = try RPCClient(path: emptyDaemon.path)
    defer { emptyRPC.close() }
    let ioas = try makeOwnerAndIOAS(rpc, owner: "probe")
    let emptyIOAS = try makeOwnerAndIOAS(emptyRPC, owner: "probe")

    guard let caller = daemon.broker.resolve(uid: getuid(), gid: getgid(), pid: getpid()) else { throw BenchError("no caller") }
    let t0 = now()
    for o in 0..<ownerCount {
        let name = "owner-\(o)"
        _ = try daemon.broker.ownerCreate(caller, OwnerCreateParams(name: name))
        _ = try daemon.broker.ioasCreate(caller, IOASCreateParams(owner: name))
    }
    let created = Double(now() - t0) / 1e9
    // The journal goes on once the owners are there (its first record is the whole state):
    // made one by one with the journal on, each owner.create and ioas.create records the
    // whole state again (see the mutating row below), 20,000 times.
    try daemon.journalInMemfd()
    try emptyDaemon.journalInMemfd()
    let counts = daemon.broker.counts()
    guard counts.owners == ownerCount + 1 else { throw BenchError("the populated daemon has \(counts.owners) owners, not \(ownerCount + 1)") }

    let ping = requestLine("daemon.ping")
    let info = requestLine("ioas.info", "{\"ioas\":\(ioas)}")
    let emptyInfo = requestLine("ioas.info", "{\"ioas\":\(emptyIOAS)}")

    /// One request's samples on the populated daemon and on the empty one.
    struct Pair {
        var loaded = Samples()
        var empty = Samples()
    }
    /// `rounds` rounds (after 200 untimed): ping on both, then ioas.info on both, the daemon
    /// asked first alternating from round to round.
    func sample() throws -> (ping: Pair, info: Pair) {
        var p = Pair(), i = Pair()
        for k in 0..<(rounds + 200) {
            let loadedFirst = k % 2 == 0
            func time(_ client: LineClient, _ line: [UInt8]) throws -> UInt64 {
                let start = now()
                _ = try client.roundTrip(line)
                return now() - start
            }
            var lp: UInt64 = 0, ep: UInt64 = 0, li: UInt64 = 0, ei: UInt64 = 0
            if loadedFirst {
                lp = try time(probe, ping); ep = try time(emptyProbe, ping)
                li = try time(probe, info); ei = try time(emptyProbe, emptyInfo)
            } else {
                ep = try time(emptyProbe, ping); lp = try time(probe, ping)
                ei = try time(emptyProbe, emptyInfo); li = try time(probe, info)
            }
            if k >= 200 {
                p.loaded.add(lp); p.empty.add(ep)
                i.loaded.add(li); i.empty.add(ei)
            }
        }
        return (p, i)
    }
    func repeated() throws -> (ping: [Pair], info: [Pair]) {
        var pings: [Pair] = [], infos: [Pair] = []
        for _ in 0..<repetitions {
            let s = try sample()
            pings.append(s.ping)
            infos.append(s.info)
        }
        return (pings, infos)
    }
    func add(_ figure: String, _ reps: [Pair]) {
        addFlatnessRows(report, figure, reps.map { ($0.loaded, $0.empty) }, floorName: "empty daemon")
    }

    print("  made \(ownerCount) owners and IOAS in \(format(created)) s (before the journal went on); load \(loadAverage())")
    let owners = try repeated()
    add("daemon.ping with \(ownerCount) owners\(label) (control: never reaches the broker)", owners.ping)
    add("ioas.info with \(ownerCount) owners\(label)", owners.info)

    // A request that changes the state: ioas.create then ioas.destroy of the probe owner, on
    // each daemon in turn. Before journal format 3 (branch ownerjournal) each recorded the
    // whole state, 750x-910x; now the probe owner's slice (Benchmarks/RESULTS.md, target 5).
    if mutating {
        func createDestroy(_ client: RPCClient) throws -> UInt64 {
            let start = now()
            let created = try client.call("ioas.create", params: .object(["owner": .string("probe")]))
            guard let id = created.result.objectValue?["ioas"]?.int64Value else { throw BenchError("ioas.create answered \(created.result)") }
            _ = try client.call("ioas.destroy", params: .object(["ioas": .int(id)]))
            return now() - start
        }
        var reps: [(Samples, Samples)] = []
        for _ in 0..<repetitions {
            var loaded = Samples(), empty = Samples()
            for k in 0..<(options.quick ? 40 : 200) {
                if k % 2 == 0 {
                    loaded.add(try createDestroy(rpc)); empty.add(try createDestroy(emptyRPC))
                } else {
                    empty.add(try createDestroy(emptyRPC)); loaded.add(try createDestroy(rpc))
                }
            }
            reps.append((loaded, empty))
        }
        addFlatnessRows(report, "ioas.create + ioas.destroy with \(ownerCount) owners (the journal records the probe owner's slice)", reps, floorName: "empty daemon")
    }

    // 1,000 more connections, each pinging every 100 ms on one of a few threads.
    let clients = try (0..<clientCount).map { _ in try LineClient(path: daemon.path) }
    let stop = Atomic(0)
    let threads = 8
    let group = DispatchGroup()
    for t in 0..<threads {
        group.enter()
        let thread = Thread {
            let mine = stride(from: t, to: clients.count, by: threads).map { clients[$0] }
            while stop.load() == 0 {
                let round = now()
                for c in mine { _ = try? c.roundTrip(ping) }
                let spent = now() - round
                if spent < 100_000_000 { usleep(UInt32((100_000_000 - spent) / 1000)) }
            }
            group.leave()
        }
        thread.start()
    }
    usleep(300_000)
    print("  \(clientCount) clients connected to the populated daemon, pinging every 100 ms; load \(loadAverage())")
    let crowded = try repeated()
    stop.store(1)
    group.wait()
    add("daemon.ping with \(ownerCount) owners, \(clientCount) clients pinging every 100 ms\(label)", crowded.ping)
    add("ioas.info with \(ownerCount) owners, \(clientCount) clients\(label)", crowded.info)
}

/// Two rows for a request timed on a loaded and an empty daemon over several repetitions: the
/// median (ratio: the median over repetitions of loaded median / empty median) and the p99
/// (the same with p99s). Values are of all repetitions' samples pooled; the per-repetition
/// ratios are printed, so a single odd repetition shows.
func addFlatnessRows(_ report: Report, _ figure: String, _ reps: [(loaded: Samples, empty: Samples)], floorName: String, target: Target = .ratioAtMost(1.2)) {
    var loaded = Samples(), empty = Samples()
    for r in reps {
        for v in r.loaded.values { loaded.add(UInt64(v)) }
        for v in r.empty.values { empty.add(UInt64(v)) }
    }
    let medianRatios = reps.map { $0.loaded.median / $0.empty.median }
    let p99Ratios = reps.map { $0.loaded.p99 / $0.empty.p99 }
    func middle(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    }
    func listed(_ values: [Double]) -> String { values.map { format($0) }.joined(separator: " ") }
    let medianRatio = middle(medianRatios)
    let p99Ratio = middle(p99Ratios)
    let met: Bool? = if case .ratioAtMost(let r) = target { medianRatio <= r } else { nil }
    report.add(Row(
        figure: figure, value: "median \(formatNanos(loaded.median)) (ratios by repetition \(listed(medianRatios)))",
        floor: "\(formatNanos(empty.median)) \(floorName)", ratio: medianRatio, target: target, met: met))
    report.add(Row(
        figure: "  p99 of the same", value: "p99 \(formatNanos(loaded.p99)) (ratios by repetition \(listed(p99Ratios)))",
        floor: "\(formatNanos(empty.p99)) \(floorName)", ratio: p99Ratio, target: .none, met: nil))
}

func loadAverage() -> String {
    firstLine(of: "/proc/loadavg", containing: "").map { $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? "?"
}
