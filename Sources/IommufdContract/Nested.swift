import IommufdCore

/// The driver data of a nested HWPT (`hwpt.alloc` with `parent` or `viommu`), typed per
/// `type`: each type takes only its own fields, and the reserved fields of the uAPI structs are
/// not representable (the daemon writes them as zero).
///
/// - `selftest` (`struct iommu_hwpt_selftest`, the kernel's mock driver): `iotlb`.
/// - `vtd_s1` (`struct iommu_hwpt_vtd_s1`): `flags` (SRE 1, EAFE 2, WPE 4), `pgtbl_addr`
///   (4 KiB aligned), `addr_width` (48 or 57).
/// - `arm_smmuv3` (`struct iommu_hwpt_arm_smmuv3`): `ste`, the guest STE's first two 64-bit words.
/// - `amd_guest` (`struct iommu_hwpt_amd_guest`): `dte`, the guest DTE's four 64-bit words.
public struct NestedDataParams: Codable, Hashable, Sendable {
    public var type: String
    public var iotlb: UInt32?
    public var flags: UInt64?
    public var pgtblAddr: UInt64?
    public var addrWidth: UInt32?
    public var ste: [UInt64]?
    public var dte: [UInt64]?
    public init(type: String, iotlb: UInt32? = nil, flags: UInt64? = nil, pgtblAddr: UInt64? = nil, addrWidth: UInt32? = nil, ste: [UInt64]? = nil, dte: [UInt64]? = nil) {
        self.type = type
        self.iotlb = iotlb
        self.flags = flags
        self.pgtblAddr = pgtblAddr
        self.addrWidth = addrWidth
        self.ste = ste
        self.dte = dte
    }
    enum CodingKeys: String, CodingKey {
        case type, iotlb, flags, ste, dte
        case pgtblAddr = "pgtbl_addr"
        case addrWidth = "addr_width"
    }
    public static let typeNames = ["selftest", "vtd_s1", "arm_smmuv3", "amd_guest"]
}

/// One cache-invalidation entry, typed by the driver of the object invalidated:
/// - a `selftest` nested HWPT (`struct iommu_hwpt_invalidate_selftest`): `iotlb_id` (0-3) or `all`;
/// - a `selftest` vIOMMU (`struct iommu_viommu_invalidate_selftest`): `vdev_id` (a virtual ID),
///   `cache_id` (0-3) or `all`;
/// - a `vtd_s1` nested HWPT (`struct iommu_hwpt_vtd_s1_invalidate`): `addr`, `npages`, `leaf`;
/// - an `arm_smmuv3` vIOMMU (`struct iommu_viommu_arm_smmuv3_invalidate`): `cmd`, one CMDQ
///   command as two 64-bit words.
public struct InvalidationEntryParams: Codable, Hashable, Sendable {
    public var iotlbID: UInt32?
    public var all: Bool?
    public var vdevID: UInt32?
    public var cacheID: UInt32?
    public var addr: UInt64?
    public var npages: UInt64?
    public var leaf: Bool?
    public var cmd: [UInt64]?
    public init(iotlbID: UInt32? = nil, all: Bool? = nil, vdevID: UInt32? = nil, cacheID: UInt32? = nil, addr: UInt64? = nil, npages: UInt64? = nil, leaf: Bool? = nil, cmd: [UInt64]? = nil) {
        self.iotlbID = iotlbID
        self.all = all
        self.vdevID = vdevID
        self.cacheID = cacheID
        self.addr = addr
        self.npages = npages
        self.leaf = leaf
        self.cmd = cmd
    }
    enum CodingKeys: String, CodingKey {
        case all, addr, npages, leaf, cmd
        case iotlbID = "iotlb_id"
        case vdevID = "vdev_id"
        case cacheID = "cache_id"
    }
}

/// `hwpt.invalidate`: the entries go to the nested HWPT in one `IOMMU_HWPT_INVALIDATE`.
public struct HWPTInvalidateParams: Codable, Hashable, Sendable {
    public var hwpt: ObjectID
    public var entries: [InvalidationEntryParams]
    public init(hwpt: ObjectID, entries: [InvalidationEntryParams]) {
        self.hwpt = hwpt
        self.entries = entries
    }
}

/// `viommu.invalidate`: the entries go to the vIOMMU in one `IOMMU_HWPT_INVALIDATE`.
public struct VIOMMUInvalidateParams: Codable, Hashable, Sendable {
    public var viommu: ObjectID
    public var entries: [InvalidationEntryParams]
    public init(viommu: ObjectID, entries: [InvalidationEntryParams]) {
        self.viommu = viommu
        self.entries = entries
    }
}

/// Why an invalidation stopped after some entries: the kernel's errno for entry `done`.
public struct InvalidationStop: Codable, Hashable, Sendable {
    public var errno: String
    public var ioctl: String
    public var message: String
    public init(errno: String, ioctl: String, message: String) {
        self.errno = errno
        self.ioctl = ioctl
        self.message = message
    }
}

/// The answer of `hwpt.invalidate` / `viommu.invalidate`. `done` entries (in order) took
/// effect; when it is less than `requested`, `stopped` says why entry `done` was refused and
/// the later ones were not tried. (Nothing done at all is an error, not a result.)
public struct InvalidateResult: Codable, Hashable, Sendable {
    public var object: ObjectID
    public var requested: Int
    public var done: Int
    public var dataType: String
    public var stopped: InvalidationStop?
    public init(
        object: ObjectID,
        requested: Int,
        done: Int,
        dataType: String,
        stopped: InvalidationStop? = nil
    ) {
        self.object = object
        self.requested = requested
        self.done = done
        self.dataType = dataType
        self.stopped = stopped
    }
    enum CodingKeys: String, CodingKey {
        case object, requested, done, stopped
        case dataType = "data_type"
    }
}

/// What `hwpt.list` says of a nested HWPT.
public struct NestedHWPTInfo: Codable, Hashable, Sendable {
    /// The nest-parent HWPT (stage 2).
    public var parent: ObjectID
    /// The vIOMMU it was allocated on, if it was.
    public var viommu: ObjectID?
    public var dataType: String
    public init(parent: ObjectID, viommu: ObjectID? = nil, dataType: String) {
        self.parent = parent
        self.viommu = viommu
        self.dataType = dataType
    }
    enum CodingKeys: String, CodingKey {
        case parent, viommu
        case dataType = "data_type"
    }
}
