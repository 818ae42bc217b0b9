import Foundation
import IommufdChannel
import IommufdRPC
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: pasidnest

extension ChannelIsolationTests {
    /// NESTED_ALLOC_FLAGS (op 19, channel 1.2): owner A's channel, given owner B's nest parent and
    /// vIOMMU (with and without the PASID flag), or naming B's device, gets what it gets for
    /// objects that do not exist, and nothing of B's changes.
    @Test func nestedAllocFlagsOfOwnerACannotReachOwnerB() throws {
        let daemon = try DaemonUnderTest()
        defer { #expect(daemon.stop() == 0, "iommufdd did not stop cleanly:\n\(daemon.finalLog)") }
        let clients = try Clients(daemon)
        let f = try clients.makeFixture()
        // Owner B: n0 (behind the selftest mock) on a vIOMMU and its nest parent.
        try clients.b.value("device.attach", ["owner": .string(f.otherOwner), "device": "n0", "ioas": .id(f.otherIOAS)])
        let created = try clients.b.value("viommu.create", ["device": "n0"])
        let viommuB = try created.id("viommu"), parentB = try created.id("nest_parent")

        let (_, fds) = try clients.a.call("owner.delegate", params: ["name": .string(f.owner)], timeout: .seconds(30))
        let ch = ChannelClient(adopting: try #require(fds.first))
        defer { ch.close() }
        let before = try clients.snapshot(f)
        let absent: UInt32 = 999_999
        var cells: [(String, UInt32, (UInt32) throws -> Void)] = []
        for flags in [UInt32(0), ChannelWire.nestedAllocPASID] {
            cells += [
                ("NESTED_ALLOC_FLAGS \(flags) on B's nest parent", UInt32(parentB), { _ = try ch.nestedAllocSelftest(parent: $0, device: "a0", iotlb: 1, flags: flags) }),
                ("NESTED_ALLOC_FLAGS \(flags) on B's vIOMMU", UInt32(viommuB), { _ = try ch.nestedAllocSelftest(parent: $0, device: "a0", iotlb: 1, flags: flags) }),
                ("NESTED_ALLOC_FLAGS \(flags) for B's device on B's nest parent", UInt32(parentB), { _ = try ch.nestedAllocSelftest(parent: $0, device: "n0", iotlb: 1, flags: flags) }),
            ]
        }
        for (name, id, op) in cells {
            let onB = Self.errorOf { try op(id) }
            let onAbsent = Self.errorOf { try op(absent) }
            #expect(onB?.name == "iommufdd.NotFound" && onB?.errno == ENOENT, "\(name): \(String(describing: onB))")
            #expect(onB?.message.replacingOccurrences(of: "\(id)", with: "N") == onAbsent?.message.replacingOccurrences(of: "\(absent)", with: "N"),
                    "\(name): owner B's object answers unlike an absent one: \(String(describing: onB)) / \(String(describing: onAbsent))")
        }
        #expect(try clients.snapshot(f) == before, "owner B (or A) changed")
        ch.close()
        try clients.tearDown(f)
    }
}
