import IommufdCore

/// Dirty-tracking policy of an attach (BRIEF section 5).
public enum DirtyPolicy: String, Codable, Sendable, Hashable, CaseIterable {
    /// The HWPT is allocated without dirty tracking.
    case off
    /// Dirty tracking when the device's IOMMU has it, else without.
    case preferred
    /// Refuse a device whose IOMMU cannot track dirty pages.
    case required
}

/// Which devices may be handed out at all. An entry matches a device's name (`vfio3`, a
/// simulated name) or its PCI address (`0000:00:02.0`); `"*"` allows every device.
/// An empty list allows nothing.
public struct DeviceAllowList: Hashable, Sendable, Codable {
    public var entries: [String]
    public init(_ entries: [String]) { self.entries = entries }
    public static let all = DeviceAllowList(["*"])

    public func allows(_ device: DeviceDescriptor) -> Bool {
        entries.contains { entry in
            entry == "*" || entry == device.name || (device.pciAddress.map { $0.lowercased() == entry.lowercased() } ?? false)
        }
    }
}

/// Per-owner policy, from the config defaults, overridable at `owner.create`.
public struct OwnerPolicy: Hashable, Sendable, Codable {
    /// Unmapping a range with no mapping in it is a 0-byte success instead of NotFound.
    public var tolerateMissing: Bool
    /// The dirty policy of attaches that do not name one.
    public var dirty: DirtyPolicy
    /// Huge IOPTEs for new IOAS that do not say.
    public var hugePages: Bool

    public init(tolerateMissing: Bool = false, dirty: DirtyPolicy = .preferred, hugePages: Bool = true) {
        self.tolerateMissing = tolerateMissing
        self.dirty = dirty
        self.hugePages = hugePages
    }

    enum CodingKeys: String, CodingKey {
        case tolerateMissing = "tolerate_missing"
        case dirty
        case hugePages = "huge_pages"
    }
}

/// Everything the broker takes from the config; replaced as a whole on reload.
public struct BrokerConfig: Sendable {
    public var access: AccessControl
    public var allowList: DeviceAllowList
    public var defaults: OwnerPolicy
    /// Upper bound of a `dirty.read` bitmap, in bytes (32 MiB covers 1 TiB at 4 KiB).
    public var maxDirtyBitmapBytes: Int
    /// Upper bound of runs in one `dirty.read` answer; more sets `truncated`.
    public var maxDirtyRuns: Int
    /// vIOMMU type for `viommu.create` without one, when the device's IOMMU type does not
    /// imply it (SMMUv3 → ARM_SMMUV3, the selftest mock → its mock type).
    public var defaultVIOMMUType: UInt32?

    public init(
        access: AccessControl, allowList: DeviceAllowList, defaults: OwnerPolicy = OwnerPolicy(),
        maxDirtyBitmapBytes: Int = 256 << 20, maxDirtyRuns: Int = 1 << 16,
        defaultVIOMMUType: UInt32? = nil
    ) {
        self.access = access
        self.allowList = allowList
        self.defaults = defaults
        self.maxDirtyBitmapBytes = maxDirtyBitmapBytes
        self.maxDirtyRuns = maxDirtyRuns
        self.defaultVIOMMUType = defaultVIOMMUType
    }
}
