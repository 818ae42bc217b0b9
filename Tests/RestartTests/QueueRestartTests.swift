import Foundation
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker
import IommufdContract

#if canImport(Glibc)
import Glibc
#endif

@Suite("Queues across a restart")
struct QueueRestartTests {
    private func receive(_ fd: Int32) -> [UInt8]? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 2000) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n < 0 ? nil : Array(buffer[0..<n])
    }

    @Test("The journal and fd store keep fault queues and vEVENTQs: the holder's fd goes on receiving faults and answering them after the restart")
    func queuesSurviveRestart() throws {
        let store = MemoryFDStore()
        let admin = Incarnation.admin
        // The first daemon lives in this scope only: when it ends, its broker (and the thread
        // relaying its queues) is gone, as a killed daemon is.
        let (fault, hwpt, veventq, v) = try { () throws -> (WithFDs<QueueFDResult>, HWPTInfo, WithFDs<QueueFDResult>, VIOMMUCreateResult) in
        let first = try Incarnation.fresh(store)
        _ = try first.broker.ownerCreate(admin, OwnerCreateParams(name: "vm-1"))
        let ioas = try first.broker.ioasCreate(admin, IOASCreateParams(owner: "vm-1")).ioas
        _ = try first.broker.deviceAttach(admin, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas))
        let fault = try first.broker.faultCreate(admin, FaultCreateParams(owner: "vm-1"))
        let hwpt = try first.broker.hwptAlloc(admin, HWPTAllocParams(ioas: ioas, device: "sim0", faultQueue: fault.result.queue.queue))
        _ = try first.broker.deviceReplace(admin, DeviceReplaceParams(device: "sim0", hwpt: hwpt.hwpt))
        let sim1 = try Fixture2.deviceAttachedOther(first)
        let v = try first.broker.viommuCreate(admin, VIOMMUCreateParams(device: sim1))
        let veventq = try first.broker.veventqCreate(admin, VEventQCreateParams(viommu: v.viommu, depth: 8))
        veventq.fds.forEach { close($0) }
        #expect(store.names.contains(StoredFDName.queueRelay(fault.result.queue.queue)))
        return (fault, hwpt, veventq, v)
        }()
        let faultFD = try #require(fault.fds.first)
        defer { close(faultFD) }

        let (second, _) = try Incarnation.restarted(store)
        let recovery = try #require(second.recovery)
        #expect(recovery.problems.isEmpty, "\(recovery.problems)")
        let queues = try second.broker.queueList(admin, QueueListParams()).queues
        #expect(queues.map(\.queue) == [fault.result.queue.queue, veventq.result.queue.queue].sorted())
        #expect(queues.first { $0.kind == "fault" }?.hwpts == [hwpt.hwpt])
        #expect(queues.first { $0.kind == "fault" }?.connected == true)
        expectBusy { try second.broker.viommuDestroy(admin, VIOMMUDestroyParams(viommu: v.viommu)) }

        // A fault after the restart reaches the fd handed out before it, and is answered there.
        let device = try #require(second.broker.deviceInfo(admin, DeviceInfoParams(device: "sim0")).deviceID)
        try second.sim.triggerIOPF(deviceID: device, pasid: 0, groupID: 1, perm: 1, address: 0x8000)
        let message = try #require(receive(faultFD), "the holder got nothing after the restart")
        let f = try #require(PageFault.parse(message).first)
        #expect(f.address == 0x8000)
        let answer = PageResponse(cookie: f.cookie, code: PageResponse.success).bytes
        _ = answer.withUnsafeBytes { send(faultFD, $0.baseAddress, $0.count, 0) }
        var answered = false
        for _ in 0..<200 where !answered {
            answered = try second.broker.queueList(admin, QueueListParams()).queues.first { $0.kind == "fault" }?.awaitingResponse == 0
            if !answered { usleep(10_000) }
        }
        #expect(answered)
        let released = try second.broker.ownerRelease(admin, OwnerReleaseParams(name: "vm-1"))
        #expect(released.released, "\(released.failures)")
        #expect(!store.names.contains { $0.hasPrefix("queue") })
    }

    private func expectBusy(_ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected Busy")
        } catch let e as BrokerError {
            #expect(e.kind == .busy, "\(e)")
        } catch {
            Issue.record("expected Busy, got \(error)")
        }
    }
}

private enum Fixture2 {
    /// Attaches sim1 (same IOMMU as sim0, no dirty tracking) to a second IOAS of vm-1, for a vIOMMU.
    static func deviceAttachedOther(_ i: Incarnation) throws -> String {
        let ioas = try i.broker.ioasCreate(Incarnation.admin, IOASCreateParams(owner: "vm-1")).ioas
        _ = try i.broker.deviceAttach(Incarnation.admin, DeviceAttachParams(owner: "vm-1", device: "sim1", ioas: ioas))
        return "sim1"
    }
}
