import CIommufd
import IommufdCore

#if canImport(Glibc)
import Glibc
#endif

// Event and fault queues (branch `queues`): IOMMU_FAULT_QUEUE_ALLOC, IOMMU_VEVENTQ_ALLOC and the
// selftest operations that make a mock device report into them.
extension Iommufd {
    /// `IOMMU_FAULT_QUEUE_ALLOC`: the fault object's ID and its fd (close-on-exec, owned by the
    /// caller; while it is open the object cannot be destroyed).
    public func allocFaultQueue() throws -> EventQueue {
        var cmd = ifd_fault_alloc()
        cmd.size = UInt32(MemoryLayout<ifd_fault_alloc>.size)
        try ioctl(IFD_IOMMU_FAULT_QUEUE_ALLOC, &cmd).orThrow("IOMMU_FAULT_QUEUE_ALLOC")
        return EventQueue(id: cmd.out_fault_id, fd: Int32(bitPattern: cmd.out_fault_fd))
    }

    /// `IOMMU_VEVENTQ_ALLOC`: the vEVENTQ's ID and its fd (owned by the caller, as above).
    public func allocVEventQueue(viommu: ObjectID, type: UInt32, depth: UInt32) throws -> EventQueue {
        var cmd = ifd_veventq_alloc()
        cmd.size = UInt32(MemoryLayout<ifd_veventq_alloc>.size)
        cmd.viommu_id = viommu
        cmd.type = type
        cmd.veventq_depth = depth
        try ioctl(IFD_IOMMU_VEVENTQ_ALLOC, &cmd)
            .orThrow("IOMMU_VEVENTQ_ALLOC", detail: "vIOMMU \(viommu) type 0x\(String(type, radix: 16)) depth \(depth)")
        return EventQueue(id: cmd.out_veventq_id, fd: Int32(bitPattern: cmd.out_veventq_fd))
    }

    /// `IOMMU_HWPT_ALLOC` of a nested HWPT with `IOMMU_HWPT_DATA_SELFTEST` (`struct
    /// iommu_hwpt_selftest { u32 iotlb; }`, iotlb 0) on a vIOMMU or nest-parent HWPT.
    public func testAllocNestedHWPT(deviceID: ObjectID, parent: ObjectID) throws -> ObjectID {
        try allocNestedHWPT(deviceID: deviceID, parentID: parent, flags: [], data: HWPTUserData(type: HWPTDataType.selftest, bytes: [0, 0, 0, 0]))
    }

    /// `IOMMU_TEST_OP_TRIGGER_IOPF`.
    public func testTriggerIOPF(deviceID: ObjectID, pasid: UInt32, groupID: UInt32, perm: UInt32, address: UInt64) throws {
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_TRIGGER_IOPF), id: 0)
        cmd.trigger_iopf.dev_id = deviceID
        cmd.trigger_iopf.pasid = pasid
        cmd.trigger_iopf.grpid = groupID
        cmd.trigger_iopf.perm = perm
        cmd.trigger_iopf.addr = address
        try ioctl(IFD_IOMMU_TEST_CMD, &cmd)
            .orThrow("IOMMU_TEST_OP_TRIGGER_IOPF", detail: "device \(deviceID) pasid \(pasid) addr 0x\(String(address, radix: 16))")
    }

    /// `IOMMU_TEST_OP_TRIGGER_VEVENT`.
    public func testTriggerVEvent(deviceID: ObjectID) throws {
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_TRIGGER_VEVENT), id: 0)
        cmd.trigger_vevent.dev_id = deviceID
        try ioctl(IFD_IOMMU_TEST_CMD, &cmd).orThrow("IOMMU_TEST_OP_TRIGGER_VEVENT", detail: "device \(deviceID)")
    }
}

/// The fds of the queues a `KernelBackend` allocated, by object ID.
final class KernelQueueFDs: @unchecked Sendable {
    private let lock = NSLockLike()
    private var fds: [ObjectID: Int32] = [:]

