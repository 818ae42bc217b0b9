import IommufdCore

/// The simulated hardware behind a `SimBackend`: physical IOMMU instances and the devices behind
/// them. The daemon's config file supplies one; `SimTopology.default` is the one the library's
/// tests and the conformance suite run on.
///
/// An instance behaves like one real IOMMU driver, named by its `hwInfoType`: build it with
/// `IOMMU.intelVTd`, `IOMMU.armSMMUv3` or `IOMMU.selftestMock` to get that driver's geometry,
/// reserved regions and vIOMMU types.
public struct SimTopology: Codable, Sendable, Hashable {
    /// A simulated physical IOMMU instance (what `dmar0` / `smmu3.0x...` is on real hardware).
    public struct IOMMU: Codable, Sendable, Hashable {
        public var name: String
        /// Whether domains of this IOMMU can track dirty IOPTEs (`IOMMU_CAP_DIRTY_TRACKING`).
        public var dirtyTracking: Bool
        /// Whether it can allocate nest-parent HWPTs; vIOMMUs too when `viommuTypes` is not empty.
        public var nesting: Bool
        /// Supported IOPTE sizes in bytes (the domain's `pgsize_bitmap`); each a power of two.
        public var pageSizes: [UInt64]
        /// The IOVA window a domain of this IOMMU can translate (`domain->geometry`).
        public var aperture: IOVARange
        /// Reserved regions every device behind it brings into an IOAS it attaches to
        /// (`iommu_get_resv_regions`), e.g. the x86 MSI window 0xfee00000-0xfeefffff.
        public var reservedRanges: [IOVARange]
        /// `enum iommu_hw_info_type` reported by `IOMMU_GET_HW_INFO`.
        public var hwInfoType: UInt32
        /// `enum iommu_viommu_type` values `IOMMU_VIOMMU_ALLOC` accepts (only when `nesting`).
        /// Empty: the driver has no viommu ops (Intel VT-d), and every type is EOPNOTSUPP.
        public var viommuTypes: [UInt32]
        /// IOMMUs naming the same group accept each other's domains when the capabilities
        /// match, as Intel VT-d units do (`paging_domain_compatible`). nil: a domain only ever
        /// attaches behind the IOMMU it was allocated for, as on ARM SMMUv3.
        public var domainGroup: String?
        // MARK: nestedgaps
        /// Its driver takes a nest-parent HWPT allocated behind another instance of the same
        /// driver that shares too (Linux 7.3's "sharable nesting parent pagetable across physical
        /// IOMMUs"): its devices attach to it and `IOMMU_VIOMMU_ALLOC` accepts it. false: both
        /// are EINVAL for another instance's nest parent, and the daemon makes one per instance.
        public var sharesNestParent: Bool = false

        public init(
            name: String, dirtyTracking: Bool, nesting: Bool,
            pageSizes: [UInt64] = [4096, 2 << 20, 1 << 30],
            aperture: IOVARange = IOVARange(start: 0, last: (1 << 48) - 1),
            reservedRanges: [IOVARange] = [SimTopology.x86MSIWindow],
            hwInfoType: UInt32 = HWInfoType.intelVTd,
            viommuTypes: [UInt32] = [],
            domainGroup: String? = nil
        ) {
            self.name = name
            self.dirtyTracking = dirtyTracking
            self.nesting = nesting
            self.pageSizes = pageSizes
            self.aperture = aperture
            self.reservedRanges = reservedRanges
            self.hwInfoType = hwInfoType
            self.viommuTypes = viommuTypes
            self.domainGroup = domainGroup
        }

