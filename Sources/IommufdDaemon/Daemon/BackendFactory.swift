import Foundation
import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdKernel
import IommufdSim

/// Chooses and opens the backend: `auto` is the kernel when `/dev/iommu` exists, else the
/// simulator with the configured topology, so the daemon runs anywhere.
public enum BackendFactory {
    /// Why a backend could not be opened, in words an operator can act on.
    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
    }

    public static func resolve(_ backend: Backend, iommuPath: String = "/dev/iommu") -> BackendKind {
        switch backend {
        case .kernel: .kernel
        case .sim: .sim
        case .auto: FileManager.default.fileExists(atPath: iommuPath) ? .kernel : .sim
        }
    }

    public static func open(_ config: DaemonConfig) throws(OpenError) -> any IommuBackend {
        switch resolve(config.daemon.backend) {
        case .kernel:
            var options = KernelBackendOptions()
            if config.kernel.allowMockDevices {
                options.mockDevices = config.kernel.mockDevices.map { MockDeviceSpec(name: $0.name, noDirty: $0.noDirty, pasid: $0.pasid) }
            }
            do {
                return try KernelBackend(options: options)
            } catch let error as IommuError {
                var hint = "check that the iommufd module is loaded and the daemon runs as root"
                if error.errno == .ENOENT { hint = "this kernel has no /dev/iommu (CONFIG_IOMMUFD, Linux >= 6.2); use --backend sim to run on the simulator" }
                if error.errno == .EACCES || error.errno == .EPERM { hint = "/dev/iommu is root-only: run iommufdd as root (or under its systemd unit)" }
                throw OpenError(description: "cannot open the kernel backend: \(error); \(hint)")
            } catch {
                throw OpenError(description: "cannot open the kernel backend: \(error)")
            }
        case .sim:
            do {
                return try SimBackend(topology: simTopology(config.sim), pinNanosecondsPerPage: config.sim.pinNsPerPage)
            } catch {
                throw OpenError(description: "cannot start the simulator: \(error)")
            }
        }
    }

    /// The simulator's topology from the `[sim]` section of the config.
    public static func simTopology(_ sim: DaemonConfig.Sim) -> SimTopology {
        SimTopology(
            iommus: sim.iommus.map { iommu in
                var built: SimTopology.IOMMU =
                    switch iommu.driver {
                    case .intelVTd: .intelVTd(name: iommu.name, dirtyTracking: iommu.dirtyTracking, nesting: iommu.nesting)
                    case .armSMMUv3: .armSMMUv3(name: iommu.name, dirtyTracking: iommu.dirtyTracking, nesting: iommu.nesting)
                    case .selftestMock: .selftestMock(name: iommu.name, dirtyTracking: iommu.dirtyTracking, nesting: iommu.nesting)
                    }
                if let shares = iommu.sharesNestParent { built.sharesNestParent = shares }  // nestedgaps
                return built
            },
            devices: sim.devices.map {
                SimTopology.Device(
                    name: $0.name, iommu: $0.mdev ? nil : $0.iommu, pciAddress: $0.pciAddress,
                    dirtyTracking: $0.mdev ? nil : $0.dirtyTracking, pasidWidth: $0.pasidWidth == 0 ? nil : $0.pasidWidth)
            })
    }
}

/// The broker's settings from the daemon's config.
enum BrokerSettings {
    static func make(_ config: DaemonConfig, backend: BackendKind) -> BrokerConfig {
        let rules = config.access.map { rule -> IommufdBroker.AccessRule in
            let subject: IommufdBroker.AccessRule.Subject
            let name: String?
            switch rule.subject {
            case .user(let id, let n):
                subject = .uid(id)
                name = n
            case .group(let id, let n):
                subject = .gid(id)
                name = n
            }
            let quota = config.pinnedBytesQuota(for: rule)
            return IommufdBroker.AccessRule(
                subject, role: IommufdBroker.Role(rawValue: rule.role.rawValue) ?? .reader, name: name,
                trustedVMM: rule.trustedVMM, quotaBytes: quota.limit)
        }
        var allRules = rules
        // Whoever runs the daemon controls it anyway: a non-root developer running
        // `swift run iommufdd` is its admin.
        let me = getuid()
        if me != 0, !rules.contains(where: { $0.subject == .uid(me) }) {
            allRules.insert(IommufdBroker.AccessRule(.uid(me), role: .admin, name: AccessControl.userName(uid: me)), at: 0)
        }
        let allowList: DeviceAllowList
        if config.devices.allow.isEmpty && backend == .sim {
            // The simulator's devices are make-believe: with no allow-list every one of them
            // may be leased, so the demo works out of the box. The kernel backend never does this.
            allowList = .all
        } else {
            allowList = DeviceAllowList(config.devices.allow.map(\.allowListEntry))
        }
        return BrokerConfig(
            access: AccessControl(rules: allRules),
            allowList: allowList,
            defaults: OwnerPolicy(
                tolerateMissing: config.policy.unmapTolerateMissing,
                dirty: DirtyPolicy(rawValue: config.policy.dirtyTracking.rawValue) ?? .off,
                hugePages: config.policy.hugePages),
            // The broker infers the vIOMMU type from GET_HW_INFO (ARM SMMUv3, the selftest mock),
            // on the simulator as on real hardware.
            defaultVIOMMUType: nil)
    }
}

extension ByteQuota {
    /// The limit in bytes; nil when unlimited.
    var limit: UInt64? {
        switch self {
        case .unlimited: nil
        case .bytes(let n): n
        }
    }
}

extension DeviceMatch {
    var allowListEntry: String {
        switch self {
        case .pciAddress(let a): a
        case .name(let n): n
        }
    }
}
