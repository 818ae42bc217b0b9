#if canImport(Glibc)
import Glibc
#endif
import IommufdCore

/// Fault queues and vEVENTQs (eventq.c; selftest `iommufd_viommu.vdevice_alloc`,
/// `iommufd_fail_nth`/`iommufd_mock_domain` iopf paths). Branch `queues`.
enum QueueCases {
    static let viommuType = VIOMMUType.selftest
    static let veventType = VEventQueueType.selftest

    /// The queue test hooks, or a skip where the backend has none (no CONFIG_IOMMUFD_TEST).
    static func hooks(_ ctx: ConformanceContext) throws -> any IommuQueueTestHooks {
        guard let hooks = ctx.backend as? any IommuQueueTestHooks else {
            throw ConformanceSkip("this backend has no queue test hooks (IOMMU_TEST_OP_TRIGGER_IOPF/_VEVENT)")
        }
        return hooks
    }

    /// Runs a test hook; ENOTTY (no CONFIG_IOMMUFD_TEST, or a model the backend lacks) skips.
    static func hook<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as IommuError where error.errno == .ENOTTY {
            throw ConformanceSkip("\(what) is not available here: \(error)")
        }
    }

    /// `read(2)` of up to `count` bytes from a queue: the bytes, or the errno as IommuError.
    static func read(_ ctx: ConformanceContext, _ queue: ObjectID, _ count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max(count, 1))
        let n = try buffer.withUnsafeMutableBytes { raw in
            try ctx.backend.readEventQueue(queue, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<count]))
        }
        return Array(buffer[0..<n])
    }

    /// Waits (at most a second) for the queue's fd to poll readable, as a VMM would.
    static func waitReadable(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 1000) == 1 && p.revents & Int16(POLLIN) != 0
    }

    static func write(_ ctx: ConformanceContext, _ queue: ObjectID, _ responses: [PageResponse]) throws -> Int {
        let bytes = responses.flatMap(\.bytes)
        return try bytes.withUnsafeBytes { try ctx.backend.respondToFaults(queue, $0) }
    }

    /// An IOAS, a nest parent on it for the primary device and a selftest vIOMMU over it.
    static func viommu(_ ctx: ConformanceContext) throws -> (ioas: ObjectID, parent: ObjectID, viommu: ObjectID) {
        try VIOMMUCases.setUp(ctx)
    }

    static let all: [ConformanceCase] = [
        // iommufd_hwpt_alloc: iommufd_get_fault(fault_id) — IOMMUFD_OBJ_FAULT only.
        ConformanceCase(
            "fault.hwpt-alloc.fault-id-not-a-fault-queue-is-ENOENT",
            "IOMMU_HWPT_ALLOC with FAULT_ID_VALID and a fault_id that is not a fault queue (0, an IOAS) is ENOENT.",
            requires: [.device]
        ) { ctx in
            let device = try ctx.device(.primary)
            let ioas = try ctx.backend.allocIOAS()
            try ctx.expectErrno(.ENOENT, "fault_id 0") { try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: [], faultQueue: 0) }
            try ctx.expectErrno(.ENOENT, "fault_id = IOAS \(ioas)") {
                try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: [], faultQueue: ioas)
            }
            let fault = try ctx.backend.allocFaultQueue()
            let hwpt = try ctx.expectSuccess("HWPT with fault queue \(fault.id)") {
                try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: [], faultQueue: fault.id)
            }
            try ctx.expect(hwpt != fault.id, "HWPT and fault queue share ID \(hwpt)")
        },

        // iommufd_hwpt_paging_alloc: FAULT_ID_VALID with NEST_PARENT.
        ConformanceCase(
            "fault.hwpt-alloc.nest-parent-with-fault-is-EOPNOTSUPP",
            "A nest-parent HWPT cannot take a fault queue: EOPNOTSUPP.",
            requires: [.nesting]
        ) { ctx in
            let device = try ctx.device(.primary)
            let ioas = try ctx.backend.allocIOAS()
            let fault = try ctx.backend.allocFaultQueue()
            try ctx.expectErrno(.EOPNOTSUPP, "nest parent with fault queue \(fault.id)") {
                try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: .nestParent, faultQueue: fault.id)
            }
        },

        // iommufd_hwpt_alloc: a nested HWPT is no IOAS, paging HWPT or vIOMMU, whatever the
        // flags; iommufd_hwpt_nested_alloc: a nest parent without driver data is EOPNOTSUPP.
        ConformanceCase(
            "fault.hwpt-alloc.nested-pt-is-EINVAL",
            "IOMMU_HWPT_ALLOC without driver data on a nested HWPT is EINVAL, with a fault queue as without; on a nest parent with a fault queue it is EOPNOTSUPP.",
            requires: [.nesting]
        ) { ctx in
            let s = try NestedCases.setUp(ctx)
            let device = try ctx.device(.primary)
            let fault = try ctx.backend.allocFaultQueue()
            try ctx.expectErrno(.EINVAL, "on nested HWPT \(s.nested)") {
                try ctx.backend.allocHWPT(deviceID: device.id, ptID: s.nested, flags: [])
            }
            try ctx.expectErrno(.EINVAL, "on nested HWPT \(s.nested) with fault queue \(fault.id)") {
                try ctx.backend.allocHWPT(deviceID: device.id, ptID: s.nested, flags: [], faultQueue: fault.id)
            }
            try ctx.expectErrno(.EOPNOTSUPP, "on nest parent \(s.parent) with fault queue \(fault.id)") {
                try ctx.backend.allocHWPT(deviceID: device.id, ptID: s.parent, flags: [], faultQueue: fault.id)
            }
        },

        // iommufd_hwpt_alloc: refcount_inc(&fault->common.obj.users).
        ConformanceCase(
            "fault.busy-while-hwpt-uses-it",
            "A fault queue an HWPT delivers to cannot be destroyed (EBUSY) until the HWPT is.",
            requires: [.device]
        ) { ctx in
            let device = try ctx.device(.primary)
            let ioas = try ctx.backend.allocIOAS()
            let fault = try ctx.backend.allocFaultQueue()
            let hwpt = try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: [], faultQueue: fault.id)
            try ctx.expectErrno(.EBUSY, "destroy of fault queue \(fault.id) used by HWPT \(hwpt)") { try ctx.backend.destroy(fault.id) }
            try ctx.backend.destroy(hwpt)
            try ctx.expectSuccess("destroy of the fault queue after its HWPT") { try ctx.backend.destroy(fault.id) }
            try ctx.expectErrno(.ENOENT, "second destroy of fault queue \(fault.id)") { try ctx.backend.destroy(fault.id) }
        },

        // iommufd_fault_fops_read / _write; selftest _test_cmd_trigger_iopf.
        ConformanceCase(
            "fault.iopf-read-and-respond",
            "A page request of a device on a fault-capable HWPT is read from the fault queue (whole records, dev_id, address, group, LAST_PAGE, a cookie), and answered once by writing the cookie back; a second answer or an unknown code is EINVAL.",
            requires: [.device]
        ) { ctx in
            let hooks = try hooks(ctx)
            let device = try ctx.device(.primary)
            let ioas = try ctx.backend.allocIOAS()
            let fault = try ctx.backend.allocFaultQueue()
            let hwpt = try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: [], faultQueue: fault.id)
            try ctx.expectEqual(try read(ctx, fault.id, 40), [], "read of the empty fault queue")
            try ctx.backend.attach(deviceID: device.id, to: hwpt)
            try hook("IOMMU_TEST_OP_TRIGGER_IOPF") {
                try hooks.triggerIOPF(deviceID: device.id, pasid: 0, groupID: 2, perm: 3, address: 0xdead_b000)
            }
            try ctx.expect(waitReadable(fault.fd), "the fault queue's fd did not poll readable after the page request")
            try ctx.expectErrno(.ESPIPE, "read of 39 bytes (not a multiple of struct iommu_hwpt_pgfault)") { try read(ctx, fault.id, 39) }
            try ctx.expectErrno(.EINVAL, "read of 0 bytes with a fault queued") { try read(ctx, fault.id, 0) }
            let faults = PageFault.parse(try read(ctx, fault.id, 80))
            try ctx.expectEqual(faults.count, 1, "faults read")
            let f = faults[0]
            try ctx.expectEqual(f.deviceID, device.id, "fault dev_id")
            try ctx.expectEqual(f.address, 0xdead_b000, "fault addr")
            try ctx.expectEqual(f.groupID, 2, "fault grpid")
            try ctx.expectEqual(f.perm, 3, "fault perm")
            try ctx.expect(f.flags & PageFault.lastPage != 0, "fault flags 0x\(String(f.flags, radix: 16)) lack LAST_PAGE")
            try ctx.expect(f.flags & PageFault.pasidValid == 0, "a fault without PASID has PASID_VALID")
            try ctx.expectEqual(try read(ctx, fault.id, 40), [], "read after the only fault was read")
            try ctx.expectErrno(.EINVAL, "response code 2") { try write(ctx, fault.id, [PageResponse(cookie: f.cookie, code: 2)]) }
            try ctx.expectErrno(.EINVAL, "response to an unknown cookie") { try write(ctx, fault.id, [PageResponse(cookie: f.cookie &+ 1, code: 0)]) }
            try ctx.expectErrno(.ESPIPE, "a response of 7 bytes") {
                try [UInt8](repeating: 0, count: 7).withUnsafeBytes { try ctx.backend.respondToFaults(fault.id, $0) }
            }
            try ctx.expectEqual(try write(ctx, fault.id, [PageResponse(cookie: f.cookie, code: PageResponse.success)]), 8, "bytes of the response")
            try ctx.expectErrno(.EINVAL, "a second response to cookie \(f.cookie)") {
                try write(ctx, fault.id, [PageResponse(cookie: f.cookie, code: PageResponse.success)])
            }
        },

        // iommu_report_device_fault without a fault handler: answered by the core, not queued.
        ConformanceCase(
            "fault.iopf-without-fault-hwpt-reaches-no-queue",
            "A page request of a device whose HWPT has no fault queue succeeds and queues nothing.",
            requires: [.device]
        ) { ctx in
            let hooks = try hooks(ctx)
            let device = try ctx.device(.primary)
            let ioas = try ctx.backend.allocIOAS()
            let fault = try ctx.backend.allocFaultQueue()
            _ = try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: [], faultQueue: fault.id)
            let plain = try ctx.backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: [])
            try ctx.backend.attach(deviceID: device.id, to: plain)
            try hook("IOMMU_TEST_OP_TRIGGER_IOPF") {
                try hooks.triggerIOPF(deviceID: device.id, pasid: 0, groupID: 1, perm: 1, address: 0x1000)
            }
            try ctx.expectEqual(try read(ctx, fault.id, 40), [], "read of the fault queue no HWPT of the device delivers to")
        },

        // iommufd_veventq_alloc: type DEFAULT.
        ConformanceCase(
            "veventq.alloc.type-default-is-EOPNOTSUPP",
            "A vEVENTQ of type DEFAULT (0) is EOPNOTSUPP.",
            requires: [.nesting]
        ) { ctx in
            let s = try viommu(ctx)
            try ctx.expectErrno(.EOPNOTSUPP, "vEVENTQ of type 0") { try ctx.backend.allocVEventQueue(viommu: s.viommu, type: 0, depth: 2) }
        },

        // iommufd_veventq_alloc: !veventq_depth || veventq_depth > VEVENTQ_MAX_DEPTH.
        ConformanceCase(
            "veventq.alloc.depth-out-of-range-is-EINVAL",
            "A vEVENTQ depth of 0 or above 2^19 is EINVAL; 2^19 itself is accepted.",
            requires: [.nesting]
        ) { ctx in
            let s = try viommu(ctx)
            try ctx.expectErrno(.EINVAL, "depth 0") { try ctx.backend.allocVEventQueue(viommu: s.viommu, type: veventType, depth: 0) }
            try ctx.expectErrno(.EINVAL, "depth 2^19 + 1") {
                try ctx.backend.allocVEventQueue(viommu: s.viommu, type: veventType, depth: EventQueueABI.maxVEventDepth + 1)
            }
            let q = try ctx.expectSuccess("depth 2^19") {
                try ctx.backend.allocVEventQueue(viommu: s.viommu, type: veventType, depth: EventQueueABI.maxVEventDepth)
            }
            try ctx.expectSuccess("destroy of the vEVENTQ") { try ctx.backend.destroy(q.id) }
        },

        // iommufd_veventq_alloc: iommufd_get_viommu; iommufd_viommu_find_veventq.
        ConformanceCase(
            "veventq.alloc.not-viommu-is-ENOENT-second-of-type-is-EEXIST",
            "A vEVENTQ on an ID that is not a vIOMMU is ENOENT; a second one of the same type on a vIOMMU is EEXIST.",
            requires: [.nesting]
        ) { ctx in
            let s = try viommu(ctx)
            try ctx.expectErrno(.ENOENT, "vEVENTQ on IOAS \(s.ioas)") { try ctx.backend.allocVEventQueue(viommu: s.ioas, type: veventType, depth: 2) }
            try ctx.expectErrno(.ENOENT, "vEVENTQ on nest parent \(s.parent)") {
                try ctx.backend.allocVEventQueue(viommu: s.parent, type: veventType, depth: 2)
            }
            _ = try ctx.backend.allocVEventQueue(viommu: s.viommu, type: veventType, depth: 2)
            try ctx.expectErrno(.EEXIST, "second vEVENTQ of type 0x\(String(veventType, radix: 16))") {
                try ctx.backend.allocVEventQueue(viommu: s.viommu, type: veventType, depth: 2)
            }
        },

        // iommufd_veventq_alloc: refcount_inc(&viommu->obj.users).
        ConformanceCase(
            "veventq.viommu-busy-while-veventq-exists",
            "A vIOMMU with a vEVENTQ cannot be destroyed (EBUSY) until the vEVENTQ is.",
            requires: [.nesting]
        ) { ctx in
            let s = try viommu(ctx)
            let q = try ctx.backend.allocVEventQueue(viommu: s.viommu, type: veventType, depth: 2)
            try ctx.expectErrno(.EBUSY, "destroy of vIOMMU \(s.viommu) with vEVENTQ \(q.id)") { try ctx.backend.destroy(s.viommu) }
            try ctx.backend.destroy(q.id)
            try ctx.expectSuccess("destroy of the vIOMMU after its vEVENTQ") { try ctx.backend.destroy(s.viommu) }
        },

        // iommufd_veventq_fops_read: count < sizeof(header) is EINVAL; empty reads 0.
        ConformanceCase(
            "veventq.read.short-buffer-is-EINVAL-empty-reads-nothing",
            "Reading fewer bytes than a vEVENT header is EINVAL; reading an empty vEVENTQ returns 0 bytes.",
            requires: [.nesting]
        ) { ctx in
            let s = try viommu(ctx)
            let q = try ctx.backend.allocVEventQueue(viommu: s.viommu, type: veventType, depth: 2)
            try ctx.expectErrno(.EINVAL, "read of 0 bytes") { try read(ctx, q.id, 0) }
            try ctx.expectErrno(.EINVAL, "read of 7 bytes") { try read(ctx, q.id, 7) }
            try ctx.expectEqual(try read(ctx, q.id, 64), [], "read of the empty vEVENTQ")
        },

        // iommufd_test_trigger_vevent: !mdev->viommu || !mdev->vdev_id.
        ConformanceCase(
            "veventq.trigger.device-not-on-nested-hwpt-is-ENOENT",
            "A device with a vDevice but not attached to a nested HWPT of that vIOMMU reports no vEVENT: ENOENT.",
            requires: [.nesting]
        ) { ctx in
            let hooks = try hooks(ctx)
            let s = try viommu(ctx)
            let device = try ctx.device(.primary)
            _ = try ctx.backend.allocVEventQueue(viommu: s.viommu, type: veventType, depth: 2)
            _ = try ctx.backend.allocVDevice(viommu: s.viommu, deviceID: device.id, virtualID: 0x99)
            try ctx.backend.attach(deviceID: device.id, to: s.parent)
            try ctx.expectErrno(.ENOENT, "trigger of a vEVENT for a device on its nest parent") {
                try hook("IOMMU_TEST_OP_TRIGGER_VEVENT") { try hooks.triggerVEvent(deviceID: device.id) }
            }
        },

        // selftest iommufd_viommu.vdevice_alloc: sequence numbers and IOMMU_VEVENTQ_FLAG_LOST_EVENTS.
        ConformanceCase(
            "veventq.events-in-sequence-overflow-sets-lost-events",
            "vEVENTs are read with consecutive sequence numbers and the vDevice's virtual ID; a header-only read of a queued event is EINVAL; overflowing the depth ends the queue with a LOST_EVENTS header that takes a sequence number, and the next event follows it.",
            requires: [.nesting]
        ) { ctx in
            let hooks = try hooks(ctx)
            let s = try viommu(ctx)
            let device = try ctx.device(.primary)
            let q = try ctx.backend.allocVEventQueue(viommu: s.viommu, type: veventType, depth: 2)
            _ = try ctx.backend.allocVDevice(viommu: s.viommu, deviceID: device.id, virtualID: 0x99)
            let nested = try hook("a nested HWPT with IOMMU_HWPT_DATA_SELFTEST") {
                try hooks.allocSelftestNestedHWPT(deviceID: device.id, parent: s.viommu)
            }
            try ctx.backend.attach(deviceID: device.id, to: nested)
            try hook("IOMMU_TEST_OP_TRIGGER_VEVENT") { try hooks.triggerVEvent(deviceID: device.id) }
            try ctx.expect(waitReadable(q.fd), "the vEVENTQ's fd did not poll readable after an event")
            try ctx.expectErrno(.EINVAL, "read of a header only (8 bytes) with an event queued") { try read(ctx, q.id, 8) }
            let size = EventQueueABI.selftestEventSize
            let virtID: [UInt8] = [0x99, 0, 0, 0]
            var events = VEvent.parse(try read(ctx, q.id, 64), dataLength: size)
            try ctx.expectEqual(events, [VEvent(flags: 0, sequence: 0, data: virtID)], "first event")
            for _ in 0..<3 { try hooks.triggerVEvent(deviceID: device.id) }
            events = VEvent.parse(try read(ctx, q.id, 64), dataLength: size)
            try ctx.expectEqual(
                events,
                [VEvent(flags: 0, sequence: 1, data: virtID), VEvent(flags: 0, sequence: 2, data: virtID),
                 VEvent(flags: EventQueueABI.lostEventsFlag, sequence: 3, data: [])],
                "three events into a queue of depth 2")
            try hooks.triggerVEvent(deviceID: device.id)
            events = VEvent.parse(try read(ctx, q.id, 64), dataLength: size)
            try ctx.expectEqual(events, [VEvent(flags: 0, sequence: 4, data: virtID)], "the event after the overflow")
        },
    ]
}
