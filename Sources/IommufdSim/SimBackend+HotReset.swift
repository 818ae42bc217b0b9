import IommufdCore

/// PCI hot reset, modelled on the kernel's rules for a cdev (vfio_pci_core.c): a hot reset of a
/// device resets every device on the same PCI bus (a secondary bus reset below a bridge: the
/// simulator puts every configured device whose `pci_address` has the same `segment:bus` behind
/// one); a device without a PCI address cannot be hot-reset (`ENODEV`), an mdev-like access has
/// no such ioctl (`ENOTTY`). The reset runs only when every device it touches is bound to this
/// iommufd (`EPERM` otherwise: the simulator has no IOMMU groups larger than one device, so no
/// unbound device is owned through its group). A reset changes nothing the simulator models:
/// attachments, mappings and dirty bits stay (the kernel's reset is of the device's own state).
extension SimBackend: PCIHotResetBackend {
    public func hotResetTargets(deviceID: ObjectID) throws -> [HotResetTarget] {
        try locked("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO") { try targetsLocked(deviceID) }
    }

    public func hotReset(deviceID: ObjectID) throws {
        try locked("VFIO_DEVICE_PCI_HOT_RESET") {
            let targets = try targetsLocked(deviceID)
            guard targets.allSatisfy({ $0.deviceID != nil }) else { throw Errno.EPERM }
            hotResets += 1
        }
    }

    private func targetsLocked(_ deviceID: ObjectID) throws -> [HotResetTarget] {
        let device = try anyDevice(deviceID)
        guard !device.isAccess else { throw Errno.ENOTTY }
        guard let address = device.descriptor.pciAddress, let bus = Self.bus(of: address) else { throw Errno.ENODEV }
        return topology.devices.compactMap { other -> HotResetTarget? in
            guard let a = other.pciAddress, Self.bus(of: a) == bus else { return nil }
            let bound = boundByName[other.name].flatMap { id -> ObjectID? in
                if case .device(let d) = objects[id], !d.isAccess { return id }
                return nil
            }
            return HotResetTarget(pciAddress: a, deviceID: bound)
        }
    }

    /// `SSSS:BB` of `SSSS:BB:DD.F` (lower-cased), nil for anything else.
    static func bus(of address: String) -> String? {
        let parts = address.lowercased().split(separator: ":")
        guard parts.count == 3 else { return nil }
        return "\(parts[0]):\(parts[1])"
    }
}

extension SimBackend {
    /// How many hot resets succeeded (tests).
    public var hotResetCount: Int { (try? locked("") { hotResets }) ?? 0 }
}

/// Hot resets change no object, so nothing is logged: the persistent simulator forwards them.
extension PersistentSimBackend: PCIHotResetBackend {
    public func hotResetTargets(deviceID: ObjectID) throws -> [HotResetTarget] { try sim.hotResetTargets(deviceID: deviceID) }
    public func hotReset(deviceID: ObjectID) throws { try sim.hotReset(deviceID: deviceID) }
}
