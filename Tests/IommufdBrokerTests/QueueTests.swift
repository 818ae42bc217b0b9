import Foundation
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker
import IommufdContract

/// Waits up to two seconds for `fd` to poll readable.
private func readable(_ fd: Int32) -> Bool {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&p, 1, 2000) == 1
}

/// One message from a queue's fd.
private func receive(_ fd: Int32) -> [UInt8]? {
    guard readable(fd) else { return nil }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    return n < 0 ? nil : Array(buffer[0..<n])
}

/// Polls `condition` for up to two seconds.
private func eventually(_ condition: () throws -> Bool) rethrows -> Bool {
    for _ in 0..<200 {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}

/// Events a subscription received.
private final class Inbox: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [BrokerEvent] = []
    func add(_ e: BrokerEvent) { lock.withLock { events.append(e) } }
    var queueRecords: [QueueNotice] {
        lock.withLock { events.compactMap { if case .queueRecord(_, _, let n) = $0 { n } else { nil } } }
    }
}

@Suite("Fault queues and vEVENTQs through the broker")
struct QueueTests {
    @Test func faultsAreRelayedToTheHolderAndSubscribersAndAnsweredThroughTheFd() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas))
        let inbox = Inbox(), otherInbox = Inbox()
        _ = try f.broker.subscribe(f.a, EventsSubscribeParams()) { inbox.add($0) }
        _ = try f.broker.subscribe(f.b, EventsSubscribeParams()) { otherInbox.add($0) }

        // Who may create and see it.
        expectBrokerError(.permissionDenied) { try f.broker.faultCreate(f.reader, FaultCreateParams(owner: "vm-1")) }
        expectBrokerError(.notFound) { try f.broker.faultCreate(f.b, FaultCreateParams(owner: "vm-1")) }
        let created = try f.broker.faultCreate(f.a, FaultCreateParams(owner: "vm-1"))
        let fd = try #require(created.fds.first)
        defer { close(fd) }
        let queue = created.result.queue.queue
        #expect(created.result.queue.kind == "fault" && created.result.queue.connected)
        expectBrokerError(.notFound) { try f.broker.faultDestroy(f.b, QueueParams(queue: queue)) }
        expectBrokerError(.notFound) { try f.broker.veventqDestroy(f.a, QueueParams(queue: queue)) }
        #expect(try f.broker.queueList(f.b, QueueListParams()).queues.isEmpty)
        #expect(try f.broker.queueList(f.reader, QueueListParams()).queues.map(\.queue) == [queue])

        // An HWPT delivering to it; not as a nest parent, not another owner's queue.
        expectBrokerError(.invalidParams) {
            try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas, device: "sim0", nestParent: true, faultQueue: queue))
        }
        let hwpt = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas, device: "sim0", faultQueue: queue))
        #expect(hwpt.faultQueue == queue)
        _ = try f.broker.deviceReplace(f.a, DeviceReplaceParams(device: "sim0", hwpt: hwpt.hwpt))
        expectBrokerError(.busy) { try f.broker.faultDestroy(f.a, QueueParams(queue: queue)) }

        try f.sim.triggerIOPF(deviceID: try f.deviceID("sim0"), pasid: 0, groupID: 5, perm: 2, address: 0x4000)
        let message = try #require(receive(fd), "no fault reached the holder")
        let fault = try #require(PageFault.parse(message).first)
        #expect(message.count == EventQueueABI.pageFaultSize && fault.address == 0x4000 && fault.groupID == 5)
        #expect(eventually { inbox.queueRecords.contains(.fault(fault, device: "sim0")) })
        #expect(otherInbox.queueRecords.isEmpty)
        #expect(try f.broker.queueList(f.a, QueueListParams()).queues.first?.awaitingResponse == 1)

        // A response for a cookie the queue never handed out is dropped; the right one answers.
        let bogus = PageResponse(cookie: fault.cookie + 100, code: 0).bytes
        _ = bogus.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        let answer = PageResponse(cookie: fault.cookie, code: PageResponse.success).bytes
        _ = answer.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        #expect(try eventually { try f.broker.queueList(f.a, QueueListParams()).queues.first?.awaitingResponse == 0 })
        #expect(errnoOf { _ = try answer.withUnsafeBytes { try f.sim.respondToFaults(queue, $0) } } == .EINVAL)

        // owner.release: the HWPT, then the queue; the holder's fd reaches end of file.
        let released = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(released.released)
        #expect(try f.broker.queueList(f.admin, QueueListParams()).queues.isEmpty)
        #expect(receive(fd) == [])
    }

    @Test func vEventsArriveInSequenceWithTheLostEventsRecordAndVIOMMUWaitsForItsQueue() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas))
        let inbox = Inbox()
        _ = try f.broker.subscribe(f.a, EventsSubscribeParams(owner: "vm-1")) { inbox.add($0) }
        let v = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "sim0"))
        expectBrokerError(.invalidParams) { try f.broker.veventqCreate(f.a, VEventQCreateParams(viommu: v.viommu, depth: 0)) }
        expectBrokerError(.invalidParams) { try f.broker.veventqCreate(f.a, VEventQCreateParams(viommu: v.viommu, type: 0)) }
        expectBrokerError(.notFound) { try f.broker.veventqCreate(f.b, VEventQCreateParams(viommu: v.viommu)) }
        let created = try f.broker.veventqCreate(f.a, VEventQCreateParams(viommu: v.viommu, depth: 2))
        let fd = try #require(created.fds.first)
        defer { close(fd) }
        let q = created.result.queue
        #expect(q.type == VEventQueueType.selftest && q.depth == 2 && q.viommu == v.viommu)
        expectBrokerError(.conflict) { try f.broker.veventqCreate(f.a, VEventQCreateParams(viommu: v.viommu)) }
        expectBrokerError(.busy) { try f.broker.viommuDestroy(f.a, VIOMMUDestroyParams(viommu: v.viommu)) }

        // The device reports three events into a queue of depth 2 (through a nested HWPT the
        // broker does not manage yet: set up on the simulator directly, and undone).
        let dev = try f.deviceID("sim0")
        let vd = try f.broker.vdeviceCreate(f.a, VDeviceCreateParams(viommu: v.viommu, device: "sim0", virtualID: 0x42))
        let nested = try f.sim.allocSelftestNestedHWPT(deviceID: dev, parent: v.viommu)
        try f.sim.replace(deviceID: dev, with: nested)
        // Under the broker's lock, so the relay cannot read between them: the kernel's queue
        // overflows as it does when the daemon falls behind.
        try f.broker.readLocked { for _ in 0..<3 { try f.sim.triggerVEvent(deviceID: dev) } }
        try f.sim.replace(deviceID: dev, with: v.nestParent)
        try f.sim.destroy(nested)

        var received: [VEvent] = []
        while received.count < 3, let m = receive(fd) { received += VEvent.parse(m, dataLength: 4) }
        let id: [UInt8] = [0x42, 0, 0, 0]
        #expect(received == [
            VEvent(flags: 0, sequence: 0, data: id), VEvent(flags: 0, sequence: 1, data: id),
            VEvent(flags: EventQueueABI.lostEventsFlag, sequence: 2, data: []),
        ])
        #expect(eventually { inbox.queueRecords.count == 3 })
        let listed = try #require(try f.broker.queueList(f.a, QueueListParams(viommu: v.viommu)).queues.first)
        #expect(listed.relayed == 3 && listed.lostEvents == 1 && listed.undelivered == 0)

        // A new fd replaces the old one, which reaches end of file.
        let again = try f.broker.queueFD(f.a, QueueParams(queue: q.queue))
        defer { again.fds.forEach { close($0) } }
        #expect(receive(fd) == [])
        expectBrokerError(.permissionDenied) { try f.broker.queueFD(f.reader, QueueParams(queue: q.queue)) }

        _ = try f.broker.vdeviceDestroy(f.a, VDeviceDestroyParams(vdevice: vd.vdevice))
        _ = try f.broker.veventqDestroy(f.a, QueueParams(queue: q.queue))
        _ = try f.broker.viommuDestroy(f.a, VIOMMUDestroyParams(viommu: v.viommu))
        #expect(try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1")).released)
    }

    @Test func ownerReleaseDestroysVEventQueuesBeforeTheirVIOMMU() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas))
        let v = try f.broker.viommuCreate(f.a, VIOMMUCreateParams(device: "sim0"))
        let q = try f.broker.veventqCreate(f.a, VEventQCreateParams(viommu: v.viommu))
        q.fds.forEach { close($0) }
        let fault = try f.broker.faultCreate(f.a, FaultCreateParams(owner: "vm-1"))
        fault.fds.forEach { close($0) }
        let released = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        #expect(released.released, "\(released)")
        #expect(errnoOf { try f.sim.destroy(q.result.queue.queue) } == .ENOENT)
        #expect(errnoOf { try f.sim.destroy(fault.result.queue.queue) } == .ENOENT)
    }
}
