import Foundation
import IommufdCore
import IommufdSim
import TestProcesses
import Testing

@testable import IommufdBroker
import IommufdContract

#if canImport(Glibc)
import Glibc
#endif

/// The journal's batch records (format 2): a group of a batched map or unmap (the VMM channel's
/// MAP and UNMAP, groups of up to 64 entries) is one record, so one checksum. A daemon killed in
/// the middle of writing it leaves a torn record that reading drops whole: the group is all or
/// nothing in the journal, and the restart makes the backend agree (what the kernel mapped for
/// a lost map group is unmapped, what it unmapped for a lost unmap group is dropped from the
/// records), as for a torn single record.
@Suite("Journal batch records: one a group, all or nothing when torn")
struct BatchRecordTests {
    let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
    static let entries = 100  // two groups: 64 and 36
    static let base: UInt64 = 0x100_0000

    /// The records of `bytes` (a journal's whole file) as a restarted daemon reads them.
    static func read(_ bytes: [UInt8]) throws -> (contents: ObjectJournal.Contents, records: [RecordLog.Record], torn: Int) {
        let fd = try makeMemfd(bytes: 0)
        if !bytes.isEmpty { _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } }
        var records: [RecordLog.Record] = []
        var torn = 0
        let log = try RecordLog(adopting: fd, magics: ObjectJournal.readableMagics, records: &records, tornBytes: &torn)
        withExtendedLifetime(log) {}
        return (ObjectJournal.read(records), records, torn)
    }

    /// Where each record of `bytes` ends, from `from` (a record's start) on.
    static func recordEnds(_ bytes: [UInt8], from: Int) -> [Int] {
        var ends: [Int] = []
        var at = from
        while at + 9 <= bytes.count {
            let length = Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24
            at += 9 + length
            ends.append(at)
        }
        return ends
    }

    func iova(_ i: Int) -> UInt64 { Self.base + UInt64(i) * page }

    /// What both tests start from: a fresh daemon journaling into `store`, owner "vm" with one
    /// IOAS, and the map parameters of `entries` pages of `ram` (which the caller closes).
    func vmWithMaps() throws -> (store: MemoryFDStore, first: Incarnation, ram: Int32, ioas: ObjectID, maps: [(params: IOASMapParams, fd: Int32)]) {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let ram = try makeMemfd(bytes: Self.entries * Int(page))
        do {
            _ = try first.broker.ownerCreate(Incarnation.admin, OwnerCreateParams(name: "vm"))
            let ioas = try first.broker.ioasCreate(Incarnation.admin, IOASCreateParams(owner: "vm")).ioas
            let maps = (0..<Self.entries).map { i in (params: IOASMapParams(ioas: ioas, offset: UInt64(i) * page, length: page, iova: iova(i)), fd: ram) }
            return (store, first, ram, ioas, maps)
        } catch {
            close(ram)
            throw error
        }
    }

    @Test("a batch writes one record a group; cut at any byte, the journal reads as the groups written whole, and a restart makes the simulator agree", arguments: ["map", "unmap"])
    func tornGroup(_ kind: String) throws {
        let (store, first, ram, ioas, maps) = try vmWithMaps()
        defer { close(ram) }
        let a = Incarnation.admin
        let b = first.broker
        let unmaps = (0..<Self.entries).map { IOASUnmapParams(ioas: ioas, iova: iova($0), length: page) }
        if kind == "unmap" { #expect(b.ioasMapBatch(a, maps).failure == nil) }
        let journal = try #require(b.journal)
        let before = try Memfd.readAll(journal.log.fd)
        if kind == "map" {
            #expect(b.ioasMapBatch(a, maps).failure == nil)
        } else {
            #expect(b.ioasUnmapBatch(a, unmaps).failure == nil)
        }
        let after = try Memfd.readAll(journal.log.fd)

        // Two records, one a group, of the batch's type and size.
        let type: ObjectJournal.RecordType = kind == "map" ? .mapBatch : .unmapBatch
        let size = kind == "map" ? ObjectJournal.mapBytes : ObjectJournal.unmapBytes
        let ends = Self.recordEnds(after, from: before.count)
        let whole = try Self.read(after)
        let added = Array(whole.records.suffix(ends.count))
        #expect(ends.count == 2 && ends.last == after.count)
        #expect(added.map(\.type) == [type.rawValue, type.rawValue])
        #expect(added.map(\.payload.count) == [64 * size, (Self.entries - 64) * size])

        // Cut at every byte of them: the groups whose record is whole, and none of the rest.
        for cut in before.count...after.count {
            let groups = ends.filter { $0 <= cut }.count
            let done = min(Self.entries, 64 * groups)
            let expected = Set(kind == "map" ? (0..<done).map { iova($0) } : (done..<Self.entries).map { iova($0) })
            let read = try Self.read(Array(after[..<cut]))
            #expect(read.torn == cut - (groups == 0 ? before.count : ends[groups - 1]), "cut at \(cut)")
            #expect(read.contents.problems == [], "cut at \(cut)")
            #expect(Set((read.contents.mappings[ioas] ?? [:]).keys) == expected, "cut at \(cut): \(groups) groups whole")
        }

        // A daemon killed half-way through writing the second group's record: the restart reads
        // the first group, reports the torn bytes, and makes the simulator agree.
        let cut = ends[0] + (ends[1] - ends[0]) / 2
        #expect(ftruncate(journal.log.fd, off_t(cut)) == 0)
        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems == [])
        let recovery = try #require(second.recovery)
        #expect(recovery.tornBytes == cut - ends[0])
        let mapped = try second.broker.locked { Set(second.broker.ioasTable[ioas]?.mappings.all.map(\.key) ?? []) }
        if kind == "map" {
            // The kernel mapped all 100; the journal has the first 64: the other 36 are unmapped at start.
            #expect(mapped == Set((0..<64).map { iova($0) }))
            #expect(recovery.unjournaledBytesUnmapped == UInt64(Self.entries - 64) * page)
            // The range is free again: the lost group maps again (no EEXIST).
            #expect(second.broker.ioasMapBatch(a, Array(maps[64...])).failure == nil)
        } else {
            // The kernel unmapped all 100; the journal lost the second group: dropped at start, refunded.
            #expect(mapped == [])
            #expect(recovery.problems.contains { $0.contains("\(Self.entries - 64) journaled mappings were no longer mapped") })
            #expect(try second.broker.ownerInfo(a, OwnerInfoParams(name: "vm")).pinnedBytes == 0)
        }
        // And what the restarted daemon journals reads back as its records.
        let (third, _) = try Incarnation.restarted(store)
        #expect(third.recovery?.tornBytes == 0)
        let again = try third.broker.locked { Set(third.broker.ioasTable[ioas]?.mappings.all.map(\.key) ?? []) }
        #expect(again == (kind == "map" ? Set((0..<Self.entries).map { iova($0) }) : []))
    }

    @Test("a 256-entry batch (four groups) is written to the journal with one write, its four records in it")
    func oneWriteABatch() throws {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let a = Incarnation.admin
        let b = first.broker
        let ram = try makeMemfd(bytes: 256 * Int(page))
        defer { close(ram) }
        _ = try b.ownerCreate(a, OwnerCreateParams(name: "vm"))
        let ioas = try b.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        let journal = try #require(b.journal)
        for kind in ["map", "unmap"] {
            let (writes, size) = try b.locked { (journal.log.writes, journal.log.size) }
            if kind == "map" {
                #expect(b.ioasMapBatch(a, (0..<256).map { i in (params: IOASMapParams(ioas: ioas, offset: UInt64(i) * page, length: page, iova: iova(i)), fd: ram) }).failure == nil)
            } else {
                #expect(b.ioasUnmapBatch(a, (0..<256).map { IOASUnmapParams(ioas: ioas, iova: iova($0), length: page) }).failure == nil)
            }
            let (after, grown) = try b.locked { (journal.log.writes, journal.log.size) }
            #expect(after == writes + 1, "\(kind): \(after - writes) writes")
            let bytes = kind == "map" ? ObjectJournal.mapBytes : ObjectJournal.unmapBytes
            #expect(grown - size == 4 * 9 + 256 * bytes, "\(kind): four records of 64 entries")
        }
        // A batch stopped by a refusal in its third group: the groups before it are written too.
        let (writes, _) = try b.locked { (journal.log.writes, journal.log.size) }
        var entries = (0..<256).map { i in (params: IOASMapParams(ioas: ioas, offset: UInt64(i) * page, length: page, iova: iova(i)), fd: ram) }
        entries[150].params.offset += 1  // unaligned: refused
        let outcome = b.ioasMapBatch(a, entries)
        #expect(outcome.results.count == 150 && outcome.failure != nil)
        let (written, pending) = try b.locked { (journal.log.writes, journal.log.hasPending) }
        #expect(written == writes + 1)
        #expect(!pending)
        let (again, _) = try Incarnation.restarted(store)
        #expect(try again.broker.locked { again.broker.ioasTable[ioas]?.mappings.count } == 150)
    }

    @Test("compaction folds batch records: the next generation holds every mapping in mapBatch records and reads back the same")
    func compactionFolds() throws {
        let (store, first, ram, ioas, maps) = try vmWithMaps()
        defer { close(ram) }
        let a = Incarnation.admin
        let b = first.broker
        #expect(b.ioasMapBatch(a, maps).failure == nil)
        #expect(b.ioasUnmapBatch(a, (0..<Self.entries).filter { $0 % 3 == 0 }.map { IOASUnmapParams(ioas: ioas, iova: iova($0), length: page) }).failure == nil)
        let generation = try #require(b.journal).generation
        try b.locked { try b.compact(try #require(b.journal)) }
        let journal = try #require(b.journal)
        #expect(journal.generation == generation + 1)
        #expect(store.names.contains(StoredFDName.journal(generation + 1)) && !store.names.contains(StoredFDName.journal(generation)))
        let read = try Self.read(try Memfd.readAll(journal.log.fd))
        let expected = Set((0..<Self.entries).filter { $0 % 3 != 0 }.map { iova($0) })
        // The state in slices (format 3): the one owner's and the global one in one `stateSet`
        // record; then the mappings.
        #expect(read.records.map(\.type) == [ObjectJournal.RecordType.stateSet.rawValue, ObjectJournal.RecordType.mapBatch.rawValue])
        #expect(Set((read.contents.mappings[ioas] ?? [:]).keys) == expected)
        let (second, _) = try Incarnation.restarted(store)
        #expect(second.recovery?.problems == [])
        #expect(try second.broker.locked { Set(second.broker.ioasTable[ioas]?.mappings.all.map(\.key) ?? []) } == expected)
    }
}
