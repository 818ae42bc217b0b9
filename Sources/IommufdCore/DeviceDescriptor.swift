/// What kind of device a descriptor names.
public enum DeviceKind: String, Hashable, Sendable, Codable, CaseIterable {
    /// A VFIO cdev of a physical PCI device (`/dev/vfio/devices/vfioN`).
    case pci
    /// A VFIO cdev of a mediated device: emulated DMA through an iommufd access, no HWPT.
    case mdev
    /// A device of the simulator backend.
    case simulated
    /// A kernel selftest mock device (`IOMMU_TEST_OP_MOCK_DOMAIN`, CONFIG_IOMMUFD_TEST only).
    case mock
}

/// A device the backend can bind to its iommufd, as discovered (sysfs, the simulator's
/// topology, or the kernel's selftest mocks). `name` is the stable handle clients use.
public struct DeviceDescriptor: Hashable, Sendable, Codable {
    /// Stable handle: `"vfio0"` for a cdev, the configured name for a simulated device.
    public var name: String
    public var kind: DeviceKind
    /// `/dev/vfio/devices/vfioN` for cdev devices.
    public var cdevPath: String?
    /// PCI address (`0000:00:02.0`), if the device is (or simulates) a PCI function.
    public var pciAddress: String?
    /// IOMMU group number, if it has one.
    public var iommuGroup: Int?
    /// The physical IOMMU instance it sits behind (`"dmar0"`), nil when it has none (mdev).
    public var iommuInstance: String?
    /// The bound kernel driver (`"vfio-pci"`).
    public var driver: String?
    /// PCI vendor:device (`"1234:11e8"`), when known.
    public var vendorDevice: String?
    /// Whether the device is an mdev (no HWPT of its own; attaches to an IOAS only).
    public var isMdev: Bool { kind == .mdev }

    public init(
        name: String, kind: DeviceKind, cdevPath: String? = nil, pciAddress: String? = nil,
        iommuGroup: Int? = nil, iommuInstance: String? = nil, driver: String? = nil,
        vendorDevice: String? = nil
    ) {
        self.name = name
        self.kind = kind
        self.cdevPath = cdevPath
        self.pciAddress = pciAddress
        self.iommuGroup = iommuGroup
        self.iommuInstance = iommuInstance
        self.driver = driver
        self.vendorDevice = vendorDevice
    }
}

/// A device bound to the backend's iommufd.
public struct BoundDevice: Hashable, Sendable {
    public var descriptor: DeviceDescriptor
    /// The iommufd device ID (`out_devid` of `VFIO_DEVICE_BIND_IOMMUFD`).
    public var id: ObjectID
    /// The open VFIO cdev fd, owned by the backend; nil for simulated and mock devices.
    public var fd: Int32?
    public init(descriptor: DeviceDescriptor, id: ObjectID, fd: Int32?) {
        self.descriptor = descriptor
        self.id = id
        self.fd = fd
    }
}
