import Foundation
import IommufdCore
import Testing

@testable import IommufdBroker
import IommufdContract

@Suite("IOAS: map, unmap, copy, quota, validation")
struct IOASTests {
    @Test func mapFromMemfdUsesMapFileAndKeepsOneFD() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let fd = try memfd(pages: 16)
        let m1 = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, offset: 0, length: 4 * page, iova: 0x10_0000), fd: fd)
        #expect(m1.iova == 0x10_0000 && m1.ownerPinnedBytes == 4 * page)
        let m2 = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, offset: 4 * page, length: 4 * page), fd: fd)
        #expect(m2.ownerPinnedBytes == 8 * page)
        // The client's fd can go: the broker holds one duplicate for both mappings.
        close(fd)
        #expect(f.broker.heldFileCount == 1)
        let info = try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas))
        #expect(info.mappingCount == 2 && info.pinnedBytes == 8 * page)
        #expect(info.mappings.allSatisfy { $0.source == "file" && $0.readable && $0.writeable })
        _ = try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, all: true))
        #expect(f.broker.heldFileCount == 0)
        #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas)).mappingCount == 0)
    }

    @Test func mapWithoutMapFileFallsBackToMmap() throws {
        let f = try Fixture(without: [.ioasMapFile])
        let ioas = try f.ownerWithIOAS()
        let fd = try memfd(pages: 4)
        defer { close(fd) }
        let m = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 4 * page, iova: 0x20_0000), fd: fd)
        #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas)).mappings.map(\.source) == ["mmap"])
        let u = try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: m.iova, length: m.length))
        #expect(u.unmappedBytes == 4 * page && u.ownerPinnedBytes == 0)
    }

    @Test func parametersAreValidatedBeforeTheBackend() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let fd = try memfd(pages: 4)
        defer { close(fd) }
        expectBrokerError(.invalidParams) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 0), fd: fd) }
        expectBrokerError(.invalidParams) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: page + 1), fd: fd) }
        expectBrokerError(.invalidParams) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, offset: 1, length: page), fd: fd) }
        expectBrokerError(.invalidParams) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: page, iova: 0x1001), fd: fd) }
        expectBrokerError(.invalidParams) {
            try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 2 * page, iova: UInt64.max - page + 1), fd: fd)
        }
        let beyond = expectBrokerError(.invalidParams) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, offset: 2 * page, length: 4 * page), fd: fd) }
        #expect(beyond?.message.contains("beyond the end") == true)
        expectBrokerError(.invalidParams) {
            try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: page, readable: false, writeable: false), fd: fd)
        }
        var pipeFDs: [Int32] = [0, 0]
        #expect(pipe(&pipeFDs) == 0)
        defer { close(pipeFDs[0]); close(pipeFDs[1]) }
        let notFile = expectBrokerError(.invalidParams) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: page), fd: pipeFDs[0]) }
        #expect(notFile?.message.contains("is a pipe, not a regular file") == true)
        // The daemon's fd number means nothing to the caller, so the message does not name it.
        #expect(notFile?.message.contains("fd \(pipeFDs[0])") == false)
        expectBrokerError(.invalidParams) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: page), fd: -1) }
        expectBrokerError(.notFound) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: 9999, length: page), fd: fd) }
        #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas)).mappingCount == 0)
        #expect(f.broker.heldFileCount == 0)
    }

    @Test func unmapIsWholeMappingsAndTolerateMissingIsOptIn() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let fd = try memfd(pages: 8)
        defer { close(fd) }
        let base: UInt64 = 0x40_0000
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 2 * page, iova: base), fd: fd)
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, offset: 2 * page, length: 2 * page, iova: base + 2 * page), fd: fd)
        // A hole: NotFound by default, a 0-byte success when tolerated.
        let hole = expectBrokerError(.notFound) { try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: 0x100_0000, length: page)) }
        #expect(hole?.message.contains("tolerate_missing") == true)
        let tolerated = try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: 0x100_0000, length: page, tolerateMissing: true))
        #expect(tolerated.unmappedBytes == 0 && tolerated.mappings == 0)
        // Cutting a mapping (at its start or its end) is refused and unmaps nothing.
        expectBrokerError(.invalidParams) { try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: base, length: 3 * page)) }
        expectBrokerError(.invalidParams) { try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: base + page, length: 3 * page)) }
        #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas)).mappingCount == 2)
        // A range covering both (and a hole after) unmaps both.
        let both = try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: base, length: 8 * page))
        #expect(both.unmappedBytes == 4 * page && both.mappings == 2 && both.ownerPinnedBytes == 0)
    }

    @Test func ownerPolicyMakesTolerateMissingTheDefault() throws {
        let f = try Fixture()
        _ = try f.broker.ownerCreate(f.a, OwnerCreateParams(name: "vm-t", tolerateMissing: true))
        let ioas = try f.broker.ioasCreate(f.a, IOASCreateParams(owner: "vm-t")).ioas
        #expect(try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: 0, length: page)).unmappedBytes == 0)
        // ...and a request can still ask for the strict answer.
        expectBrokerError(.notFound) { try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: 0, length: page, tolerateMissing: false)) }
    }

    @Test func quotaIsEnforcedAndRefunded() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let quota = Fixture.quotaPages * page
        let fd = try memfd(pages: Fixture.quotaPages + 1)
        defer { close(fd) }
        let big = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: quota - page), fd: fd)
        let exceeded = expectBrokerError(.quotaExceeded) {
            try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, offset: 0, length: 2 * page), fd: fd)
        }
        #expect(exceeded?.wireName == "iommufdd.QuotaExceeded")
        #expect(exceeded?.message.contains("\(quota - page) bytes used") == true)
        #expect(exceeded?.message.contains("\(2 * page) requested") == true)
        #expect(exceeded?.message.contains("limit \(quota)") == true)
        // Exactly up to the limit is fine.
        let last = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: page), fd: fd)
        #expect(last.ownerPinnedBytes == quota)
        // Unmap refunds.
        _ = try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: big.iova, length: big.length))
        #expect(try f.broker.ownerInfo(f.a, OwnerInfoParams(name: "vm-1")).pinnedBytes == page)
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 2 * page), fd: fd)
        // Release refunds everything.
        let released = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(released.refundedBytes == 3 * page)
        #expect(f.broker.counts().pinnedBytes == 0)
        // A reload that raises the identity's quota applies to its existing owners.
        _ = try f.broker.ownerCreate(f.a, OwnerCreateParams(name: "vm-r"))
        let ioasR = try f.broker.ioasCreate(f.a, IOASCreateParams(owner: "vm-r")).ioas
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioasR, length: quota), fd: fd)
        expectBrokerError(.quotaExceeded) { try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioasR, length: page), fd: fd) }
        var config = f.broker.config
        config.access.rules[0].quotaBytes = quota + page
        try f.broker.reload(config: config)
        #expect(try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioasR, length: page), fd: fd).ownerPinnedBytes == quota + page)
        // B has no quota.
        let ioasB = try f.ownerWithIOAS("vm-b", as: f.b)
        #expect(try f.broker.ioasMap(f.b, IOASMapParams(ioas: ioasB, length: (Fixture.quotaPages + 1) * page), fd: fd).length == (Fixture.quotaPages + 1) * page)
    }

    @Test func copyRangesAndHugePages() throws {
        let f = try Fixture()
        let src = try f.ownerWithIOAS()
        _ = try f.broker.ownerCreate(f.a, OwnerCreateParams(name: "vm-2"))
        let dst = try f.broker.ioasCreate(f.a, IOASCreateParams(owner: "vm-1", hugePages: false))
        #expect(!dst.hugePages)
        #expect(try f.sim.getOption(.hugePages, objectID: dst.ioas) == 0)
        let fd = try memfd(pages: 4)
        defer { close(fd) }
        let m = try f.broker.ioasMap(f.a, IOASMapParams(ioas: src, length: 4 * page, iova: 0x80_0000), fd: fd)
        let c = try f.broker.ioasCopy(f.a, IOASCopyParams(dstIOAS: dst.ioas, srcIOAS: src, srcIOVA: m.iova, length: m.length, dstIOVA: 0x90_0000))
        #expect(c.dstIOVA == 0x90_0000 && c.ownerPinnedBytes == 8 * page)
        #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: dst.ioas)).mappings.map(\.source) == ["copy"])
        let other = try f.broker.ioasCreate(f.a, IOASCreateParams(owner: "vm-2")).ioas
        expectBrokerError(.invalidParams) {
            try f.broker.ioasCopy(f.a, IOASCopyParams(dstIOAS: other, srcIOAS: src, srcIOVA: m.iova, length: m.length))
        }
        let ranges = try f.broker.ioasRanges(f.a, IOASRangesParams(ioas: src))
        #expect(!ranges.ranges.isEmpty && ranges.alignment > 0)
        let set = try f.broker.ioasSetOption(f.a, IOASSetOptionParams(ioas: src, hugePages: false))
        #expect(!set.hugePages)
        #expect(try f.sim.getOption(.hugePages, objectID: src) == 0)
    }

    @Test func manyMappingsOfOneMemfdHoldOneFD() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS("vm-big", as: f.b)
        let fd = try memfd(pages: 16)
        defer { close(fd) }
        let count: UInt64 = 3_000  // enough for the index to split into several chunks
        for i in 0..<count {
            _ = try f.broker.ioasMap(f.b, IOASMapParams(ioas: ioas, offset: (i % 16) * page, length: page, iova: 0x1_0000_0000 + i * page), fd: fd)
        }
        #expect(f.broker.heldFileCount == 1)
        #expect(f.broker.counts().mappings == Int(count))
        // Unmap every other one by its exact range, then the rest with one range.
        for i in stride(from: 0, to: count, by: 2) {
            _ = try f.broker.ioasUnmap(f.b, IOASUnmapParams(ioas: ioas, iova: 0x1_0000_0000 + i * page, length: page))
        }
        let info = try f.broker.ioasInfo(f.b, IOASInfoParams(ioas: ioas, maxMappings: 2))
        #expect(info.mappingCount == Int(count / 2) && info.mappings.map(\.iova) == [0x1_0000_0000 + page, 0x1_0000_0000 + 3 * page])
        let rest = try f.broker.ioasUnmap(f.b, IOASUnmapParams(ioas: ioas, iova: 0x1_0000_0000, length: count * page))
        #expect(rest.mappings == Int(count / 2) && rest.unmappedBytes == count / 2 * page && rest.ownerPinnedBytes == 0)
        #expect(f.broker.heldFileCount == 0)
    }

    @Test func destroyingAnIOASForgetsItsMappings() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let fd2 = try memfd(pages: 2)
        defer { close(fd2) }
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: 2 * page), fd: fd2)
        _ = try f.broker.ioasDestroy(f.a, IOASDestroyParams(ioas: ioas))
        #expect(errnoOf { try f.sim.destroy(ioas) } == .ENOENT)
        #expect(f.broker.counts().pinnedBytes == 0 && f.broker.counts().mappings == 0)
        #expect(f.broker.heldFileCount == 0)
    }
}

