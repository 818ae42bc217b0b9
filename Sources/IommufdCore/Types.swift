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
    /// The driver's vendor data (`struct iommu_hw_info_vtd`, `_arm_smmuv3`, ...), as many bytes
    /// as the kernel filled: `min(dataLength, the buffer offered)`.
    public var data: [UInt8]
    /// `data_len` out: the length of the vendor data the driver has (0 for type NONE).
    public var dataLength: UInt32

    public init(type: UInt32, capabilities: HWCapabilities, maxPasidLog2: UInt8 = 0, data: [UInt8] = [], dataLength: UInt32? = nil) {
        self.type = type
        self.capabilities = capabilities
        self.maxPasidLog2 = maxPasidLog2
        self.data = data
        self.dataLength = dataLength ?? UInt32(data.count)
    }

    /// The vendor data decoded by `type`; nil when the data is shorter than its struct.
    public var vendor: HWInfoVendorData? { HWInfoVendorData(type: type, data: data) }

    enum CodingKeys: String, CodingKey { case type, capabilities, maxPasidLog2, data, dataLength }

    // `data` and `dataLength` came later (journal format 01 holds HWInfo without them): absent
    // means not read, as on a kernel answer with data_len 0.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(UInt32.self, forKey: .type)
        capabilities = try c.decode(HWCapabilities.self, forKey: .capabilities)
        maxPasidLog2 = try c.decode(UInt8.self, forKey: .maxPasidLog2)
        data = try c.decodeIfPresent([UInt8].self, forKey: .data) ?? []
        dataLength = try c.decodeIfPresent(UInt32.self, forKey: .dataLength) ?? UInt32(data.count)
    }
}

/// `IOMMU_GET_HW_INFO`'s vendor data, decoded per `enum iommu_hw_info_type` from the 7.3 uAPI
/// structs (all little-endian, naturally aligned).
public enum HWInfoVendorData: Hashable, Sendable {
    /// `struct iommu_hw_info_vtd` (24 bytes).
    case intelVTd(VTd)
    /// `struct iommu_hw_info_arm_smmuv3` (40 bytes).
    case armSMMUv3(SMMUv3)
    /// `struct iommu_hw_info_tegra241_cmdqv` (8 bytes).
    case tegra241CMDQV(Tegra241CMDQV)
    /// `struct iommu_hw_info_amd` (16 bytes).
    case amd(AMD)
    /// `struct iommu_test_hw_info` of the selftest mock driver (8 bytes).
    case selftest(Selftest)
    /// A type this daemon does not know: the raw bytes.
    case unknown(type: UInt32, data: [UInt8])

    public struct VTd: Hashable, Sendable {
        public static let size = 24
        /// `enum iommu_hw_info_vtd_flags`.
        public var flags: UInt32
        /// The VT-d Capability Register (spec 11.4.2).
        public var capReg: UInt64
        /// The VT-d Extended Capability Register (spec 11.4.3).
        public var ecapReg: UInt64
        public init(flags: UInt32 = 0, capReg: UInt64, ecapReg: UInt64) {
            self.flags = flags
            self.capReg = capReg
            self.ecapReg = ecapReg
        }
        /// `IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17`: no read-only mappings on a nest parent.
        public static let errata772415SPR17: UInt32 = 1 << 0
    }

    public struct SMMUv3: Hashable, Sendable {
        public static let size = 40
        /// `enum iommu_hw_info_arm_smmuv3_flags`.
        public var flags: UInt32
        /// SMMU_IDR0..5.
        public var idr: [UInt32]
        public var iidr: UInt32
        public var aidr: UInt32
        public init(flags: UInt32 = 0, idr: [UInt32], iidr: UInt32, aidr: UInt32) {
            self.flags = flags
            self.idr = idr
            self.iidr = iidr
            self.aidr = aidr
        }
        /// `IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI`.
        public static let errataRepeatTLBICFGI: UInt32 = 1 << 0
    }

    public struct Tegra241CMDQV: Hashable, Sendable {
        public static let size = 8
        public var flags: UInt32
        public var version: UInt8
        public var log2vcmdqs: UInt8
        public var log2vsids: UInt8
        public init(flags: UInt32 = 0, version: UInt8, log2vcmdqs: UInt8, log2vsids: UInt8) {
            self.flags = flags
            self.version = version
            self.log2vcmdqs = log2vcmdqs
            self.log2vsids = log2vsids
        }
    }

