/// Nested translation: the driver data of a nested HWPT (`IOMMU_HWPT_ALLOC` with a data type)
/// and the cache-invalidation arrays of `IOMMU_HWPT_INVALIDATE`, laid out as the Linux 7.3 uAPI
/// (include/uapi/linux/iommufd.h; the selftest structs from iommufd_test.h). All little-endian.

/// `enum iommu_hwpt_data_type`, and the selftest's `IOMMU_HWPT_DATA_SELFTEST`.
public enum HWPTDataType {
    public static let none: UInt32 = 0
    public static let vtdS1: UInt32 = 1
    public static let armSMMUv3: UInt32 = 2
    public static let amdGuest: UInt32 = 3
    /// `IOMMU_HWPT_DATA_SELFTEST` (CONFIG_IOMMUFD_TEST's mock driver).
    public static let selftest: UInt32 = 0xdead

    /// The nested data type the IOMMU driver behind a device takes, by its `IOMMU_GET_HW_INFO`
    /// type; nil for a driver that has no nested domains in 7.3.
    public static func forHWInfo(_ type: UInt32) -> UInt32? {
        switch type {
        case HWInfoType.intelVTd: vtdS1
        case HWInfoType.armSMMUv3, HWInfoType.tegra241CMDQV: armSMMUv3
        case HWInfoType.amd: amdGuest
        case HWInfoType.selftest: selftest
        default: nil
        }
    }

    public static func name(_ type: UInt32) -> String {
        switch type {
        case none: "none"
        case vtdS1: "vtd_s1"
        case armSMMUv3: "arm_smmuv3"
        case amdGuest: "amd_guest"
        case selftest: "selftest"
        default: "0x\(String(type, radix: 16))"
        }
    }
}

/// `enum iommu_hwpt_invalidate_data_type` / `iommu_viommu_invalidate_data_type`, and the
/// selftest's types.
public enum InvalidateDataType {
    /// `IOMMU_HWPT_INVALIDATE_DATA_VTD_S1` (a nested HWPT).
    public static let vtdS1: UInt32 = 0
    /// `IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3` (a vIOMMU).
    public static let armSMMUv3: UInt32 = 1
    /// `IOMMU_HWPT_INVALIDATE_DATA_SELFTEST` (a mock nested HWPT) and
    /// `IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST` (a mock vIOMMU): the same value.
    public static let selftest: UInt32 = 0xdead_beef
    /// `IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID`: a type no driver takes.
    public static let selftestInvalid: UInt32 = 0xdad_beef
}

/// The user data of `IOMMU_HWPT_ALLOC` for a nested HWPT: `data_type`, and the bytes
/// `data_uptr`/`data_len` point at.
public struct HWPTUserData: Hashable, Sendable, Codable {
    public var type: UInt32
    public var bytes: [UInt8]
    public init(type: UInt32, bytes: [UInt8]) {
        self.type = type
        self.bytes = bytes
    }
}

/// The typed driver data of a nested HWPT, one case per 7.3 data type. Reserved fields are not
/// representable: they are written as zero.
public enum NestedHWPTData: Hashable, Sendable {
    /// `struct iommu_hwpt_selftest` (8 bytes): every entry of the mock IOTLB starts at `iotlb`.
    case selftest(iotlb: UInt32, pagetableType: UInt32)
    /// `struct iommu_hwpt_vtd_s1` (24 bytes).
    case vtdS1(flags: UInt64, pgtblAddr: UInt64, addrWidth: UInt32)
    /// `struct iommu_hwpt_arm_smmuv3` (16 bytes): the guest STE's first two double words.
    case armSMMUv3(ste: [UInt64])
    /// `struct iommu_hwpt_amd_guest` (32 bytes): the guest DTE.
    case amdGuest(dte: [UInt64])

    /// `IOMMU_TEST_IOTLB_DEFAULT`, what the selftest puts in a mock nested HWPT's IOTLB.
    public static let selftestIOTLBDefault: UInt32 = 0xbad_beef
    /// `MOCK_NESTED_DOMAIN_IOTLB_NUM`.
    public static let selftestIOTLBCount = 4
    /// `enum iommu_hwpt_vtd_s1_flags`: SRE, EAFE, WPE.
    public static let vtdS1ValidFlags: UInt64 = 0b111

    public var dataType: UInt32 {
        switch self {
        case .selftest: HWPTDataType.selftest
        case .vtdS1: HWPTDataType.vtdS1
        case .armSMMUv3: HWPTDataType.armSMMUv3
        case .amdGuest: HWPTDataType.amdGuest
        }
    }

    /// The uAPI struct.
    public var userData: HWPTUserData {
        var w = ByteLayout()
        switch self {
        case .selftest(let iotlb, let type): w.u32(iotlb); w.u32(type)
        case .vtdS1(let flags, let pgtbl, let width): w.u64(flags); w.u64(pgtbl); w.u32(width); w.u32(0)
        case .armSMMUv3(let ste): for i in 0..<2 { w.u64(i < ste.count ? ste[i] : 0) }
        case .amdGuest(let dte): for i in 0..<4 { w.u64(i < dte.count ? dte[i] : 0) }
        }
        return HWPTUserData(type: dataType, bytes: w.bytes)
    }

