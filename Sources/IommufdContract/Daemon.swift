import IommufdCore

/// Object counts for `daemon.info` and `daemon.metrics`.
public struct BrokerCounts: Codable, Hashable, Sendable {
    public var owners: Int
    public var ioas: Int
    public var hwpts: Int
    public var viommus: Int
    public var vdevices: Int
    public var mappings: Int
    public var pinnedBytes: UInt64
    public var devicesKnown: Int
    public var devicesAllowed: Int
    public var devicesLeased: Int
    public var devicesAttached: Int
    public var dirtyTrackingIOAS: Int
    public var subscribers: Int
    public init(
        owners: Int,
        ioas: Int,
        hwpts: Int,
        viommus: Int,
        vdevices: Int,
        mappings: Int,
        pinnedBytes: UInt64,
        devicesKnown: Int,
        devicesAllowed: Int,
        devicesLeased: Int,
        devicesAttached: Int,
        dirtyTrackingIOAS: Int,
        subscribers: Int
    ) {
        self.owners = owners
        self.ioas = ioas
        self.hwpts = hwpts
        self.viommus = viommus
        self.vdevices = vdevices
        self.mappings = mappings
        self.pinnedBytes = pinnedBytes
        self.devicesKnown = devicesKnown
        self.devicesAllowed = devicesAllowed
        self.devicesLeased = devicesLeased
        self.devicesAttached = devicesAttached
        self.dirtyTrackingIOAS = dirtyTrackingIOAS
        self.subscribers = subscribers
    }
    enum CodingKeys: String, CodingKey {
        case owners, ioas, hwpts, viommus, vdevices, mappings, subscribers
        case pinnedBytes = "pinned_bytes"
        case devicesKnown = "devices_known"
        case devicesAllowed = "devices_allowed"
        case devicesLeased = "devices_leased"
        case devicesAttached = "devices_attached"
        case dirtyTrackingIOAS = "dirty_tracking_ioas"
    }
}

/// `events.subscribe`: all events the caller may see, or one owner's.
public struct EventsSubscribeParams: Codable, Hashable, Sendable {
    public var owner: String?
    public init(owner: String? = nil) { self.owner = owner }
}

public struct EventsSubscribeResult: Codable, Hashable, Sendable {
    public var subscription: UInt64
    public init(subscription: UInt64) { self.subscription = subscription }
}
