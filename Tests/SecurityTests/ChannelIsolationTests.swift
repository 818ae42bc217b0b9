import Foundation
import IommufdChannel
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The isolation matrix's channel column: a channel delegated by manager A for owner A, asked
/// to act on manager B's owner and objects, gets exactly what it gets for absent ones; it acts
/// on owner A's alone; revoked, it is closed. The channel carries no credentials: whoever holds
/// the fd is owner A (libiommufdd's test runs it as a uid with no role at all).
@Suite("Isolation matrix: the VMM channel", .serialized, .enabled(if: getuid() == 0, "connects as other uids: needs root (CI runs as root)"))
struct ChannelIsolationTests {
    static func errorOf(_ body: () throws -> Void) -> ChannelWire.ErrorReply? {
        do {
            try body()
            return nil
        } catch let f as ChannelClient.Failure {
            return f.reply
        } catch {
            return ChannelWire.ErrorReply(errno: -1, index: 0, done: 0, name: "transport", message: "\(error)")
        }
    }

    @Test func channelOfOwnerACannotSeeOrTouchOwnerB() throws {
        let daemon = try DaemonUnderTest()
        defer { #expect(daemon.stop() == 0, "iommufdd did not stop cleanly:\n\(daemon.finalLog)") }
        let clients = try Clients(daemon)
        let f = try clients.makeFixture()
        try clients.map(clients.b, ioas: f.otherIOAS)
        let (result, fds) = try clients.a.call("owner.delegate", params: ["name": .string(f.owner)], timeout: .seconds(30))
        #expect(result["name"]?.stringValue == f.owner && fds.count == 1)
        let ch = ChannelClient(adopting: try #require(fds.first))
        let ram = try makeMemfd(bytes: Int(Fixture.length))
        defer { close(ram) }
        try ch.register(index: 0, memfd: ram)
        let bitmap = try makeMemfd(bytes: 4096)
        defer { close(bitmap) }
        try ch.setBitmap(bitmap)
        let before = try clients.snapshot(f)
        let b = UInt32(f.otherIOAS), a = UInt32(f.ioas), absent: UInt32 = 999_999
        let len = UInt64(Fixture.length), iova = UInt64(Fixture.iova)

        // Each op on B's object, next to the same op on an IOAS that does not exist.
        let cells: [(String, (UInt32) throws -> Void)] = [
            ("MAP", { _ = try ch.map([.init(ioas: $0, memIndex: 0, offset: 0, length: len, iova: 0x4000_0000)]) }),
            ("UNMAP", { _ = try ch.unmap([($0, iova, len, 0)]) }),
            ("UNMAP ALL", { _ = try ch.unmap([($0, 0, 0, ChannelWire.unmapAll)]) }),
            ("COPY out of it", { _ = try ch.copy(dst: a, src: $0, srcIOVA: iova, length: len, dstIOVA: 0x4000_0000) }),
            ("DIRTY_READ", { _ = try ch.dirtyRead(ioas: $0, iova: iova, length: len) }),
            ("DIRTY_READ no clear", { _ = try ch.dirtyRead(ioas: $0, iova: iova, length: len, clear: false) }),
        ]
        for (name, op) in cells {
            let onB = Self.errorOf { try op(b) }
            let onAbsent = Self.errorOf { try op(absent) }
            #expect(onB?.name == "iommufdd.NotFound" && onB?.errno == ENOENT, "\(name) on owner B's IOAS: \(String(describing: onB))")
            #expect(onB?.message.replacingOccurrences(of: "\(b)", with: "N") == onAbsent?.message.replacingOccurrences(of: "\(absent)", with: "N"),
                    "\(name): owner B's IOAS answers unlike an absent one")
        }
        // B's leased device and A's own (whose fd the simulator does not have).
        #expect(Self.errorOf { _ = try ch.deviceFD("b0") }?.name == "iommufdd.NotFound")
        #expect(Self.errorOf { _ = try ch.hotReset("b0") }?.name == "iommufdd.NotFound")
        #expect(Self.errorOf { _ = try ch.deviceFD("a0") }?.name == "iommufdd.Unsupported")
        // COPY into B's IOAS from A's.
        _ = try ch.map([.init(ioas: a, memIndex: 0, offset: 0, length: len, iova: iova)])
        #expect(Self.errorOf { _ = try ch.copy(dst: b, src: a, srcIOVA: iova, length: len, dstIOVA: 0x4000_0000) }?.name == "iommufdd.NotFound")
        _ = try ch.unmap([(a, iova, len, 0)])
        #expect(try clients.snapshot(f) == before, "owner B (or A) changed")

        // Manager B can neither delegate nor revoke A's channels; A's revoke closes it.
        #expect(throws: RPCError.self) { try clients.b.value("owner.revoke_channels", ["name": .string(f.owner)]) }
        #expect(try ch.hello().owner == f.owner)
        #expect(try clients.a.value("owner.revoke_channels", ["name": .string(f.owner)])["revoked"]?.int64Value == 1)
        #expect(ch.isClosedByDaemon())
        try clients.tearDown(f)
    }

    // MARK: chnested

    /// The nested-translation ops and QUEUE_FD (branch chnested): owner A's channel, given the IDs
    /// of owner B's nest parent, vIOMMU, nested HWPT and fault queue, gets what it gets for IDs
    /// that do not exist, and nothing of B's changes.
    @Test func nestedOpsOfOwnerACannotReachOwnerB() throws {
        let daemon = try DaemonUnderTest()
        defer { #expect(daemon.stop() == 0, "iommufdd did not stop cleanly:\n\(daemon.finalLog)") }
        let clients = try Clients(daemon)
        let f = try clients.makeFixture()
        // Owner B: n0 (behind the selftest mock) on a vIOMMU, with a nested HWPT and a fault queue.
        try clients.b.value("device.attach", ["owner": .string(f.otherOwner), "device": "n0", "ioas": .id(f.otherIOAS)])
        let created = try clients.b.value("viommu.create", ["device": "n0"])
        let viommuB = try created.id("viommu"), parentB = try created.id("nest_parent")
        try clients.b.value("vdevice.create", ["viommu": .id(viommuB), "device": "n0", "virtual_id": 7])
        let nestedB = try clients.b.value("hwpt.alloc", ["device": "n0", "parent": .id(parentB), "data": ["type": "selftest", "iotlb": 7]]).id("hwpt")
        let (fault, faultFDs) = try clients.b.call("fault.create", params: ["owner": .string(f.otherOwner)], timeout: .seconds(30))
        for fd in faultFDs { close(fd) }
        let queueB = try #require(fault["queue"]?["queue"]?.int64Value)

        let (_, fds) = try clients.a.call("owner.delegate", params: ["name": .string(f.owner)], timeout: .seconds(30))
        let ch = ChannelClient(adopting: try #require(fds.first))
        let before = try clients.snapshot(f)
        let absent: UInt32 = 999_999
        let selftest = ChannelClient.selftestHWPTEntries([(1, 0)])
        let viommuEntries = ChannelClient.selftestVIOMMUEntries([(1, 7, 0)])
        let cells: [(String, UInt32, (UInt32) throws -> Void)] = [
            ("NESTED_ALLOC on B's nest parent", UInt32(parentB), { _ = try ch.nestedAllocSelftest(parent: $0, device: "a0", iotlb: 1) }),
            ("NESTED_ALLOC on B's vIOMMU", UInt32(viommuB), { _ = try ch.nestedAllocSelftest(parent: $0, device: "a0", iotlb: 1) }),
            ("REPLACE A's device onto B's nested HWPT", UInt32(nestedB), { _ = try ch.replace(device: "a0", pt: $0) }),
            ("REPLACE A's device onto B's IOAS", UInt32(f.otherIOAS), { _ = try ch.replace(device: "a0", pt: $0) }),
            ("HWPT_DESTROY B's nested HWPT", UInt32(nestedB), { try ch.hwptDestroy($0) }),
            ("HWPT_DESTROY B's nest parent", UInt32(parentB), { try ch.hwptDestroy($0) }),
            ("INVALIDATE B's nested HWPT", UInt32(nestedB), { _ = try ch.invalidate(target: $0, dataType: InvalidateDataType.selftest, entryLength: 8, entries: selftest) }),
            ("INVALIDATE B's vIOMMU", UInt32(viommuB), { _ = try ch.invalidate(target: $0, dataType: InvalidateDataType.selftest, entryLength: 12, entries: viommuEntries) }),
            ("QUEUE_FD of B's fault queue", UInt32(queueB), { _ = try ch.queueFD($0) }),
        ]
        for (name, id, op) in cells {
            let onB = Self.errorOf { try op(id) }
            let onAbsent = Self.errorOf { try op(absent) }
            #expect(onB?.name == "iommufdd.NotFound" && onB?.errno == ENOENT, "\(name): \(String(describing: onB))")
            #expect(onB?.message.replacingOccurrences(of: "\(id)", with: "N") == onAbsent?.message.replacingOccurrences(of: "\(absent)", with: "N"),
                    "\(name): owner B's object answers unlike an absent one: \(String(describing: onB)) / \(String(describing: onAbsent))")
        }
        // B's device, named by A's channel, is not A's to move.
        #expect(Self.errorOf { _ = try ch.replace(device: "n0", pt: UInt32(f.ioas)) }?.name == "iommufdd.NotFound")
        #expect(try clients.snapshot(f) == before, "owner B (or A) changed")
        // B's fault queue still has B's holder? It had none; A's attempt connected nothing.
        let queues = try clients.b.value("queue.list", ["owner": .string(f.otherOwner)])["queues"]?.arrayValue ?? []
        #expect(queues.first?["connected"] == false, "\(queues)")
        ch.close()
        try clients.tearDown(f)
    }
}
