import Foundation
import IommufdChannel
import IommufdCore
import IommufdSim
import Logging
import Testing

@testable import IommufdBroker

#if canImport(Glibc)
import Glibc
import IommufdContract
#endif

// MARK: chspin

/// The channel thread's adaptive spin after an answer (`ChannelServer.busyPollMicroseconds`,
/// IommufdCore's `AdaptiveSpin`; docs/vmm-channel.md, "Pipelining and busy polling"), counted
/// through the server's spin counters rather than timed: on by default, and a VMM that sends a
/// message now and then (every 1 ms here, twenty times the window) costs one spin in all — the
/// first wait of a new channel — and none after it.
@Suite("VMM channel: the adaptive spin", .serialized)
struct ChannelSpinTests {
    let a = Incarnation.admin

    func setUp() throws -> (Incarnation, ChannelServer) {
        let inc = try Incarnation.fresh(MemoryFDStore())
        _ = try inc.broker.ownerCreate(a, OwnerCreateParams(name: "vm"))
        return (inc, ChannelFixture.server(inc.broker))
    }

    @Test("the spin is on by default, with the control socket's window")
    func onByDefault() throws {
        let (inc, server) = try setUp()
        withExtendedLifetime(inc) {}
        #expect(server.busyPollMicroseconds == ChannelServer.defaultBusyPollMicroseconds)
        #expect(ChannelServer.defaultBusyPollMicroseconds == 50)
        #expect(server.spinCounters == AdaptiveSpin.Counters())
    }

    @Test("a VMM sending one message every 1 ms costs one spin, the new channel's first, then none", arguments: [UInt32(50), 0])
    func idleChannelCostsNoSpin(window: UInt32) throws {
        let (inc, server) = try setUp()
        defer { withExtendedLifetime(inc) {} }
        server.busyPollMicroseconds = window
        let (_, fd) = try server.delegate(a, owner: "vm")
        let ch = ChannelClient(adopting: fd)
        defer { ChannelFixture.hangUp(ch, server) }
        for _ in 0..<100 {
            #expect(try ch.hello().owner == "vm")
            // The next request comes 1 ms or more after this answer: beyond the window (measured
            // from the answer, however late the thread began its wait), so the channel's VMM
            // is not quick and its thread sleeps instead of spinning.
            usleep(1000)
        }
        let c = server.spinCounters
        #expect(c.spins == (window == 0 ? 0 : 1), "\(c)")
    }

    @Test("a reload's new window applies to a channel already open; 0 stops its spinning")
    func windowChangesApply() throws {
        let (inc, server) = try setUp()
        defer { withExtendedLifetime(inc) {} }
        server.busyPollMicroseconds = 0
        let (_, fd) = try server.delegate(a, owner: "vm")
        let ch = ChannelClient(adopting: fd)
        defer { ChannelFixture.hangUp(ch, server) }
        for _ in 0..<20 { #expect(try ch.hello().owner == "vm") }
        #expect(server.spinCounters.spins == 0)
        // On: the channel's VMM is not yet known to be quick (its waits never spun, and a wait
        // that slept counts it quick only if the request came within the window, which was 0).
        server.busyPollMicroseconds = ChannelServer.maxBusyPollMicroseconds
        #expect(server.busyPollMicroseconds == 1000)
        for _ in 0..<20 { #expect(try ch.hello().owner == "vm") }
        server.busyPollMicroseconds = 0
        #expect(try ch.hello().owner == "vm")  // ends the wait begun under the old window
        let before = server.spinCounters.spins
        for _ in 0..<20 { #expect(try ch.hello().owner == "vm") }
        #expect(server.spinCounters.spins == before, "a window of 0 never spins")
    }
}
