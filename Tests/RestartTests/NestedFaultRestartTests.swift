import Foundation
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker

#if canImport(Glibc)
import Glibc
import IommufdContract
#endif

// MARK: nestedgaps

@Suite("A nested HWPT with a fault queue across a restart")
struct NestedFaultRestartTests {
    @Test("The nested HWPT keeps its fault queue (simulator log replay, journal): the holder's fd receives the device's page faults after the restart, and owner.release tears both down")
    func nestedFaultHWPTSurvivesRestart() throws {
        let store = MemoryFDStore()
        let admin = Incarnation.admin
        // The first daemon lives in this scope only, as a killed daemon would be gone.
        let (fault, nested) = try { () throws -> (WithFDs<QueueFDResult>, HWPTInfo) in
            let first = try Incarnation.fresh(store)
            _ = try first.broker.ownerCreate(admin, OwnerCreateParams(name: "vm-1"))
            let ioas = try first.broker.ioasCreate(admin, IOASCreateParams(owner: "vm-1")).ioas
            _ = try first.broker.deviceAttach(admin, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas))
            let v = try first.broker.viommuCreate(admin, VIOMMUCreateParams(device: "sim0"))
            let fault = try first.broker.faultCreate(admin, FaultCreateParams(owner: "vm-1"))
            let nested = try first.broker.hwptAlloc(
                admin, HWPTAllocParams(device: "sim0", parent: v.nestParent, data: NestedDataParams(type: "selftest", iotlb: 3), faultQueue: fault.result.queue.queue))
            _ = try first.broker.deviceReplace(admin, DeviceReplaceParams(device: "sim0", hwpt: nested.hwpt))
            return (fault, nested)
        }()
        let faultFD = try #require(fault.fds.first)
        defer { close(faultFD) }

        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems.isEmpty, "\(replay.problems)")
        #expect(second.recovery?.problems == [], "\(String(describing: second.recovery?.problems))")
        let hwpt = try #require(try second.broker.hwptList(admin, HWPTListParams()).hwpts.first { $0.hwpt == nested.hwpt })
        #expect(hwpt.faultQueue == fault.result.queue.queue && hwpt.nested == nested.nested && hwpt.devices == ["sim0"])
        #expect(try second.broker.queueList(admin, QueueListParams()).queues.first?.hwpts == [nested.hwpt])
        for i in 0..<4 { try second.sim.checkNestedIOTLB(hwpt: nested.hwpt, index: UInt32(i), value: 3) }
        // The replayed simulator holds the queue for the nested HWPT (EBUSY), and delivers to it.
        #expect(throws: BrokerError.self) { try second.broker.faultDestroy(admin, QueueParams(queue: fault.result.queue.queue)) }
        let device = try #require(second.broker.deviceInfo(admin, DeviceInfoParams(device: "sim0")).deviceID)
        try second.sim.triggerIOPF(deviceID: device, pasid: 0, groupID: 2, perm: 1, address: 0x9000)
        var p = pollfd(fd: faultFD, events: Int16(POLLIN), revents: 0)
        #expect(poll(&p, 1, 2000) == 1, "the holder got nothing after the restart")
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(faultFD, $0.baseAddress, $0.count, 0) }
        #expect(n > 0 && PageFault.parse(Array(buffer[0..<max(n, 0)])).first?.address == 0x9000)

        let released = try second.broker.ownerRelease(admin, OwnerReleaseParams(name: "vm-1"))
        #expect(released.released && released.failures.isEmpty, "\(released)")
        let (third, replay3) = try Incarnation.restarted(store)
        #expect(replay3.problems.isEmpty && third.recovery?.problems == [])
        #expect(try third.broker.queueList(admin, QueueListParams()).queues.isEmpty)
        #expect(try third.broker.hwptList(admin, HWPTListParams()).hwpts.isEmpty)
    }
}
