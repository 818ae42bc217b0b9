import IommufdContract
import IommufdCore

/// Something that changed, for `events.subscribe` notifications. `method` is the notification
/// method name; encoding gives its params (`{"owner": ..., "kind": "ioas", "id": 5}`).
public enum BrokerEvent: Hashable, Sendable, Encodable {
    case ownerCreated(owner: String)
    case ownerReleased(owner: String, complete: Bool)
    case objectCreated(owner: String, kind: ObjectKind, id: ObjectID)
    case objectDestroyed(owner: String, kind: ObjectKind, id: ObjectID)
    case deviceAttached(owner: String, device: String, ioas: ObjectID, pt: ObjectID)
    case deviceDetached(owner: String, device: String, pt: ObjectID)
    case deviceReleased(owner: String, device: String)
    case dirtyTrackingStarted(owner: String, ioas: ObjectID)
    case dirtyTrackingStopped(owner: String, ioas: ObjectID)
    case configReloaded
    // MARK: queues
    /// A record read from a fault queue or vEVENTQ (BrokerEvent+Queues.swift).
    case queueRecord(owner: String, queue: ObjectID, notice: QueueNotice)
    // MARK: p2p
    /// A dma-buf mapping's exporter revoked the dma-buf (seen by `ioas.info` / `ioas.list`).
    case dmabufRevoked(owner: String, ioas: ObjectID, iova: UInt64, length: UInt64)

    /// The notification method, e.g. `"event.object_created"`.
    public var method: String {
        switch self {
        case .ownerCreated: "event.owner_created"
        case .ownerReleased: "event.owner_released"
        case .objectCreated: "event.object_created"
        case .objectDestroyed: "event.object_destroyed"
        case .deviceAttached: "event.device_attached"
        case .deviceDetached: "event.device_detached"
        case .deviceReleased: "event.device_released"
        case .dirtyTrackingStarted: "event.dirty_tracking_started"
        case .dirtyTrackingStopped: "event.dirty_tracking_stopped"
        case .configReloaded: "event.config_reloaded"
        case .queueRecord: "event.queue"
        case .dmabufRevoked: "event.dmabuf_revoked"
        }
    }

    /// The owner it concerns; nil for daemon-wide events everyone may see.
    public var owner: String? {
        switch self {
        case .ownerCreated(let o), .ownerReleased(let o, _), .objectCreated(let o, _, _),
            .objectDestroyed(let o, _, _), .deviceAttached(let o, _, _, _), .deviceDetached(let o, _, _),
            .deviceReleased(let o, _), .dirtyTrackingStarted(let o, _), .dirtyTrackingStopped(let o, _),
            .queueRecord(let o, _, _), .dmabufRevoked(let o, _, _, _):
            o
        case .configReloaded: nil
        }
    }

    private enum Keys: String, CodingKey {
        case owner, kind, id, device, ioas, pt, complete
        case iova, length
    }

    public func encode(to encoder: Encoder) throws {
        if case .queueRecord(let owner, let queue, let notice) = self {
            return try Self.encodeQueueRecord(owner: owner, queue: queue, notice: notice, to: encoder)
        }
        var c = encoder.container(keyedBy: Keys.self)
        try c.encodeIfPresent(owner, forKey: .owner)
        switch self {
        case .ownerCreated, .configReloaded, .dirtyTrackingStarted, .dirtyTrackingStopped: break
        case .ownerReleased(_, let complete): try c.encode(complete, forKey: .complete)
        case .objectCreated(_, let kind, let id), .objectDestroyed(_, let kind, let id):
            try c.encode(kind, forKey: .kind)
            try c.encode(id, forKey: .id)
        case .deviceAttached(_, let device, let ioas, let pt):
            try c.encode(device, forKey: .device)
            try c.encode(ioas, forKey: .ioas)
            try c.encode(pt, forKey: .pt)
        case .deviceDetached(_, let device, let pt):
            try c.encode(device, forKey: .device)
            try c.encode(pt, forKey: .pt)
        case .deviceReleased(_, let device): try c.encode(device, forKey: .device)
        case .queueRecord: break
        case .dmabufRevoked(_, let ioas, let iova, let length):
            try c.encode(ioas, forKey: .ioas)
            try c.encode(iova, forKey: .iova)
            try c.encode(length, forKey: .length)
        }
        switch self {
        case .dirtyTrackingStarted(_, let ioas), .dirtyTrackingStopped(_, let ioas): try c.encode(ioas, forKey: .ioas)
        default: break
        }
    }
}

/// A subscriber's callback. Called outside the broker's lock, on the thread that made the
/// change, in the order the changes happened; it must not block.
public typealias BrokerEventHandler = @Sendable (BrokerEvent) -> Void
