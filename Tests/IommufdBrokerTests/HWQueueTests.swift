import Foundation
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker
import IommufdContract

// MARK: hwqueue3

/// Events a subscription received, in order.
private final class HWQueueEventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [BrokerEvent] = []
    func add(_ e: BrokerEvent) { lock.withLock { events.append(e) } }
    /// `(kind, id)` of each object destroyed, in order.
    var destroyed: [(ObjectKind, ObjectID)] {
        lock.withLock { events.compactMap { if case .objectDestroyed(_, let kind, let id) = $0 { (kind, id) } else { nil } } }
    }
}

/// `hwqueue.alloc` / `hwqueue.destroy` through the broker on the simulator's mock vIOMMU: every
/// refusal the conformance cases `hwqueue.*` check on both backends comes back with the same
/// errno (or, where the daemon refuses first, the error naming the field), and the teardown
/// rules around a queue (unmap, viommu.destroy, owner.release) hold.
@Suite("HW queues through the broker")
struct HWQueueTests {
    /// Owner vm-1 with gpu0 (behind the mock IOMMU) attached, a mock vIOMMU, and two pages
    /// mapped as two mappings at `iova`.
    func setUp(_ f: Fixture) throws -> (ioas: ObjectID, viommu: ObjectID, iova: UInt64) {
        let ioas = try f.ownerWithIOAS()
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "gpu0", ioas: ioas))
        let v = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "gpu0")).viommu
        let iova: UInt64 = 0x10_0000
        let fd = try memfd(pages: 2)
        defer { close(fd) }
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: page, iova: iova), fd: fd)
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, offset: page, length: page, iova: iova + page), fd: fd)
        return (ioas, v, iova)
    }

    func params(_ viommu: ObjectID, _ type: HWQueueTypeParam = .name("selftest"), index: UInt32 = 0, base: UInt64, length: UInt64 = page, flags: UInt32? = nil) -> HWQueueAllocParams {
        HWQueueAllocParams(viommu: viommu, type: type, index: index, baseAddress: base, length: length, flags: flags)
    }

    /// Asserts a Kernel error carrying `errno` from IOMMU_HW_QUEUE_ALLOC whose message says `words`.
    func expectKernel(_ errno: Errno, _ words: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> HWQueueInfo) {
        let e = expectBrokerError(.kernel, sourceLocation: sourceLocation, body)
        #expect(e?.kernel?.errno == errno && e?.ioctl == "IOMMU_HW_QUEUE_ALLOC", "\(String(describing: e))", sourceLocation: sourceLocation)
        #expect(e?.message.contains(words) == true, "\(String(describing: e))", sourceLocation: sourceLocation)
    }

    @Test func refusalsNameTheFieldOrCarryTheKernelsErrno() throws {
        let f = try Fixture(topology: nestedTopology)
        let (ioas, v, iova) = try setUp(f)
        // The daemon's own checks, each naming the field.
        let flags = expectBrokerError(.invalidParams) { try f.broker.hwqueueAlloc(f.a, params(v, base: iova, flags: 1)) }
        #expect(flags?.message.contains("flags") == true)
        let length = expectBrokerError(.invalidParams) { try f.broker.hwqueueAlloc(f.a, params(v, base: iova, length: 0)) }
        #expect(length?.message.contains("length must be greater than 0") == true)
        let overflow = expectBrokerError(.invalidParams) { try f.broker.hwqueueAlloc(f.a, params(v, base: .max, length: page)) }
        #expect(overflow?.message.contains("base_address") == true && overflow?.message.contains("EOVERFLOW") == true)
        let unknown = expectBrokerError(.invalidParams) { try f.broker.hwqueueAlloc(f.a, params(v, .name("cmdq"), base: iova)) }
        #expect(unknown?.message.contains("'cmdq' is not a HW queue type") == true && unknown?.message.contains("selftest") == true)
        let reserved = expectBrokerError(.invalidParams) { try f.broker.hwqueueAlloc(f.a, params(v, .number(0), base: iova)) }
        #expect(reserved?.message.contains("IOMMU_HW_QUEUE_TYPE_DEFAULT") == true)
        let index = expectBrokerError(.invalidParams) { try f.broker.hwqueueAlloc(f.a, params(v, index: 2, base: iova)) }
        #expect(index?.message.contains("index 2 is out of range") == true)
        // Tegra241 CMDQV: Unsupported, saying why and what to do instead.
        for tegra in [HWQueueTypeParam.name("tegra241_cmdqv"), .name("tegra241-cmdqv"), .number(HWQueueType.tegra241CMDQV)] {
            let e = expectBrokerError(.unsupported) { try f.broker.hwqueueAlloc(f.a, params(v, tegra, base: iova)) }
            #expect(e?.message.contains("mmap of the iommufd") == true && e?.message.contains("viommu.invalidate") == true, "\(String(describing: e))")
        }
        // Not a vIOMMU of the caller's: NotFound, the IOAS's ID included (as the kernel's ENOENT).
        expectBrokerError(.notFound) { try f.broker.hwqueueAlloc(f.a, params(0, base: iova)) }
        expectBrokerError(.notFound) { try f.broker.hwqueueAlloc(f.a, params(ioas, base: iova)) }
        // The kernel's refusals, errno kept (HWQueueCases on both backends), in its meaning.
        expectKernel(.EOPNOTSUPP, "has no HW queues of type 0x2") { try f.broker.hwqueueAlloc(f.a, params(v, .number(2), base: iova)) }
        expectKernel(.ENOENT, "is not wholly mapped in IOAS \(ioas)") { try f.broker.hwqueueAlloc(f.a, params(v, base: iova + 2 * page)) }
        expectKernel(.ENOENT, "is not wholly mapped") { try f.broker.hwqueueAlloc(f.a, params(v, base: iova + page + page / 2)) }
        expectKernel(.EFAULT, "not physically contiguous") { try f.broker.hwqueueAlloc(f.a, params(v, base: iova, length: 2 * page)) }
        expectKernel(.EIO, "allocate index 0 first") { try f.broker.hwqueueAlloc(f.a, params(v, index: 1, base: iova)) }
        let q0 = try f.broker.hwqueueAlloc(f.a, params(v, base: iova))
        #expect(q0.viommu == v && q0.index == 0 && q0.type == HWQueueType.selftest && q0.typeName == "selftest" && q0.ioas == ioas && q0.owner == "vm-1")
        expectKernel(.EEXIST, "is in use by HW queue \(q0.hwQueue)") { try f.broker.hwqueueAlloc(f.a, params(v, base: iova + page)) }
        // By number, at an unaligned base over half a page (the selftest's index 1).
        let q1 = try f.broker.hwqueueAlloc(f.a, params(v, .number(HWQueueType.selftest), index: 1, base: iova + page + page / 2, length: page / 2))
        #expect(q1.index == 1 && q1.typeName == "selftest" && q1.hwQueue != q0.hwQueue)
        // A refusal changed nothing: exactly the two queues are recorded.
        let listed = try f.broker.viommuList(f.a, VIOMMUListParams()).viommus.first { $0.viommu == v }
        #expect(listed?.hwQueues?.map(\.hwQueue) == [q0.hwQueue, q1.hwQueue])
        #expect(try f.broker.ownerInfo(f.a, OwnerInfoParams(name: "vm-1")).hwQueues == [q0.hwQueue, q1.hwQueue])
    }

    @Test func whoMayAllocAndDestroy() throws {
        let f = try Fixture(topology: nestedTopology)
        let (_, v, iova) = try setUp(f)
        // Another manager's vIOMMU and queue answer NotFound with the message of an absent ID.
        let theirs = expectBrokerError(.notFound) { try f.broker.hwqueueAlloc(f.b, params(v, base: iova)) }
        let absent = expectBrokerError(.notFound) { try f.broker.hwqueueAlloc(f.b, params(9999, base: iova)) }
        #expect(theirs?.message == absent?.message.replacingOccurrences(of: "9999", with: "\(v)"))
        expectBrokerError(.permissionDenied) { try f.broker.hwqueueAlloc(f.reader, params(v, base: iova)) }
        let q = try f.broker.hwqueueAlloc(f.a, params(v, base: iova)).hwQueue
        let theirQueue = expectBrokerError(.notFound) { try f.broker.hwqueueDestroy(f.b, HWQueueParams(hwQueue: q)) }
        let absentQueue = expectBrokerError(.notFound) { try f.broker.hwqueueDestroy(f.b, HWQueueParams(hwQueue: 9999)) }
        #expect(theirQueue?.message == absentQueue?.message.replacingOccurrences(of: "9999", with: "\(q)"))
        expectBrokerError(.permissionDenied) { try f.broker.hwqueueDestroy(f.reader, HWQueueParams(hwQueue: q)) }
        // Manager B sees neither the queue in viommu.list nor in owner.info; the reader sees it.
        #expect(try f.broker.viommuList(f.b, VIOMMUListParams()).viommus.allSatisfy { $0.hwQueues == nil })
        #expect(try f.broker.viommuList(f.reader, VIOMMUListParams()).viommus.first { $0.viommu == v }?.hwQueues?.map(\.hwQueue) == [q])
        _ = try f.broker.hwqueueDestroy(f.admin, HWQueueParams(hwQueue: q))
        expectBrokerError(.notFound) { try f.broker.hwqueueDestroy(f.a, HWQueueParams(hwQueue: q)) }
    }

    @Test func aQueueHoldsItsPinnedMappingAndItsVIOMMUAndIndexNHoldsNMinus1() throws {
        let f = try Fixture(topology: nestedTopology)
        let (ioas, v, iova) = try setUp(f)
        let q0 = try f.broker.hwqueueAlloc(f.a, params(v, base: iova)).hwQueue
        // Unmaps of the pinned mapping: Busy naming the queue, nothing unmapped (the page after
        // it in the same range stays mapped too).
        for unmap in [IOASUnmapParams(ioas: ioas, iova: iova, length: page), IOASUnmapParams(ioas: ioas, iova: iova, length: 2 * page), IOASUnmapParams(ioas: ioas, all: true)] {
            let e = expectBrokerError(.busy) { try f.broker.ioasUnmap(f.a, unmap) }
            #expect(e?.message.contains("pinned by HW queue \(q0)") == true, "\(String(describing: e))")
        }
        #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas)).mappings.count == 2)
        // viommu.destroy: Busy naming the queue; queue 0 while queue 1 exists: Busy naming queue 1.
        let busy = expectBrokerError(.busy) { try f.broker.viommuDestroy(f.a, VIOMMUDestroyParams(viommu: v)) }
        #expect(busy?.message.contains("HW queues [\(q0)]") == true, "\(String(describing: busy))")
        let q1 = try f.broker.hwqueueAlloc(f.a, params(v, index: 1, base: iova + page)).hwQueue
        let held = expectBrokerError(.busy) { try f.broker.hwqueueDestroy(f.a, HWQueueParams(hwQueue: q0)) }
        #expect(held?.message.contains("held by HW queue \(q1)") == true, "\(String(describing: held))")
        _ = try f.broker.hwqueueDestroy(f.a, HWQueueParams(hwQueue: q1))
        #expect(try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: iova + page, length: page)).unmappedBytes == page)
        _ = try f.broker.hwqueueDestroy(f.a, HWQueueParams(hwQueue: q0))
        #expect(try f.broker.ioasUnmap(f.a, IOASUnmapParams(ioas: ioas, iova: iova, length: page)).unmappedBytes == page)
        _ = try f.broker.viommuDestroy(f.a, VIOMMUDestroyParams(viommu: v))
    }

    @Test func ownerReleaseDestroysQueuesHighestIndexFirstBeforeTheirVIOMMU() throws {
        let f = try Fixture(topology: nestedTopology)
        let (_, v, iova) = try setUp(f)
        let q0 = try f.broker.hwqueueAlloc(f.a, params(v, base: iova)).hwQueue
        let q1 = try f.broker.hwqueueAlloc(f.a, params(v, index: 1, base: iova + page)).hwQueue
        let log = HWQueueEventLog()
        _ = try f.broker.subscribe(f.a, EventsSubscribeParams()) { log.add($0) }
        let r = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(r.released && r.failures.isEmpty, "\(r)")
        #expect(r.destroyed["hw_queue"] == 2 && r.destroyed["viommu"] == 1 && r.destroyed["mapping"] == 2, "\(r.destroyed)")
        let order = log.destroyed.map(\.1)
        let at = { (id: ObjectID) in order.firstIndex(of: id) ?? -1 }
        #expect(at(q1) >= 0 && at(q1) < at(q0) && at(q0) < at(v), "destroyed in order \(log.destroyed)")
        #expect(log.destroyed.first { $0.1 == q0 }?.0 == .hwQueue)
        // Nothing of the owner is left in the simulator.
        #expect(f.sim.backendInventory().viommus.isEmpty)
    }

    /// The VMM channel's UNMAP (a batch) plans each entry as ioas.unmap does: it stops at the
    /// entry whose mapping a queue pins, Busy naming the queue, the entries before it done.
    @Test func aChannelUnmapBatchStopsAtThePinnedMapping() throws {
        let f = try Fixture(topology: nestedTopology)
        let (ioas, v, iova) = try setUp(f)
        let q1Base = iova + page
        let q = try f.broker.hwqueueAlloc(f.a, params(v, base: q1Base)).hwQueue
        let outcome = f.broker.ioasUnmapBatch(f.a, [
            IOASUnmapParams(ioas: ioas, iova: iova, length: page), IOASUnmapParams(ioas: ioas, iova: q1Base, length: page),
        ])
        #expect(outcome.results.map(\.unmappedBytes) == [page])
        let e = outcome.failure as? BrokerError
        #expect(e?.kind == .busy && e?.message.contains("pinned by HW queue \(q)") == true, "\(String(describing: outcome.failure))")
        #expect(try f.broker.ioasInfo(f.a, IOASInfoParams(ioas: ioas)).mappings.map(\.iova) == [q1Base])
    }

    @Test func withoutTheFeatureItIsUnsupported() throws {
        let f = try Fixture(topology: nestedTopology, without: [.hwQueue])
        let (_, v, iova) = try setUp(f)
        let e = expectBrokerError(.unsupported) { try f.broker.hwqueueAlloc(f.a, params(v, base: iova)) }
        #expect(e?.message.contains("Linux >= 6.17") == true)
    }
}
