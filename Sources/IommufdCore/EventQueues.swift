// Event and fault queues (branch `queues`): the types of IOMMU_FAULT_QUEUE_ALLOC and
// IOMMU_VEVENTQ_ALLOC, and the records read from and written to their fds, as of Linux 7.3.

/// A fault queue or vEVENTQ as a backend hands it out: its object ID and a descriptor that
/// polls readable while records are queued. The backend owns the descriptor (it closes it when
/// the queue is destroyed); callers only poll it and read through `readEventQueue`.
public struct EventQueue: Hashable, Sendable {
    public var id: ObjectID
    public var fd: Int32
    public init(id: ObjectID, fd: Int32) {
        self.id = id
        self.fd = fd
    }
}

/// `enum iommu_veventq_type` (and the selftest's).
public enum VEventQueueType {
    public static let `default`: UInt32 = 0
    public static let armSMMUv3: UInt32 = 1
    public static let tegra241CMDQV: UInt32 = 2
    /// `IOMMU_VEVENTQ_TYPE_SELFTEST` (iommufd_test.h).
    public static let selftest: UInt32 = 0xbeef_beef
}

/// Sizes and limits of the queue uAPI.
public enum EventQueueABI {
    /// `VEVENTQ_MAX_DEPTH` (eventq.c): the largest `veventq_depth`.
    public static let maxVEventDepth: UInt32 = 1 << 19
    /// `sizeof(struct iommufd_vevent_header)`.
    public static let veventHeaderSize = 8
    /// `IOMMU_VEVENTQ_FLAG_LOST_EVENTS`.
    public static let lostEventsFlag: UInt32 = 1 << 0
    /// `sizeof(struct iommu_hwpt_pgfault)`.
    public static let pageFaultSize = 40
    /// `sizeof(struct iommu_hwpt_page_response)`.
    public static let pageResponseSize = 8
    /// `sizeof(struct iommu_viommu_event_selftest)`.
    public static let selftestEventSize = 4
}

/// One record of a vEVENTQ read: `struct iommufd_vevent_header` and the event's data (none for
/// a lost-events header).
public struct VEvent: Hashable, Sendable, Codable {
    public var flags: UInt32
    public var sequence: UInt32
    public var data: [UInt8]
    public init(flags: UInt32, sequence: UInt32, data: [UInt8]) {
        self.flags = flags
        self.sequence = sequence
        self.data = data
    }
    public var lostEvents: Bool { flags & EventQueueABI.lostEventsFlag != 0 }

    /// Splits what one read returned. A normal event's data length is not in its header: the
    /// caller names it (`dataLength`, fixed per queue type); a lost-events header has none.
    public static func parse(_ bytes: some Collection<UInt8>, dataLength: Int) -> [VEvent] {
        let b = Array(bytes)
        var out: [VEvent] = []
        var i = 0
        while i + EventQueueABI.veventHeaderSize <= b.count {
            let flags = le32(b, i), seq = le32(b, i + 4)
            i += EventQueueABI.veventHeaderSize
            if flags & EventQueueABI.lostEventsFlag != 0 {
                out.append(VEvent(flags: flags, sequence: seq, data: []))
                continue
            }
            let n = min(dataLength, b.count - i)
            out.append(VEvent(flags: flags, sequence: seq, data: Array(b[i..<(i + n)])))
            i += n
        }
        return out
    }

    /// The bytes a read returns for it.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        putLE32(&out, flags)
        putLE32(&out, sequence)
        return out + data
    }
}

/// `struct iommu_hwpt_pgfault`: one fault of a fault-queue read.
public struct PageFault: Hashable, Sendable, Codable {
    /// `IOMMU_PGFAULT_FLAGS_PASID_VALID` 1, `IOMMU_PGFAULT_FLAGS_LAST_PAGE` 2.
    public var flags: UInt32
    public var deviceID: ObjectID
    public var pasid: UInt32
    public var groupID: UInt32
    /// `IOMMU_PGFAULT_PERM_READ` 1, `_WRITE` 2, `_EXEC` 4, `_PRIV` 8.
    public var perm: UInt32
    public var address: UInt64
    public var length: UInt32
    public var cookie: UInt32
    public static let pasidValid: UInt32 = 1 << 0
    public static let lastPage: UInt32 = 1 << 1

    public init(flags: UInt32, deviceID: ObjectID, pasid: UInt32, groupID: UInt32, perm: UInt32, address: UInt64, length: UInt32 = 0, cookie: UInt32) {
        self.flags = flags
        self.deviceID = deviceID
        self.pasid = pasid
        self.groupID = groupID
        self.perm = perm
        self.address = address
        self.length = length
        self.cookie = cookie
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        for v in [flags, deviceID, pasid, groupID, perm, 0] { putLE32(&out, v) }
        putLE32(&out, UInt32(truncatingIfNeeded: address))
        putLE32(&out, UInt32(truncatingIfNeeded: address >> 32))
        putLE32(&out, length)
        putLE32(&out, cookie)
        return out
    }

