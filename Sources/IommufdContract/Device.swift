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

/// What an IOMMU can do for a bound device (`IOMMU_GET_HW_INFO`): what a VMM checks its vIOMMU
/// model against before it creates anything, as QEMU does.
public struct DeviceCapabilities: Codable, Hashable, Sendable {
    /// `enum iommu_hw_info_type` of the device's IOMMU driver.
    public var hwInfoType: UInt32
    /// `IOMMU_HW_CAP_DIRTY_TRACKING`.
    public var dirtyTracking: Bool
    /// PASIDs are enabled on the device (`out_max_pasid_log2` > 0).
    public var pasid: Bool
    /// `out_max_pasid_log2`: the width of the device's PASIDs, 0 without PASID.
    public var pasidWidth: UInt8?
    /// `IOMMU_HW_CAP_PCI_PASID_EXEC` / `_PRIV` (meaningful only with `pasid`).
    public var pasidExec: Bool?
    public var pasidPriv: Bool?
    /// ATS may be used (`IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED` is not set).
    public var ats: Bool?
    /// `out_capabilities` as the kernel set it (`enum iommufd_hw_capabilities`).
    public var hwCapabilities: UInt64?
    /// The driver's vendor data, decoded; nil when the driver reports none (type NONE).
    public var vendor: DeviceVendorInfo?

    public init(_ info: HWInfo) {
        hwInfoType = info.type
        dirtyTracking = info.capabilities.contains(.dirtyTracking)
        pasid = info.maxPasidLog2 > 0
        pasidWidth = info.maxPasidLog2
        pasidExec = info.capabilities.contains(.pciPasidExec)
        pasidPriv = info.capabilities.contains(.pciPasidPriv)
        ats = !info.capabilities.contains(.pciATSNotSupported)
        hwCapabilities = info.capabilities.rawValue
        vendor = DeviceVendorInfo(info)
    }

    enum CodingKeys: String, CodingKey {
        case dirtyTracking = "dirty_tracking"
        case hwInfoType = "hw_info_type"
        case pasid
        case pasidWidth = "pasid_width"
        case pasidExec = "pasid_exec"
        case pasidPriv = "pasid_priv"
        case ats
        case hwCapabilities = "hw_capabilities"
        case vendor
    }
}

/// `IOMMU_GET_HW_INFO`'s vendor data: one member per `enum iommu_hw_info_type`, set for the
/// device's driver, with the fields of its 7.3 uAPI struct; `data` is the raw struct (hex).
public struct DeviceVendorInfo: Codable, Hashable, Sendable {
    /// `intel_vtd`, `arm_smmuv3`, `tegra241_cmdqv`, `amd`, `selftest`, or `type_0x...`.
    public var type: String
    /// `data_len`: the length of the driver's struct.
    public var dataLength: UInt32
    /// The struct's bytes as the kernel wrote them, in hex.
    public var data: String
    public var intelVTd: VTd?
    public var armSMMUv3: SMMUv3?
    public var tegra241CMDQV: Tegra241CMDQV?
    public var amd: AMD?
    public var selftest: Selftest?

    /// `struct iommu_hw_info_vtd`.
    public struct VTd: Codable, Hashable, Sendable {
        public var flags: UInt32
        /// VT-d Capability Register (spec 11.4.2).
        public var capReg: UInt64
        /// VT-d Extended Capability Register (spec 11.4.3).
        public var ecapReg: UInt64
        public init(flags: UInt32, capReg: UInt64, ecapReg: UInt64) {
            self.flags = flags
            self.capReg = capReg
            self.ecapReg = ecapReg
        }
        enum CodingKeys: String, CodingKey {
            case flags
            case capReg = "cap_reg"
            case ecapReg = "ecap_reg"
        }
    }

    /// `struct iommu_hw_info_arm_smmuv3`.
    public struct SMMUv3: Codable, Hashable, Sendable {
        public var flags: UInt32
        /// SMMU_IDR0..5.
        public var idr: [UInt32]
        public var iidr: UInt32
        public var aidr: UInt32
        public init(flags: UInt32, idr: [UInt32], iidr: UInt32, aidr: UInt32) {
            self.flags = flags
            self.idr = idr
            self.iidr = iidr
            self.aidr = aidr
        }
    }

    /// `struct iommu_hw_info_tegra241_cmdqv`.
    public struct Tegra241CMDQV: Codable, Hashable, Sendable {
        public var flags: UInt32
        public var version: UInt8
        public var log2vcmdqs: UInt8
        public var log2vsids: UInt8
        public init(flags: UInt32, version: UInt8, log2vcmdqs: UInt8, log2vsids: UInt8) {
            self.flags = flags
            self.version = version
            self.log2vcmdqs = log2vcmdqs
            self.log2vsids = log2vsids
        }
    }

    /// `struct iommu_hw_info_amd`.
    public struct AMD: Codable, Hashable, Sendable {
        public var efr: UInt64
        public var efr2: UInt64
        public init(efr: UInt64, efr2: UInt64) {
            self.efr = efr
            self.efr2 = efr2
        }
    }