        enum CodingKeys: String, CodingKey {
            case name
            case dirtyTracking = "dirty_tracking"
            case nesting
            case pageSizes = "page_sizes"
            case aperture
            case reservedRanges = "reserved_ranges"
            case hwInfoType = "hw_info_type"
            case viommuTypes = "viommu_types"
            case domainGroup = "domain_group"
            case sharesNestParent = "shares_nest_parent"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let defaults = IOMMU(name: "", dirtyTracking: false, nesting: false)
            name = try c.decode(String.self, forKey: .name)
            dirtyTracking = try c.decodeIfPresent(Bool.self, forKey: .dirtyTracking) ?? false
            nesting = try c.decodeIfPresent(Bool.self, forKey: .nesting) ?? false
            pageSizes = try c.decodeIfPresent([UInt64].self, forKey: .pageSizes) ?? defaults.pageSizes
            aperture = try c.decodeIfPresent(IOVARange.self, forKey: .aperture) ?? defaults.aperture
            reservedRanges = try c.decodeIfPresent([IOVARange].self, forKey: .reservedRanges) ?? defaults.reservedRanges
            hwInfoType = try c.decodeIfPresent(UInt32.self, forKey: .hwInfoType) ?? defaults.hwInfoType
            viommuTypes = try c.decodeIfPresent([UInt32].self, forKey: .viommuTypes) ?? defaults.viommuTypes
            domainGroup = try c.decodeIfPresent(String.self, forKey: .domainGroup)
            sharesNestParent = try c.decodeIfPresent(Bool.self, forKey: .sharesNestParent) ?? (hwInfoType == HWInfoType.selftest)
        }

        /// The smallest IOPTE size: the IOVA alignment a domain of this IOMMU imposes on an IOAS.
        public var minPageSize: UInt64 { pageSizes.min() ?? 4096 }

        /// Intel VT-d as drivers/iommu/intel drives it on Linux 7.3: hw_info type INTEL_VTD,
        /// 4 KiB / 2 MiB / 1 GiB IOPTEs, a 48-bit aperture, the x86 MSI window reserved.
        /// `dirtyTracking`: second-stage A/D bits (`intel_dirty_ops`, ecap SSADS), nest parents
        /// included. `nesting`: nest-parent HWPTs, but never a vIOMMU: `intel_iommu_ops` has
        /// no `viommu_init`, so `IOMMU_VIOMMU_ALLOC` is EOPNOTSUPP. VT-d nests by allocating a
        /// nested HWPT (`IOMMU_HWPT_DATA_VTD_S1`) directly on the nest parent instead.
        public static func intelVTd(
            name: String, dirtyTracking: Bool, nesting: Bool, domainGroup: String? = nil
        ) -> IOMMU {
            IOMMU(
                name: name, dirtyTracking: dirtyTracking, nesting: nesting,
                pageSizes: [4096, 2 << 20, 1 << 30], aperture: IOVARange(start: 0, last: (1 << 48) - 1),
                reservedRanges: [SimTopology.x86MSIWindow], hwInfoType: HWInfoType.intelVTd, viommuTypes: [],
                domainGroup: domainGroup)
        }

        /// ARM SMMUv3 as drivers/iommu/arm/arm-smmu-v3 drives it on Linux 7.3: hw_info type
        /// ARM_SMMUV3, 4 KiB / 2 MiB / 1 GiB IOPTEs, a 48-bit aperture, the software MSI window
        /// (`MSI_IOVA_BASE` 0x8000000, 1 MiB) reserved, a domain never shared with another
        /// instance. `nesting` (`ARM_SMMU_FEAT_NESTING`): stage-2 nest-parent HWPTs and vIOMMUs
        /// of type ARM_SMMUV3 over them (`arm_vsmmu_init`). `dirtyTracking` (HTTU,
        /// `ARM_SMMU_FEAT_HD`): stage-1 domains only; a nest parent with dirty tracking is
        /// EOPNOTSUPP (`arm_smmu_domain_finalise`).
        public static func armSMMUv3(name: String, dirtyTracking: Bool, nesting: Bool) -> IOMMU {
            IOMMU(
                name: name, dirtyTracking: dirtyTracking, nesting: nesting,
                pageSizes: [4096, 2 << 20, 1 << 30], aperture: IOVARange(start: 0, last: (1 << 48) - 1),
                reservedRanges: [SimTopology.armSoftwareMSIWindow], hwInfoType: HWInfoType.armSMMUv3,
                viommuTypes: [VIOMMUType.armSMMUv3])
        }

        /// The kernel selftest's mock IOMMU (CONFIG_IOMMUFD_TEST), which the conformance suite
        /// uses on the real kernel for dirty tracking and nesting: hw_info type and vIOMMU type
        /// of the selftest. The geometry is the caller's. `sharesNestParent`: the mock driver's
        /// `mock_viommu_init` and `mock_domain_nop_attach` check nothing about instances (the
        /// kernel has one mock instance); false models a driver that refuses another
        /// instance's nest parent.
        public static func selftestMock(
            name: String, dirtyTracking: Bool, nesting: Bool,
            pageSizes: [UInt64] = [4096, 2 << 20, 1 << 30],
            aperture: IOVARange = IOVARange(start: 0, last: (1 << 48) - 1),
            reservedRanges: [IOVARange] = [],
            sharesNestParent: Bool = true
        ) -> IOMMU {
            var iommu = IOMMU(
                name: name, dirtyTracking: dirtyTracking, nesting: nesting, pageSizes: pageSizes, aperture: aperture,
                reservedRanges: reservedRanges, hwInfoType: HWInfoType.selftest, viommuTypes: [VIOMMUType.selftest])
            iommu.sharesNestParent = sharesNestParent
            return iommu
        }