    /// Splits what one read returned into faults (whole records only).
    public static func parse(_ bytes: some Collection<UInt8>) -> [PageFault] {
        let b = Array(bytes)
        var out: [PageFault] = []
        var i = 0
        while i + EventQueueABI.pageFaultSize <= b.count {
            out.append(
                PageFault(
                    flags: le32(b, i), deviceID: le32(b, i + 4), pasid: le32(b, i + 8), groupID: le32(b, i + 12),
                    perm: le32(b, i + 16), address: UInt64(le32(b, i + 24)) | UInt64(le32(b, i + 28)) << 32,
                    length: le32(b, i + 32), cookie: le32(b, i + 36)))
            i += EventQueueABI.pageFaultSize
        }
        return out
    }
}

/// `struct iommu_hwpt_page_response`: the answer to a fault group, written to the fault queue.
public struct PageResponse: Hashable, Sendable, Codable {
    public var cookie: UInt32
    /// `IOMMUFD_PAGE_RESP_SUCCESS` 0 or `IOMMUFD_PAGE_RESP_INVALID` 1.
    public var code: UInt32
    public static let success: UInt32 = 0
    public static let invalid: UInt32 = 1
    public init(cookie: UInt32, code: UInt32) {
        self.cookie = cookie
        self.code = code
    }
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        putLE32(&out, cookie)
        putLE32(&out, code)
        return out
    }
    public static func parse(_ bytes: some Collection<UInt8>) -> [PageResponse] {
        let b = Array(bytes)
        var out: [PageResponse] = []
        var i = 0
        while i + EventQueueABI.pageResponseSize <= b.count {
            out.append(PageResponse(cookie: le32(b, i), code: le32(b, i + 4)))
            i += EventQueueABI.pageResponseSize
        }
        return out
    }
}

@inline(__always) func le32(_ b: [UInt8], _ i: Int) -> UInt32 {
    UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
}

@inline(__always) func putLE32(_ out: inout [UInt8], _ v: UInt32) {
    out.append(UInt8(truncatingIfNeeded: v))
    out.append(UInt8(truncatingIfNeeded: v >> 8))
    out.append(UInt8(truncatingIfNeeded: v >> 16))
    out.append(UInt8(truncatingIfNeeded: v >> 24))
}

/// The selftest operations that make a mock device report an event (iommufd_test.h), for the
/// conformance suite and the daemon's test hooks. Only the simulator and a CONFIG_IOMMUFD_TEST
/// kernel with mock devices enabled answer; elsewhere ENOTTY.
public protocol IommuQueueTestHooks: IommuBackend {
    /// `IOMMU_TEST_OP_TRIGGER_IOPF`: the device reports a page request (last page of group
    /// `groupID`) at `address`, for `pasid` (0 = `IOMMU_NO_PASID`, no PASID).
    func triggerIOPF(deviceID: ObjectID, pasid: UInt32, groupID: UInt32, perm: UInt32, address: UInt64) throws

    /// `IOMMU_TEST_OP_TRIGGER_VEVENT`: the device's vIOMMU reports one selftest event (its
    /// vDevice's virtual ID) into its selftest-type vEVENTQ. ENOENT unless the device is
    /// attached to a nested HWPT of a vIOMMU on which it has a vDevice; EOPNOTSUPP without a
    /// vEVENTQ of the selftest type.
    func triggerVEvent(deviceID: ObjectID) throws

    /// `IOMMU_HWPT_ALLOC` of a nested HWPT with `IOMMU_HWPT_DATA_SELFTEST` data on `parent` (a
    /// vIOMMU or a nest-parent HWPT): what `triggerVEvent` needs the device attached to. ENOTTY
    /// where nested HWPTs are not modelled.
    func allocSelftestNestedHWPT(deviceID: ObjectID, parent: ObjectID) throws -> ObjectID
}

/// A backend whose queues outlive the daemon: the fd to keep in the fd store, and how to take a
/// queue back after a restart.
public protocol RestartableQueueBackend: IommuBackend {
    /// The fd to keep in the fd store for queue `id` (nil: the backend rebuilds it itself).
    func queueFDToStore(_ id: ObjectID) -> Int32?
    /// Takes queue `id` back, with the fd the store kept (if any); returns the fd to poll.
    func adoptEventQueue(_ id: ObjectID, fd: Int32?) throws -> Int32
}