    /// `struct iommu_test_hw_info` (the kernel selftest's mock driver).
    public struct Selftest: Codable, Hashable, Sendable {
        public var flags: UInt32
        public var testReg: UInt32
        public init(flags: UInt32, testReg: UInt32) {
            self.flags = flags
            self.testReg = testReg
        }
        enum CodingKeys: String, CodingKey {
            case flags
            case testReg = "test_reg"
        }
    }

    /// Nil for type NONE (no vendor data).
    public init?(_ info: HWInfo) {
        guard info.type != HWInfoType.none else { return nil }
        dataLength = info.dataLength
        data = info.data.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        switch info.vendor {
        case .intelVTd(let v):
            type = "intel_vtd"
            intelVTd = VTd(flags: v.flags, capReg: v.capReg, ecapReg: v.ecapReg)
        case .armSMMUv3(let v):
            type = "arm_smmuv3"
            armSMMUv3 = SMMUv3(flags: v.flags, idr: v.idr, iidr: v.iidr, aidr: v.aidr)
        case .tegra241CMDQV(let v):
            type = "tegra241_cmdqv"
            tegra241CMDQV = Tegra241CMDQV(flags: v.flags, version: v.version, log2vcmdqs: v.log2vcmdqs, log2vsids: v.log2vsids)
        case .amd(let v):
            type = "amd"
            amd = AMD(efr: v.efr, efr2: v.efr2)
        case .selftest(let v):
            type = "selftest"
            selftest = Selftest(flags: v.flags, testReg: v.testReg)
        case .unknown, nil:
            type = Self.typeName(info.type)
        }
    }

    /// `enum iommu_hw_info_type` as this struct names it.
    public static func typeName(_ type: UInt32) -> String {
        switch type {
        case HWInfoType.intelVTd: "intel_vtd"
        case HWInfoType.armSMMUv3: "arm_smmuv3"
        case HWInfoType.tegra241CMDQV: "tegra241_cmdqv"
        case HWInfoType.amd: "amd"
        case HWInfoType.selftest: "selftest"
        default: "type_0x" + String(type, radix: 16)
        }
    }

    enum CodingKeys: String, CodingKey {
        case type, data, amd, selftest
        case dataLength = "data_len"
        case intelVTd = "intel_vtd"
        case armSMMUv3 = "arm_smmuv3"
        case tegra241CMDQV = "tegra241_cmdqv"
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
    // MARK: pasid
    /// Its attached PASIDs and their HWPTs, lowest first (absent when none, or not visible).
    public var pasids: [PASIDAttachmentInfo]? = nil
    public init(
        name: String,
        kind: DeviceKind,
        pciAddress: String? = nil,
        iommuGroup: Int? = nil,
        iommuInstance: String? = nil,
        driver: String? = nil,
        vendorDevice: String? = nil,
        allowed: Bool,
        leased: Bool,
        owner: String? = nil,
        deviceID: ObjectID? = nil,
        ioas: ObjectID? = nil,
        pt: ObjectID? = nil,
        capabilities: DeviceCapabilities? = nil,
        pasids: [PASIDAttachmentInfo]? = nil
    ) {
        self.name = name
        self.kind = kind
        self.pciAddress = pciAddress
        self.iommuGroup = iommuGroup
        self.iommuInstance = iommuInstance
        self.driver = driver
        self.vendorDevice = vendorDevice
        self.allowed = allowed
        self.leased = leased
        self.owner = owner
        self.deviceID = deviceID
        self.ioas = ioas
        self.pt = pt
        self.capabilities = capabilities
        self.pasids = pasids
    }
    enum CodingKeys: String, CodingKey {
        case pasids
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
    public init(devices: [DeviceInfo]) { self.devices = devices }
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
    public init(
        device: String,
        deviceID: ObjectID,
        ioas: ObjectID,
        pt: ObjectID,
        hwptCreated: Bool,
        dirtyTracking: Bool,
        previousPT: ObjectID? = nil,
        destroyedHWPTs: [ObjectID]
    ) {
        self.device = device
        self.deviceID = deviceID
        self.ioas = ioas
        self.pt = pt
        self.hwptCreated = hwptCreated
        self.dirtyTracking = dirtyTracking
        self.previousPT = previousPT
        self.destroyedHWPTs = destroyedHWPTs
    }
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
    public init(device: String, previousPT: ObjectID, destroyedHWPTs: [ObjectID]) {
        self.device = device
        self.previousPT = previousPT
        self.destroyedHWPTs = destroyedHWPTs
    }
    enum CodingKeys: String, CodingKey {
        case device
        case previousPT = "previous_pt"
        case destroyedHWPTs = "destroyed_hwpts"
    }
}

public struct DeviceReleaseResult: Codable, Hashable, Sendable {
    public var device: String
    public var owner: String
    public init(device: String, owner: String) {
        self.device = device
        self.owner = owner
    }
}

/// `device.fd`: the bound device fd, sent with the reply (`fd` indexes the reply's fds).
public struct DeviceFDResult: Codable, Hashable, Sendable {
    public var device: String
    public var deviceID: ObjectID
    public var fd: FDRef
    public init(device: String, deviceID: ObjectID, fd: FDRef) {
        self.device = device
        self.deviceID = deviceID
        self.fd = fd
    }
    enum CodingKeys: String, CodingKey {
        case device, fd
        case deviceID = "device_id"
    }
}