@Suite("Concurrent callers")
struct ConcurrencyTests {
    @Test func concurrentRequestsLeaveConsistentState() throws {
        let f = try Fixture()
        let owners = 4
        let perOwner: UInt64 = 100
        var ioasIDs: [ObjectID] = []
        for i in 0..<owners { ioasIDs.append(try f.ownerWithIOAS("vm-\(i)", as: f.b)) }
        let fd = try memfd(pages: 1)
        defer { close(fd) }
        let failures = LockedList<String>()
        let ids = ioasIDs
        DispatchQueue.concurrentPerform(iterations: owners) { i in
            do {
                for n in 0..<perOwner {
                    _ = try f.broker.ioasMap(f.b, IOASMapParams(ioas: ids[i], length: page, iova: 0x10_0000 + n * page), fd: fd)
                    _ = f.broker.counts()
                    if n % 2 == 1 {
                        _ = try f.broker.ioasUnmap(f.b, IOASUnmapParams(ioas: ids[i], iova: 0x10_0000 + n * page, length: page))
                    }
                }
            } catch {
                failures.append("\(error)")
            }
        }
        #expect(failures.items.isEmpty, "\(failures.items)")
        let counts = f.broker.counts()
        #expect(counts.mappings == owners * Int(perOwner / 2))
        #expect(counts.pinnedBytes == UInt64(owners) * perOwner / 2 * page)
        for id in ids {
            #expect(try f.broker.ioasInfo(f.b, IOASInfoParams(ioas: id)).mappingCount == Int(perOwner / 2))
        }
    }
}
