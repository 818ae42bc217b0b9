import Foundation
import IommufdChannel
import IommufdRPC
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: pasidch

extension ChannelIsolationTests {
    /// The PASID ops (channel 1.2): owner A's channel, naming owner B's PASID-capable device, its
    /// attached PASID and its HWPT, gets what it gets for ones that do not exist, and nothing of
    /// B's changes.
    @Test func pasidOpsOfOwnerACannotReachOwnerB() throws {
        let daemon = try DaemonUnderTest()
        defer { #expect(daemon.stop() == 0, "iommufdd did not stop cleanly:\n\(daemon.finalLog)") }
        let clients = try Clients(daemon)
        let f = try clients.makeFixture()
        // Owner B: p0 (20-bit PASIDs) with its RID and PASID 5 on an HWPT allocated with pasid.
        let hwptB = try clients.b.value("hwpt.alloc", ["ioas": .id(f.otherIOAS), "device": "p0", "pasid": true]).id("hwpt")
        try clients.b.value("device.attach", ["owner": .string(f.otherOwner), "device": "p0", "hwpt": .id(hwptB)])
        try clients.b.value("device.attach_pasid", ["device": "p0", "pasid": 5, "hwpt": .id(hwptB)])
        let pasidsB = try clients.b.value("device.info", ["device": "p0"])["pasids"]

        let (_, fds) = try clients.a.call("owner.delegate", params: ["name": .string(f.owner)], timeout: .seconds(30))
        let ch = ChannelClient(adopting: try #require(fds.first))
        defer { ch.close() }
        let before = try clients.snapshot(f)
        let absent: UInt32 = 999_999
        // A's device onto B's HWPT, next to an HWPT that does not exist.
        let cells: [(String, (UInt32) throws -> Void)] = [
            ("PASID_ATTACH A's device onto B's HWPT", { _ = try ch.pasidAttach(device: "a0", pasid: 5, hwpt: $0) }),
            ("PASID_REPLACE A's device onto B's HWPT", { _ = try ch.pasidReplace(device: "a0", pasid: 5, hwpt: $0) }),
        ]
        for (name, op) in cells {
            let onB = Self.errorOf { try op(UInt32(hwptB)) }
            let onAbsent = Self.errorOf { try op(absent) }
            #expect(onB?.name == "iommufdd.NotFound" && onB?.errno == ENOENT, "\(name): \(String(describing: onB))")
            #expect(onB?.message.replacingOccurrences(of: "\(hwptB)", with: "N") == onAbsent?.message.replacingOccurrences(of: "\(absent)", with: "N"),
                    "\(name): owner B's HWPT answers unlike an absent one: \(String(describing: onB)) / \(String(describing: onAbsent))")
        }
        // B's device and its attached PASID.
        let onDevice: [(String, () throws -> Void)] = [
            ("PASID_ATTACH on B's device", { _ = try ch.pasidAttach(device: "p0", pasid: 6, hwpt: UInt32(hwptB)) }),
            ("PASID_REPLACE of B's PASID", { _ = try ch.pasidReplace(device: "p0", pasid: 5, hwpt: UInt32(hwptB)) }),
            ("PASID_DETACH of B's PASID", { _ = try ch.pasidDetach(device: "p0", pasid: 5) }),
        ]
        for (name, op) in onDevice {
            let e = Self.errorOf(op)
            #expect(e?.name == "iommufdd.NotFound" && e?.errno == ENOENT, "\(name): \(String(describing: e))")
        }
        #expect(try clients.snapshot(f) == before, "owner B (or A) changed")
        #expect(try clients.b.value("device.info", ["device": "p0"])["pasids"] == pasidsB)
        ch.close()
        try clients.tearDown(f)
    }
}
