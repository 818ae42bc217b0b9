/// An iommufd object ID. IOAS, HWPT, device, vIOMMU and vDevice IDs share one space per iommufd.
public typealias ObjectID = UInt32

/// An inclusive IOVA range, as the uAPI's `struct iommu_iova_range` (`start`..`last`).
public struct IOVARange: Hashable, Codable, Sendable, CustomStringConvertible {
    public var start: UInt64
    public var last: UInt64
    public init(start: UInt64, last: UInt64) {
        self.start = start
        self.last = last
    }
    /// The range `[start, start + length - 1]`; `length` must be non-zero.
    public init(start: UInt64, length: UInt64) {
        self.start = start
        self.last = start &+ (length &- 1)
    }
    public var description: String {
        "0x\(String(start, radix: 16))-0x\(String(last, radix: 16))"
    }
}

/// `enum iommufd_ioas_map_flags`.
public struct MapFlags: OptionSet, Hashable, Sendable, Codable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let fixedIOVA = MapFlags(rawValue: 1 << 0)
    public static let writeable = MapFlags(rawValue: 1 << 1)
    public static let readable = MapFlags(rawValue: 1 << 2)
    public static let readWrite: MapFlags = [.readable, .writeable]
}

/// Where the memory behind a mapping comes from.
public enum MemorySource: Hashable, Sendable {
    /// `IOMMU_IOAS_MAP`: a virtual address in the calling (daemon) process.
    case userAddress(UInt64)
    /// `IOMMU_IOAS_MAP_FILE` (Linux >= 6.13): a memfd (or other file) and an offset into it.
    case file(fd: Int32, offset: UInt64)
}

/// `enum iommufd_hwpt_alloc_flags`.
public struct HWPTAllocFlags: OptionSet, Hashable, Sendable, Codable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let nestParent = HWPTAllocFlags(rawValue: 1 << 0)
    public static let dirtyTracking = HWPTAllocFlags(rawValue: 1 << 1)
    public static let faultIDValid = HWPTAllocFlags(rawValue: 1 << 2)
    public static let pasid = HWPTAllocFlags(rawValue: 1 << 3)
}

/// `enum iommufd_hw_capabilities`.
public struct HWCapabilities: OptionSet, Hashable, Sendable, Codable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let dirtyTracking = HWCapabilities(rawValue: 1 << 0)
    public static let pciPasidExec = HWCapabilities(rawValue: 1 << 1)
    public static let pciPasidPriv = HWCapabilities(rawValue: 1 << 2)
    public static let pciATSNotSupported = HWCapabilities(rawValue: 1 << 3)
}

/// The answer of `IOMMU_GET_HW_INFO`.
public struct HWInfo: Hashable, Sendable, Codable {
    /// `enum iommu_hw_info_type` (1 = Intel VT-d, 2 = ARM SMMUv3, 4 = AMD, 0xfeedbeef = selftest mock).
    public var type: UInt32
    public var capabilities: HWCapabilities
    public var maxPasidLog2: UInt8
    public init(type: UInt32, capabilities: HWCapabilities, maxPasidLog2: UInt8 = 0) {
        self.type = type
        self.capabilities = capabilities
        self.maxPasidLog2 = maxPasidLog2
    }
}

/// The answer of `IOMMU_IOAS_IOVA_RANGES`: the usable IOVA ranges and the required alignment.
public struct IOVARanges: Hashable, Sendable, Codable {
    public var ranges: [IOVARange]
    public var alignment: UInt64
    public init(ranges: [IOVARange], alignment: UInt64) {
        self.ranges = ranges
        self.alignment = alignment
    }
}

/// `enum iommufd_option`.
public enum IommuOption: UInt32, Sendable, Codable, CaseIterable {
    /// Global (object 0): 0 = per-user RLIMIT_MEMLOCK accounting, 1 = per-process (mm).
    case rlimitMode = 0
    /// Per IOAS: 1 (default) lets the IOAS use huge IOPTEs, 0 forces base pages.
    case hugePages = 1
}

/// `enum iommu_viommu_type` values the daemon knows by name.
public enum VIOMMUType {
    public static let `default`: UInt32 = 0
    public static let armSMMUv3: UInt32 = 1
    public static let tegra241CMDQV: UInt32 = 2
    /// The kernel selftest's mock vIOMMU (CONFIG_IOMMUFD_TEST), also what the simulator accepts.
    public static let selftest: UInt32 = 0xdead_beef
}

/// `enum iommu_hw_info_type` values.
public enum HWInfoType {
    public static let none: UInt32 = 0
    public static let intelVTd: UInt32 = 1
    public static let armSMMUv3: UInt32 = 2
    public static let tegra241CMDQV: UInt32 = 3
    public static let amd: UInt32 = 4
    public static let selftest: UInt32 = 0xfeed_beef
}
