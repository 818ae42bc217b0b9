import Foundation
import IommufdCore
import Testing

@testable import IommufdBroker
import IommufdContract

/// A request that changes more than one slice of the journal (format 3) — here `device.attach`,
/// which changes the device table (the global slice) and its owner's objects — records them in
/// one `stateSet` record, so a crash that tears the journal write leaves the request whole or
/// absent, never half of it. (With one record per slice, the long crash-point sweep found
/// `viommu.create` cut half-way: the global slice kept, the owner's lost.)
@Suite struct OwnerJournalAtomicTests {
    /// The journal's bytes as a restarted daemon reads them, cut to `length`.
    static func state(_ bytes: ArraySlice<UInt8>) throws -> JournalState {
        let fd = try Memfd.create(name: "cut-journal")
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        var records: [RecordLog.Record] = []
        var torn = 0
        let log = try RecordLog(adopting: fcntl(fd, F_DUPFD_CLOEXEC, 0), magics: ObjectJournal.readableMagics, records: &records, tornBytes: &torn)
        withExtendedLifetime(log) {}
        return ObjectJournal.read(records).state
    }

    @Test func aRequestThatChangesTwoSlicesIsOneRecordAndAllOrNothing() throws {
        let f = try Fixture()
        _ = try f.broker.recover(storedFDs: [], store: InMemoryFDStore())
        let ioas = try f.ownerWithIOAS("vm-1")
        _ = try f.ownerWithIOAS("vm-2")
        let fd = try #require(try f.broker.locked { f.broker.journal?.log.fd })
        let before = try Memfd.readAll(fd)
        let stateBefore = f.broker.readLocked { f.broker.journalState() }
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas))
        let after = try Memfd.readAll(fd)
        let stateAfter = f.broker.readLocked { f.broker.journalState() }
        #expect(stateBefore != stateAfter)
        #expect(stateBefore.devices != stateAfter.devices, "the attach changed the device table (the global slice)")
        #expect(try Self.state(after[...]) == stateAfter)
        // The request's records: one stateSet (the global slice and vm-1's), nothing else.
        let types = try OwnerJournalTests.recordTypes(f.broker)
        #expect(types.last == ObjectJournal.RecordType.stateSet.rawValue)
        #expect(Array(after.prefix(before.count)) == before)
        // Cut anywhere inside the request's write: the state before, never a mix.
        for cut in before.count..<after.count {
            let seen = try Self.state(after[..<cut])
            #expect(seen == stateBefore, "cut at byte \(cut) of \(before.count)..<\(after.count)")
        }
    }
}
