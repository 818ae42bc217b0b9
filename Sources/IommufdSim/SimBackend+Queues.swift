import Foundation
import IommufdCore

/// `struct iommufd_fault` / `struct iommufd_veventq` (drivers/iommu/iommufd/eventq.c): the
/// records waiting to be read, and a pipe that polls readable while there are some.
final class SimEventQueue {
    enum Kind { case fault, vevent }

    /// A fault group (`struct iopf_group`, one fault: the selftest reports single pages).
    struct FaultGroup {
        var fault: PageFault
        var hwpt: ObjectID
    }

    /// An entry of `eventq->deliver`; `lost` is the `lost_events_header`.
    enum Entry {
        case event(sequence: UInt32, data: [UInt8])
        case lost(sequence: UInt32)
        case fault(FaultGroup)
    }

    let kind: Kind
    /// vEVENTQ: its vIOMMU, type and depth.
    let viommu: ObjectID?
    let type: UInt32
    let depth: UInt32
    var deliver: [Entry] = []
    /// `veventq->num_events` (normal events queued).
    var numEvents: UInt32 = 0
    /// `veventq->sequence`.
    var sequence: UInt32 = 0
    /// `fault->response`: cookie → group read and not yet answered.
    var awaitingResponse: [UInt32: FaultGroup] = [:]
    /// Users references other objects hold (HWPTs on a fault queue).
    var users = 0
    /// The read end of a pipe standing in for the queue's anon-inode file (it polls readable
    /// while records are queued); -1 once closed.
    var fd: Int32
    private var writeEnd: Int32
    private var signalled = false

    init(kind: Kind, viommu: ObjectID?, type: UInt32, depth: UInt32) throws(Errno) {
        self.kind = kind
        self.viommu = viommu
        self.type = type
        self.depth = depth
        var ends: [Int32] = [-1, -1]
        if pipe(&ends) != 0 { throw Errno.current }
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
        }
        self.fd = ends[0]
        self.writeEnd = ends[1]
    }

    deinit { close() }

    func close() {
        if fd >= 0 { _ = Glibc.close(fd) }
        if writeEnd >= 0 { _ = Glibc.close(writeEnd) }
        fd = -1
        writeEnd = -1
    }

    /// Makes the eventfd readable exactly while records are queued (poll's EPOLLIN).
    func syncReadiness() {
        guard fd >= 0 else { return }
        if !deliver.isEmpty && !signalled {
            var one: UInt8 = 1
            _ = write(writeEnd, &one, 1)
            signalled = true
        } else if deliver.isEmpty && signalled {
            var value: UInt8 = 0
            _ = read(fd, &value, 1)
            signalled = false
        }
    }
}

// MARK: queues

extension SimBackend: IommuQueueTestHooks {
    /// `iommufd_fault_alloc`.
    public func allocFaultQueue() throws -> EventQueue {
        try locked("IOMMU_FAULT_QUEUE_ALLOC") {
            let id = try allocateID()
            let queue = try SimEventQueue(kind: .fault, viommu: nil, type: 0, depth: 0)
            objects[id] = .eventQueue(queue)
            return EventQueue(id: id, fd: queue.fd)
        }
    }

    /// `iommufd_veventq_alloc`: EOPNOTSUPP for type DEFAULT, EINVAL for a depth of 0 or above
    /// `VEVENTQ_MAX_DEPTH`, ENOENT for anything but a vIOMMU, EEXIST for a second queue of a type.
    public func allocVEventQueue(viommu viommuID: ObjectID, type: UInt32, depth: UInt32) throws -> EventQueue {
        try locked("IOMMU_VEVENTQ_ALLOC") {
            if type == VEventQueueType.default { throw Errno.EOPNOTSUPP }
            if depth == 0 || depth > EventQueueABI.maxVEventDepth { throw Errno.EINVAL }
            let viommu = try viommu(viommuID)
            if viommu.veventqs[type] != nil { throw Errno.EEXIST }
            let id = try allocateID()
            let queue = try SimEventQueue(kind: .vevent, viommu: viommuID, type: type, depth: depth)
            objects[id] = .eventQueue(queue)
            viommu.veventqs[type] = id
            return EventQueue(id: id, fd: queue.fd)
        }
    }

