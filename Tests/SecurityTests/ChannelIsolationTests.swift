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
}
