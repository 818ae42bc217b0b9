import IommufdCore

public struct IOASCreateParams: Codable, Hashable, Sendable {
    public var owner: String
    /// Default: the owner's policy.
    public var hugePages: Bool?
    public init(owner: String, hugePages: Bool? = nil) {
        self.owner = owner
        self.hugePages = hugePages
    }
    enum CodingKeys: String, CodingKey {
        case owner
        case hugePages = "huge_pages"
    }
}

public struct IOASParams: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public init(ioas: ObjectID) { self.ioas = ioas }
}
public typealias IOASDestroyParams = IOASParams
public typealias IOASRangesParams = IOASParams

public struct IOASListParams: Codable, Hashable, Sendable {
    public var owner: String?
    public init(owner: String? = nil) { self.owner = owner }
}

public struct IOASInfoParams: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    /// How many mappings to list (in IOVA order); default 1000.
    public var maxMappings: Int?
    public init(ioas: ObjectID, maxMappings: Int? = nil) {
        self.ioas = ioas
        self.maxMappings = maxMappings
    }
    enum CodingKeys: String, CodingKey {
        case ioas
        case maxMappings = "max_mappings"
    }
}

public struct MappingInfo: Codable, Hashable, Sendable {
    public var iova: UInt64
    public var length: UInt64
    public var readable: Bool
    public var writeable: Bool
    /// "file" (IOMMU_IOAS_MAP_FILE), "mmap" (IOMMU_IOAS_MAP of the daemon's mmap), "copy", or
    /// "dmabuf" (IOMMU_IOAS_MAP_FILE of a dma-buf: P2P, not pinned).
    public var source: String
    public init(iova: UInt64, length: UInt64, readable: Bool, writeable: Bool, source: String) {
        self.iova = iova
        self.length = length
        self.readable = readable
        self.writeable = writeable
        self.source = source
    }
    /// dma-buf mappings only: the exporter revoked the dma-buf (the device's DMA to it is
    /// blocked, for good: unmap it, and map the dma-buf again once the exporter restores it).
    public var revoked: Bool? = nil
}

public struct IOASInfo: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var owner: String
    public var hugePages: Bool
    public var mappingCount: Int
    public var mappings: [MappingInfo]
    public var pinnedBytes: UInt64
    public var hwpts: [ObjectID]
    public var devices: [String]
    public var dirtyTracking: Bool
    public init(
        ioas: ObjectID,
        owner: String,
        hugePages: Bool,
        mappingCount: Int,
        mappings: [MappingInfo],
        pinnedBytes: UInt64,
        hwpts: [ObjectID],
        devices: [String],
        dirtyTracking: Bool,
        p2pBytes: UInt64? = nil,
        revokedMappings: Int? = nil
    ) {
        self.ioas = ioas
        self.owner = owner
        self.hugePages = hugePages
        self.mappingCount = mappingCount
        self.mappings = mappings
        self.pinnedBytes = pinnedBytes
        self.hwpts = hwpts
        self.devices = devices
        self.dirtyTracking = dirtyTracking
        self.p2pBytes = p2pBytes
        self.revokedMappings = revokedMappings
    }
    // MARK: p2p
    /// Bytes of dma-buf (P2P) mappings: the exporter's memory, not pinned, not in `pinned_bytes`.
    /// Absent when 0.
    public var p2pBytes: UInt64? = nil
    /// How many dma-buf mappings their exporter has revoked. Absent when 0.
    public var revokedMappings: Int? = nil
    enum CodingKeys: String, CodingKey {
        case ioas, owner, mappings, hwpts, devices
        case hugePages = "huge_pages"
        case mappingCount = "mapping_count"
        case pinnedBytes = "pinned_bytes"
        case dirtyTracking = "dirty_tracking"
        case p2pBytes = "p2p_bytes"
        case revokedMappings = "revoked_mappings"
    }
}

public struct IOASListResult: Codable, Hashable, Sendable {
    /// Summaries (no mapping lists).
    public var ioas: [IOASInfo]
    public init(ioas: [IOASInfo]) { self.ioas = ioas }
}

public struct IOASCreateResult: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var owner: String
    public var hugePages: Bool
    public init(ioas: ObjectID, owner: String, hugePages: Bool) {
        self.ioas = ioas
        self.owner = owner
        self.hugePages = hugePages
    }
    enum CodingKeys: String, CodingKey {
        case ioas, owner
        case hugePages = "huge_pages"
    }
}

public struct IOASDestroyResult: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public init(ioas: ObjectID) { self.ioas = ioas }
}

/// `ioas.map`: `length` bytes of the memory file `fd` from `offset`, at `iova` (or where the
/// kernel chooses when omitted). All three must be page aligned. `fd` may be a dma-buf (a VFIO
/// PCI BAR exported with VFIO_DEVICE_FEATURE_DMA_BUF): the daemon tells it apart by the fd's
/// fdinfo (`exp_name`) and maps it as P2P memory, counted in `p2p_bytes`, not pinned bytes.
public struct IOASMapParams: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var fd: FDRef
    public var offset: UInt64
    public var length: UInt64
    public var iova: UInt64?
    /// Default true.
    public var readable: Bool?
    /// Default true.
    public var writeable: Bool?
    public init(ioas: ObjectID, fd: FDRef = FDRef(fd: 0), offset: UInt64 = 0, length: UInt64, iova: UInt64? = nil, readable: Bool? = nil, writeable: Bool? = nil) {
        self.ioas = ioas
        self.fd = fd
        self.offset = offset
        self.length = length
        self.iova = iova
        self.readable = readable
        self.writeable = writeable
    }
}

