/// What a backend holds, by object ID, for restart recovery to compare with the journal: the
/// objects a request cut off by a crash made but never journaled, and the journaled ones a
/// request destroyed just before the crash.
///
/// No uAPI call lists an iommufd's objects, so only a backend that knows its own objects (the
/// simulator) offers this; the kernel backend's recovery checks journaled objects one by one
/// instead (Broker+Journal.swift).
public struct BackendInventory: Sendable, Equatable {
    public struct IOAS: Sendable, Equatable {
        public var id: ObjectID
        /// Mapped IOVA areas, in order.
        public var areas: [IOVARange]
        public init(id: ObjectID, areas: [IOVARange]) {
            self.id = id
            self.areas = areas
        }
    }
    public struct HWPT: Sendable, Equatable {
        public var id: ObjectID
        public var ioas: ObjectID
        public var dirtyTracking: Bool
        public init(id: ObjectID, ioas: ObjectID, dirtyTracking: Bool) {
            self.id = id
            self.ioas = ioas
            self.dirtyTracking = dirtyTracking
        }
    }
    public struct Device: Sendable, Equatable {
        public var id: ObjectID
        public var name: String
        /// The HWPT, or for an mdev-like device the IOAS, it is attached to.
        public var attached: ObjectID?
        public init(id: ObjectID, name: String, attached: ObjectID?) {
            self.id = id
            self.name = name
            self.attached = attached
        }
    }
    public struct Object: Sendable, Equatable {
        public var id: ObjectID
        public init(id: ObjectID) { self.id = id }
    }

    public var ioas: [IOAS] = []
    public var hwpts: [HWPT] = []
    public var devices: [Device] = []
    public var viommus: [Object] = []
    public var vdevices: [Object] = []
    public init() {}
}

/// A backend that can list what it holds (`BackendInventory`).
public protocol InventoryBackend: IommuBackend {
    func backendInventory() -> BackendInventory
}