    /// Decodes the uAPI struct of `data.type` (nil when too short or of an unknown type).
    public init?(_ data: HWPTUserData) {
        let b = data.bytes
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * $1) } }
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * $1) } }
        switch data.type {
        case HWPTDataType.selftest where b.count >= 8: self = .selftest(iotlb: u32(0), pagetableType: u32(4))
        case HWPTDataType.vtdS1 where b.count >= 24: self = .vtdS1(flags: u64(0), pgtblAddr: u64(8), addrWidth: u32(16))
        case HWPTDataType.armSMMUv3 where b.count >= 16: self = .armSMMUv3(ste: [u64(0), u64(8)])
        case HWPTDataType.amdGuest where b.count >= 32: self = .amdGuest(dte: (0..<4).map { u64(8 * $0) })
        default: return nil
        }
    }
}

/// One `IOMMU_HWPT_INVALIDATE`: `entryCount` entries of `entryLength` bytes each, of `dataType`.
public struct InvalidationRequest: Hashable, Sendable {
    public var dataType: UInt32
    public var entryLength: UInt32
    public var entryCount: UInt32
    /// The array (at least `entryLength * entryCount` bytes; the kernel reads no more).
    public var bytes: [UInt8]
    public init(dataType: UInt32, entryLength: UInt32, entryCount: UInt32, bytes: [UInt8]) {
        self.dataType = dataType
        self.entryLength = entryLength
        self.entryCount = entryCount
        self.bytes = bytes
    }

    /// The request for typed entries (all of one data type).
    public init(_ entries: [InvalidationEntry], dataType: UInt32? = nil) {
        let type = dataType ?? entries.first?.dataType ?? InvalidateDataType.selftest
        let length = entries.first?.length ?? InvalidationEntry.selftestHWPTSize
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.count * length)
        for e in entries { bytes += e.bytes }
        self.init(dataType: type, entryLength: UInt32(length), entryCount: UInt32(entries.count), bytes: bytes)
    }

    /// `IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX` in 7.3 (`1U << 19`).
    public static let maxEntries: UInt32 = 1 << 19
}

/// One typed invalidation entry.
public enum InvalidationEntry: Hashable, Sendable {
    /// `struct iommu_hwpt_invalidate_selftest` (8 bytes, a mock nested HWPT).
    case selftestHWPT(flags: UInt32, iotlbID: UInt32)
    /// `struct iommu_viommu_invalidate_selftest` (12 bytes, a mock vIOMMU).
    case selftestVIOMMU(flags: UInt32, vdevID: UInt32, cacheID: UInt32)
    /// `struct iommu_hwpt_vtd_s1_invalidate` (24 bytes, a VT-d nested HWPT).
    case vtdS1(addr: UInt64, npages: UInt64, flags: UInt32)
    /// `struct iommu_viommu_arm_smmuv3_invalidate` (16 bytes, an SMMUv3 vIOMMU): one CMDQ command.
    case armSMMUv3(cmd: [UInt64])

    public static let selftestHWPTSize = 8
    public static let selftestVIOMMUSize = 12
    public static let vtdS1Size = 24
    public static let armSMMUv3Size = 16
    /// `IOMMU_TEST_INVALIDATE_FLAG_ALL`.
    public static let selftestFlagAll: UInt32 = 1 << 0
    /// `IOMMU_VTD_INV_FLAGS_LEAF`.
    public static let vtdS1FlagLeaf: UInt32 = 1 << 0

    public var dataType: UInt32 {
        switch self {
        case .selftestHWPT, .selftestVIOMMU: InvalidateDataType.selftest
        case .vtdS1: InvalidateDataType.vtdS1
        case .armSMMUv3: InvalidateDataType.armSMMUv3
        }
    }

    public var length: Int {
        switch self {
        case .selftestHWPT: Self.selftestHWPTSize
        case .selftestVIOMMU: Self.selftestVIOMMUSize
        case .vtdS1: Self.vtdS1Size
        case .armSMMUv3: Self.armSMMUv3Size
        }
    }

    public var bytes: [UInt8] {
        var w = ByteLayout()
        switch self {
        case .selftestHWPT(let flags, let id): w.u32(flags); w.u32(id)
        case .selftestVIOMMU(let flags, let vdev, let cache): w.u32(flags); w.u32(vdev); w.u32(cache)
        case .vtdS1(let addr, let npages, let flags): w.u64(addr); w.u64(npages); w.u32(flags); w.u32(0)
        case .armSMMUv3(let cmd): for i in 0..<2 { w.u64(i < cmd.count ? cmd[i] : 0) }
        }
        return w.bytes
    }
}

/// What `IOMMU_HWPT_INVALIDATE` answered: `entry_num` out (the entries handled, in order) and,
/// when the driver stopped early or refused the call, the error.
public struct InvalidationResult: Hashable, Sendable {
    public var done: UInt32
    public var error: IommuError?
    public init(done: UInt32, error: IommuError? = nil) {
        self.done = done
        self.error = error
    }
}

/// Little-endian struct building for the layouts above.
struct ByteLayout {
    var bytes: [UInt8] = []
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
}
