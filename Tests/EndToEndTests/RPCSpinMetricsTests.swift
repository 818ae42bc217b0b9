import Foundation
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: pinggap

/// The control socket's linger and spin as `daemon.metrics` shows them (`iommufdd_rpc_*`),
/// against the real `iommufdd`: a client sending requests back to back makes the worker linger
/// and (by default) spin; with `rpc_spin_us = 0` it lingers without spinning; with
/// `rpc_linger_us = 0` it never lingers. Counted, not timed.
@Suite("End to end: the RPC linger and spin in daemon.metrics")
struct RPCSpinMetricsTests {
    static let names = ["iommufdd_rpc_lingers_total", "iommufdd_rpc_spins_total", "iommufdd_rpc_spin_hits_total",
                        "iommufdd_rpc_spin_lost_cpu_total", "iommufdd_rpc_spin_paused_total",
                        "iommufdd_rpc_linger_sleeps_total", "iommufdd_rpc_linger_sleep_hits_total"]

    @Test(arguments: [nil, "rpc_spin_us = 0", "rpc_linger_us = 0"])
    func lingersAndSpinsAreCounted(limits: String?) throws {
        let daemon = try DaemonProcess(config: limits.map { TestConfig(limits: $0) } ?? TestConfig())
        let client = try daemon.client()
        var values: [String: Double] = [:]
        // A linger follows only a request handled in under 100 µs (a debug build on a loaded
        // machine misses that now and then), so ping in rounds until the counters show one, at
        // most 50 rounds; with the linger off, five rounds.
        for round in 0..<50 {
            for _ in 0..<200 { _ = try client.call("daemon.ping") }
            let text = try #require(try client.call("daemon.metrics")["text"]?.stringValue)
            for name in Self.names {
                values[name] = try #require(ChannelSpinMetricsTests.value(name, in: text), "\(name) missing from:\n\(text)")
                #expect(text.contains("# TYPE \(name) counter"))
            }
            let lingers = values["iommufdd_rpc_lingers_total"]!
            if limits == "rpc_linger_us = 0" ? round >= 4 : lingers >= 1 && (limits != nil || values["iommufdd_rpc_spins_total"]! >= 1) { break }
        }
        let lingers = values["iommufdd_rpc_lingers_total"]!, spins = values["iommufdd_rpc_spins_total"]!
        let spinHits = values["iommufdd_rpc_spin_hits_total"]!
        let sleeps = values["iommufdd_rpc_linger_sleeps_total"]!, sleepHits = values["iommufdd_rpc_linger_sleep_hits_total"]!
        #expect(spinHits <= spins && sleepHits <= sleeps && spinHits + sleepHits <= lingers)
        switch limits {
        case nil:
            #expect(lingers >= 1 && spins >= 1, "a new client counts as quick: its first linger spins by default")
        case "rpc_spin_us = 0":
            #expect(lingers >= 1)
            #expect(spins == 0 && spinHits == 0)
        default:
            #expect(lingers == 0 && spins == 0 && sleeps == 0)
        }
    }
}
