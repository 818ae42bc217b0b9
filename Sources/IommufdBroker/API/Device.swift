import IommufdCore

public struct DeviceListParams: Codable, Hashable, Sendable {
    /// Only devices leased to this owner.
    public var owner: String?
    public init(owner: String? = nil) { self.owner = owner }
}

public struct DeviceNameParams: Codable, Hashable, Sendable {
    /// Device name (`vfio3`) or PCI address.
    public var device: String
    public init(device: String) { self.device = device }
}
public typealias DeviceInfoParams = DeviceNameParams
public typealias DeviceDetachParams = DeviceNameParams
public typealias DeviceReleaseParams = DeviceNameParams
public typealias DeviceFDParams = DeviceNameParams

/// What an IOMMU can do for a bound device (`IOMMU_GET_HW_INFO`).
public struct DeviceCapabilities: Codable, Hashable, Sendable {
    public var hwInfoType: UInt32
    public var dirtyTracking: Bool
    public var pasid: Bool
    enum CodingKeys: String, CodingKey {
        case dirtyTracking = "dirty_tracking"
        case hwInfoType = "hw_info_type"
        case pasid
    }
}

public struct DeviceInfo: Codable, Hashable, Sendable {
    public var name: String
    public var kind: DeviceKind
    public var pciAddress: String?
    public var iommuGroup: Int?
    public var iommuInstance: String?
    public var driver: String?
    public var vendorDevice: String?
    /// On the config's allow-list.
    public var allowed: Bool
    /// Leased to some owner (also true when that owner is not visible to the caller).
    public var leased: Bool
    /// The owner holding the lease, when the caller may see it.
    public var owner: String?
    /// The iommufd device ID while bound.
    public var deviceID: ObjectID?
    /// The IOAS it is attached to, and the page table (HWPT, or the IOAS for mdevs).
    public var ioas: ObjectID?
    public var pt: ObjectID?
    public var capabilities: DeviceCapabilities?
    enum CodingKeys: String, CodingKey {
        case name, kind, driver, allowed, leased, owner, ioas, pt, capabilities
        case pciAddress = "pci_address"
        case iommuGroup = "iommu_group"
        case iommuInstance = "iommu_instance"
        case vendorDevice = "vendor_device"
        case deviceID = "device_id"
    }
}

public struct DeviceListResult: Codable, Hashable, Sendable {
    public var devices: [DeviceInfo]
}

/// `device.attach` (and `device.replace`): name either an IOAS (auto-domain policy) or an HWPT.
public struct DeviceAttachParams: Codable, Hashable, Sendable {
    /// The owner the device is (or becomes) leased to.
    public var owner: String
    public var device: String
    public var ioas: ObjectID?
    public var hwpt: ObjectID?
    /// Default: the owner's policy.
    public var dirty: DirtyPolicy?
    public init(owner: String, device: String, ioas: ObjectID? = nil, hwpt: ObjectID? = nil, dirty: DirtyPolicy? = nil) {
        self.owner = owner
        self.device = device
        self.ioas = ioas
        self.hwpt = hwpt
        self.dirty = dirty
    }
}

public struct DeviceReplaceParams: Codable, Hashable, Sendable {
    public var device: String
    public var ioas: ObjectID?
    public var hwpt: ObjectID?
    public var dirty: DirtyPolicy?
    public init(device: String, ioas: ObjectID? = nil, hwpt: ObjectID? = nil, dirty: DirtyPolicy? = nil) {
        self.device = device
        self.ioas = ioas
        self.hwpt = hwpt
        self.dirty = dirty
    }
}

public struct DeviceAttachResult: Codable, Hashable, Sendable {
    public var device: String
    public var deviceID: ObjectID
    public var ioas: ObjectID
    /// What the device is attached to: an HWPT, or the IOAS itself for mdev-like devices.
    public var pt: ObjectID
    /// The daemon allocated `pt` for this attach (it goes away with its last device).
    public var hwptCreated: Bool
    /// `pt` was allocated with dirty tracking.
    public var dirtyTracking: Bool
    /// For `device.replace`: the page table the device left.
    public var previousPT: ObjectID?
    /// HWPTs destroyed because their last device left.
    public var destroyedHWPTs: [ObjectID]
    enum CodingKeys: String, CodingKey {
        case device, ioas, pt
        case deviceID = "device_id"
        case hwptCreated = "hwpt_created"
        case dirtyTracking = "dirty_tracking"
        case previousPT = "previous_pt"
        case destroyedHWPTs = "destroyed_hwpts"
    }
}

public struct DeviceDetachResult: Codable, Hashable, Sendable {
    public var device: String
    public var previousPT: ObjectID
    public var destroyedHWPTs: [ObjectID]
    enum CodingKeys: String, CodingKey {
        case device
        case previousPT = "previous_pt"
        case destroyedHWPTs = "destroyed_hwpts"
    }
}

public struct DeviceReleaseResult: Codable, Hashable, Sendable {
    public var device: String
    public var owner: String
}

/// `device.fd`: the bound device fd, sent with the reply (`fd` indexes the reply's fds).
public struct DeviceFDResult: Codable, Hashable, Sendable {
    public var device: String
    public var deviceID: ObjectID
    public var fd: FDRef
    enum CodingKeys: String, CodingKey {
        case device, fd
        case deviceID = "device_id"
    }
}
