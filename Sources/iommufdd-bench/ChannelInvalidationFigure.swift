#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdChannel
import IommufdCore
import IommufdSim
import Logging
import IommufdContract

// MARK: Figure 7, continued: invalidation through the channel (issue 16 target 2; branch chnested)

/// Entries per second of INVALIDATE through a delegated channel on a selftest nested HWPT
/// (made on the channel, NESTED_ALLOC), at 64 entries a message and at 1 (QEMU's pattern: one
/// guest TLB command, one call), against floors measured in the same run on the same
/// simulator: its own `IOMMU_HWPT_INVALIDATE` call (64 entries a call, and 1), and a
/// SOCK_SEQPACKET echo of a message of the same size.
func figureChannelInvalidation(_ report: Report, _ options: Options) throws {
    print("Figure 7b: INVALIDATE through the VMM channel (selftest nested HWPT on the simulator)")
    let bench = try BenchChannel(socket: "channel-inv", owner: "vm-channel-inv", nestParent: true)
    defer { bench.close() }
    let (daemon, channels, client, parent) = (bench.daemon, bench.channels, bench.client, bench.parent)
    let nested = try client.nestedAllocSelftest(parent: parent, device: "sim0", iotlb: 1)

    let batch = 64
    let entries = ChannelClient.selftestHWPTEntries((0..<batch).map { (UInt32(0), UInt32($0 % 4)) })
    let many = ChannelClient.invalidateMessage(id: 1, target: nested, dataType: InvalidateDataType.selftest, entryLength: 8, entries: entries)
    let one = ChannelClient.invalidateMessage(id: 1, target: nested, dataType: InvalidateDataType.selftest, entryLength: 8, entries: Array(entries.prefix(8)))
    func roundTrip(_ message: [UInt8], _ expected: UInt32) throws {
        try client.sendRaw(message)
        guard let reply = try client.receive(), reply.header.flags & ChannelWire.flagError == 0 else { throw BenchError("INVALIDATE failed") }
        let done = reply.payload.withUnsafeBytes { b in var r = ChannelWire.Reader(b); _ = r.u32(); return r.u32() }
        guard done == expected else { throw BenchError("INVALIDATE did \(done) of \(expected)") }
    }

    // The channel: messages of 64 entries, and of 1.
    let messages = options.iterations(20_000)
    let batched = try measure(iterations: messages, warmup: 500) { try roundTrip(many, UInt32(batch)) }
    let single = try measure(iterations: messages, warmup: 500) { try roundTrip(one, 1) }

    // Floors, same run: the simulator's own call (the broker's backend, the same nested HWPT)...
    let manyRequest = InvalidationRequest(dataType: InvalidateDataType.selftest, entryLength: 8, entryCount: UInt32(batch), bytes: entries)
    let oneRequest = InvalidationRequest(dataType: InvalidateDataType.selftest, entryLength: 8, entryCount: 1, bytes: Array(entries.prefix(8)))
    func simCall(_ r: InvalidationRequest) throws {
        let result = daemon.sim.invalidate(nested, r)
        if let e = result.error { throw e }
    }
    let simBatched = try measure(iterations: messages, warmup: 500) { try simCall(manyRequest) }
    let simSingle = try measure(iterations: messages, warmup: 500) { try simCall(oneRequest) }
    // ... and an echo of the same packets over a SOCK_SEQPACKET pair.
    let echo = try SeqpacketEcho()
    defer { echo.stop() }
    let replyBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
    defer { replyBuffer.deallocate() }
    let echoMany = try measure(iterations: messages, warmup: 500) { try echo.roundTrip(many, into: replyBuffer) }
    let echoOne = try measure(iterations: messages, warmup: 500) { try echo.roundTrip(one, into: replyBuffer) }

    let rate = Double(batch) / batched.median * 1e9
    let simRate = Double(batch) / simBatched.median * 1e9
    let floorRate = Double(batch) / (simBatched.median + echoMany.median) * 1e9
    report.add(Row(
        figure: "sim IOMMU_HWPT_INVALIDATE, 64 entries a call (same run)", value: "\(Int(simRate)) entries/s (median \(formatNanos(simBatched.median)))",
        floor: "-", ratio: nil, target: .none, met: nil))
    report.add(Row(
        figure: "channel INVALIDATE, 64 entries a message", value: "\(Int(rate)) entries/s (median \(formatNanos(batched.median)) a message)",
        floor: "\(Int(floorRate)) entries/s (echo \(formatNanos(echoMany.median)) + sim \(formatNanos(simBatched.median)))",
        ratio: floorRate / rate, target: .atLeast(2_000_000, "entries/s"), met: rate >= 2_000_000))
    report.latency("channel INVALIDATE, 1 entry a message", single, floor: echoOne.median + simSingle.median,
                   floorName: "(echo \(formatNanos(echoOne.median)) + sim \(formatNanos(simSingle.median)))", target: .ratioAtMost(2), p99: true)
    report.add(Row(
        figure: "channel INVALIDATE, 1 entry a message, rate", value: "\(Int(1e9 / single.median)) entries/s",
        floor: "\(Int(1e9 / simSingle.median)) entries/s sim, 1 a call", ratio: nil, target: .none, met: nil))
    report.add(Row(
        figure: "channel batching gain (64 vs 1 entry a message)", value: "\(format(rate / (1e9 / single.median)))x",
        floor: "-", ratio: nil, target: .none, met: nil))

    // MARK: kinval, chspin
    // Several messages in flight (the protocol answers in order, each with its id), and the
    // channel thread's adaptive spin ([limits] channel_busy_poll_us: the default, and 0 = off),
    // in rounds that alternate the two so both see the same load; this process's CPU time (the
    // client and the daemon's channel thread both) per message says what each costs, and the
    // server's spin counters how often the thread spun and how often that found the request.
    func cpuNow() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }
    /// Totals of one way of sending, over the rounds.
    struct Tally {
        var messages = 0, entries = 0
        var ns: UInt64 = 0, cpu: UInt64 = 0
        var spins: UInt64 = 0, hits: UInt64 = 0, lost: UInt64 = 0, paused: UInt64 = 0
        /// Process CPU a message, each round.
        var rounds: [Double] = []
        var rate: Double { Double(entries) / Double(max(ns, 1)) * 1e9 }
        var cpuPerMessage: Double { Double(cpu) / Double(max(messages, 1)) }
        var spinWords: String {
            "\(messages) answers: \(spins) spins, \(hits) found the next request, \(lost) lost the CPU, \(paused) quick waits not spun (paused)"
        }
    }
    /// `messages` messages, `inFlight` sent before the first answer is read, one more per
    /// answer; `gapMicroseconds` between an answer and the next message (one in flight only).
    func pipelined(_ message: [UInt8], _ expected: UInt32, messages: Int, inFlight: Int, gapMicroseconds: UInt32 = 0, into tally: inout Tally) throws {
        let spin0 = channels.spinCounters
        let cpu0 = cpuNow()
        let t0 = monotonicNanoseconds()
        var sent = 0, answered = 0
        while sent < min(inFlight, messages) { try client.sendRaw(message); sent += 1 }
        while answered < messages {
            guard let reply = try client.receive(), reply.header.flags & ChannelWire.flagError == 0 else { throw BenchError("INVALIDATE failed") }
            let done = reply.payload.withUnsafeBytes { b in var r = ChannelWire.Reader(b); _ = r.u32(); return r.u32() }
            guard done == expected else { throw BenchError("INVALIDATE did \(done) of \(expected)") }
            answered += 1
            if gapMicroseconds > 0 { usleep(gapMicroseconds) }
            if sent < messages { try client.sendRaw(message); sent += 1 }
        }
        let spin1 = channels.spinCounters
        let cpu = cpuNow() - cpu0
        tally.ns += monotonicNanoseconds() - t0
        tally.cpu += cpu
        tally.rounds.append(Double(cpu) / Double(messages))
        tally.lost += spin1.lostCPU - spin0.lostCPU
        tally.paused += spin1.paused - spin0.paused
        tally.messages += messages
        tally.entries += messages * Int(expected)
        tally.spins += spin1.spins - spin0.spins
        tally.hits += spin1.hits - spin0.hits
    }
    let defaultWindow = ChannelServer.defaultBusyPollMicroseconds
    let modes: [(window: UInt32, how: String)] = [
        (defaultWindow, "default (adaptive spin, \(defaultWindow) µs)"),
        (0, "spin off (channel_busy_poll_us = 0)"),
    ]
    let rounds = 4
    var tallies = [String: Tally]()
    let idleMessages = max(50, options.iterations(1000) / rounds)
    for round in 0..<rounds {
        for mode in round % 2 == 0 ? modes : modes.reversed() {
            channels.busyPollMicroseconds = mode.window
            for inFlight in [1, 4] {
                var warm = Tally()
                try pipelined(many, UInt32(batch), messages: 200, inFlight: inFlight, into: &warm)
                try pipelined(many, UInt32(batch), messages: messages / rounds, inFlight: inFlight, into: &tallies["\(inFlight) in flight, \(mode.how)", default: Tally()])
            }
            // An idle channel: one message every 1 ms (a VMM invalidating now and then).
            try pipelined(many, UInt32(batch), messages: idleMessages, inFlight: 1, gapMicroseconds: 1000, into: &tallies["one every 1 ms, \(mode.how)", default: Tally()])
        }
    }
    for inFlight in [1, 4] {
        for mode in modes {
            let t = tallies["\(inFlight) in flight, \(mode.how)"]!
            report.add(Row(
                figure: "channel INVALIDATE, 64 a message, \(inFlight) in flight, \(mode.how)",
                value: "\(Int(t.rate)) entries/s (process CPU \(formatNanos(t.cpuPerMessage)) a message; \(t.spinWords))",
                floor: "\(Int(floorRate)) entries/s (echo + sim)", ratio: floorRate / t.rate,
                target: inFlight == 1 && mode.window == defaultWindow ? .atLeast(2_000_000, "entries/s") : .none,
                met: inFlight == 1 && mode.window == defaultWindow ? t.rate >= 2_000_000 : nil))
        }
    }
    for mode in modes {
        let t = tallies["one every 1 ms, \(mode.how)"]!
        report.add(Row(
            figure: "channel INVALIDATE, 64 a message, one every 1 ms, \(mode.how)",
            value: "process CPU \(formatNanos(t.cpuPerMessage)) a message (rounds: \(t.rounds.map { formatNanos($0) }.joined(separator: ", ")); \(t.spinWords))",
            floor: "-", ratio: nil, target: .none, met: nil))
    }
    print("    (\(rounds) rounds alternating the default and the spin off; load \(loadAverage()))")
    channels.busyPollMicroseconds = 0
    let off = try measure(iterations: messages, warmup: 500) { try roundTrip(one, 1) }
    report.latency("channel INVALIDATE, 1 entry a message, spin off", off, floor: echoOne.median + simSingle.median,
                   floorName: "(echo \(formatNanos(echoOne.median)) + sim \(formatNanos(simSingle.median)))", target: .none, p99: true)
    channels.busyPollMicroseconds = defaultWindow
}

