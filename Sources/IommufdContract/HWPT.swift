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
///
/// With `parent` (a nest-parent HWPT) or `viommu` instead of `ioas`, and the driver's `data`:
/// a nested HWPT (stage 1 over the parent's stage 2), for the device's IOMMU driver.
public struct HWPTAllocParams: Codable, Hashable, Sendable {
    public var ioas: ObjectID?
    public var device: String
    public var dirtyTracking: Bool?
    public var nestParent: Bool?
    /// A nest-parent HWPT: the nested HWPT's stage 2.
    public var parent: ObjectID?
    /// A vIOMMU: the nested HWPT is allocated on it (its nest parent is the vIOMMU's).
    public var viommu: ObjectID?
    /// The nested HWPT's driver data (with `parent` or `viommu` only).
    public var data: NestedDataParams?
    /// A fault queue of the owner (`fault.create`): the HWPT's I/O page faults go to it
    /// (`IOMMU_HWPT_FAULT_ID_VALID`). Not with `nest_parent`.
    public var faultQueue: ObjectID?
    // MARK: pasid
    /// `IOMMU_HWPT_ALLOC_PASID`: device PASIDs may attach to it (`device.attach_pasid`), and a
    /// device whose PASIDs are attached needs its RID on such an HWPT.
    public var pasid: Bool?
    public init(ioas: ObjectID, device: String, dirtyTracking: Bool? = nil, nestParent: Bool? = nil, faultQueue: ObjectID? = nil) {
        self.ioas = ioas
        self.device = device
        self.dirtyTracking = dirtyTracking
        self.nestParent = nestParent
        self.faultQueue = faultQueue
    }
    /// A nested HWPT on `parent` or `viommu`.
    public init(device: String, parent: ObjectID? = nil, viommu: ObjectID? = nil, data: NestedDataParams, faultQueue: ObjectID? = nil) {
        self.device = device
        self.parent = parent
        self.viommu = viommu
        self.data = data
        self.faultQueue = faultQueue
    }
    enum CodingKeys: String, CodingKey {
        case ioas, device, parent, viommu, data
        case dirtyTracking = "dirty_tracking"
        case nestParent = "nest_parent"
        case faultQueue = "fault_queue"
        case pasid
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
    /// Set for a nested HWPT: its parent, vIOMMU and data type.
    public var nested: NestedHWPTInfo? = nil
    /// The fault queue its I/O page faults go to.
    public var faultQueue: ObjectID? = nil
    // MARK: pasid
    /// Allocated with `IOMMU_HWPT_ALLOC_PASID` (absent when not).
    public var pasid: Bool? = nil
    /// The device PASIDs attached to it (absent when none).
    public var pasids: [PASIDAttachmentInfo]? = nil
    public init(
        hwpt: ObjectID,
        owner: String,
        ioas: ObjectID,
        dirtyTracking: Bool,
        nestParent: Bool,
        auto: Bool,
        iommuInstance: String? = nil,
        devices: [String],
        viommus: [ObjectID],
        tracking: Bool,
        nested: NestedHWPTInfo? = nil,
        faultQueue: ObjectID? = nil,
        pasid: Bool? = nil,
        pasids: [PASIDAttachmentInfo]? = nil
    ) {
        self.hwpt = hwpt
        self.owner = owner
        self.ioas = ioas
        self.dirtyTracking = dirtyTracking
        self.nestParent = nestParent
        self.auto = auto
        self.iommuInstance = iommuInstance
        self.devices = devices
        self.viommus = viommus
        self.tracking = tracking
        self.nested = nested
        self.faultQueue = faultQueue
        self.pasid = pasid
        self.pasids = pasids
    }
    enum CodingKeys: String, CodingKey {
        case pasid, pasids
        case hwpt, owner, ioas, auto, devices, viommus, tracking, nested
        case faultQueue = "fault_queue"
        case dirtyTracking = "dirty_tracking"
        case nestParent = "nest_parent"
        case iommuInstance = "iommu_instance"
    }
}

public struct HWPTListResult: Codable, Hashable, Sendable {
    public var hwpts: [HWPTInfo]
    public init(hwpts: [HWPTInfo]) { self.hwpts = hwpts }
}

public struct HWPTDestroyResult: Codable, Hashable, Sendable {
    public var hwpt: ObjectID
    public init(hwpt: ObjectID) { self.hwpt = hwpt }
}
