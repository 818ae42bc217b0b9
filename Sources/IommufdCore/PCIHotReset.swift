/// One device a PCI hot reset (a bus or slot reset) of another touches, as
/// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` reports it.
public struct HotResetTarget: Sendable, Hashable {
    /// `SSSS:BB:DD.F`.
    public var pciAddress: String
    /// Its device ID in this iommufd when it is bound to it; nil when it is not (the kernel's
    /// `VFIO_PCI_DEVID_OWNED`: unbound but in an IOMMU group with a bound device, or
    /// `VFIO_PCI_DEVID_NOT_OWNED`: not this iommufd's at all).
    public var deviceID: ObjectID?

    public init(pciAddress: String, deviceID: ObjectID?) {
        self.pciAddress = pciAddress
        self.deviceID = deviceID
    }

    /// `segment:bus:slot.function` from the kernel's fields.
    public static func address(segment: UInt16, bus: UInt8, devfn: UInt8) -> String {
        func hex(_ v: UInt64, _ width: Int) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(hex(UInt64(segment), 4)):\(hex(UInt64(bus), 2)):\(hex(UInt64(devfn >> 3), 2)).\(devfn & 7)"
    }
}

/// A backend that can hot-reset a bound PCI device: the daemon's half of the VMM channel's
/// `HOT_RESET` (docs/vmm-channel.md). A VMM confined by `iommufdd_confine` cannot call
/// `VFIO_DEVICE_PCI_HOT_RESET` itself, because on a device fd bound to the daemon's shared
/// iommufd the kernel's ownership check accepts every device of every owner; the broker checks
/// the targets' owners, then asks the backend.
public protocol PCIHotResetBackend: IommuBackend {
    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` on the bound device: every device a hot reset of it
    /// resets, itself included. `ENODEV` when the device cannot be hot-reset (no bus or slot
    /// reset below it), `ENOTTY` for a device that is not PCI.
    func hotResetTargets(deviceID: ObjectID) throws -> [HotResetTarget]
    /// `VFIO_DEVICE_PCI_HOT_RESET` with an empty group-fd array: ownership is this iommufd's
    /// (every target bound to it, or in a bound device's IOMMU group), else `EPERM`.
    func hotReset(deviceID: ObjectID) throws
}
