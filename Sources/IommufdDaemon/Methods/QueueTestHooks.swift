import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdRPC

// MARK: i14audit

/// `test.trigger_vevent {device}`: the device's vIOMMU reports one selftest event into its
/// selftest vEVENTQ (`IOMMU_TEST_OP_TRIGGER_VEVENT`; on the simulator its model), and
/// `test.trigger_iopf {device, address, pasid?, group?, perm?}`: the device reports an I/O page
/// fault (`IOMMU_TEST_OP_TRIGGER_IOPF`), so end-to-end tests and the README walkthrough can
/// see a record come out of a queue (`queue.fd`, `iommuctl queue read`, `event.queue`).
/// TEST ONLY: admins only, registered with `[sim]` or `[kernel] test_hooks` (the kernel backend
/// answers ENOTTY without mock devices: a CONFIG_IOMMUFD_TEST kernel); absent from
/// `rpc.discover` otherwise.
public struct TestTriggerVEventParams: Codable, Hashable, Sendable {
    /// Device name or PCI address; it must be bound (leased and attached).
    public var device: String
    public init(device: String) { self.device = device }
}

public struct TestTriggerIOPFParams: Codable, Hashable, Sendable {
    public var device: String
    /// The faulting address.
    public var address: UInt64
    /// 0 (the default): the RID, no PASID; else the PASID the fault is for.
    public var pasid: UInt32?
    /// The page request group; default 1.
    public var group: UInt32?
    /// `IOMMU_PGFAULT_PERM_*` bits (read 1, write 2, exec 4, priv 8); default 1 (read).
    public var perm: UInt32?
    public init(device: String, address: UInt64, pasid: UInt32? = nil, group: UInt32? = nil, perm: UInt32? = nil) {
        self.device = device
        self.address = address
        self.pasid = pasid
        self.group = group
        self.perm = perm
    }
}

public struct TestTriggerResult: Codable, Hashable, Sendable {
    public var device: String
    public var deviceID: ObjectID
    enum CodingKeys: String, CodingKey {
        case device
        case deviceID = "device_id"
    }
}

extension DaemonService {
    func addQueueTestHooks() {
        guard let hooks = backend as? any IommuQueueTestHooks else { return }
        let broker = self.broker
        @Sendable func requireAdmin(_ caller: Caller, _ method: String) throws {
            guard caller.role == .admin else {
                throw BrokerError(.permissionDenied, "\(method) is a test hook that makes a device report to the IOMMU as hardware would; only an admin may call it, and \(caller.identity) is a \(caller.role.rawValue)")
            }
        }
        /// The bound device's iommufd device ID.
        @Sendable func boundDevice(_ caller: Caller, _ method: String, _ name: String) throws -> ObjectID {
            let info = try broker.deviceInfo(caller, DeviceInfoParams(device: name))
            guard let id = info.deviceID else {
                throw BrokerError(.conflict, "\(method): device '\(name)' is not bound to the iommufd, so it cannot report anything; lease and attach it first (device.attach)")
            }
            return id
        }
        table.add(
            "test.trigger_vevent", "TEST ONLY ([sim] or [kernel] test_hooks; admins only): a device's vIOMMU reports one selftest event into its vEVENTQ",
            access: .write, params: TestTriggerVEventParams.self
        ) { caller, p, _ in
            try requireAdmin(caller, "test.trigger_vevent")
            let id = try boundDevice(caller, "test.trigger_vevent", p.device)
            do {
                try hooks.triggerVEvent(deviceID: id)
            } catch let error as IommuError {
                var hint = ""
                switch error.errno {
                case .ENOENT: hint = "; the device must be attached to a nested HWPT on a vIOMMU where it has a vDevice (vdevice.create, hwpt.alloc viommu, device.replace)"
                case .EOPNOTSUPP: hint = "; its vIOMMU has no vEVENTQ of the selftest type: veventq.create first"
                case .ENOTTY: hint = "; this backend has no selftest event hook (the kernel backend needs a CONFIG_IOMMUFD_TEST kernel and mock devices)"
                default: break
                }
                throw BrokerError(.kernel, "test.trigger_vevent for device '\(p.device)' failed: \(error.operation) returned \(error.errno.name) (\(error.errno.message))\(hint)", kernel: error)
            }
            return TestTriggerResult(device: p.device, deviceID: id)
        }
        table.add(
            "test.trigger_iopf", "TEST ONLY ([sim] or [kernel] test_hooks; admins only): a device reports an I/O page fault (to the fault queue of its HWPT, if any)",
            access: .write, params: TestTriggerIOPFParams.self
        ) { caller, p, _ in
            try requireAdmin(caller, "test.trigger_iopf")
            let id = try boundDevice(caller, "test.trigger_iopf", p.device)
            do {
                try hooks.triggerIOPF(deviceID: id, pasid: p.pasid ?? 0, groupID: p.group ?? 1, perm: p.perm ?? 1, address: p.address)
            } catch let error as IommuError {
                var hint = ""
                if error.errno == .ENOTTY { hint = "; this backend has no selftest fault hook (the kernel backend needs a CONFIG_IOMMUFD_TEST kernel and mock devices)" }
                throw BrokerError(.kernel, "test.trigger_iopf for device '\(p.device)' failed: \(error.operation) returned \(error.errno.name) (\(error.errno.message))\(hint)", kernel: error)
            }
            return TestTriggerResult(device: p.device, deviceID: id)
        }
    }
}
