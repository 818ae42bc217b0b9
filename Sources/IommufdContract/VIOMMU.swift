import IommufdCore

/// `viommu.create` for a device attached (through an HWPT) in an IOAS: the vIOMMU sits on the
/// device's physical IOMMU instance, over the IOAS's nest-parent HWPT for that instance.
public struct VIOMMUCreateParams: Codable, Hashable, Sendable {
    public var device: String
    /// `enum iommu_viommu_type`; by default the type the device's hw_info names (ARM SMMUv3,
    /// the selftest mock). An Intel VT-d device has none: refused as Unsupported.
    public var type: UInt32?
    public init(device: String, type: UInt32? = nil) {
        self.device = device
        self.type = type
    }
}

/// `viommu.list`: the vIOMMUs the caller may see, optionally of one owner or IOAS.
public struct VIOMMUListParams: Codable, Hashable, Sendable {
    public var owner: String?
    public var ioas: ObjectID?
    public init(owner: String? = nil, ioas: ObjectID? = nil) {
        self.owner = owner
        self.ioas = ioas
    }
}

public struct VIOMMUInfo: Codable, Hashable, Sendable {
    public var viommu: ObjectID
    public var owner: String
    public var ioas: ObjectID
    /// The nest-parent HWPT the vIOMMU sits on.
    public var nestParent: ObjectID
    /// The device `viommu.create` was called for.
    public var device: String
    public var iommuInstance: String?
    public var vdevices: [VDeviceCreateResult]
    // MARK: hwqueue3
    /// Its HW queues (`hwqueue.alloc`), by index; absent when it has none.
    public var hwQueues: [HWQueueInfo]? = nil
    public init(
        viommu: ObjectID,
        owner: String,
        ioas: ObjectID,
        nestParent: ObjectID,
        device: String,
        iommuInstance: String? = nil,
        vdevices: [VDeviceCreateResult]
    ) {
        self.viommu = viommu
        self.owner = owner
        self.ioas = ioas
        self.nestParent = nestParent
        self.device = device
        self.iommuInstance = iommuInstance
        self.vdevices = vdevices
    }
    enum CodingKeys: String, CodingKey {
        case viommu, owner, ioas, device, vdevices
        case nestParent = "nest_parent"
        case iommuInstance = "iommu_instance"
        case hwQueues = "hw_queues"  // hwqueue3
    }
}

public struct VIOMMUListResult: Codable, Hashable, Sendable {
    public var viommus: [VIOMMUInfo]
    public init(viommus: [VIOMMUInfo]) { self.viommus = viommus }
}

public struct VIOMMUParams: Codable, Hashable, Sendable {
    public var viommu: ObjectID
    public init(viommu: ObjectID) { self.viommu = viommu }
}
public typealias VIOMMUDestroyParams = VIOMMUParams

public struct VIOMMUCreateResult: Codable, Hashable, Sendable {
    public var viommu: ObjectID
    public var ioas: ObjectID
    public var nestParent: ObjectID
    /// The nest parent was allocated for this vIOMMU (first on this IOMMU instance and IOAS).
    public var nestParentCreated: Bool
    public var iommuInstance: String?
    /// When the device had to move onto the nest parent: the HWPT it left.
    public var movedFrom: ObjectID?
    public init(
        viommu: ObjectID,
        ioas: ObjectID,
        nestParent: ObjectID,
        nestParentCreated: Bool,
        iommuInstance: String? = nil,
        movedFrom: ObjectID? = nil
    ) {
        self.viommu = viommu
        self.ioas = ioas
        self.nestParent = nestParent
        self.nestParentCreated = nestParentCreated
        self.iommuInstance = iommuInstance
        self.movedFrom = movedFrom
    }
    enum CodingKeys: String, CodingKey {
        case viommu, ioas
        case nestParent = "nest_parent"
        case nestParentCreated = "nest_parent_created"
        case iommuInstance = "iommu_instance"
        case movedFrom = "moved_from"
    }
}

public struct VIOMMUDestroyResult: Codable, Hashable, Sendable {
    public var viommu: ObjectID
    public var destroyedHWPTs: [ObjectID]
    public init(viommu: ObjectID, destroyedHWPTs: [ObjectID]) {
        self.viommu = viommu
        self.destroyedHWPTs = destroyedHWPTs
    }
    enum CodingKeys: String, CodingKey {
        case viommu
        case destroyedHWPTs = "destroyed_hwpts"
    }
}

public struct VDeviceCreateParams: Codable, Hashable, Sendable {
    public var viommu: ObjectID
    public var device: String
    /// The guest-visible ID (e.g. the vSMMU stream ID).
    public var virtualID: UInt64
    public init(viommu: ObjectID, device: String, virtualID: UInt64) {
        self.viommu = viommu
        self.device = device
        self.virtualID = virtualID
    }
    enum CodingKeys: String, CodingKey {
        case viommu, device
        case virtualID = "virtual_id"
    }
}

public struct VDeviceParams: Codable, Hashable, Sendable {
    public var vdevice: ObjectID
    public init(vdevice: ObjectID) { self.vdevice = vdevice }
}
public typealias VDeviceDestroyParams = VDeviceParams

public struct VDeviceCreateResult: Codable, Hashable, Sendable {
    public var vdevice: ObjectID
    public var viommu: ObjectID
    public var device: String
    public var virtualID: UInt64
    public init(vdevice: ObjectID, viommu: ObjectID, device: String, virtualID: UInt64) {
        self.vdevice = vdevice
        self.viommu = viommu
        self.device = device
        self.virtualID = virtualID
    }
    enum CodingKeys: String, CodingKey {
        case vdevice, viommu, device
        case virtualID = "virtual_id"
    }
}

public struct VDeviceDestroyResult: Codable, Hashable, Sendable {
    public var vdevice: ObjectID
    public init(vdevice: ObjectID) { self.vdevice = vdevice }
}
