#if canImport(Glibc)
import Glibc
#endif
import IommufdCore
import Testing
import IommufdContract

@testable import IommufdBroker

/// `ioasMapBatch` (the VMM channel's MAP): the same results, records and errors as the entries
/// mapped one `ioas.map` at a time.
@Suite("IOAS: batched map")
struct MapBatchTests {
    @Test func aBatchDoesWhatItsEntriesDoOneByOne() throws {
        let fd = try memfd(pages: 4)
        defer { close(fd) }
        let batched = try Fixture(), single = try Fixture()
        var answers: [[IOASMapResult]] = []
        var errors: [String] = []
        for f in [batched, single] {
            let ioas = try f.ownerWithIOAS()
            let params = [
                IOASMapParams(ioas: ioas, offset: 0, length: page, iova: 0x100_0000),
                IOASMapParams(ioas: ioas, offset: page, length: 2 * page, iova: 0x200_0000, readable: true, writeable: false),
                IOASMapParams(ioas: ioas, offset: 0, length: 4 * page),  // the kernel chooses the IOVA
                IOASMapParams(ioas: ioas, offset: 3 * page, length: page, iova: 0x100_0000),  // taken: refused
                IOASMapParams(ioas: ioas, offset: 0, length: page, iova: 0x300_0000),  // not reached
            ]
            if f.broker === batched.broker {
                let outcome = f.broker.ioasMapBatch(f.a, params.map { ($0, fd) })
                answers.append(outcome.results)
                errors.append("\(try #require(outcome.failure))")
            } else {
                var results: [IOASMapResult] = []
                do {
                    for p in params { results.append(try f.broker.ioasMap(f.a, p, fd: fd)) }
                } catch {
                    errors.append("\(error)")
                }
                answers.append(results)
            }
            let info = try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas))
            #expect(info.mappingCount == 3 && info.pinnedBytes == 7 * page)
            #expect(f.broker.heldFileCount == 1)
        }
        #expect(answers[0] == answers[1])
        #expect(answers[0].map(\.ownerPinnedBytes) == [page, 3 * page, 7 * page])
        #expect(errors.count == 2 && errors[0] == errors[1])
    }

    @Test func checksOfALaterEntryStopTheBatchAfterTheEntriesBeforeIt() throws {
        let f = try Fixture()
        let fd = try memfd(pages: 4)
        defer { close(fd) }
        let ioas = try f.ownerWithIOAS()
        let outcome = f.broker.ioasMapBatch(f.a, [
            (IOASMapParams(ioas: ioas, offset: 0, length: page, iova: 0x100_0000), fd),
            (IOASMapParams(ioas: ioas, offset: page / 2, length: page, iova: 0x200_0000), fd),  // unaligned offset
            (IOASMapParams(ioas: ioas, offset: 0, length: page, iova: 0x300_0000), fd),
        ])
        #expect(outcome.results.map(\.iova) == [0x100_0000])
        let error = try #require(outcome.failure as? BrokerError)
        #expect(error.kind == .invalidParams && error.message.contains("multiple of the page size"))
        // Beyond the end of the file: refused when the file is held (phase 1), nothing reserved.
        let beyond = f.broker.ioasMapBatch(f.a, [
            (IOASMapParams(ioas: ioas, offset: 0, length: page, iova: 0x400_0000), fd),
            (IOASMapParams(ioas: ioas, offset: 4 * page, length: page, iova: 0x500_0000), fd),
        ])
        #expect(beyond.results.map(\.ownerPinnedBytes) == [2 * page])
        #expect((beyond.failure as? BrokerError)?.message.contains("beyond the end of the file") == true)
        let info = try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas))
        #expect(info.mappings.map(\.iova) == [0x100_0000, 0x400_0000] && info.pinnedBytes == 2 * page)
    }

    @Test func anotherManagersIOASIsNotFoundAndEntriesOfTwoOwnersEachTakeTheirOwn() throws {
        let f = try Fixture()
        let fd = try memfd(pages: 4)
        defer { close(fd) }
        let mine = try f.ownerWithIOAS("vm-a")
        let theirs = try f.ownerWithIOAS("vm-b", as: f.b)
        let second = try f.ownerWithIOAS("vm-a2")
        let denied = f.broker.ioasMapBatch(f.a, [
            (IOASMapParams(ioas: mine, offset: 0, length: page, iova: 0x100_0000), fd),
            (IOASMapParams(ioas: theirs, offset: 0, length: page, iova: 0x100_0000), fd),
        ])
        #expect(denied.results.count == 1 && (denied.failure as? BrokerError)?.kind == .notFound)
        #expect(try f.broker.ioasInfo(f.b, IOASInfoParams(ioas: theirs)).mappingCount == 0)
        // A batch across A's two owners (and back): each entry charged to its own owner.
        let two = f.broker.ioasMapBatch(f.a, [
            (IOASMapParams(ioas: mine, offset: 0, length: page, iova: 0x200_0000), fd),
            (IOASMapParams(ioas: second, offset: 0, length: 2 * page, iova: 0x200_0000), fd),
            (IOASMapParams(ioas: mine, offset: 0, length: page, iova: 0x300_0000), fd),
        ])
        #expect(two.failure == nil && two.results.map(\.ownerPinnedBytes) == [2 * page, 2 * page, 3 * page])
        let admin = f.broker.ioasMapBatch(f.admin, [
            (IOASMapParams(ioas: second, offset: 0, length: page, iova: 0x400_0000), fd),
            (IOASMapParams(ioas: theirs, offset: 0, length: page, iova: 0x400_0000), fd),
        ])
        #expect(admin.failure == nil && admin.results.map(\.ownerPinnedBytes) == [3 * page, page])
        #expect(f.broker.heldFileCount == 1)
    }
}