    func insert(_ id: ObjectID, _ fd: Int32) { lock.with { fds[id] = fd } }
    func fd(_ id: ObjectID) -> Int32? { lock.with { fds[id] } }
    func remove(_ id: ObjectID) -> Int32? { lock.with { fds.removeValue(forKey: id) } }
    var all: [(ObjectID, Int32)] { lock.with { fds.map { ($0.key, $0.value) } } }
}

/// A pthread mutex, so this file needs no Foundation.
final class NSLockLike: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func with<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

// MARK: queues

extension KernelBackend: IommuQueueTestHooks {
    public func allocFaultQueue() throws -> EventQueue {
        let queue = try iommufd.allocFaultQueue()
        queueFDs.insert(queue.id, queue.fd)
        return queue
    }

    public func allocVEventQueue(viommu: ObjectID, type: UInt32, depth: UInt32) throws -> EventQueue {
        let queue = try iommufd.allocVEventQueue(viommu: viommu, type: type, depth: depth)
        queueFDs.insert(queue.id, queue.fd)
        return queue
    }

    public func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags, faultQueue: ObjectID) throws -> ObjectID {
        try iommufd.allocHWPT(deviceID: deviceID, ptID: ptID, flags: flags, faultID: faultQueue)
    }

    public func readEventQueue(_ id: ObjectID, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let fd = queueFDs.fd(id) else {
            throw IommuError(.EBADF, "read", detail: "object \(id) is not an event or fault queue of this iommufd")
        }
        let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
        if n < 0 { throw IommuError(Errno.current, "read", detail: "queue \(id), \(buffer.count) bytes") }
        return n
    }

    public func respondToFaults(_ id: ObjectID, _ responses: UnsafeRawBufferPointer) throws -> Int {
        guard let fd = queueFDs.fd(id) else {
            throw IommuError(.EBADF, "write", detail: "object \(id) is not a fault queue of this iommufd")
        }
        let n = Glibc.write(fd, responses.baseAddress, responses.count)
        if n < 0 { throw IommuError(Errno.current, "write", detail: "fault queue \(id), \(responses.count) bytes") }
        return n
    }

    /// Closes a queue's fd before `IOMMU_DESTROY`: an open fd holds a users reference on the
    /// queue object (`iommufd_eventq_init`), so the destroy would be EBUSY while it is open.
    func closeQueueFD(_ id: ObjectID) {
        if let fd = queueFDs.remove(id) { _ = Glibc.close(fd) }
    }

    public func triggerIOPF(deviceID: ObjectID, pasid: UInt32, groupID: UInt32, perm: UInt32, address: UInt64) throws {
        try requireQueueSelftest("IOMMU_TEST_OP_TRIGGER_IOPF")
        try iommufd.testTriggerIOPF(deviceID: deviceID, pasid: pasid, groupID: groupID, perm: perm, address: address)
    }

    public func triggerVEvent(deviceID: ObjectID) throws {
        try requireQueueSelftest("IOMMU_TEST_OP_TRIGGER_VEVENT")
        try iommufd.testTriggerVEvent(deviceID: deviceID)
    }

    public func allocSelftestNestedHWPT(deviceID: ObjectID, parent: ObjectID) throws -> ObjectID {
        try requireQueueSelftest("IOMMU_HWPT_ALLOC")
        return try iommufd.testAllocNestedHWPT(deviceID: deviceID, parent: parent)
    }

    private func requireQueueSelftest(_ operation: String) throws {
        guard !options.mockDevices.isEmpty, features.contains(.selftest) else {
            throw IommuError(.ENOTTY, operation, detail: "test hooks need a CONFIG_IOMMUFD_TEST kernel and mock devices enabled in the config")
        }
    }
}

extension KernelBackend: RestartableQueueBackend {
    public func queueFDToStore(_ id: ObjectID) -> Int32? { queueFDs.fd(id) }

    /// The queue's fd from the fd store is the only way to its records: without it the queue
    /// cannot be read again (ENOENT).
    public func adoptEventQueue(_ id: ObjectID, fd: Int32?) throws -> Int32 {
        guard let fd else {
            throw IommuError(.ENOENT, "adopt", detail: "the fd of queue \(id) is not in the fd store")
        }
        queueFDs.insert(id, fd)
        return fd
    }
}
