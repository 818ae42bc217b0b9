#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC

// MARK: Figure 8: many owners, many clients (issue 16, target 5)

/// Latency of `daemon.ping` and `ioas.info` seen by one client of a daemon with 10,000 owners,
/// then also with 1,000 more connections open and each sending a ping every 100 ms (a thousand
/// VMMs, idle but alive), against the same requests to a second, empty daemon in this process
/// (the floor). The two are asked in turn, request by request, so both see the same load.
func figureOwnersAndClients(_ report: Report, _ options: Options) throws {
    let ownerCount = 10_000
    let clientCount = 1_000
    print("Figure 8: \(ownerCount) owners and \(clientCount) concurrent clients against an empty daemon")
    let daemon = try InProcessDaemon(path: temporarySocketPath("owners"))
    defer { daemon.stop() }
    let emptyDaemon = try InProcessDaemon(path: temporarySocketPath("owners-empty"))
    defer { emptyDaemon.stop() }
    let probe = try LineClient(path: daemon.path)
    let emptyProbe = try LineClient(path: emptyDaemon.path)
    let rpc = try RPCClient(path: daemon.path)
    defer { rpc.close() }
    let emptyRPC = try RPCClient(path: emptyDaemon.path)
    defer { emptyRPC.close() }
    let ioas = try makeOwnerAndIOAS(rpc, owner: "probe")
    let emptyIOAS = try makeOwnerAndIOAS(emptyRPC, owner: "probe")
    let ping = requestLine("daemon.ping")
    let info = requestLine("ioas.info", "{\"ioas\":\(ioas)}")
    let emptyInfo = requestLine("ioas.info", "{\"ioas\":\(emptyIOAS)}")
    let n = options.iterations(5_000)

    /// (ping, info) on the populated daemon and on the empty one, interleaved.
    func sample() throws -> (ping: Samples, info: Samples, emptyPing: Samples, emptyInfo: Samples) {
        var p = Samples(), i = Samples(), ep = Samples(), ei = Samples()
        for k in 0..<(n + 200) {
            let t0 = now()
            _ = try probe.roundTrip(ping)
            let t1 = now()
            _ = try emptyProbe.roundTrip(ping)
            let t2 = now()
            _ = try probe.roundTrip(info)
            let t3 = now()
            _ = try emptyProbe.roundTrip(emptyInfo)
            let t4 = now()
            if k >= 200 {
                p.add(t1 - t0)
                ep.add(t2 - t1)
                i.add(t3 - t2)
                ei.add(t4 - t3)
            }
        }
        return (p, i, ep, ei)
    }

    guard let caller = daemon.broker.resolve(uid: getuid(), gid: getgid(), pid: getpid()) else { throw BenchError("no caller") }
    let t0 = now()
    for o in 0..<ownerCount {
        let name = "owner-\(o)"
        _ = try daemon.broker.ownerCreate(caller, OwnerCreateParams(name: name))
        _ = try daemon.broker.ioasCreate(caller, IOASCreateParams(owner: name))
    }
    let created = Double(now() - t0) / 1e9
    let owners = try sample()
    report.latency("daemon.ping with \(ownerCount) owners (made in \(format(created)) s)", owners.ping, floor: owners.emptyPing.median, floorName: "empty daemon", target: .ratioAtMost(1.2), p99: true)
    report.latency("ioas.info with \(ownerCount) owners", owners.info, floor: owners.emptyInfo.median, floorName: "empty daemon", target: .ratioAtMost(1.2), p99: true)

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
    let crowded = try sample()
    stop.store(1)
    group.wait()
    report.latency("daemon.ping with \(ownerCount) owners, \(clientCount) clients pinging every 100 ms", crowded.ping, floor: crowded.emptyPing.median, floorName: "empty daemon", target: .ratioAtMost(1.2), p99: true)
    report.latency("ioas.info with \(ownerCount) owners, \(clientCount) clients", crowded.info, floor: crowded.emptyInfo.median, floorName: "empty daemon", target: .ratioAtMost(1.2), p99: true)
}
