import IommufdCore

/// Any backend the suite can run against: the iommufd API plus the selftest hooks.
public typealias ConformanceBackend = any IommuBackend & IommuTestHooks

/// Something a case needs from the backend; a case whose requirement cannot be met is skipped
/// with the reason, never counted as passed.
public enum ConformanceRequirement: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// A device behind an IOMMU (role `.primary`).
    case device
    /// A device that can track dirty pages (role `.primary` is then dirty-capable).
    case dirtyDevice
    /// A second device behind the primary device's IOMMU (role `.peer`).
    case peerDevice
    /// A device that cannot track dirty pages behind the dirty-capable device's IOMMU
    /// (role `.noDirty`), like the selftest's `MOCK_FLAGS_DEVICE_NO_DIRTY`.
    case noDirtyDevice
    /// A device behind another IOMMU instance than the primary (role `.otherIOMMU`).
    case otherIOMMUDevice
    /// An mdev-like device: no HWPT, attaches to an IOAS through an access (role `.mdev`).
    case mdevDevice
    /// The primary device's IOMMU can allocate nest-parent HWPTs and vIOMMUs.
    case nesting
    /// A device whose IOMMU cannot allocate a nest-parent HWPT (role `.nonNesting`).
    case nonNestingDevice
    /// `IOMMU_IOAS_MAP_FILE`.
    case mapFile
    // MARK: pasid
    /// A PASID-capable device (`out_max_pasid_log2` > 0) behind the primary's IOMMU (role
    /// `.pasid`) and one without PASID behind it too (role `.noPASID`), like the selftest's
    /// `MOCK_FLAGS_DEVICE_PASID` device beside a plain mock device.
    case pasidDevice

    public var description: String {
        switch self {
        case .device: "a device behind an IOMMU"
        case .dirtyDevice: "a dirty-tracking capable device"
        case .peerDevice: "a second device behind the same IOMMU"
        case .noDirtyDevice: "a device that cannot track dirty pages behind the dirty-capable device's IOMMU"
        case .otherIOMMUDevice: "a device behind another IOMMU instance"
        case .mdevDevice: "an mdev-like device (no HWPT)"
        case .nesting: "an IOMMU that supports nest-parent HWPTs and vIOMMUs"
        case .nonNestingDevice: "a device behind an IOMMU without nesting support"
        case .mapFile: "IOMMU_IOAS_MAP_FILE"
        case .pasidDevice: "a PASID-capable device and a device without PASID behind one IOMMU"
        }
    }
}

/// One rule of iommufd, checked against a fresh backend.
public struct ConformanceCase: Sendable, Identifiable, CustomStringConvertible {
    /// Stable dotted name, e.g. `"ioas.unmap.hole-is-ENOENT"`.
    public let id: String
    /// The rule, in one sentence.
    public let rule: String
    public let requirements: Set<ConformanceRequirement>
    public let body: @Sendable (ConformanceContext) throws -> Void

    public init(
        _ id: String, _ rule: String, requires requirements: Set<ConformanceRequirement> = [],
        body: @escaping @Sendable (ConformanceContext) throws -> Void
    ) {
        self.id = id
        self.rule = rule
        self.requirements = requirements
        self.body = body
    }

    public var description: String { id }
}

/// A broken expectation: which case, what was expected, what happened.
public struct ConformanceFailure: Error, CustomStringConvertible, Sendable {
    public let caseID: String
    public let message: String
    public var description: String { "[\(caseID)] \(message)" }
}

/// Thrown by a case (or the fixture) when the backend cannot provide what the case needs.
public struct ConformanceSkip: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// How one case ended.
public enum ConformanceOutcome: Sendable, Equatable, CustomStringConvertible {
    case passed
    case failed(String)
    case skipped(String)

    public var description: String {
        switch self {
        case .passed: "passed"
        case .failed(let message): "failed: \(message)"
        case .skipped(let reason): "skipped: \(reason)"
        }
    }
}
