import IommufdCore

public struct OwnerCreateParams: Codable, Hashable, Sendable {
    /// 1-128 characters of `[A-Za-z0-9._:-]`, e.g. a VM's UUID.
    public var name: String
    public var tolerateMissing: Bool?
    public var dirty: DirtyPolicy?
    public var hugePages: Bool?
    public init(name: String, tolerateMissing: Bool? = nil, dirty: DirtyPolicy? = nil, hugePages: Bool? = nil) {
        self.name = name
        self.tolerateMissing = tolerateMissing
        self.dirty = dirty
        self.hugePages = hugePages
    }
    enum CodingKeys: String, CodingKey {
        case name, dirty
        case tolerateMissing = "tolerate_missing"
        case hugePages = "huge_pages"
    }
}

public struct OwnerNameParams: Codable, Hashable, Sendable {
    public var name: String
    public init(name: String) { self.name = name }
}
public typealias OwnerInfoParams = OwnerNameParams
public typealias OwnerReleaseParams = OwnerNameParams

/// `owner.create` and `owner.info` answer with this.
public struct OwnerInfo: Codable, Hashable, Sendable {
    public var name: String
    /// The manager identity that created it.
    public var identity: String
    public var creatorUID: UInt32
    public var policy: OwnerPolicy
    public var ioas: [ObjectID]
    public var hwpts: [ObjectID]
    public var viommus: [ObjectID]
    public var vdevices: [ObjectID]
    public var devices: [String]
    public var mappings: Int
    public var pinnedBytes: UInt64
    public var quotaBytes: UInt64?
    public init(
        name: String,
        identity: String,
        creatorUID: UInt32,
        policy: OwnerPolicy,
        ioas: [ObjectID],
        hwpts: [ObjectID],
        viommus: [ObjectID],
        vdevices: [ObjectID],
        devices: [String],
        mappings: Int,
        pinnedBytes: UInt64,
        quotaBytes: UInt64? = nil,
        p2pBytes: UInt64? = nil
    ) {
        self.name = name
        self.identity = identity
        self.creatorUID = creatorUID
        self.policy = policy
        self.ioas = ioas
        self.hwpts = hwpts
        self.viommus = viommus
        self.vdevices = vdevices
        self.devices = devices
        self.mappings = mappings
        self.pinnedBytes = pinnedBytes
        self.quotaBytes = quotaBytes
        self.p2pBytes = p2pBytes
    }
    /// Bytes of dma-buf (P2P) mappings: not pinned, not counted against `quota_bytes`. Absent
    /// when 0.
    public var p2pBytes: UInt64? = nil
    // MARK: hwqueue3
    /// The owner's HW queues (`hwqueue.alloc`); absent when it has none.
    public var hwQueues: [ObjectID]? = nil
    enum CodingKeys: String, CodingKey {
        case name, identity, policy, ioas, hwpts, viommus, vdevices, devices, mappings
        case creatorUID = "creator_uid"
        case pinnedBytes = "pinned_bytes"
        case quotaBytes = "quota_bytes"
        case p2pBytes = "p2p_bytes"
        case hwQueues = "hw_queues"  // hwqueue3
    }
}

public struct OwnerListResult: Codable, Hashable, Sendable {
    public var owners: [OwnerInfo]
    public init(owners: [OwnerInfo]) { self.owners = owners }
}

/// What `owner.release` did. `released` is false when something could not be undone: the
/// owner then keeps exactly those objects, and calling `owner.release` again retries them.
public struct OwnerReleaseResult: Codable, Hashable, Sendable {
    public var name: String
    public var released: Bool
    /// Objects destroyed per kind ("ioas": 1, "hwpt": 2, "mapping": 10 ...).
    public var destroyed: [String: Int]
    public var refundedBytes: UInt64
    /// One line per step that failed, with the error.
    public var failures: [String]
    public init(
        name: String,
        released: Bool,
        destroyed: [String: Int],
        refundedBytes: UInt64,
        failures: [String]
    ) {
        self.name = name
        self.released = released
        self.destroyed = destroyed
        self.refundedBytes = refundedBytes
        self.failures = failures
    }
    enum CodingKeys: String, CodingKey {
        case name, released, destroyed, failures
        case refundedBytes = "refunded_bytes"
    }
}

public typealias OwnerDelegateParams = OwnerNameParams
public typealias OwnerRevokeChannelsParams = OwnerNameParams

/// `owner.delegate`: the channel's ID and its fd (one end of a connected `SOCK_SEQPACKET`
/// socket pair, sent with the answer by SCM_RIGHTS). Whoever holds the fd acts as this owner
/// and only this owner, over the binary protocol of docs/vmm-channel.md.
public struct OwnerDelegateResult: Codable, Hashable, Sendable {
    public var name: String
    public var channel: UInt64
    public var fd: FDRef
    public init(name: String, channel: UInt64, fd: FDRef) {
        self.name = name
        self.channel = channel
        self.fd = fd
    }
}

/// `owner.revoke_channels`: how many channels were closed.
public struct OwnerRevokeChannelsResult: Codable, Hashable, Sendable {
    public var name: String
    public var revoked: Int
    public init(name: String, revoked: Int) {
        self.name = name
        self.revoked = revoked
    }
}
