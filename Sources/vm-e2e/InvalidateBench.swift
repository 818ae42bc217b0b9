#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdChannel
import IommufdContract
import IommufdCore
import IommufdKernel

// MARK: kinval

/// `vm-e2e invalidate-bench`: issue 16 target 2 on the real kernel, printed as FIGURE lines. In
/// one boot, rounds interleaved so every variant sees the same load:
/// - **direct**: this process with its own iommufd, mock device and selftest nested HWPT calls
///   `IOMMU_HWPT_INVALIDATE` with one entry a call (QEMU's pattern: one ioctl per guest TLB
///   command);
/// - **channel**: `iommufdd --backend kernel` (the real binary), a nested HWPT made over a
///   delegated channel, INVALIDATE messages of 64 entries: one message at a time (send, wait for
///   the answer, send the next), and with 2, 4 or 8 messages in flight (the protocol answers
///   requests in order, each with its id: a VMM with several invalidation queues, or one that
///   does not wait for an answer before it sends the next batch, keeps several in flight);
/// - the same against a second daemon started with `[limits] channel_busy_poll_us = 0`: the
///   first runs the default, the channel thread's adaptive spin after an answer (MARK: chspin),
///   the second never spins.
/// Each channel figure says how it was reached (messages in flight, busy-poll window) and what
/// it cost the daemon in CPU (its threads' CPU time over the rounds, per message).
extension ChannelNestedChecks {
    /// The channel's spin of the two daemons (MARK: chspin): the default (adaptive, 50 µs), off.
    enum SpinMode {
        case standard, off
        var tag: String { self == .off ? "-spin-off" : "" }
        var words: String { self == .off ? "spin off" : "default adaptive spin" }
        var config: String { self == .off ? "[limits] channel_busy_poll_us = 0" : "channel_busy_poll_us = 50 (the default: adaptive spin)" }
    }

    static func runBenchmarks(run: CheckRunner) -> Bool {
        print("      guest: \(ProcessInfo.processInfo.activeProcessorCount) vCPUs (QEMU TCG), load \(loadAverage())")
        let plain = DaemonProcess.withDaemon(run: run) { daemon, client, _ in
            run.check("invalidate-direct-vs-channel") { try benchmark(client, daemonPID: daemon.process.processIdentifier, spin: .standard) }
        }
        let directory = FileManager.default.currentDirectoryPath + "/spin-off"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let polling = DaemonProcess.withDaemon(run: run, directory: directory,
                                               extraConfig: "\n[limits]\nchannel_busy_poll_us = 0\n") { daemon, client, _ in
            run.check("invalidate-direct-vs-channel-spin-off") { try benchmark(client, daemonPID: daemon.process.processIdentifier, spin: .off) }
        }
        return plain && polling
    }

