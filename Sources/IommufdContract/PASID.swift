import IommufdCore

// MARK: pasid

/// `device.attach_pasid` and `device.replace_pasid`: `pasid` of a device leased to the caller's
/// owner onto `hwpt`, an HWPT of that owner allocated with `pasid: true`
/// (`IOMMU_HWPT_ALLOC_PASID`).
public struct DevicePASIDParams: Codable, Hashable, Sendable {
    /// Device name or PCI address.
    public var device: String
    /// The PASID: 1 up to the device's width (`capabilities.pasid_width` of `device.info`);
    /// 0 is the RID (`device.attach`).
    public var pasid: UInt32
    public var hwpt: ObjectID
    public init(device: String, pasid: UInt32, hwpt: ObjectID) {
        self.device = device
        self.pasid = pasid
        self.hwpt = hwpt
    }
}

/// `device.detach_pasid`.
public struct DevicePASIDDetachParams: Codable, Hashable, Sendable {
    public var device: String
    public var pasid: UInt32
    public init(device: String, pasid: UInt32) {
        self.device = device
        self.pasid = pasid
    }
}

/// The answer of `device.attach_pasid`, `device.replace_pasid` and `device.detach_pasid`.
public struct DevicePASIDResult: Codable, Hashable, Sendable {
    public var device: String
    public var deviceID: ObjectID
    public var pasid: UInt32
    /// The HWPT the PASID is attached to now (nil after a detach).
    public var hwpt: ObjectID?
    /// The HWPT it left (replace and detach).
    public var previousHWPT: ObjectID?
    public init(device: String, deviceID: ObjectID, pasid: UInt32, hwpt: ObjectID?, previousHWPT: ObjectID?) {
        self.device = device
        self.deviceID = deviceID
        self.pasid = pasid
        self.hwpt = hwpt
        self.previousHWPT = previousHWPT
    }
    enum CodingKeys: String, CodingKey {
        case device, pasid, hwpt
        case deviceID = "device_id"
        case previousHWPT = "previous_hwpt"
    }
}

/// One PASID attachment: in `device.info` (`pasids`, with `hwpt`) and `hwpt.list` (`pasids`,
/// with `device`).
public struct PASIDAttachmentInfo: Codable, Hashable, Sendable {
    public var pasid: UInt32
    public var hwpt: ObjectID?
    public var device: String?
    public init(pasid: UInt32, hwpt: ObjectID? = nil, device: String? = nil) {
        self.pasid = pasid
        self.hwpt = hwpt
        self.device = device
    }
}
