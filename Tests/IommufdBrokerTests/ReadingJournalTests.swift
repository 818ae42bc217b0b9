import Foundation
import IommufdCore
import Testing

@testable import IommufdBroker
import IommufdContract

/// Issue 16 target 5 (branch scale10k): a read of one owner's objects does not walk every
/// owner's. With a journal, every request ended by building the journal's whole state (all
/// owners, IOAS, HWPTs, leases, sorted) and comparing it with the last one recorded; at 10,000
/// owners that made `ioas.info` 80x slower. Reads now skip it; changes still record it.
@Suite struct ReadingJournalTests {
    /// A journaling broker with `count` owners of manager A (one IOAS each, the first with a
    /// device attached) and one of manager B.
    private static func populated(_ count: Int) throws -> (Fixture, InMemoryFDStore, [ObjectID]) {
        let f = try Fixture()
        let store = InMemoryFDStore()
        _ = try f.broker.recover(storedFDs: [], store: store)
        var ids: [ObjectID] = []
        for i in 0..<count { ids.append(try f.ownerWithIOAS("vm-\(i)")) }
        _ = try f.ownerWithIOAS("other", as: f.b)
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-0", device: "sim0", ioas: ids[0]))
        return (f, store, ids)
    }

    @Test func readsDoNotBuildTheJournalState() throws {
        let (f, _, ids) = try Self.populated(20)
        let built = f.broker.journalStatesBuilt
        #expect(built >= 42, "each owner.create, ioas.create and the attach built it (\(built))")
        let before = f.broker.readLocked { f.broker.journalState() }

        let b = f.broker
        _ = try b.ioasInfo(f.a, IOASInfoParams(ioas: ids[3]))
        _ = try b.ioasList(f.a, IOASListParams())
        _ = try b.ioasList(f.a, IOASListParams(owner: "vm-1"))
        _ = try b.ioasRanges(f.a, IOASRangesParams(ioas: ids[0]))
        _ = try b.ownerList(f.a)
        _ = try b.ownerInfo(f.a, OwnerInfoParams(name: "vm-2"))
        _ = try b.hwptList(f.a, HWPTListParams())
        _ = try b.viommuList(f.a, VIOMMUListParams())
        _ = try b.queueList(f.a, QueueListParams())
        _ = try b.dirtyStatus(f.a, DirtyParams(ioas: ids[0]))
        _ = try b.deviceList(f.reader, DeviceListParams())
        _ = try b.deviceInfo(f.a, DeviceInfoParams(device: "sim0"))
        // A read that fails (another manager's IOAS answers NotFound, like an absent one).
        #expect(throws: BrokerError.self) { try b.ioasInfo(f.b, IOASInfoParams(ioas: ids[3])) }

        #expect(b.journalStatesBuilt == built, "a read built the journal's state of every owner")
        #expect(b.readLocked { b.journalState() } == before, "a read changed what the journal records")
    }

    @Test func changesStillRecordTheState() throws {
        let (f, _, ids) = try Self.populated(3)
        _ = try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ids[1]))
        let built = f.broker.journalStatesBuilt
        let created = try f.broker.ioasCreate(f.a, IOASCreateParams(owner: "vm-1"))
        #expect(f.broker.journalStatesBuilt == built + 1)
        let recorded = try #require(f.broker.readLocked { f.broker.journal?.lastState })
        #expect(recorded.ioas.contains { $0.id == created.ioas && $0.owner == "vm-1" })
        #expect(recorded == f.broker.readLocked { f.broker.journalState() })
    }
}