        /// Whether this instance's devices and vIOMMUs may use a nest parent allocated behind
        /// `other` (always for its own).
        func acceptsNestParent(of other: IOMMU) -> Bool {
            other.name == name || (sharesNestParent && other.sharesNestParent && other.hwInfoType == hwInfoType)
        }

        /// Stage-2 page tables cannot track dirty IOPTEs on this driver (ARM SMMUv3), so a nest
        /// parent with dirty tracking is refused.
        var nestParentCannotTrackDirty: Bool { hwInfoType == HWInfoType.armSMMUv3 }
    }

    /// A simulated device. `iommu == nil` makes it mdev-like: no HWPT, DMA through an access.
    public struct Device: Codable, Sendable, Hashable {
        public var name: String
        public var iommu: String?
        public var pciAddress: String?
        /// `false`: this device cannot track dirty pages even though its IOMMU can (like
        /// `MOCK_FLAGS_DEVICE_NO_DIRTY`). `true` or nil: the IOMMU's capability, which a device
        /// cannot add to.
        public var dirtyTracking: Bool?
        // MARK: pasid
        /// The device's PASID width in bits (`out_max_pasid_log2`, 1...20), like
        /// `MOCK_FLAGS_DEVICE_PASID` (20); nil or 0: no PASID.
        public var pasidWidth: UInt8?

        public init(name: String, iommu: String?, pciAddress: String? = nil, dirtyTracking: Bool? = nil, pasidWidth: UInt8? = nil) {
            self.name = name
            self.iommu = iommu
            self.pciAddress = pciAddress
            self.dirtyTracking = dirtyTracking
            self.pasidWidth = pasidWidth
        }

        enum CodingKeys: String, CodingKey {
            case name, iommu
            case pciAddress = "pci_address"
            case dirtyTracking = "dirty_tracking"
            case pasidWidth = "pasid_width"
        }
    }

    public var iommus: [IOMMU]
    public var devices: [Device]

    public init(iommus: [IOMMU], devices: [Device]) {
        self.iommus = iommus
        self.devices = devices
    }

    /// The x86 interrupt (MSI) window every Intel/AMD IOMMU reserves.
    public static let x86MSIWindow = IOVARange(start: 0xfee0_0000, last: 0xfeef_ffff)

    /// The window ARM SMMUv3 reserves for software-managed MSIs (`MSI_IOVA_BASE`,
    /// `MSI_IOVA_LENGTH`, `IOMMU_RESV_SW_MSI`).
    public static let armSoftwareMSIWindow = IOVARange(start: 0x800_0000, last: 0x80f_ffff)

    /// What the conformance suite runs on in the test VM, in miniature: a selftest mock IOMMU
    /// (dirty tracking, nesting, the selftest vIOMMU type) with two devices, the second unable
    /// to track dirty pages (`MOCK_FLAGS_DEVICE_NO_DIRTY`), and a third with 20-bit PASIDs
    /// (`MOCK_FLAGS_DEVICE_PASID`); an Intel VT-d unit without dirty tracking or nesting (QEMU's)
    /// with one device; and one mdev-like device.
    public static let `default` = SimTopology(
        iommus: [
            // With the x86 MSI window, so the reserved-range cases meet one on the primary device.
            .selftestMock(name: "mock0", dirtyTracking: true, nesting: true, reservedRanges: [x86MSIWindow]),
            IOMMU(
                name: "dmar1", dirtyTracking: false, nesting: false,
                pageSizes: [4096, 2 << 20], aperture: IOVARange(start: 0, last: (1 << 39) - 1)),
        ],
        devices: [
            Device(name: "sim0", iommu: "mock0", pciAddress: "0000:00:02.0"),
            Device(name: "sim1", iommu: "mock0", pciAddress: "0000:00:03.0", dirtyTracking: false),
            Device(name: "sim2", iommu: "dmar1", pciAddress: "0000:00:04.0"),
            Device(name: "mdev0", iommu: nil),
            // pasid: PASID-capable like MOCK_FLAGS_DEVICE_PASID (20 bits).
            Device(name: "sim-pasid0", iommu: "mock0", pciAddress: "0000:00:05.0", pasidWidth: 20),
        ])