public struct IOASMapResult: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var iova: UInt64
    public var length: UInt64
    /// The owner's pinned bytes after this mapping.
    public var ownerPinnedBytes: UInt64
    /// A dma-buf mapping only: the owner's P2P bytes after it (dma-bufs are not pinned).
    public var ownerP2PBytes: UInt64? = nil
    public init(ioas: ObjectID, iova: UInt64, length: UInt64, ownerPinnedBytes: UInt64, ownerP2PBytes: UInt64? = nil) {
        self.ioas = ioas
        self.iova = iova
        self.length = length
        self.ownerPinnedBytes = ownerPinnedBytes
        self.ownerP2PBytes = ownerP2PBytes
    }
    enum CodingKeys: String, CodingKey {
        case ioas, iova, length
        case ownerPinnedBytes = "owner_pinned_bytes"
        case ownerP2PBytes = "owner_p2p_bytes"
    }
}

/// `ioas.unmap`: removes every mapping inside `[iova, iova+length)`; a range that cuts a
/// mapping is refused. `all: true` unmaps everything (iova/length ignored).
public struct IOASUnmapParams: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var iova: UInt64?
    public var length: UInt64?
    public var all: Bool?
    /// Default: the owner's policy. True makes a range without mappings a 0-byte success.
    public var tolerateMissing: Bool?
    public init(ioas: ObjectID, iova: UInt64? = nil, length: UInt64? = nil, all: Bool? = nil, tolerateMissing: Bool? = nil) {
        self.ioas = ioas
        self.iova = iova
        self.length = length
        self.all = all
        self.tolerateMissing = tolerateMissing
    }
    enum CodingKeys: String, CodingKey {
        case ioas, iova, length, all
        case tolerateMissing = "tolerate_missing"
    }
}

public struct IOASUnmapResult: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var unmappedBytes: UInt64
    public var mappings: Int
    public var ownerPinnedBytes: UInt64
    public init(ioas: ObjectID, unmappedBytes: UInt64, mappings: Int, ownerPinnedBytes: UInt64) {
        self.ioas = ioas
        self.unmappedBytes = unmappedBytes
        self.mappings = mappings
        self.ownerPinnedBytes = ownerPinnedBytes
    }
    enum CodingKeys: String, CodingKey {
        case ioas, mappings
        case unmappedBytes = "unmapped_bytes"
        case ownerPinnedBytes = "owner_pinned_bytes"
    }
}

/// `ioas.copy`: maps the pages behind `src_ioas` `[src_iova, +length)` into `dst_ioas` too
/// (both of the same owner). `src_iova`/`length` must cover whole mappings.
public struct IOASCopyParams: Codable, Hashable, Sendable {
    public var dstIOAS: ObjectID
    public var srcIOAS: ObjectID
    public var srcIOVA: UInt64
    public var length: UInt64
    public var dstIOVA: UInt64?
    public var readable: Bool?
    public var writeable: Bool?
    public init(dstIOAS: ObjectID, srcIOAS: ObjectID, srcIOVA: UInt64, length: UInt64, dstIOVA: UInt64? = nil, readable: Bool? = nil, writeable: Bool? = nil) {
        self.dstIOAS = dstIOAS
        self.srcIOAS = srcIOAS
        self.srcIOVA = srcIOVA
        self.length = length
        self.dstIOVA = dstIOVA
        self.readable = readable
        self.writeable = writeable
    }
    enum CodingKeys: String, CodingKey {
        case length, readable, writeable
        case dstIOAS = "dst_ioas"
        case srcIOAS = "src_ioas"
        case srcIOVA = "src_iova"
        case dstIOVA = "dst_iova"
    }
}

public struct IOASCopyResult: Codable, Hashable, Sendable {
    public var dstIOAS: ObjectID
    public var dstIOVA: UInt64
    public var length: UInt64
    public var ownerPinnedBytes: UInt64
    public init(dstIOAS: ObjectID, dstIOVA: UInt64, length: UInt64, ownerPinnedBytes: UInt64) {
        self.dstIOAS = dstIOAS
        self.dstIOVA = dstIOVA
        self.length = length
        self.ownerPinnedBytes = ownerPinnedBytes
    }
    enum CodingKeys: String, CodingKey {
        case length
        case dstIOAS = "dst_ioas"
        case dstIOVA = "dst_iova"
        case ownerPinnedBytes = "owner_pinned_bytes"
    }
}

public struct IOASRangesResult: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var ranges: [IOVARange]
    public var alignment: UInt64
    public init(ioas: ObjectID, ranges: [IOVARange], alignment: UInt64) {
        self.ioas = ioas
        self.ranges = ranges
        self.alignment = alignment
    }
}

public struct IOASSetOptionParams: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var hugePages: Bool
    public init(ioas: ObjectID, hugePages: Bool) {
        self.ioas = ioas
        self.hugePages = hugePages
    }
    enum CodingKeys: String, CodingKey {
        case ioas
        case hugePages = "huge_pages"
    }
}

public struct IOASSetOptionResult: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var hugePages: Bool
    public init(ioas: ObjectID, hugePages: Bool) {
        self.ioas = ioas
        self.hugePages = hugePages
    }
    enum CodingKeys: String, CodingKey {
        case ioas
        case hugePages = "huge_pages"
    }
}
