import Foundation
import IommufdCore
import IommufdSim
import Testing
import IommufdContract

@testable import IommufdBroker

// MARK: p2p

@Suite("dma-buf mappings across a restart")
struct DmabufRestartTests {
    let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    @Test("a dma-buf mapping is journaled with its dma-buf in the fd store: after a restart it is still P2P (not pinned), and unmapping it drops the stored dma-buf")
    func dmabufMappingAdoptedAfterRestart() throws {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let a = Incarnation.admin
        _ = try first.broker.ownerCreate(a, OwnerCreateParams(name: "vm"))
        let ioas = try first.broker.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        let fd = try first.sim.testDmabufGet(length: UInt32(4 * page))
        let m = try first.broker.ioasMap(a, IOASMapParams(ioas: ioas, length: 4 * page, iova: 0x200_0000), fd: fd)
        close(fd)
        #expect(m.ownerP2PBytes == 4 * page && m.ownerPinnedBytes == 0)
        let storedBefore = store.names.filter { $0.hasPrefix("mem.") }
        #expect(storedBefore.count == 1)

        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems.isEmpty)
        #expect(second.recovery?.problems == [])
        let info = try second.broker.ioasInfo(a, IOASInfoParams(ioas: ioas))
        #expect(info.p2pBytes == 4 * page && info.pinnedBytes == 0)
        #expect(info.mappings.map(\.source) == ["dmabuf"] && info.mappings.first?.iova == 0x200_0000)
        #expect(try second.broker.ownerInfo(a, OwnerInfoParams(name: "vm")).pinnedBytes == 0)
        let u = try second.broker.ioasUnmap(a, IOASUnmapParams(ioas: ioas, all: true))
        #expect(u.unmappedBytes == 4 * page)
        #expect(store.names.filter { $0.hasPrefix("mem.") }.isEmpty)
        #expect(try second.broker.ioasInfo(a, IOASInfoParams(ioas: ioas)).p2pBytes == nil)
    }
}