    /// Checks names, references and sizes; throws the first problem found.
    public func validate() throws(SimTopologyError) {
        var iommuNames = Set<String>()
        for iommu in iommus {
            if iommu.name.isEmpty { throw .emptyName }
            if !iommuNames.insert(iommu.name).inserted { throw .duplicateIOMMU(iommu.name) }
            if iommu.pageSizes.isEmpty { throw .noPageSizes(iommu: iommu.name) }
            for size in iommu.pageSizes where size == 0 || size & (size - 1) != 0 {
                throw .invalidPageSize(iommu: iommu.name, size: size)
            }
            if iommu.aperture.start > iommu.aperture.last { throw .invalidRange(iommu: iommu.name, iommu.aperture) }
            for range in iommu.reservedRanges where range.start > range.last {
                throw .invalidRange(iommu: iommu.name, range)
            }
        }
        var deviceNames = Set<String>()
        for device in devices {
            if device.name.isEmpty { throw .emptyName }
            if !deviceNames.insert(device.name).inserted { throw .duplicateDevice(device.name) }
            if let name = device.iommu, !iommuNames.contains(name) {
                throw .unknownIOMMU(device: device.name, iommu: name)
            }
            if device.iommu == nil, device.dirtyTracking == true {
                throw .mdevCannotTrackDirty(device: device.name)
            }
            if let width = device.pasidWidth, width > 0 {
                if device.iommu == nil { throw .mdevCannotHavePASID(device: device.name) }
                if width > 20 { throw .invalidPASIDWidth(device: device.name, width: width) }
            }
        }
    }

    func iommu(named name: String) -> IOMMU? { iommus.first { $0.name == name } }
}

/// Why a `SimTopology` was rejected.
public enum SimTopologyError: Error, Hashable, Sendable, CustomStringConvertible {
    case emptyName
    case duplicateIOMMU(String)
    case duplicateDevice(String)
    case unknownIOMMU(device: String, iommu: String)
    case noPageSizes(iommu: String)
    case invalidPageSize(iommu: String, size: UInt64)
    case invalidRange(iommu: String, IOVARange)
    case mdevCannotTrackDirty(device: String)
    // MARK: pasid
    case mdevCannotHavePASID(device: String)
    case invalidPASIDWidth(device: String, width: UInt8)

    public var description: String {
        switch self {
        case .emptyName:
            "simulated topology: an IOMMU or device has an empty name; give every entry a unique name"
        case .duplicateIOMMU(let name):
            "simulated topology: IOMMU \"\(name)\" is declared twice; IOMMU names must be unique"
        case .duplicateDevice(let name):
            "simulated topology: device \"\(name)\" is declared twice; device names must be unique"
        case .unknownIOMMU(let device, let iommu):
            "simulated topology: device \"\(device)\" refers to IOMMU \"\(iommu)\", which is not declared; declare it or fix the name"
        case .noPageSizes(let iommu):
            "simulated topology: IOMMU \"\(iommu)\" has no page sizes; list at least one (e.g. 4096)"
        case .invalidPageSize(let iommu, let size):
            "simulated topology: IOMMU \"\(iommu)\" page size \(size) is not a power of two"
        case .invalidRange(let iommu, let range):
            "simulated topology: IOMMU \"\(iommu)\" range \(range) has start > last"
        case .mdevCannotTrackDirty(let device):
            "simulated topology: device \"\(device)\" has no IOMMU (mdev-like) and cannot track dirty pages; drop dirty_tracking or give it an IOMMU"
        case .mdevCannotHavePASID(let device):
            "simulated topology: device \"\(device)\" has no IOMMU (mdev-like) and cannot have PASIDs; drop pasid_width or give it an IOMMU"
        case .invalidPASIDWidth(let device, let width):
            "simulated topology: device \"\(device)\" has pasid_width \(width); a PCI PASID is at most 20 bits wide (1...20, or 0 for none)"
        }
    }
}