    public struct AMD: Hashable, Sendable {
        public static let size = 16
        /// Extended Feature Register and Extended Feature 2 Register.
        public var efr: UInt64
        public var efr2: UInt64
        public init(efr: UInt64, efr2: UInt64) {
            self.efr = efr
            self.efr2 = efr2
        }
    }

    public struct Selftest: Hashable, Sendable {
        public static let size = 8
        /// `IOMMU_HW_INFO_SELFTEST_REGVAL`, what the mock driver puts in `test_reg`.
        public static let regval: UInt32 = 0xdead_beef
        public var flags: UInt32
        public var testReg: UInt32
        public init(flags: UInt32 = 0, testReg: UInt32 = Selftest.regval) {
            self.flags = flags
            self.testReg = testReg
        }
    }

    /// Decodes `data` as `type`'s struct. Nil for type NONE, and when `data` is shorter than the
    /// struct (a caller offered a smaller buffer).
    public init?(type: UInt32, data: [UInt8]) {
        let r = LittleEndianReader(data)
        switch type {
        case HWInfoType.none:
            return nil
        case HWInfoType.intelVTd:
            guard data.count >= VTd.size else { return nil }
            self = .intelVTd(VTd(flags: r.u32(0), capReg: r.u64(8), ecapReg: r.u64(16)))
        case HWInfoType.armSMMUv3:
            guard data.count >= SMMUv3.size else { return nil }
            self = .armSMMUv3(SMMUv3(flags: r.u32(0), idr: (0..<6).map { r.u32(8 + 4 * $0) }, iidr: r.u32(32), aidr: r.u32(36)))
        case HWInfoType.tegra241CMDQV:
            guard data.count >= Tegra241CMDQV.size else { return nil }
            self = .tegra241CMDQV(Tegra241CMDQV(flags: r.u32(0), version: data[4], log2vcmdqs: data[5], log2vsids: data[6]))
        case HWInfoType.amd:
            guard data.count >= AMD.size else { return nil }
            self = .amd(AMD(efr: r.u64(0), efr2: r.u64(8)))
        case HWInfoType.selftest:
            guard data.count >= Selftest.size else { return nil }
            self = .selftest(Selftest(flags: r.u32(0), testReg: r.u32(4)))
        default:
            self = .unknown(type: type, data: data)
        }
    }

    /// The uAPI struct's bytes, as the kernel lays them out.
    public var bytes: [UInt8] {
        var w = LittleEndianWriter()
        switch self {
        case .intelVTd(let v):
            w.u32(v.flags); w.u32(0); w.u64(v.capReg); w.u64(v.ecapReg)
        case .armSMMUv3(let v):
            w.u32(v.flags); w.u32(0)
            for i in 0..<6 { w.u32(i < v.idr.count ? v.idr[i] : 0) }
            w.u32(v.iidr); w.u32(v.aidr)
        case .tegra241CMDQV(let v):
            w.u32(v.flags); w.bytes += [v.version, v.log2vcmdqs, v.log2vsids, 0]
        case .amd(let v):
            w.u64(v.efr); w.u64(v.efr2)
        case .selftest(let v):
            w.u32(v.flags); w.u32(v.testReg)
        case .unknown(_, let data):
            w.bytes = data
        }
        return w.bytes
    }
}

private struct LittleEndianReader {
    let data: [UInt8]
    init(_ data: [UInt8]) { self.data = data }
    func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(data[at + $1]) << (8 * $1) } }
    func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(data[at + $1]) << (8 * $1) } }
}

private struct LittleEndianWriter {
    var bytes: [UInt8] = []
    mutating func u32(_ v: UInt32) { bytes += (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    mutating func u64(_ v: UInt64) { bytes += (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

/// What a caller of `IOMMU_GET_HW_INFO` asks for.
public struct HWInfoRequest: Hashable, Sendable {
    /// `IOMMU_HW_INFO_FLAG_INPUT_TYPE` with this `in_data_type`; nil: the driver's default type.
    public var dataType: UInt32?
    /// `data_len` in: the size of the buffer offered for the vendor data.
    public var dataLength: UInt32
    public init(dataType: UInt32? = nil, dataLength: UInt32 = HWInfoRequest.defaultDataLength) {
        self.dataType = dataType
        self.dataLength = dataLength
    }
    /// Bigger than every 7.3 vendor struct (the largest, SMMUv3's, is 40 bytes).
    public static let defaultDataLength: UInt32 = 128
    /// The most a caller may offer (the backends allocate it).
    public static let maxDataLength: UInt32 = 4096
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
