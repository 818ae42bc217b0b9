import IommufdContract
import IommufdCore

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
