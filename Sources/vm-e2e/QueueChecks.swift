#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdKernel

/// Fault queues and vEVENTQs through the broker on the real kernel (branch `queues`): an
/// in-process broker over a kernel backend with two selftest mock devices, whose relay thread
/// polls the kernel's queue fds. The mock device reports a page fault (IOMMU_TEST_OP_TRIGGER_IOPF)
/// and vIOMMU events (IOMMU_TEST_OP_TRIGGER_VEVENT, through a nested selftest HWPT set up on the
/// backend directly); the checks read them from the fd the broker handed out, answer the fault
/// there, and see the kernel take the answer.
enum QueueChecks {
    static let admin = Caller(uid: 0, gid: 0, pid: 1, role: .admin, identity: "root")

    static func runAll(run: CheckRunner) -> Bool {
        let backend: KernelBackend
        let broker: Broker
        do {
            backend = try KernelBackend(options: KernelBackendOptions(mockDevices: [MockDeviceSpec(name: "qmock0")]))
            broker = try Broker(backend: backend, config: BrokerConfig(access: AccessControl(rules: []), allowList: .all))
        } catch {
            print("FAIL  queues: cannot open the kernel backend with a mock device: \(error)")
            return false
        }
        run.check("fault-queue-relay-and-answer") { try faults(backend, broker) }
        run.check("veventq-relay-in-sequence") { try vevents(backend, broker) }
        run.check("queue-fd-identity") { try queueFDIdentity(backend) }  // samefd
        NestedGapChecks.runAll(run: run, backend: backend, broker: broker)  // nestedgaps
        return true
    }

    static func receive(_ fd: Int32) -> [UInt8]? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 3000) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n < 0 ? nil : Array(buffer[0..<n])
    }

    static func faults(_ backend: KernelBackend, _ broker: Broker) throws {
        _ = try broker.ownerCreate(admin, OwnerCreateParams(name: "q-faults"))
        let ioas = try broker.ioasCreate(admin, IOASCreateParams(owner: "q-faults")).ioas
        _ = try broker.deviceAttach(admin, DeviceAttachParams(owner: "q-faults", device: "qmock0", ioas: ioas))
        let created = try broker.faultCreate(admin, FaultCreateParams(owner: "q-faults"))
        guard let fd = created.fds.first else { throw CheckFailure(description: "fault.create returned no fd") }
        defer { close(fd) }
        let queue = created.result.queue.queue
        let hwpt = try broker.hwptAlloc(admin, HWPTAllocParams(ioas: ioas, device: "qmock0", faultQueue: queue))
        _ = try broker.deviceReplace(admin, DeviceReplaceParams(device: "qmock0", hwpt: hwpt.hwpt))
        let device = try broker.deviceInfo(admin, DeviceInfoParams(device: "qmock0")).deviceID ?? 0
        try backend.triggerIOPF(deviceID: device, pasid: 0, groupID: 3, perm: 3, address: 0xdead_b000)
        guard let message = receive(fd), let fault = PageFault.parse(message).first else {
            throw CheckFailure(description: "no page fault reached the holder of the fault queue's fd")
        }
        try expect(fault.address == 0xdead_b000 && fault.deviceID == device && fault.groupID == 3, "fault \(fault)")
        try expect(broker.queueList(admin, QueueListParams()).queues.first?.awaitingResponse == 1, "the fault is not awaiting an answer")
        let answer = PageResponse(cookie: fault.cookie, code: PageResponse.success).bytes
        _ = answer.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var answered = false
        for _ in 0..<300 where !answered {
            answered = try broker.queueList(admin, QueueListParams()).queues.first?.awaitingResponse == 0
            if !answered { usleep(10_000) }
        }
        try expect(answered, "the answer written to the fd did not reach the kernel")
        // The kernel took it: a second answer for the cookie is EINVAL there.
        try expectErrno(.EINVAL, "a second answer for cookie \(fault.cookie)") {
            try answer.withUnsafeBytes { try backend.respondToFaults(queue, $0) }
        }
        let released = try broker.ownerRelease(admin, OwnerReleaseParams(name: "q-faults"))
        try expect(released.released, "owner.release: \(released.failures)")
        try expect(receive(fd) == [], "the holder's fd did not reach end of file after owner.release")
    }

    static func vevents(_ backend: KernelBackend, _ broker: Broker) throws {
        _ = try broker.ownerCreate(admin, OwnerCreateParams(name: "q-events"))
        let ioas = try broker.ioasCreate(admin, IOASCreateParams(owner: "q-events")).ioas
        _ = try broker.deviceAttach(admin, DeviceAttachParams(owner: "q-events", device: "qmock0", ioas: ioas))
        let v = try broker.viommuCreate(admin, VIOMMUCreateParams(device: "qmock0"))
        let created = try broker.veventqCreate(admin, VEventQCreateParams(viommu: v.viommu, depth: 8))
        guard let fd = created.fds.first else { throw CheckFailure(description: "veventq.create returned no fd") }
        defer { close(fd) }
        try expect(created.result.queue.type == VEventQueueType.selftest, "default vEVENTQ type \(created.result.queue.type ?? 0)")
        let vd = try broker.vdeviceCreate(admin, VDeviceCreateParams(viommu: v.viommu, device: "qmock0", virtualID: 0x77))
        let device = try broker.deviceInfo(admin, DeviceInfoParams(device: "qmock0")).deviceID ?? 0
        let nested = try backend.allocSelftestNestedHWPT(deviceID: device, parent: v.viommu)
        _ = try backend.replace(deviceID: device, with: nested)
        for _ in 0..<3 { try backend.triggerVEvent(deviceID: device) }
        var events: [VEvent] = []
        while events.count < 3, let m = receive(fd) { events += VEvent.parse(m, dataLength: EventQueueABI.selftestEventSize) }
        try expect(events.map(\.sequence) == [0, 1, 2] && events.allSatisfy { $0.data == [0x77, 0, 0, 0] && !$0.lostEvents }, "events \(events)")
        _ = try backend.replace(deviceID: device, with: v.nestParent)
        try backend.destroy(nested)
        do {
            _ = try broker.viommuDestroy(admin, VIOMMUDestroyParams(viommu: v.viommu))
            throw CheckFailure(description: "viommu.destroy of a vIOMMU with a vEVENTQ succeeded")
        } catch let error as BrokerError where error.kind == .busy {}
        _ = try broker.vdeviceDestroy(admin, VDeviceDestroyParams(vdevice: vd.vdevice))
        let released = try broker.ownerRelease(admin, OwnerReleaseParams(name: "q-events"))
        try expect(released.released, "owner.release: \(released.failures)")
    }
}
