import Dispatch
import Glibc
import IommufdCore
import Testing
@testable import IommufdRPC

// MARK: pinggap

/// The linger's counters (`RPCLingerCounters`, `daemon.metrics`' `iommufdd_rpc_*`): each kind of
/// wait moves its own. Counted, not timed. In RPCServerTests' serialized suite: these open
/// sockets, and that suite counts the process's fds.
extension RPCServerTests {
    private func pair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        try #require(rc == 0, "socketpair failed: errno \(errno)")
        return (fds[0], fds[1])
    }

    private static func poke(_ fd: Int32) {
        var byte: UInt8 = 0x78
        _ = write(fd, &byte, 1)
    }

    private static func drain(_ fd: Int32) {
        var byte: UInt8 = 0
        _ = read(fd, &byte, 1)
    }

    @Test func lingerCountersTellSpinHitsSleepHitsAndMisses() throws {
        let (server, client) = try pair()
        defer { _ = close(server); _ = close(client) }
        let gate = RPCLingerGate(microseconds: 5_000_000, spinMicroseconds: 20_000)
        gate.enter()
        defer { gate.leave() }
        #expect(gate.counters == RPCLingerCounters())
        var state = LingerState()

        // A request already there: found by the spin, no sleep.
        Self.poke(client)
        #expect(gate.linger(on: server, &state))
        Self.drain(server)
        var c = gate.counters
        #expect((c.waits, c.spin.spins, c.spin.hits, c.sleeps, c.sleepHits) == (1, 1, 1, 0, 0))

        // The client comes 100 ms later, past the 20 ms spin: the spin misses, the sleep finds it.
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) { Self.poke(client) }
        #expect(gate.linger(on: server, &state))
        Self.drain(server)
        c = gate.counters
        #expect((c.waits, c.spin.spins, c.spin.hits, c.sleeps, c.sleepHits) == (2, 2, 1, 1, 1))
        #expect(!state.clientIsQuick)

        // Not quick now: the next wait sleeps at once (no spin) and finds the request.
        Self.poke(client)
        #expect(gate.linger(on: server, &state))
        Self.drain(server)
        c = gate.counters
        #expect((c.waits, c.spin.spins, c.spin.hits, c.sleeps, c.sleepHits) == (3, 2, 1, 2, 2))

        // Quick again, but spinning is paused: counted as paused, served by the sleep.
        gate.pauseSpinning()
        Self.poke(client)
        #expect(gate.linger(on: server, &state))
        Self.drain(server)
        c = gate.counters
        #expect((c.waits, c.spin.spins, c.spin.paused, c.sleeps, c.sleepHits) == (4, 2, 1, 3, 3))
    }

    @Test func aLingerThatEndsWithoutTheRequestCountsNoHit() throws {
        let (server, client) = try pair()
        defer { _ = close(server); _ = close(client) }
        // Nothing comes within 20 ms (a 5 ms spin, then sleep): a wait, a spin, a sleep, no hit.
        let gate = RPCLingerGate(microseconds: 20_000, spinMicroseconds: 5_000)
        gate.enter()
        var state = LingerState()
        #expect(!gate.linger(on: server, &state))
        let c = gate.counters
        #expect((c.waits, c.spin.spins, c.spin.hits, c.sleeps, c.sleepHits) == (1, 1, 0, 1, 0))

        // Another handler running: no linger at all, nothing counted.
        gate.enter()
        Self.poke(client)
        #expect(!gate.linger(on: server, &state))
        gate.leave()
        gate.leave()
        #expect(gate.counters.waits == 1)
    }

    /// Through a server: back-to-back requests on one connection linger, and the server's
    /// counters say so; with the linger off they stay at zero.
    @Test(arguments: [200, 0])
    func theServerCountsItsLingers(lingerMicroseconds: Int) throws {
        var limits = RPCLimits()
        limits.lingerMicroseconds = lingerMicroseconds
        let t = try TestServer(limits: limits) { r in
            r.register("echo") { call in RPCResult(call.params ?? .null) }
        }
        defer { t.stop() }
        let client = try RPCClient(path: t.path)
        defer { client.close() }
        // A linger follows only a request handled in under 100 µs, which a loaded machine may
        // miss now and then: send until one shows (at most 2,000 requests).
        for i in 0..<2000 {
            _ = try client.call("echo", params: .object(["n": .int(Int64(i))]))
            if lingerMicroseconds > 0, t.server.lingerCounters.waits >= 1, i >= 50 { break }
        }
        let c = t.server.lingerCounters
        if lingerMicroseconds > 0 {
            #expect(c.waits >= 1)
            #expect(c.spin.hits + c.sleepHits <= c.waits)
            #expect(c.spin.hits <= c.spin.spins && c.sleepHits <= c.sleeps)
        } else {
            #expect(c == RPCLingerCounters())
        }
    }
}
