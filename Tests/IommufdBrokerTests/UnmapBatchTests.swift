#if canImport(Glibc)
import Glibc
#endif
import IommufdCore
import Testing
import IommufdContract

@testable import IommufdBroker

/// `ioasUnmapBatch` (the VMM channel's UNMAP): the same results, records and errors as the
/// entries unmapped one `ioas.unmap` at a time.
@Suite("IOAS: batched unmap")
struct UnmapBatchTests {
    func mapped(_ f: Fixture, _ ioas: ObjectID, count: Int, fd: Int32, caller: Caller? = nil) throws -> [UInt64] {
        try (0..<count).map { i in
            try f.broker.ioasMap(caller ?? f.a, IOASMapParams(ioas: ioas, offset: 0, length: page, iova: 0x100_0000 + UInt64(i) * 2 * page), fd: fd).iova
        }
    }

    @Test func aBatchDoesWhatItsEntriesDoOneByOne() throws {
        let fd = try memfd(pages: 4)
        defer { close(fd) }
        let batched = try Fixture(), single = try Fixture()
        var answers: [[IOASUnmapResult]] = []
        for f in [batched, single] {
            let ioas = try f.ownerWithIOAS()
            let iovas = try mapped(f, ioas, count: 8, fd: fd)
            let params = [
                IOASUnmapParams(ioas: ioas, iova: iovas[0], length: page),
                IOASUnmapParams(ioas: ioas, iova: iovas[2], length: iovas[4] - iovas[2] + page),  // three mappings
                IOASUnmapParams(ioas: ioas, iova: iovas[0], length: page, tolerateMissing: true),  // gone: 0 bytes
                IOASUnmapParams(ioas: ioas, iova: iovas[5], length: page),
                // Never mapped, in the same group as the unmap before it: 0 bytes, and the
                // owner's pinned bytes after that unmap.
                IOASUnmapParams(ioas: ioas, iova: 0x4000_0000, length: page, tolerateMissing: true),
                IOASUnmapParams(ioas: ioas, all: true),
            ]
            if f.broker === batched.broker {
                let outcome = f.broker.ioasUnmapBatch(f.a, params)
                #expect(outcome.failure == nil)
                answers.append(outcome.results)
            } else {
                answers.append(try params.map { try f.broker.ioasUnmap(f.a, $0) })
            }
            #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas)).mappingCount == 0)
            #expect(f.broker.heldFileCount == 0)
        }
        #expect(answers[0] == answers[1])
        #expect(answers[0].map(\.unmappedBytes) == [page, 3 * page, 0, page, 0, 3 * page])
        #expect(answers[0].map(\.ownerPinnedBytes) == [7 * page, 4 * page, 4 * page, 3 * page, 3 * page, 0])
    }

    @Test func aFailingEntryStopsTheBatchAndKeepsWhatWentBefore() throws {
        let f = try Fixture()
        let fd = try memfd(pages: 4)
        defer { close(fd) }
        let ioas = try f.ownerWithIOAS()
        let iovas = try mapped(f, ioas, count: 4, fd: fd)
        let outcome = f.broker.ioasUnmapBatch(f.a, [
            IOASUnmapParams(ioas: ioas, iova: iovas[0], length: page),
            IOASUnmapParams(ioas: ioas, iova: iovas[1], length: page),
            IOASUnmapParams(ioas: ioas, iova: iovas[2], length: 2 * page),  // cuts nothing, but past the end of it: fine
            IOASUnmapParams(ioas: ioas, iova: iovas[3] + page / 2, length: page),  // unaligned: refused
            IOASUnmapParams(ioas: ioas, iova: iovas[3], length: page),  // not reached
        ])
        #expect(outcome.results.count == 3)
        let error = try #require(outcome.failure as? BrokerError)
        #expect(error.kind == .invalidParams && error.message.contains("must be multiples of"))
        let info = try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas))
        #expect(info.mappings.map(\.iova) == [iovas[3]] && info.pinnedBytes == page)
        // Not found (no mapping there) stops it too, after the entries before it.
        let missing = f.broker.ioasUnmapBatch(f.a, [
            IOASUnmapParams(ioas: ioas, iova: iovas[3], length: page),
            IOASUnmapParams(ioas: ioas, iova: iovas[3], length: page, tolerateMissing: false),
        ])
        #expect(missing.results.map(\.unmappedBytes) == [page])
        #expect((missing.failure as? BrokerError)?.kind == .notFound)
    }

    @Test func anotherManagersIOASIsNotFoundAndEntriesOfTwoOwnersEachTakeTheirOwn() throws {
        let f = try Fixture()
        let fd = try memfd(pages: 4)
        defer { close(fd) }
        let mine = try f.ownerWithIOAS("vm-a")
        let theirs = try f.ownerWithIOAS("vm-b", as: f.b)
        let second = try f.ownerWithIOAS("vm-a2")
        let a = try mapped(f, mine, count: 2, fd: fd)
        let b = try mapped(f, theirs, count: 2, fd: fd, caller: f.b)
        let c = try mapped(f, second, count: 2, fd: fd)
        // Manager A cannot reach B's IOAS: NotFound, B's mappings untouched, A's first entry done.
        let denied = f.broker.ioasUnmapBatch(f.a, [
            IOASUnmapParams(ioas: mine, iova: a[0], length: page),
            IOASUnmapParams(ioas: theirs, iova: b[0], length: page),
        ])
        #expect(denied.results.count == 1 && (denied.failure as? BrokerError)?.kind == .notFound)
        #expect(try f.broker.ioasInfo(f.b, IOASInfoParams(ioas: theirs)).mappingCount == 2)
        // A batch across A's two owners, and an admin's across two managers' owners.
        let two = f.broker.ioasUnmapBatch(f.a, [
            IOASUnmapParams(ioas: mine, iova: a[1], length: page),
            IOASUnmapParams(ioas: second, iova: c[0], length: page),
            IOASUnmapParams(ioas: mine, all: true),
        ])
        #expect(two.failure == nil && two.results.map(\.unmappedBytes) == [page, page, 0])
        let admin = f.broker.ioasUnmapBatch(f.admin, [
            IOASUnmapParams(ioas: second, iova: c[1], length: page),
            IOASUnmapParams(ioas: theirs, all: true),
        ])
        #expect(admin.failure == nil && admin.results.map(\.unmappedBytes) == [page, 2 * page])
        #expect(admin.results.map(\.ownerPinnedBytes) == [0, 0])
        #expect(f.broker.heldFileCount == 0)
    }
}