    /// `iommufd_hwpt_alloc` with `IOMMU_HWPT_FAULT_ID_VALID`: a paging HWPT from an IOAS
    /// (SimBackend+HWPT.swift).
    public func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags, faultQueue: ObjectID) throws -> ObjectID {
        try allocHWPTWithoutData(deviceID: deviceID, ptID: ptID, flags: flags, faultQueue: faultQueue)
    }

    func eventQueue(_ id: ObjectID) throws(Errno) -> SimEventQueue {
        guard case .eventQueue(let queue) = objects[id], queue.fd >= 0 else { throw .EBADF }
        return queue
    }

    /// `iommufd_veventq_fops_read` / `iommufd_fault_fops_read`.
    public func readEventQueue(_ id: ObjectID, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try locked("read") {
            let queue = try eventQueue(id)
            defer { queue.syncReadiness() }
            switch queue.kind {
            case .vevent: return try readVEvents(queue, buffer)
            case .fault: return try readFaults(queue, buffer)
            }
        }
    }

    private func readVEvents(_ queue: SimEventQueue, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        let header = EventQueueABI.veventHeaderSize
        if buffer.count < header { throw .EINVAL }
        var done = 0
        records: while let entry = queue.deliver.first {
            if done >= buffer.count || header > buffer.count - done { break }
            let bytes: [UInt8]
            switch entry {
            case .event(let sequence, let data):
                if header + data.count > buffer.count - done {
                    if done == 0 { throw .EINVAL }
                    break records
                }
                bytes = VEvent(flags: 0, sequence: sequence, data: data).bytes
                queue.numEvents -= 1
            case .lost(let sequence):
                bytes = VEvent(flags: EventQueueABI.lostEventsFlag, sequence: sequence, data: []).bytes
            case .fault:
                return done
            }
            queue.deliver.removeFirst()
            for (i, b) in bytes.enumerated() { buffer[done + i] = b }
            done += bytes.count
        }
        return done
    }

    private func readFaults(_ queue: SimEventQueue, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        let size = EventQueueABI.pageFaultSize
        if buffer.count % size != 0 { throw .ESPIPE }
        var done = 0
        while case .fault(var group) = queue.deliver.first {
            if done >= buffer.count || size > buffer.count - done {
                if done == 0 { throw .EINVAL }
                break
            }
            // xa_alloc into fault->response: the lowest free cookie from 1.
            var cookie: UInt32 = 1
            while queue.awaitingResponse[cookie] != nil { cookie += 1 }
            group.fault.cookie = cookie
            queue.awaitingResponse[cookie] = group
            queue.deliver.removeFirst()
            for (i, b) in group.fault.bytes.enumerated() { buffer[done + i] = b }
            done += size
        }
        return done
    }

    /// `iommufd_fault_fops_write`.
    public func respondToFaults(_ id: ObjectID, _ responses: UnsafeRawBufferPointer) throws -> Int {
        try locked("write") {
            let queue = try eventQueue(id)
            let size = EventQueueABI.pageResponseSize
            // A vEVENTQ's file has no write op: the VFS answers EINVAL.
            if queue.kind != .fault { throw Errno.EINVAL }
            if responses.count % size != 0 { throw Errno.ESPIPE }
            var done = 0
            for response in PageResponse.parse(responses) {
                guard response.code == PageResponse.success || response.code == PageResponse.invalid,
                    queue.awaitingResponse.removeValue(forKey: response.cookie) != nil
                else {
                    if done == 0 { throw Errno.EINVAL }
                    break
                }
                done += size
            }
            return done
        }
    }

    /// `IOMMU_DESTROY` of a queue: EBUSY while an HWPT holds a fault queue. Closing its file
    /// (which the kernel backend does first) is part of it.
    func destroyEventQueue(_ id: ObjectID, _ queue: SimEventQueue) throws(Errno) {
        if queue.users > 0 {
            queue.close()
            throw .EBUSY
        }
        queue.close()
        if let viommuID = queue.viommu, case .viommu(let viommu) = objects[viommuID] { viommu.veventqs[queue.type] = nil }
        removeObject(id)
    }

    // MARK: IommuQueueTestHooks

    /// `iommufd_test_trigger_iopf` → `iommu_report_device_fault`: a fault for a device whose
    /// page table (for the RID, or the PASID named) has no fault queue is answered by the core
    /// and reaches no queue; the call still succeeds.
    public func triggerIOPF(deviceID: ObjectID, pasid: UInt32, groupID: UInt32, perm: UInt32, address: UInt64) throws {
        try locked("IOMMU_TEST_OP_TRIGGER_IOPF") {
            let device = try physicalDevice(deviceID)
            // The attach handle of the RID, or of the PASID named (SimBackend+PASID.swift); a
            // PASID fault is flagged PASID_VALID.
            let pageTable = pasid == SimBackend.noPASID ? device.attached : device.pasids[pasid]
            guard let hwptID = pageTable, case .hwpt(let hwpt) = objects[hwptID],
                let faultID = hwpt.faultQueue, case .eventQueue(let queue) = objects[faultID]
            else { return }
            let flags = PageFault.lastPage | (pasid == SimBackend.noPASID ? 0 : PageFault.pasidValid)
            let fault = PageFault(
                flags: flags, deviceID: deviceID, pasid: pasid, groupID: groupID, perm: perm,
                address: address, cookie: 0)
            queue.deliver.append(.fault(.init(fault: fault, hwpt: hwptID)))
            queue.syncReadiness()
        }
    }

    /// `iommufd_test_trigger_vevent`: ENOENT unless the device is attached to a nested HWPT of a
    /// vIOMMU with its vDevice there (`mdev->viommu`, `mdev->vdev_id`); then the vIOMMU reports
    /// `struct iommu_viommu_event_selftest { virt_id }` into its selftest vEVENTQ, EOPNOTSUPP
    /// without one (`iommufd_viommu_report_event`).
    public func triggerVEvent(deviceID: ObjectID) throws {
        try locked("IOMMU_TEST_OP_TRIGGER_VEVENT") {
            let device = try physicalDevice(deviceID)
            guard let hwptID = device.attached, case .hwpt(let hwpt) = objects[hwptID], let viommuID = hwpt.nested?.viommu,
                case .viommu(let viommu) = objects[viommuID], let vdevID = device.vdevice,
                case .vdevice(let vdev) = objects[vdevID], vdev.viommu == viommuID, vdev.virtualID != 0
            else { throw Errno.ENOENT }
            guard let queueID = viommu.veventqs[VEventQueueType.selftest], case .eventQueue(let queue) = objects[queueID] else {
                throw Errno.EOPNOTSUPP
            }
            let data = withUnsafeBytes(of: UInt32(truncatingIfNeeded: vdev.virtualID).littleEndian) { Array($0) }
            reportVEvent(queue, data: data)
        }
    }

    /// A nested HWPT with selftest data (`iotlb` 0) on `parent`: the queue cases' way to one,
    /// made by the simulator's model of the mock driver's nested domains (SimBackend+Nested.swift).
    public func allocSelftestNestedHWPT(deviceID: ObjectID, parent: ObjectID) throws -> ObjectID {
        try allocNestedHWPT(deviceID: deviceID, parentID: parent, flags: [], data: HWPTUserData(type: HWPTDataType.selftest, bytes: [0, 0, 0, 0]))
    }

    /// `iommufd_viommu_report_event` + `iommufd_vevent_handler`, for when nested HWPTs are
    /// modelled: a full queue gets (or keeps) the lost-events header at its tail.
    func reportVEvent(_ queue: SimEventQueue, data: [UInt8]) {
        if case .lost = queue.deliver.last { queue.deliver.removeLast() }
        if queue.numEvents == queue.depth {
            queue.deliver.append(.lost(sequence: queue.sequence))
        } else {
            queue.deliver.append(.event(sequence: queue.sequence, data: data))
            queue.numEvents += 1
        }
        queue.sequence = (queue.sequence + 1) & UInt32(Int32.max)
        queue.syncReadiness()
    }
}
