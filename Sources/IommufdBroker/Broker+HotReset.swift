import IommufdContract
import IommufdCore

/// A PCI hot reset for a VMM that is confined (`iommufdd_confine`: it may not call
/// `VFIO_DEVICE_PCI_HOT_RESET` itself). The kernel's own check for a cdev is that every device
/// the reset touches is bound to the calling device's iommufd — here the daemon's, which holds
/// every owner's devices — so the daemon checks the owners: every device the reset touches must
/// be leased to the caller's owner. (The VMM channel's HOT_RESET; docs/vmm-channel.md.)
extension Broker {
    /// Hot-resets `device` (leased to an owner `caller` may change) and answers the names of the
    /// devices it reset, the device first. Refused with `PolicyRefused` when the reset would touch
    /// a device of another owner, an unleased device, or one the daemon does not manage;
    /// `Unsupported` when the backend or the device cannot be hot-reset.
    public func deviceHotReset(_ caller: Caller, device name: String) throws -> [String] {
        try locked {
            let (dev, owner) = try leasedDevice(caller, name, "hot reset")
            guard let bound = dev.bound else {
                throw BrokerError(.conflict, "device '\(dev.name)' is leased to owner '\(owner.name)' but not bound; attach it first")
            }
            guard let backend = backend as? any PCIHotResetBackend else {
                throw BrokerError(.unsupported, "the \(backend.kind.rawValue) backend cannot hot-reset devices")
            }
            let targets: [HotResetTarget]
            do {
                targets = try backend.hotResetTargets(deviceID: bound.id)
            } catch let error as IommuError where error.errno == .ENODEV || error.errno == .ENOTTY {
                throw BrokerError(.unsupported, "device '\(dev.name)' cannot be hot-reset: \(error.operation) returned \(error.errno.name) (\(error.errno == .ENODEV ? "no bus or slot reset covers it, e.g. a device on a root bus" : "not a PCI device")); reset it with VFIO_DEVICE_RESET on its own fd (function-level reset) instead")
            } catch let error as IommuError {
                throw BrokerError.kernel(error, "listing the devices a hot reset of '\(dev.name)' touches")
            }
            var names: [String] = []
            var refused: [String] = []
            for target in targets {
                let record = target.deviceID.flatMap { id in devices.values.first { $0.bound?.id == id } }
                    ?? devices.values.first { $0.descriptor.pciAddress?.lowercased() == target.pciAddress.lowercased() }
                guard let record else {
                    refused.append("\(target.pciAddress) (not a device this daemon manages)")
                    continue
                }
                guard record.owner == owner.name, let id = target.deviceID, record.bound?.id == id else {
                    // Whether another owner holds it is visible anyway (device.list shows leases), not whose.
                    refused.append("\(record.name) (\(target.pciAddress), \(record.owner == nil ? "not leased" : record.owner == owner.name ? "leased to '\(owner.name)' but not bound in the kernel" : "leased to another owner"))")
                    continue
                }
                names.append(record.name)
            }
            guard refused.isEmpty else {
                throw BrokerError(.policyRefused, "a hot reset of '\(dev.name)' also resets \(refused.joined(separator: ", ")); it is refused unless every device it touches is leased to owner '\(owner.name)': attach them to this owner, or reset the device alone with VFIO_DEVICE_RESET on its fd")
            }
            do {
                try backend.hotReset(deviceID: bound.id)
            } catch let error as IommuError {
                throw BrokerError.kernel(error, "hot reset of '\(dev.name)'")
            }
            logger.info("device hot reset", metadata: ["owner": "\(owner.name)", "device": "\(dev.name)", "reset": "\(names.joined(separator: ","))", "identity": "\(caller.identity)"])
            return [dev.name] + names.filter { $0 != dev.name }.sorted()
        }
    }
}
