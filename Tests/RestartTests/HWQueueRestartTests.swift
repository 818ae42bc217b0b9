import Foundation
import IommufdCore
import IommufdSim
import TestProcesses
import Testing

@testable import IommufdBroker
import IommufdContract

// MARK: hwqueue3

@Suite("HW queues across a restart")
struct HWQueueRestartTests {
    let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    @Test("HW queues are journaled and taken back: after a restart the pin, the index order and the vIOMMU's hold still apply, and owner.release tears them down highest index first")
    func hwQueuesAdoptedAfterRestart() throws {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let a = Incarnation.admin
        let b = first.broker
        let ram = try makeMemfd(bytes: 2 * Int(page))
        defer { close(ram) }
        _ = try b.ownerCreate(a, OwnerCreateParams(name: "vm"))
        let ioas = try b.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        _ = try b.deviceAttach(a, DeviceAttachParams(owner: "vm", device: "sim0", ioas: ioas))
        let v = try b.viommuCreate(a, VIOMMUCreateParams(device: "sim0")).viommu
        let iova: UInt64 = 0x10_0000
        _ = try b.ioasMap(a, IOASMapParams(ioas: ioas, length: page, iova: iova), fd: ram)
        _ = try b.ioasMap(a, IOASMapParams(ioas: ioas, offset: page, length: page, iova: iova + page), fd: ram)
        let q0 = try b.hwqueueAlloc(a, HWQueueAllocParams(viommu: v, type: .name("selftest"), index: 0, baseAddress: iova, length: page))
        let q1 = try b.hwqueueAlloc(a, HWQueueAllocParams(viommu: v, type: .name("selftest"), index: 1, baseAddress: iova + page, length: page))
        let before = try b.viommuList(a, VIOMMUListParams())

        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems.isEmpty, "\(replay.problems)")
        #expect(second.recovery?.problems == [], "\(String(describing: second.recovery?.problems))")
        let s = second.broker
        let after = try s.viommuList(a, VIOMMUListParams())
        #expect(after == before)
        #expect(after.viommus.first?.hwQueues == [q0, q1])
        #expect(try s.ownerInfo(a, OwnerInfoParams(name: "vm")).hwQueues == [q0.hwQueue, q1.hwQueue])
        // The restarted daemon still knows what the queues hold.
        expectBusy("pinned by HW queue \(q0.hwQueue)") { try s.ioasUnmap(a, IOASUnmapParams(ioas: ioas, iova: iova, length: page)) }
        expectBusy("HW queues [\(q0.hwQueue), \(q1.hwQueue)]") { try s.viommuDestroy(a, VIOMMUDestroyParams(viommu: v)) }
        expectBusy("held by HW queue \(q1.hwQueue)") { try s.hwqueueDestroy(a, HWQueueParams(hwQueue: q0.hwQueue)) }
        // And the simulator (its log replayed) agrees: index 0 is taken.
        do {
            _ = try s.hwqueueAlloc(a, HWQueueAllocParams(viommu: v, type: .name("selftest"), index: 0, baseAddress: iova, length: page))
            Issue.record("a second index 0 was allocated after the restart")
        } catch let e as BrokerError {
            #expect(e.kernel?.errno == .EEXIST, "\(e)")
        }

        let released = try s.ownerRelease(a, OwnerReleaseParams(name: "vm"))
        #expect(released.released && released.failures.isEmpty, "\(released)")
        #expect(released.destroyed["hw_queue"] == 2 && released.destroyed["viommu"] == 1, "\(released.destroyed)")
        #expect(second.sim.backendInventory().viommus.isEmpty)

        // That teardown is journaled too: a third start finds nothing left.
        let (third, replay3) = try Incarnation.restarted(store)
        #expect(replay3.problems.isEmpty && third.recovery?.problems == [])
        #expect(try third.broker.viommuList(a, VIOMMUListParams()).viommus.isEmpty)
    }

    @Test("a HW queue destroyed before the restart stays destroyed, and viommu.destroy works after it")
    func destroyedQueueStaysDestroyed() throws {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let a = Incarnation.admin
        let b = first.broker
        let ram = try makeMemfd(bytes: Int(page))
        defer { close(ram) }
        _ = try b.ownerCreate(a, OwnerCreateParams(name: "vm"))
        let ioas = try b.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        _ = try b.deviceAttach(a, DeviceAttachParams(owner: "vm", device: "sim0", ioas: ioas))
        let v = try b.viommuCreate(a, VIOMMUCreateParams(device: "sim0")).viommu
        _ = try b.ioasMap(a, IOASMapParams(ioas: ioas, length: page, iova: 0x10_0000), fd: ram)
        let q = try b.hwqueueAlloc(a, HWQueueAllocParams(viommu: v, type: .number(HWQueueType.selftest), index: 0, baseAddress: 0x10_0000, length: 64))
        _ = try b.hwqueueDestroy(a, HWQueueParams(hwQueue: q.hwQueue))

        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems.isEmpty && second.recovery?.problems == [])
        #expect(try second.broker.viommuList(a, VIOMMUListParams()).viommus.first?.hwQueues == nil)
        _ = try second.broker.ioasUnmap(a, IOASUnmapParams(ioas: ioas, iova: 0x10_0000, length: page))
        _ = try second.broker.viommuDestroy(a, VIOMMUDestroyParams(viommu: v))
    }

    func expectBusy<T>(_ words: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) {
        do {
            _ = try body()
            Issue.record("expected Busy, it succeeded", sourceLocation: sourceLocation)
        } catch let e as BrokerError {
            #expect(e.kind == .busy && e.message.contains(words), "\(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
    }
}
