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

/// Branch unmapfast (issue 16 target 2): the log's memfd is allocated ahead in steps
/// (`fallocate` with `FALLOC_FL_KEEP_SIZE`), so a request's `pwrite` lands on pages that exist;
/// the file's size, and so what a restarted daemon reads, is still exactly the records. And a
/// batched unmap's group record is built one plan at a time (one reservation for all the
/// mappings an entry removes): the same bytes as one mapping at a time.
@Suite("Journal: the log allocated ahead, the unmap group written a plan at a time")
struct JournalPreallocationTests {
    let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    static func stat(_ fd: Int32) -> (size: Int, allocated: Int) {
        var st = Glibc.stat()
        _ = fstat(fd, &st)
        return (Int(st.st_size), Int(st.st_blocks) * 512)
    }

    @Test("records written: the memfd is allocated a step ahead, its size stays the records', and it reads back whole")
    func allocatedAhead() throws {
        let log = try RecordLog(memfdName: "prealloc-test", magic: ObjectJournal.magic)
        let step = RecordLog.allocationStep
        let payload = [UInt8](repeating: 0xA5, count: 3_000)
        log.append(type: 9, payload)
        try log.flush()
        var (size, allocated) = Self.stat(log.fd)
        #expect(size == log.size)
        #expect(size == 8 + 9 + 3_000)
        #expect(allocated >= step, "the first step is allocated: \(allocated) bytes")
        #expect(log.allocatedAhead == step - log.size)
        // Past the first step: the next one is allocated, still in whole steps.
        let records = step / 3_009 + 10
        for _ in 1..<records { log.append(type: 9, payload) }
        try log.flush()
        (size, allocated) = Self.stat(log.fd)
        #expect(size == log.size && size == 8 + records * 3_009)
        #expect(allocated >= 2 * step)
        #expect(log.allocatedAhead == 2 * step - log.size)
        // The allocated bytes beyond the size are not part of the log: adopted, it reads every
        // record and nothing torn.
        let copy = dup(log.fd)
        var read: [RecordLog.Record] = []
        var torn = -1
        let adopted = try RecordLog(adopting: copy, magic: ObjectJournal.magic, records: &read, tornBytes: &torn)
        #expect(read.count == records && torn == 0)
        #expect(read.allSatisfy { $0.type == 9 && Array($0.payload) == payload })
        #expect(adopted.size == log.size)
        // An adopted log allocates ahead from its end on its next write.
        adopted.append(type: 9, payload)
        try adopted.flush()
        #expect(Self.stat(copy).size == adopted.size)
        #expect(adopted.allocatedAhead > 0 && (adopted.size + adopted.allocatedAhead) % step == 0)
    }

    @Test("one unmap entry of a batch removing 400 mappings: one unmapBatch record of 400 (IOAS, IOVA), in order, replaying to none")
    func largePlan() throws {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let a = Incarnation.admin
        let b = first.broker
        let count = 400  // more than the group buffer's first reservation (64 x 57 bytes)
        let base: UInt64 = 0x200_0000
        let ram = try makeMemfd(bytes: count * Int(page))
        defer { close(ram) }
        _ = try b.ownerCreate(a, OwnerCreateParams(name: "vm"))
        let ioas = try b.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        let maps = (0..<count).map { i in
            (params: IOASMapParams(ioas: ioas, offset: UInt64(i) * page, length: page, iova: base + UInt64(i) * page), fd: ram)
        }
        #expect(b.ioasMapBatch(a, maps).failure == nil)
        let journal = try #require(b.journal)
        let before = try Memfd.readAll(journal.log.fd)
        // Two entries: a one-page hole first (tolerated), then the whole range.
        let outcome = b.ioasUnmapBatch(a, [
            IOASUnmapParams(ioas: ioas, iova: base - page, length: page, tolerateMissing: true),
            IOASUnmapParams(ioas: ioas, iova: base, length: UInt64(count) * page),
        ])
        #expect(outcome.failure == nil)
        #expect(outcome.results.map(\.mappings) == [0, count])
        let after = try Memfd.readAll(journal.log.fd)
        let ends = BatchRecordTests.recordEnds(after, from: before.count)
        #expect(ends == [after.count])
        let whole = try BatchRecordTests.read(after)
        let record = try #require(whole.records.last)
        #expect(record.type == ObjectJournal.RecordType.unmapBatch.rawValue)
        var expected: [UInt8] = []
        for i in 0..<count {
            withUnsafeBytes(of: ioas.littleEndian) { expected.append(contentsOf: $0) }
            withUnsafeBytes(of: (base + UInt64(i) * page).littleEndian) { expected.append(contentsOf: $0) }
        }
        #expect(Array(record.payload) == expected)
        #expect((whole.contents.mappings[ioas] ?? [:]).isEmpty)
        #expect(whole.contents.problems == [])
        // A restart agrees: nothing mapped, nothing pinned.
        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems == [])
        #expect(try second.broker.ioasInfo(a, IOASInfoParams(ioas: ioas)).mappingCount == 0)
        #expect(try second.broker.ownerInfo(a, OwnerInfoParams(name: "vm")).pinnedBytes == 0)
    }
}
