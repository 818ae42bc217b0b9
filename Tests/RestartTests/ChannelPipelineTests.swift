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

// MARK: kinval

/// Several requests in flight on one channel (docs/vmm-channel.md, "Pipelining and busy
/// polling"): the client sends them all before reading any answer; the daemon runs each in order
/// and answers each with its own id, an error answer included, with the busy-poll window off
/// and on. The mock IOTLB shows that every INVALIDATE took effect.
@Suite("VMM channel: pipelined requests and the busy-poll window", .serialized)
struct ChannelPipelineTests {
    typealias W = ChannelWire

    static func invalidate(id: UInt64, hwpt: ObjectID, iotlbIDs: [UInt32]) -> [UInt8] {
        ChannelClient.invalidateMessage(id: id, target: hwpt, dataType: InvalidateDataType.selftest, entryLength: 8,
                                        entries: ChannelClient.selftestHWPTEntries(iotlbIDs.map { (UInt32(0), $0) }))
    }

    @Test("requests sent before any answer is read are answered in order, each with its id", arguments: [UInt32(0), 200])
    func pipelined(busyPoll: UInt32) throws {
        let f = try ChannelFixture(.nestParent, busyPollMicroseconds: busyPoll)
        defer { f.hangUp() }
        let (inc, parent, ch) = (f.inc, f.parent, f.ch)
        #expect(f.server.busyPollMicroseconds == busyPoll)
        let nested = try ch.nestedAllocSelftest(parent: parent, device: "sim0", iotlb: 5)
        for i in 0..<4 { try inc.sim.checkNestedIOTLB(hwpt: nested, index: UInt32(i), value: 5) }

        // Eight requests in flight: each of the mock IOTLB's four entries once, a refused one
        // (iotlb_id 4 is past the last) in the middle, and HELLOs.
        let messages: [(id: UInt64, op: W.Op, bytes: [UInt8])] = [
            (100, .invalidate, Self.invalidate(id: 100, hwpt: nested, iotlbIDs: [0])),
            (101, .invalidate, Self.invalidate(id: 101, hwpt: nested, iotlbIDs: [1, 1])),
            (102, .hello, W.encode(id: 102, .hello)),
            (103, .invalidate, Self.invalidate(id: 103, hwpt: nested, iotlbIDs: [4])),
            (104, .invalidate, Self.invalidate(id: 104, hwpt: nested, iotlbIDs: [2])),
            (105, .hello, W.encode(id: 105, .hello)),
            (106, .invalidate, Self.invalidate(id: 106, hwpt: nested, iotlbIDs: [3, 3, 3])),
            (107, .hello, W.encode(id: 107, .hello)),
        ]
        for m in messages { try ch.sendRaw(m.bytes) }
        for m in messages {
            let reply = try #require(try ch.receive(timeoutMilliseconds: 10_000))
            #expect(reply.header.id == m.id && reply.header.op == m.op.rawValue && reply.header.flags & W.flagReply != 0,
                    "answer \(reply.header.id) op \(reply.header.op) where \(m.id) op \(m.op.rawValue) was due")
            if m.id == 103 {
                #expect(reply.header.flags & W.flagError != 0)
                let e = reply.payload.withUnsafeBytes { W.decodeError($0) }
                #expect(e?.name == "iommufdd.InvalidParams" && e?.message.contains("iotlb_id 4") == true, "\(String(describing: e))")
            } else {
                #expect(reply.header.flags & W.flagError == 0, "request \(m.id) failed")
            }
            if m.op == .invalidate && m.id != 103 {
                let (requested, done) = reply.payload.withUnsafeBytes { p in var r = W.Reader(p); return (r.u32(), r.u32()) }
                #expect(requested == done && done > 0, "request \(m.id): \(done) of \(requested) done")
            }
        }
        for i in 0..<4 { try inc.sim.checkNestedIOTLB(hwpt: nested, index: UInt32(i), value: 0) }

        // After the window has long passed the thread sleeps, and the next request wakes it.
        usleep(20_000)
        #expect(try ch.hello().owner == "vm")
    }

    @Test("the busy-poll window is bounded; a channel in its window still closes at once")
    func windowBoundAndClose() throws {
        let f = try ChannelFixture(.owner, busyPollMicroseconds: 5000)
        let (server, ch) = (f.server, f.ch)
        defer { ch.close() }
        #expect(server.busyPollMicroseconds == ChannelServer.maxBusyPollMicroseconds)
        #expect(try ch.hello().owner == "vm")
        // Revoked inside the window: the holder reads end of file, the server forgets it.
        #expect(server.revoke(owner: "vm") == 1)
        #expect(ch.isClosedByDaemon(timeoutMilliseconds: 5000))
        for _ in 0..<2000 where server.openChannels > 0 { usleep(1000) }
        #expect(server.openChannels == 0)
    }
}
