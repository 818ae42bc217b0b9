import IommufdCore

// Event and fault queues (branch `queues`): params and results of fault.create, veventq.create,
// queue.fd, queue.list and the destroys.

/// `fault.create`: a fault queue of an owner, for HWPTs allocated with `hwpt.alloc
/// fault_queue`; their devices' I/O page faults come out of the returned fd.
public struct FaultCreateParams: Codable, Hashable, Sendable {
    public var owner: String
    public init(owner: String) { self.owner = owner }
}

/// `veventq.create`: a vEVENTQ on a vIOMMU: the events the IOMMU reports for the vIOMMU's
/// vDevices (e.g. SMMUv3 event records) come out of the returned fd.
public struct VEventQCreateParams: Codable, Hashable, Sendable {
    public var viommu: ObjectID
    /// `enum iommu_veventq_type`; by default the vIOMMU's own kind (ARM SMMUv3 1 for an SMMUv3
    /// vIOMMU, the selftest type for the mock one).
    public var type: UInt32?
    /// Events queued before the queue loses events (1 ... 524288); default 1024.
    public var depth: UInt32?
    public init(viommu: ObjectID, type: UInt32? = nil, depth: UInt32? = nil) {
        self.viommu = viommu
        self.type = type
        self.depth = depth
    }
}

/// `fault.destroy`, `veventq.destroy`, `queue.fd`: one queue by ID.
public struct QueueParams: Codable, Hashable, Sendable {
    public var queue: ObjectID
    public init(queue: ObjectID) { self.queue = queue }
}

/// `queue.list`: the queues the caller may see, optionally of one owner or vIOMMU.
public struct QueueListParams: Codable, Hashable, Sendable {
    public var owner: String?
    public var viommu: ObjectID?
    public init(owner: String? = nil, viommu: ObjectID? = nil) {
        self.owner = owner
        self.viommu = viommu
    }
}

/// A queue as `queue.list` and the create methods show it.
public struct QueueInfo: Codable, Hashable, Sendable {
    public var queue: ObjectID
    public var owner: String
    /// `fault` or `veventq`.
    public var kind: String
    /// vEVENTQ: its vIOMMU, type and depth.
    public var viommu: ObjectID?
    public var type: UInt32?
    public var depth: UInt32?
    /// Fault queue: the HWPTs that deliver to it.
    public var hwpts: [ObjectID]
    /// A holder of the fd `queue.fd` handed out is connected.
    public var connected: Bool
    /// Records relayed so far (events, or faults).
    public var relayed: UInt64
    /// Records the connected holder had no room for (its socket buffer was full), or that came
    /// while nobody was connected: only notifications saw them.
    public var undelivered: UInt64
    /// Lost-events headers read (the kernel queue overflowed: events were dropped before the
    /// daemon could read them).
    public var lostEvents: UInt64
    /// Fault groups read and not yet answered.
    public var awaitingResponse: Int
    public init(
        queue: ObjectID,
        owner: String,
        kind: String,
        viommu: ObjectID? = nil,
        type: UInt32? = nil,
        depth: UInt32? = nil,
        hwpts: [ObjectID],
        connected: Bool,
        relayed: UInt64,
        undelivered: UInt64,
        lostEvents: UInt64,
        awaitingResponse: Int
    ) {
        self.queue = queue
        self.owner = owner
        self.kind = kind
        self.viommu = viommu
        self.type = type
        self.depth = depth
        self.hwpts = hwpts
        self.connected = connected
        self.relayed = relayed
        self.undelivered = undelivered
        self.lostEvents = lostEvents
        self.awaitingResponse = awaitingResponse
    }
    enum CodingKeys: String, CodingKey {
        case queue, owner, kind, viommu, type, depth, hwpts, connected, relayed, undelivered
        case lostEvents = "lost_events"
        case awaitingResponse = "awaiting_response"
    }
}

/// The create methods' and `queue.fd`'s result: the queue, and `fd` (index 0 of the fds sent
/// with the reply): a SOCK_SEQPACKET socket carrying the queue's records (docs/queues.md).
public struct QueueFDResult: Codable, Hashable, Sendable {
    public var queue: QueueInfo
    public var fd: FDRef
    public init(queue: QueueInfo, fd: FDRef) {
        self.queue = queue
        self.fd = fd
    }
}

public struct QueueListResult: Codable, Hashable, Sendable {
    public var queues: [QueueInfo]
    public init(queues: [QueueInfo]) { self.queues = queues }
}

public struct QueueDestroyResult: Codable, Hashable, Sendable {
    public var queue: ObjectID
    public init(queue: ObjectID) { self.queue = queue }
}

/// What an `event.queue` notification carries: one record read from a queue.
public enum QueueNotice: Hashable, Sendable {
    case vevent(VEvent)
    /// A page fault and the name of the device it came from (when the daemon knows it).
    case fault(PageFault, device: String?)
}