    static func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
    }

    /// CPU time of every thread of `pid`, ns: the sum of the threads' schedstat (exact), else
    /// the process's utime + stime (clock ticks). Nil when neither can be read.
    static func cpuNanoseconds(pid: Int32) -> (ns: UInt64, source: String)? {
        if let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") {
            var total: UInt64 = 0
            var read = 0
            for t in tasks {
                guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/schedstat", encoding: .utf8),
                      let first = text.split(separator: " ").first, let ns = UInt64(first) else { continue }
                total += ns
                read += 1
            }
            if read > 0 && read == tasks.count { return (total, "schedstat") }
        }
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let paren = text.lastIndex(of: ")") else { return nil }
        // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: paren)...].split(separator: " ")
        guard fields.count > 13, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return ((user + system) * 1_000_000_000 / UInt64(sysconf(Int32(_SC_CLK_TCK))), "utime+stime")
    }

    /// Work for a second thread; `finished` is signalled after it, `error` set first if it threw.
    final class Worker: @unchecked Sendable {
        let body: () throws -> Void
        let finished = DispatchSemaphore(value: 0)
        var error: (any Error)?
        init(_ body: @escaping () throws -> Void) { self.body = body }
        func run() {
            do { try body() } catch { self.error = error }
            finished.signal()
        }
    }

    /// One way of sending INVALIDATE messages, and what it measured over the rounds.
    final class Variant {
        let name: String
        let how: String
        let message: [UInt8]
        let entries: Int
        let inFlight: Int
        /// 1, or 2: two channels of the owner, each sending `messages` from its own thread.
        let channels: Int
        let messages: Int
        /// µs the client waits after each answer before its next message (an idle VMM); 0: none.
        var gapMicroseconds: UInt32 = 0
        var rates: [Double] = []
        var cpu: UInt64 = 0
        var wall: UInt64 = 0
        var sent = 0
        var cpuSource = "-"
        init(name: String, how: String, message: [UInt8], entries: Int, inFlight: Int, channels: Int = 1, messages: Int) {
            self.name = name
            self.how = how
            self.message = message
            self.entries = entries
            self.inFlight = inFlight
            self.channels = channels
            self.messages = messages
        }
    }

    static func benchmark(_ client: DaemonClient, daemonPID: Int32, spin: SpinMode) throws {
        defer { _ = try? client.release(owner) }
        let tag = spin.tag
        let pollWords = spin.words
        print("      daemon pid \(daemonPID), \(spin.config)")
        // The direct process: its own iommufd, mock device and nested HWPT.
        let direct = try KernelBackend(options: KernelBackendOptions(mockDevices: [MockDeviceSpec(name: "bench-mock")]))
        guard let mock = try direct.discoverDevices().first(where: { $0.name == "bench-mock" }) else {
            throw CheckFailure(description: "the direct backend has no mock device")
        }
        let device = try direct.bind(mock).id
        let directIOAS = try direct.allocIOAS()
        let directParent = try direct.allocHWPT(deviceID: device, ptID: directIOAS, flags: .nestParent)
        let directNested = try direct.allocNestedHWPT(deviceID: device, parentID: directParent, flags: [],
                                                      data: NestedHWPTData.selftest(iotlb: 1, pagetableType: 0).userData)
        _ = try direct.attach(deviceID: device, to: directNested)
        let one = InvalidationRequest([.selftestHWPT(flags: 0, iotlbID: 1)])
        func directRound(_ calls: Int) throws -> Double {
            let t0 = monotonicNanoseconds()
            for _ in 0..<calls {
                let r = direct.invalidate(directNested, one)
                if let e = r.error { throw e }
            }
            return Double(calls) / (Double(monotonicNanoseconds() - t0) / 1e9)
        }

        // The daemon's channel.
        let s = try setUp(client)
        let ch = s.channel
        defer { ch.close() }
        let nested = try ch.nestedAllocSelftest(parent: s.parent, device: "mock0", iotlb: 1)
        _ = try ch.replace(device: "mock0", pt: nested)
        func message(_ count: Int) -> [UInt8] {
            ChannelClient.invalidateMessage(id: 1, target: nested, dataType: InvalidateDataType.selftest, entryLength: 8,
                                            entries: ChannelClient.selftestHWPTEntries((0..<count).map { (UInt32(0), UInt32($0 % 4)) }))
        }
        let message64 = message(64)

        // A second channel of the same owner, for a VMM that sends from two threads (libiommufdd:
        // one call at a time per channel, one channel per thread).
        let (delegated, fds) = try client.json("owner.delegate", ["name": .string(owner)])
        guard fds.count == 1 else { throw CheckFailure(description: "owner.delegate answered \(delegated) with \(fds.count) fds, not 1") }
        let ch2 = ChannelClient(adopting: fds[0])
        defer { ch2.close() }

        /// `variant.messages` messages on `channel`, `variant.inFlight` of them sent before the
        /// first answer is read, then one more sent per answer; every answer must say all
        /// entries were done.
        func pump(_ channel: ChannelClient, _ v: Variant) throws {
            var sent = 0, answered = 0
            while sent < min(v.inFlight, v.messages) {
                try channel.sendRaw(v.message)
                sent += 1
            }
            while answered < v.messages {
                guard let reply = try channel.receive(), reply.header.flags & ChannelWire.flagError == 0 else {
                    throw CheckFailure(description: "INVALIDATE on the channel failed (\(v.name), answer \(answered))")
                }
                let done = reply.payload.withUnsafeBytes { p in var r = ChannelWire.Reader(p); _ = r.u32(); return r.u32() }
                guard done == v.entries else { throw CheckFailure(description: "INVALIDATE did \(done) of \(v.entries) entries (\(v.name))") }
                answered += 1
                if v.gapMicroseconds > 0 { usleep(v.gapMicroseconds) }
                if sent < v.messages {
                    try channel.sendRaw(v.message)
                    sent += 1
                }
            }
        }
        /// One round of `v` (on both channels at once for a two-channel variant): entries/s.
        func channelRound(_ v: Variant) throws -> Double {
            let cpu0 = cpuNanoseconds(pid: daemonPID)
            let t0 = monotonicNanoseconds()
            if v.channels == 2 {
                let second = Worker { try pump(ch2, v) }
                let thread = Thread { second.run() }
                thread.start()
                var firstError: (any Error)?
                do { try pump(ch, v) } catch { firstError = error }
                second.finished.wait()
                if let e = firstError ?? second.error { throw e }
            } else {
                try pump(ch, v)
            }
            let elapsed = monotonicNanoseconds() - t0
            if let c0 = cpu0, let c1 = cpuNanoseconds(pid: daemonPID) {
                v.cpu += c1.ns - min(c0.ns, c1.ns)
                v.cpuSource = c1.source
            }
            v.wall += elapsed
            v.sent += v.messages * v.channels
            return Double(v.messages * v.channels * v.entries) / (Double(elapsed) / 1e9)
        }

        let variants = [
            Variant(name: "invalidate-channel-64-per-message\(tag)", how: "1 message in flight, \(pollWords)", message: message64, entries: 64, inFlight: 1, messages: 500),
            Variant(name: "invalidate-channel-64-per-message-2-in-flight\(tag)", how: "2 messages in flight, \(pollWords)", message: message64, entries: 64, inFlight: 2, messages: 500),
            Variant(name: "invalidate-channel-64-per-message-4-in-flight\(tag)", how: "4 messages in flight, \(pollWords)", message: message64, entries: 64, inFlight: 4, messages: 1000),
            Variant(name: "invalidate-channel-64-per-message-8-in-flight\(tag)", how: "8 messages in flight, \(pollWords)", message: message64, entries: 64, inFlight: 8, messages: 1000),
            Variant(name: "invalidate-channel-64-per-message-2-channels\(tag)", how: "2 channels of the owner, 2 threads, 1 message in flight on each, \(pollWords)",
                    message: message64, entries: 64, inFlight: 1, channels: 2, messages: 500),
        ]

        // An idle channel (MARK: chspin): one message every 1 ms, a VMM invalidating now and
        // then; what the daemon's CPU per message is there says what the spin costs when it
        // cannot help (it must not spin for such a VMM after its first message).
        let idle = Variant(name: "invalidate-channel-64-one-every-1ms\(tag)", how: "1 message every 1 ms, \(pollWords)", message: message64, entries: 64, inFlight: 1, messages: 100)
        idle.gapMicroseconds = 1000

        // Warm up both, then interleave rounds so all see the same load.
        _ = try directRound(500)
        _ = try channelRound(Variant(name: "warm-up", how: "", message: message64, entries: 64, inFlight: 1, messages: 50))
        let rounds = 5
        var directRates: [Double] = []
        for _ in 0..<rounds {
            directRates.append(try directRound(10_000))
            for v in variants { v.rates.append(try channelRound(v)) }
            idle.rates.append(try channelRound(idle))
        }
        let single = Variant(name: "invalidate-channel-1-per-message\(tag)", how: "1 message in flight, \(pollWords)", message: message(1), entries: 1, inFlight: 1, messages: 1000)
        single.rates.append(try channelRound(single))
        let big = Variant(name: "invalidate-channel-256-per-message\(tag)", how: "1 message in flight, \(pollWords)", message: message(256), entries: 256, inFlight: 1, messages: 200)
        if spin == .standard {
            for _ in 0..<3 { big.rates.append(try channelRound(big)) }
        }

        let d = median(directRates)
        func rates(_ v: [Double]) -> String { v.map { String(Int($0)) }.joined(separator: ", ") }
        func cost(_ v: Variant) -> String {
            guard v.sent > 0, v.wall > 0, v.cpuSource != "-" else { return "daemon CPU not readable" }
            let perMessage = Double(v.cpu) / Double(v.sent) / 1000
            return "daemon CPU \(Int(perMessage)) µs a message, \(Int(Double(v.cpu) / Double(v.wall) * 100))% of one vCPU (\(v.cpuSource))"
        }
        print("FIGURE invalidate-direct-1-per-call\(tag): \(Int(d)) entries/s (median of \(rounds) rounds of 10,000 IOMMU_HWPT_INVALIDATE calls: \(rates(directRates)))")
        for v in variants {
            print("FIGURE \(v.name): \(Int(median(v.rates))) entries/s (\(v.how); median of \(rounds) rounds of \(v.messages * v.channels) INVALIDATE messages: \(rates(v.rates)); \(cost(v)))")
        }
        print("FIGURE \(idle.name): \(cost(idle)) (\(idle.how); \(rounds) rounds of \(idle.messages) messages)")
        print("FIGURE \(single.name): \(Int(median(single.rates))) entries/s (\(single.how); 1 round of \(single.messages) messages; \(cost(single)))")
        if !big.rates.isEmpty {
            print("FIGURE \(big.name): \(Int(median(big.rates))) entries/s (\(big.how); median of 3 rounds of \(big.messages) messages: \(rates(big.rates)); \(cost(big)))")
        }
        if spin == .standard {
            // The hand-off alone: a SOCK_SEQPACKET echo between two threads of this process, a
            // packet the size of a 64-entry INVALIDATE each way (what every message pays before any work).
            let echo = try echoRoundTrip(bytes: message64.count, count: 2000)
            print("FIGURE seqpacket-echo-\(message64.count)B: median \(Int(echo)) µs a round trip (2,000 round trips between two threads; the floor of a channel message)")
        }
        for v in variants {
            let c = median(v.rates)
            let label = v.channels == 2 ? "channel-64-2-channels\(tag)" : v.inFlight == 1 ? "channel-64\(tag)" : "channel-64-\(v.inFlight)-in-flight\(tag)"
            print("FIGURE invalidate-ratio \(label) / direct-1: \(String(format: "%.2f", c / d))x (\(v.how); target >= 1: \(c >= d ? "met" : "NOT met"))")
        }
        print("      load: \(loadAverage())")
        _ = try ch.replace(device: "mock0", pt: s.parent)
        try ch.hwptDestroy(nested)
        _ = try direct.replace(deviceID: device, with: directParent)
        try direct.destroy(directNested)
    }
}
