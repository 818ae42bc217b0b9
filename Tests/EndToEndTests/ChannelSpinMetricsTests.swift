import Foundation
import IommufdChannel
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: chspin

/// The VMM channels' adaptive spin as `daemon.metrics` shows it, against the real `iommufdd`:
/// on by default (a new channel's first wait after an answer spins), none with
/// `[limits] channel_busy_poll_us = 0`. Counted, not timed.
@Suite("End to end: the channel spin in daemon.metrics")
struct ChannelSpinMetricsTests {
    static func value(_ name: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1))
        }
        return nil
    }

    @Test(arguments: [nil, "channel_busy_poll_us = 0"])
    func spinsAreCounted(limits: String?) throws {
        let daemon = try DaemonProcess(config: limits.map { TestConfig(limits: $0) } ?? TestConfig())
        let mgr = try daemon.client()
        _ = try mgr.call("owner.create", ["name": "vm-1"])
        let (ch, _) = try ChannelE2ETests.delegate(mgr, "vm-1")
        defer { ch.close() }
        for _ in 0..<5 { #expect(try ch.hello().owner == "vm-1") }
        // The channel's thread counts a spin when its wait begins, once it has answered and found
        // no further request waiting (a request already there is read without a wait). After the
        // last answer nothing more comes, so that wait begins soon; read until it shows (the new
        // channel's VMM counts as quick, so its first wait spins), at most 10 s.
        var text = ""
        for _ in 0..<1000 {
            text = try #require(try mgr.call("daemon.metrics")["text"]?.stringValue)
            if limits != nil || (Self.value("iommufdd_channel_spins_total", in: text) ?? 0) >= 1 { break }
            usleep(10_000)
        }
        let spins = try #require(Self.value("iommufdd_channel_spins_total", in: text), "\(text)")
        let hits = try #require(Self.value("iommufdd_channel_spin_hits_total", in: text))
        #expect(Self.value("iommufdd_channel_spin_lost_cpu_total", in: text) != nil)
        #expect(Self.value("iommufdd_channel_spin_paused_total", in: text) != nil)
        #expect(text.contains("# TYPE iommufdd_channel_spins_total counter"))
        if limits == nil {
            #expect(spins >= 1, "the new channel's first wait after an answer spins by default")
            #expect(hits <= spins)
        } else {
            #expect(spins == 0 && hits == 0)
        }
    }
}
