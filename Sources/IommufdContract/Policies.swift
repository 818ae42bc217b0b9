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
