import Foundation
import IommufdCore

// MARK: queues

/// The queue calls, logged like every allocation so a replay gives the same IDs. A replayed
/// queue is empty: events and faults queued in the simulator when the daemon stopped are gone
/// (the kernel keeps them in its queue objects).
extension PersistentSimBackend: IommuQueueTestHooks, RestartableQueueBackend {
    public func allocFaultQueue() throws -> EventQueue {
        try logged(.allocFaultQueue, { try sim.allocFaultQueue() }) { w, q in w.u32(q.id) }
    }

    public func allocVEventQueue(viommu: ObjectID, type: UInt32, depth: UInt32) throws -> EventQueue {
        try logged(.allocVEventQueue, { try sim.allocVEventQueue(viommu: viommu, type: type, depth: depth) }) { w, q in
            w.u32(q.id); w.u32(viommu); w.u32(type); w.u32(depth)
        }
    }

    public func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags, faultQueue: ObjectID) throws -> ObjectID {
        try logged(.allocFaultHWPT, { try sim.allocHWPT(deviceID: deviceID, ptID: ptID, flags: flags, faultQueue: faultQueue) }) { w, id in
            w.u32(id); w.u32(deviceID); w.u32(ptID); w.u32(flags.rawValue); w.u32(faultQueue)
        }
    }

    public func readEventQueue(_ id: ObjectID, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try sim.readEventQueue(id, into: buffer)
    }

    public func respondToFaults(_ id: ObjectID, _ responses: UnsafeRawBufferPointer) throws -> Int {
        try sim.respondToFaults(id, responses)
    }

    public func triggerIOPF(deviceID: ObjectID, pasid: UInt32, groupID: UInt32, perm: UInt32, address: UInt64) throws {
        try sim.triggerIOPF(deviceID: deviceID, pasid: pasid, groupID: groupID, perm: perm, address: address)
    }

    public func triggerVEvent(deviceID: ObjectID) throws { try sim.triggerVEvent(deviceID: deviceID) }

    public func allocSelftestNestedHWPT(deviceID: ObjectID, parent: ObjectID) throws -> ObjectID {
        try sim.allocSelftestNestedHWPT(deviceID: deviceID, parent: parent)
    }

    /// The fd the simulator polls readable for a queue (a replayed queue has a new one).
    public func eventQueueFD(_ id: ObjectID) -> Int32? { sim.eventQueueFD(id) }

    /// Nothing to store: the replay makes the queue again (empty).
    public func queueFDToStore(_ id: ObjectID) -> Int32? { nil }

    public func adoptEventQueue(_ id: ObjectID, fd: Int32?) throws -> Int32 {
        if let fd { close(fd) }
        guard let own = sim.eventQueueFD(id) else {
            throw IommuError(.ENOENT, "adopt", detail: "the replayed simulator has no queue \(id)")
        }
        return own
    }

    func replayQueueOp(_ op: Op, _ r: inout ByteReader, _ expect: (ObjectID, UInt32, String) throws -> Void) throws {
        switch op {
        case .allocFaultQueue:
            try expect(try sim.allocFaultQueue().id, r.u32(), "IOMMU_FAULT_QUEUE_ALLOC")
        case .allocVEventQueue:
            let id = r.u32(), viommu = r.u32(), type = r.u32(), depth = r.u32()
            try expect(try sim.allocVEventQueue(viommu: viommu, type: type, depth: depth).id, id, "IOMMU_VEVENTQ_ALLOC")
        case .allocFaultHWPT:
            let id = r.u32(), dev = r.u32(), pt = r.u32(), flags = HWPTAllocFlags(rawValue: r.u32()), fault = r.u32()
            try expect(try sim.allocHWPT(deviceID: dev, ptID: pt, flags: flags, faultQueue: fault), id, "IOMMU_HWPT_ALLOC")
        default:
            throw IommuError(.EINVAL, "replay", detail: "not a queue operation: \(op)")
        }
    }
}

extension SimBackend {
    /// The eventfd that polls readable while queue `id` has records.
    public func eventQueueFD(_ id: ObjectID) -> Int32? {
        lock.withLock {
            guard case .eventQueue(let queue) = objects[id], queue.fd >= 0 else { return nil }
            return queue.fd
        }
    }
}
