#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdRPC

// MARK: pinggap: figure 1's daemon side (linger counters, CPU per request) and the steady client

/// What the daemon did over one phase of figure 1: its RPC linger counters (`daemon.metrics`'
/// `iommufdd_rpc_*`, or the in-process server's) and, for a daemon process, its CPU time.
struct DaemonSide {
    /// The linger counters by short name (`lingers`, `spins`, ...); empty when the daemon has
    /// none (a build before branch pinggap).
    var counters: [String: Double] = [:]
    /// CPU time of the whole daemon process, ns (nil in process).
    var cpu: UInt64?

    static let names: [(metric: String, key: String)] = [
        ("iommufdd_rpc_lingers_total", "lingers"), ("iommufdd_rpc_spins_total", "spins"),
        ("iommufdd_rpc_spin_hits_total", "spin hits"), ("iommufdd_rpc_linger_sleeps_total", "sleeps"),
        ("iommufdd_rpc_linger_sleep_hits_total", "sleep hits"), ("iommufdd_rpc_spin_lost_cpu_total", "lost CPU"),
        ("iommufdd_rpc_spin_paused_total", "paused"),
    ]

    static func - (a: DaemonSide, b: DaemonSide) -> DaemonSide {
        var d = DaemonSide()
        for (k, v) in a.counters { if let w = b.counters[k] { d.counters[k] = v - w } }
        if let x = a.cpu, let y = b.cpu { d.cpu = x &- y }
        return d
    }

    /// "N lingers: S spins (H found the request), Z sleeps (W woken by it), L lost the CPU, P
    /// paused; daemon CPU X a request" for `requests` requests.
    func words(requests: Int) -> String {
        var parts: [String] = []
        if let l = counters["lingers"] {
            func n(_ k: String) -> Int { Int(counters[k] ?? 0) }
            parts.append("\(Int(l)) lingers: \(n("spins")) spins (\(n("spin hits")) found the request), \(n("sleeps")) sleeps (\(n("sleep hits")) woken by the request), \(n("lost CPU")) spins lost the CPU, \(n("paused")) quick waits not spun (paused)")
        } else {
            parts.append("no linger counters (daemon before branch pinggap)")
        }
        if let cpu { parts.append("daemon CPU \(formatNanos(Double(cpu) / Double(max(requests, 1)))) a request") }
        return parts.joined(separator: "; ")
    }
}

/// Reads `DaemonSide` of an `iommufdd` process (by `daemon.metrics` and its CPU clock) or of an
/// RPC server in this process.
final class DaemonSideProbe {
    private let client: RPCClient?
    private let server: RPCServer?
    private let pid: pid_t?

    init(metricsSocket: String, pid: pid_t) {
        client = try? RPCClient(path: metricsSocket)
        server = nil
        self.pid = pid
    }

    init(server: RPCServer) {
        client = nil
        self.server = server
        pid = nil
    }

    deinit { client?.close() }

    func read() -> DaemonSide {
        var side = DaemonSide()
        if let pid { side.cpu = processCPUNanoseconds(pid) }
        if let server {
            let c = server.lingerCounters
            side.counters = ["lingers": Double(c.waits), "spins": Double(c.spin.spins), "spin hits": Double(c.spin.hits),
                             "sleeps": Double(c.sleeps), "sleep hits": Double(c.sleepHits),
                             "lost CPU": Double(c.spin.lostCPU), "paused": Double(c.spin.paused)]
        } else if let client, let text = (try? client.call("daemon.metrics"))?.result.objectValue?["text"]?.stringValue {
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                for (metric, key) in DaemonSide.names where line.hasPrefix(metric + " ") {
                    side.counters[key] = Double(line.dropFirst(metric.count + 1))
                }
            }
        }
        return side
    }
}

/// CPU time (user + system, every thread) of process `pid`, ns; nil if it cannot be read.
func processCPUNanoseconds(_ pid: pid_t) -> UInt64? {
    var clock = clockid_t()
    guard clock_getcpuclockid(pid, &clock) == 0 else { return nil }
    var t = timespec()
    guard clock_gettime(clock, &t) == 0 else { return nil }
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

/// The steady client: the servers take turns in blocks of `block` back-to-back round trips
/// (the first server of each turn rotates), so each sees a client that comes straight back
/// after its answer, as a VM manager's sequence of requests does. `rounds` turns each after
/// `warmRounds` untimed ones. Returns each server's samples.
func steadyRoundTrips(_ clients: [LineClient], request: [UInt8], block: Int, rounds: Int, warmRounds: Int = 2) throws -> [Samples] {
    var samples = Array(repeating: Samples(), count: clients.count)
    for round in 0..<(rounds + warmRounds) {
        for k in 0..<clients.count {
            let index = (round + k) % clients.count
            let client = clients[index]
            for _ in 0..<block {
                let t0 = now()
                try client.roundTrip(request)
                if round >= warmRounds { samples[index].add(now() - t0) }
            }
        }
    }
    return samples
}
