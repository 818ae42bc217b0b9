import Foundation
import IommufdCore
import Testing
import IommufdContract

@testable import IommufdBroker

// MARK: p2p

@Suite("P2P: ioas.map of a dma-buf")
struct DmabufTests {
    /// A dma-buf of the simulator's selftest exporter (closed by the caller).
    func dmabuf(_ f: Fixture, pages: UInt64) throws -> Int32 {
        try f.sim.testDmabufGet(length: UInt32(pages * page))
    }

    @Test func dmabufIsCountedAsP2PNotPinnedAndOutsideTheQuota() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        // More than manager A's whole pinned-memory quota (64 pages): P2P is not pinned.
        let pages = Fixture.quotaPages + 16
        let fd = try dmabuf(f, pages: pages)
        let m = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: pages * page, iova: 0x100_0000), fd: fd)
        close(fd)  // the broker keeps its own reference
        #expect(m.ownerPinnedBytes == 0 && m.ownerP2PBytes == pages * page)
        // Pinned memory still has its whole quota.
        let mem = try memfd(pages: Fixture.quotaPages)
        defer { close(mem) }
        let r = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: Fixture.quotaPages * page), fd: mem)
        #expect(r.ownerPinnedBytes == Fixture.quotaPages * page && r.ownerP2PBytes == nil)
        let info = try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas))
        #expect(info.pinnedBytes == Fixture.quotaPages * page && info.p2pBytes == pages * page && info.revokedMappings == nil)
        let p2p = try #require(info.mappings.first { $0.iova == 0x100_0000 })
        #expect(p2p.source == "dmabuf" && p2p.revoked == false)
        #expect(info.mappings.first { $0.iova != 0x100_0000 }?.revoked == nil)
        let u = try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: 0x100_0000, length: pages * page))
        #expect(u.unmappedBytes == pages * page && u.ownerPinnedBytes == Fixture.quotaPages * page)
        #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas)).p2pBytes == nil)
        #expect(try f.broker.locked { f.broker.dmabufFiles.files.isEmpty })
    }

    @Test func rangeBeyondTheDmabufAndUnalignedOffsetsAreRefusedWithTheReason() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let fd = try dmabuf(f, pages: 4)
        defer { close(fd) }
        let beyond = expectBrokerError(.invalidParams) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, offset: page, length: 4 * page), fd: fd) }
        #expect(beyond?.message.contains("beyond the end of the dma-buf") == true)
        #expect(beyond?.message.contains("exporter 'iommufd'") == true)
        expectBrokerError(.invalidParams) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, offset: 1, length: page), fd: fd) }
        expectBrokerError(.invalidParams) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 0), fd: fd) }
        #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas)).mappingCount == 0)
        #expect(try f.broker.locked { f.broker.dmabufFiles.files.isEmpty })
    }

    @Test func aKernelWithoutDmabufMappingAnswersUnsupportedWithTheReason() throws {
        let f = try Fixture(without: [.dmabufMap])
        let ioas = try f.ownerWithIOAS()
        let fd = try dmabuf(f, pages: 1)
        defer { close(fd) }
        let e = expectBrokerError(.unsupported) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: page), fd: fd) }
        #expect(e?.message.contains("Linux 6.19") == true)
    }

    @Test func revocationShowsInInfoAndAsOneEventAndMappingAgainIsRefused() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let fd = try dmabuf(f, pages: 2)
        defer { close(fd) }
        let log = LockedList<(String, BrokerEvent)>()
        _ = try f.broker.subscribe(f.a, EventsSubscribeParams()) { log.append(("a", $0)) }
        _ = try f.broker.subscribe(f.b, EventsSubscribeParams()) { log.append(("b", $0)) }
        let m = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 2 * page), fd: fd)
        try f.sim.testDmabufRevoke(fd: fd, revoked: true)
        let info = try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas))
        #expect(info.revokedMappings == 1 && info.mappings.first?.revoked == true)
        // Asked again (and by ioas.list): still revoked, no second event.
        _ = try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas))
        #expect(try f.broker.ioasList(f.a, IOASListParams()).ioas.first?.revokedMappings == 1)
        let revoked = log.items.filter { $0.1.method == "event.dmabuf_revoked" }
        #expect(revoked.count == 1 && revoked.first?.0 == "a")
        #expect(revoked.first?.1 == .dmabufRevoked(owner: "vm-1", ioas: ioas, iova: m.iova, length: 2 * page))
        let again = expectBrokerError(.kernel) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 2 * page), fd: fd) }
        #expect(again?.message.contains("ENODEV") == true && again?.message.contains("revoked") == true)
        // Restored: a new mapping works, the old one stays revoked until it is unmapped.
        try f.sim.testDmabufRevoke(fd: fd, revoked: false)
        let m2 = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 2 * page), fd: fd)
        let after = try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas))
        #expect(after.mappings.map(\.revoked) == [true, false].map { Optional($0) } && m2.iova != m.iova)
        _ = try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: m.iova, length: 2 * page))
        let last = try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas))
        #expect(last.revokedMappings == nil && last.p2pBytes == 2 * page)
    }

    @Test func anotherManagerCannotMapItsDmabufIntoTheOwnersIOAS() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let fd = try dmabuf(f, pages: 1)
        defer { close(fd) }
        expectBrokerError(.notFound) { try f.broker.ioasMap(f.b, IOASMapParams(ioas: ioas, length: page), fd: fd) }
        expectBrokerError(.permissionDenied) { try f.broker.ioasMap(f.reader, IOASMapParams(ioas: ioas, length: page), fd: fd) }
        expectBrokerError(.notFound) { try f.broker.ioasInfo(f.b, IOASInfoParams(ioas: ioas)) }
        #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas)).mappingCount == 0)
    }

    @Test func copyOfADmabufMappingIsRefusedWithTheWayOut() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let other = try f.broker.ioasCreate(f.a, IOASCreateParams(owner: "vm-1")).ioas
        let fd = try dmabuf(f, pages: 2)
        defer { close(fd) }
        let m = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 2 * page), fd: fd)
        let e = expectBrokerError(.unsupported) {
            try f.broker.ioasCopy(f.a, IOASCopyParams(dstIOAS: other, srcIOAS: ioas, srcIOVA: m.iova + page, length: page))
        }
        #expect(e?.message.contains("map the dma-buf into the other IOAS") == true)
        #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: other)).mappingCount == 0)
    }

    @Test func ownerReleaseDropsTheDmabufReferences() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let fd = try dmabuf(f, pages: 1)
        defer { close(fd) }
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: page), fd: fd)
        _ = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(try f.broker.locked { f.broker.dmabufFiles.files.isEmpty })
    }
}
