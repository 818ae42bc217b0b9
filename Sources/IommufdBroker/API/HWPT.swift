import IommufdCore

public struct HWPTListParams: Codable, Hashable, Sendable {
    public var owner: String?
    public var ioas: ObjectID?
    public init(owner: String? = nil, ioas: ObjectID? = nil) {
        self.owner = owner
        self.ioas = ioas
    }
}

/// `hwpt.alloc`: an HWPT for `device` (leased to the IOAS's owner) from `ioas`. It stays until
/// `hwpt.destroy` (or `owner.release`), unlike the ones the auto-domain policy creates.
public struct HWPTAllocParams: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var device: String
    public var dirtyTracking: Bool?
    public var nestParent: Bool?
    /// A fault queue of the owner (`fault.create`): the HWPT's I/O page faults go to it
    /// (`IOMMU_HWPT_FAULT_ID_VALID`). Not with `nest_parent`.
    public var faultQueue: ObjectID?
    public init(ioas: ObjectID, device: String, dirtyTracking: Bool? = nil, nestParent: Bool? = nil, faultQueue: ObjectID? = nil) {
        self.ioas = ioas
        self.device = device
        self.dirtyTracking = dirtyTracking
        self.nestParent = nestParent
        self.faultQueue = faultQueue
    }
    enum CodingKeys: String, CodingKey {
        case ioas, device
        case dirtyTracking = "dirty_tracking"
        case nestParent = "nest_parent"
        case faultQueue = "fault_queue"
    }
}

public struct HWPTParams: Codable, Hashable, Sendable {
    public var hwpt: ObjectID
    public init(hwpt: ObjectID) { self.hwpt = hwpt }
}
public typealias HWPTDestroyParams = HWPTParams

public struct HWPTInfo: Codable, Hashable, Sendable {
    public var hwpt: ObjectID
    public var owner: String
    public var ioas: ObjectID
    public var dirtyTracking: Bool
    public var nestParent: Bool
    /// Allocated by the auto-domain or vIOMMU policy (destroyed when unused).
    public var auto: Bool
    public var iommuInstance: String?
    public var devices: [String]
    public var viommus: [ObjectID]
    /// Dirty tracking currently enabled on it.
    public var tracking: Bool
    /// The fault queue its I/O page faults go to.
    public var faultQueue: ObjectID?
    enum CodingKeys: String, CodingKey {
        case hwpt, owner, ioas, auto, devices, viommus, tracking
        case faultQueue = "fault_queue"
        case dirtyTracking = "dirty_tracking"
        case nestParent = "nest_parent"
        case iommuInstance = "iommu_instance"
    }
}

public struct HWPTListResult: Codable, Hashable, Sendable {
    public var hwpts: [HWPTInfo]
}

public struct HWPTDestroyResult: Codable, Hashable, Sendable {
    public var hwpt: ObjectID
}
