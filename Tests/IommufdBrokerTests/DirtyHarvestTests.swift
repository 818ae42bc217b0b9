import Foundation
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker
import IommufdContract

/// `dirty.read` never drops a page the kernel cleared: not past `max_runs`, not past the built-in
/// cap, not across a hole, not when the device writes between the daemon's two passes, not when
/// a clearing read fails. And `device.attach` never guesses a device's dirty capability.
@Suite("Dirty harvest: nothing lost")
struct DirtyHarvestTests {
    static let base: UInt64 = 0x100_0000

    /// vm-1 of manager B (no quota) with an IOAS whose huge pages are off, `parts` mapped
    /// (page offsets from `base`, lengths in pages), sim0 attached with dirty tracking on.
    func setUp(_ f: Fixture, parts: [(first: UInt64, pages: UInt64)]) throws -> (ioas: ObjectID, hwpt: ObjectID) {
        _ = try f.broker.ownerCreate(f.b, OwnerCreateParams(name: "vm-1"))
        let ioas = try f.broker.ioasCreate(f.b, IOASCreateParams(owner: "vm-1", hugePages: false)).ioas
        for part in parts {
            let fd = try memfd(pages: part.pages)
            defer { close(fd) }
            _ = try f.broker.ioasMap(f.b, IOASMapParams(ioas: ioas, length: part.pages * page, iova: Self.base + part.first * page), fd: fd)
        }
        let r = try f.broker.deviceAttach(f.b, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas, dirty: .required))
        _ = try f.broker.dirtyStart(f.b, DirtyParams(ioas: ioas))
        return (ioas, r.pt)
    }

    func write(_ f: Fixture, _ hwpt: ObjectID, pages: [UInt64]) throws {
        for p in pages { try f.sim.simulateDeviceWrite(hwpt: hwpt, iova: Self.base + p * page, length: page, pageSize: page) }
    }

    /// Page offsets (from `base`) of the runs of an answer.
    func pages(_ result: DirtyReadResult) -> [UInt64] {
        (result.runs ?? []).flatMap { run in (0..<run.length / page).map { (run.iova - Self.base) / page + $0 } }
    }

    /// Reads `[base + first, base + first + count)` from the start, resuming until done.
    func harvest(_ f: Fixture, _ ioas: ObjectID, first: UInt64 = 0, count: UInt64, maxRuns: Int? = nil) throws -> (pages: [UInt64], reads: Int) {
        var out: [UInt64] = []
        var iova = Self.base + first * page
        let end = Self.base + (first + count) * page
        var reads = 0
        while reads < 100_000 {
            let r = try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: iova, length: end - iova, maxRuns: maxRuns)).result
            reads += 1
            out += pages(r)
            guard let resume = r.resumeIOVA else { break }
            #expect(resume > iova)
            iova = resume
        }
        return (out, reads)
    }

    /// The built-in cap (65,536 runs, no `max_runs`): 65,537 separate dirty pages take two reads,
    /// and the second finds the last page.
    @Test func builtInCapLosesNothing() throws {
        let f = try Fixture()
        let count: UInt64 = 2 * 65_537
        let (ioas, hwpt) = try setUp(f, parts: [(0, count)])
        let dirty = stride(from: UInt64(0), to: count, by: 2).map { $0 }
        #expect(dirty.count == 65_537)
        try write(f, hwpt, pages: dirty)
        let (got, reads) = try harvest(f, ioas, count: count)
        #expect(reads == 2)
        #expect(got == dirty, "\(got.count) of \(dirty.count) pages reported")
    }

    /// A device writes between the daemon's `NO_CLEAR` pass and its clearing pass: into a gap
    /// inside the answered part (answered now, since it is cleared now) and past the cut
    /// (left dirty for the next read). Nothing is lost, nothing answered twice.
    @Test func writesBetweenThePassesAreKept() throws {
        let f = try Fixture()
        let (ioas, hwpt) = try setUp(f, parts: [(0, 64)])
        try write(f, hwpt, pages: [0, 2, 4, 6, 8, 10])
        let sim = f.sim
        nonisolated(unsafe) var injected = false
        f.backend.beforeDirtyRead { id, clear in
            guard clear, !injected else { return }
            injected = true
            // Page 1 lies between two answered runs; page 40 lies past the cut.
            for p: UInt64 in [1, 40] { try? sim.simulateDeviceWrite(hwpt: id, iova: Self.base + p * page, length: page, pageSize: page) }
        }
        let first = try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page, maxRuns: 3)).result
        #expect(injected)
        #expect(pages(first) == [0, 1, 2, 4], "runs 0-2 and 4 (page 1 joined the first run while the read ran)")
        #expect(first.resumeIOVA == Self.base + 6 * page, "the first run left out (page 6) is where the next read starts")
        f.backend.beforeDirtyRead(nil)
        let rest = try harvest(f, ioas, first: 6, count: 58).pages
        #expect(rest == [6, 8, 10, 40])
        let reads = f.backend.dirtyReads
        #expect(reads.count >= 2 && !reads[0].clear && reads[1].clear && reads[1].length == 6 * page,
                "a NO_CLEAR pass over the whole range, then a clearing read of the answered part: \(reads.prefix(2))")
    }

    /// Two mappings with a hole between them: a read over both reports both (the kernel's own
    /// read stops silently at the hole); a read that starts in the hole reports the second.
    @Test func readsPastAHole() throws {
        let f = try Fixture()
        let (ioas, hwpt) = try setUp(f, parts: [(0, 16), (32, 16)])
        try write(f, hwpt, pages: [3, 15, 32, 40])
        let peek = try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: Self.base, length: 48 * page, clear: false)).result
        #expect(pages(peek) == [3, 15, 32, 40])
        let fromHole = try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: Self.base + 20 * page, length: 28 * page)).result
        #expect(pages(fromHole) == [32, 40])
        let all = try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: Self.base, length: 48 * page)).result
        #expect(pages(all) == [3, 15])
        #expect(f.backend.dirtyReads.allSatisfy { r in
            (r.iova >= Self.base && r.iova + r.length <= Self.base + 16 * page) || (r.iova >= Self.base + 32 * page && r.iova + r.length <= Self.base + 48 * page)
        }, "the kernel is never handed a range with a hole: \(f.backend.dirtyReads)")
        // An unmapped range reads as clean, without asking the kernel.
        let before = f.backend.dirtyReads.count
        let hole = try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: Self.base + 16 * page, length: 16 * page)).result
        #expect(hole.runs == [] && f.backend.dirtyReads.count == before)
    }

    /// A mapped part whose bounds a bitmap page would straddle is refused before any read.
    @Test func segmentsOffThePageSizeAreRefused() throws {
        let f = try Fixture()
        let (ioas, hwpt) = try setUp(f, parts: [(0, 3), (8, 8)])
        try write(f, hwpt, pages: [1])
        let error = expectBrokerError(.invalidParams) {
            try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: Self.base, length: 16 * page, pageSize: 2 * page))
        }
        #expect(error?.message.contains("page_size") == true)
        #expect(f.backend.dirtyReads.isEmpty, "nothing was read (or cleared)")
        #expect(pages(try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: Self.base, length: 16 * page)).result) == [1])
    }

    /// A bitmap page size that does not divide the answered part at the cut: the answer still
    /// stops on a bound the kernel accepts, and the next read starts there.
    @Test func resumeAtALargerPageSize() throws {
        let f = try Fixture()
        let (ioas, hwpt) = try setUp(f, parts: [(0, 64)])
        try write(f, hwpt, pages: [0, 5, 9, 17, 33, 63])
        var iova = Self.base
        var seen: [UInt64] = []
        while true {
            let r = try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: iova, length: Self.base + 64 * page - iova, pageSize: 4 * page, maxRuns: 1)).result
            seen += (r.runs ?? []).flatMap { run in stride(from: run.iova, to: run.iova + run.length, by: Int(4 * page)).map { ($0 - Self.base) / page } }
            guard let resume = r.resumeIOVA else { break }
            #expect(resume % (4 * page) == 0)
            iova = resume
        }
        #expect(seen == [0, 4, 8, 16, 32, 60], "each 4-page granule with a write, once")
    }

    /// A clearing read that fails does not take the pages already read with it: the answer
    /// carries them and names the failure; the failed HWPT's pages come in the next read.
    @Test func aFailedClearingReadKeepsWhatWasRead() throws {
        let f = try Fixture()
        let (ioas, auto) = try setUp(f, parts: [(0, 64)])
        let second = try f.broker.hwptAlloc(f.b, HWPTAllocParams(ioas: ioas, device: "sim0", dirtyTracking: true)).hwpt
        _ = try f.broker.dirtyStop(f.b, DirtyParams(ioas: ioas))
        _ = try f.broker.dirtyStart(f.b, DirtyParams(ioas: ioas))
        try write(f, auto, pages: [1, 2])
        try write(f, second, pages: [7])
        f.backend.failClearingRead(on: [second])
        let r = try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page)).result
        #expect(pages(r) == [1, 2])
        #expect(r.clearFailures?.map(\.hwpt) == [second])
        #expect(r.clearFailures?.first?.error.contains("ENOMEM") == true)
        f.backend.failClearingRead(on: [])
        let next = try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page)).result
        #expect(pages(next) == [7] && next.clearFailures == nil)
    }

    /// A device that leaves its daemon-made HWPT while tracking is on (detach, or replace onto
    /// another IOAS) does not take its unread dirty pages with it: the HWPT is kept, still read,
    /// until `dirty.stop` destroys it.
    @Test(arguments: ["detach", "replace"])
    func aDeviceLeavingKeepsItsDirtyPages(how: String) throws {
        let f = try Fixture()
        let (ioas, hwpt) = try setUp(f, parts: [(0, 64)])
        try write(f, hwpt, pages: [3, 9])
        if how == "detach" {
            let detached = try f.broker.deviceDetach(f.b, DeviceDetachParams(device: "sim0"))
            #expect(detached.destroyedHWPTs == [])
        } else {
            let other = try f.broker.ioasCreate(f.b, IOASCreateParams(owner: "vm-1", hugePages: false)).ioas
            _ = try f.broker.deviceReplace(f.b, DeviceReplaceParams(device: "sim0", ioas: other))
        }
        let status = try f.broker.dirtyStatus(f.b, DirtyParams(ioas: ioas))
        #expect(status.trackingHWPTs == [hwpt], "the emptied HWPT is kept and still tracked")
        let r = try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page)).result
        #expect(pages(r) == [3, 9], "the pages written before the device left")
        _ = try f.broker.dirtyStop(f.b, DirtyParams(ioas: ioas))
        #expect(!f.sim.inventory().hwpts.contains { $0.id == hwpt }, "dirty.stop destroyed the kept HWPT")
        #expect(try f.broker.ioasInfo(f.b, IOASInfoParams(ioas: ioas)).hwpts == [])
    }

    /// `max_runs` below 1 is refused, not quietly raised to 1.
    @Test func maxRunsBelowOneIsRefused() throws {
        let f = try Fixture()
        let (ioas, _) = try setUp(f, parts: [(0, 64)])
        let error = expectBrokerError(.invalidParams) {
            try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page, maxRuns: 0))
        }
        #expect(error?.message.contains("max_runs") == true)
    }

    /// `IOMMU_GET_HW_INFO` failing at bind fails the attach with its errno and leaves the device
    /// unleased and unbound; it never becomes "not dirty capable" (which `dirty: preferred` would
    /// quietly turn into an untracked HWPT).
    @Test func hwInfoFailureFailsTheAttach() throws {
        let f = try Fixture()
        _ = try f.broker.ownerCreate(f.b, OwnerCreateParams(name: "vm-1", dirty: .preferred))
        let ioas = try f.broker.ioasCreate(f.b, IOASCreateParams(owner: "vm-1")).ioas
        f.backend.failHWInfo(with: .EIO)
        let error = expectBrokerError(.kernel) {
            try f.broker.deviceAttach(f.b, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas))
        }
        #expect(error?.message.contains("IOMMU_GET_HW_INFO") == true && error?.message.contains("EIO") == true, "\(String(describing: error))")
        let info = try f.broker.deviceInfo(f.admin, DeviceInfoParams(device: "sim0"))
        #expect(info.owner == nil && info.deviceID == nil, "not leased, not bound")
        f.backend.failHWInfo(with: nil)
        let attached = try f.broker.deviceAttach(f.b, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas))
        #expect(attached.dirtyTracking, "with its capabilities known, dirty=preferred gets a tracking HWPT")
    }
}
