import IommufdCore
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The daemon's configuration, as read from `iommufdd.toml` (see `config/iommufdd.toml`, which
/// spells out every key with its default). Every field has a default, so an empty file — or no
/// file at all — is a valid configuration.
public struct DaemonConfig: Sendable, Equatable {
    public var daemon = Daemon()
    public var limits = Limits()
    public var policy = Policy()
    public var devices = Devices()
    /// Who may connect and with which role. A connection matching no entry is refused at accept.
    public var access: [AccessRule] = DaemonConfig.defaultAccess
    public var kernel = Kernel()
    public var sim = Sim()

    public init() {}

    /// The built-in configuration: what the daemon runs with when no file exists.
    public static let defaults = DaemonConfig()

    /// Where the daemon looks for its file when `--config` is not given.
    public static let defaultPath = "/etc/iommufdd/iommufdd.toml"

    /// Root is an admin unless the file's `[[access]]` entries say otherwise.
    public static let defaultAccess: [AccessRule] = [
        AccessRule(subject: .user(id: 0, name: nil), role: .admin)
    ]

    /// `[daemon]`
    public struct Daemon: Sendable, Equatable {
        /// `socket_path`: the control socket, when the daemon creates it (no socket activation).
        public var socketPath = "/run/iommufdd/control.sock"
        /// `socket_mode`: permission bits of that socket, given in the file as an octal string.
        public var socketMode: mode_t = 0o660
        /// `socket_group`: the socket's group (name or number); nil keeps the daemon's own group.
        public var socketGroup: GroupRef?
        /// `backend`
        public var backend: Backend = .auto
        /// `log_level`
        public var logLevel: Logger.Level = .info
        public init() {}
    }

    /// `[limits]`: what one client may cost the daemon.
    public struct Limits: Sendable, Equatable {
        /// `max_message_bytes`: the longest request line; longer ones are refused and the
        /// connection closed.
        public var maxMessageBytes = 1 << 20
        /// `max_clients`: concurrent connections; more are accepted and closed at once.
        public var maxClients = 512
        /// `max_fds_per_message`: SCM_RIGHTS fds accepted with one message (the kernel's
        /// SCM_MAX_FD is 253).
        public var maxFDsPerMessage = 16
        /// `idle_timeout_sec`: close a connection with nothing in flight after this long;
        /// nil (0 in the file) never does, which event subscribers need.
        public var idleTimeout: Duration?
        /// `partial_message_timeout_sec`: close a connection that started a message and has not
        /// finished it after this long.
        public var partialMessageTimeout: Duration = .seconds(10)
        /// `max_output_buffer_bytes`: replies queued for a client that does not read them; past
        /// this the connection is closed.
        public var maxOutputBufferBytes = 16 << 20
        /// `channel_busy_poll_us` (MARK: kinval, chspin): how long a VMM channel's thread may
        /// poll for the next request without sleeping after answering one, when that channel's
        /// VMM came back that quickly the time before (IommufdCore's AdaptiveSpin); 0 never does.
        public var channelBusyPollMicroseconds: UInt32 = 50
        /// `rpc_linger_us`: how long the thread that answered a quick request waits on that
        /// client's socket for its next one (RPCLimits.lingerMicroseconds); 0 never does.
        public var rpcLingerMicroseconds = 200
        /// `rpc_spin_us`: the first part of that wait spent polling without sleeping, for a
        /// client that came back that quickly the time before (RPCLimits.lingerSpinMicroseconds).
        public var rpcSpinMicroseconds = 50
        public init() {}
    }

    /// `[policy]`: defaults for what a request does not say.
    public struct Policy: Sendable, Equatable {
        /// `dirty_tracking`
        public var dirtyTracking: DirtyTrackingPolicy = .off
        /// `huge_pages`: `IOMMU_OPTION_HUGE_PAGES` for new IOAS (the kernel's default is on).
        public var hugePages = true
        /// `unmap_tolerate_missing`: unmapping a range with no mapping is a 0-byte success
        /// instead of ENOENT.
        public var unmapTolerateMissing = false
        /// `owner_pinned_bytes_quota`: bytes of guest memory one owner may have pinned.
        public var ownerPinnedBytesQuota: ByteQuota = .unlimited
        public init() {}
    }

    /// `[devices]`
    public struct Devices: Sendable, Equatable {
        /// `allow`: devices that may be leased to owners. Empty: none may be.
        public var allow: [DeviceMatch] = []
        public init() {}

        /// Whether the allow-list admits `device` (by name, cdev path or PCI address).
        public func allows(_ device: DeviceDescriptor) -> Bool {
            allow.contains { $0.matches(device) }
        }
    }

    /// `[kernel]`: settings of the kernel backend.
    public struct Kernel: Sendable, Equatable {
        /// `allow_mock_devices`: create the kernel's selftest mock devices (`IOMMU_TEST_CMD`,
        /// CONFIG_IOMMUFD_TEST kernels only). Never on a production host.
        public var allowMockDevices = false
        /// `mock_devices`
        public var mockDevices: [MockDevice] = []
        /// `test_hooks`: serve `sim.dma` on the kernel backend: a mock device "writes" pages
        /// (`IOMMU_TEST_OP_DIRTY`), for end-to-end tests of dirty tracking; and
        /// `test.stall_main_queue`, for the watchdog test. Needs `allow_mock_devices`; test-only.
        public var testHooks = false
        public init() {}
    }

    /// `[sim]`: the simulator's topology.
    public struct Sim: Sendable, Equatable {
        /// `[[sim.iommu]]`
        public var iommus: [SimIOMMU] = Sim.defaultIOMMUs
        /// `[[sim.device]]`
        public var devices: [SimDevice] = Sim.defaultDevices
        /// `test_hooks`: serve `sim.dma` (a simulated device write, for end-to-end tests of
        /// dirty tracking) and `test.stall_main_queue` (the watchdog test). Test-only; has no
        /// effect on the kernel backend.
        public var testHooks = false
        /// `pin_ns_per_page`: nanoseconds the simulator spends pinning each page a map or copy
        /// pins (into an IOAS with a domain attached), to model the kernel's pinning cost.
        public var pinNsPerPage: UInt64 = 0
        public init() {}

        /// Used when the file defines neither `[[sim.iommu]]` nor `[[sim.device]]`.
        /// One Intel VT-d unit with dirty tracking and nest parents (no vIOMMU: VT-d has none),
        /// one ARM SMMUv3 with nesting and vIOMMUs but no dirty tracking (no HTTU), and one
        /// instance of the kernel's selftest mock driver with dirty tracking and nesting: the
        /// driver whose nested HWPTs (stage 1 over a nest parent) the simulator models, so a
        /// guest with nested translation can be shown end to end. sim-pci1 has 20-bit PASIDs.
        public static let defaultIOMMUs: [SimIOMMU] = [
            SimIOMMU(name: "sim-iommu0", driver: .intelVTd, dirtyTracking: true, nesting: true),
            SimIOMMU(name: "sim-iommu1", driver: .armSMMUv3, dirtyTracking: false, nesting: true),
            SimIOMMU(name: "sim-iommu2", driver: .selftestMock, dirtyTracking: true, nesting: true),
        ]
        public static let defaultDevices: [SimDevice] = [
            SimDevice(name: "sim-pci0", iommu: "sim-iommu0", pciAddress: "0000:00:02.0"),
            // i14audit: 20-bit PASIDs (as VT-d devices commonly have), for the README's PASID steps.
            SimDevice(name: "sim-pci1", iommu: "sim-iommu0", pciAddress: "0000:00:03.0", pasidWidth: 20),
            SimDevice(name: "sim-pci2", iommu: "sim-iommu1", pciAddress: "0000:00:04.0"),
            SimDevice(name: "sim-pci3", iommu: "sim-iommu2", pciAddress: "0000:01:00.0"),
            SimDevice(name: "sim-mdev0", iommu: nil, pciAddress: nil, mdev: true, dirtyTracking: false),
        ]
    }
}

/// A limit in bytes, or none. In the file: an integer (bytes), a string with a binary unit
/// (`"64GiB"`, `"512M"`), or `"unlimited"`.
public enum ByteQuota: Sendable, Equatable, CustomStringConvertible {
    case unlimited
    case bytes(UInt64)

    /// Whether `total` bytes fit.
    public func admits(_ total: UInt64) -> Bool {
        switch self {
        case .unlimited: true
        case .bytes(let limit): total <= limit
        }
    }

    public var description: String {
        switch self {
        case .unlimited: "unlimited"
        case .bytes(let n): "\(n) bytes"
        }
    }
}

/// `[daemon] backend`
public enum Backend: String, Sendable, CaseIterable, Equatable {
    /// The kernel when `/dev/iommu` exists, else the simulator.
    case auto
    case kernel
    case sim
}

/// `dirty_tracking` policy for attachments that do not name one.
public enum DirtyTrackingPolicy: String, Sendable, CaseIterable, Equatable {
    /// HWPTs are allocated without `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`.
    case off
    /// With dirty tracking where the device's IOMMU supports it, without elsewhere.
    case preferred
    /// Refuse devices whose IOMMU cannot track dirty pages.
    case required
}

/// A group given by name or by number, resolved when the file is loaded.
public struct GroupRef: Sendable, Equatable {
    public var gid: gid_t
    /// The name as written in the file, when it was a name.
    public var name: String?
    public init(gid: gid_t, name: String? = nil) {
        self.gid = gid
        self.name = name
    }
}

/// What an `[[access]]` entry grants.
public enum Role: String, Sendable, CaseIterable, Equatable, Comparable {
    /// list / info / metrics / events.subscribe.
    case reader
    /// Creates owners and acts on its own owners only.
    case manager
    /// Everything, on every owner.
    case admin

    private var rank: Int {
        switch self {
        case .reader: 0
        case .manager: 1
        case .admin: 2
        }
    }
    public static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }
}

/// One `[[access]]` entry.
public struct AccessRule: Sendable, Equatable {
    public enum Subject: Sendable, Equatable {
        /// `user = "name"` or `user = 1000`.
        case user(id: uid_t, name: String?)
        /// `group = "name"` or `group = 1000`: the peer's primary or a supplementary group.
        case group(id: gid_t, name: String?)
    }
    public var subject: Subject
    public var role: Role
    /// `trusted_vmm`: may receive bound device fds (`device.fd`). Such an fd can attach its
    /// device to any IOAS of the shared iommufd, so only a VMM trusted with every VM gets it.
    public var trustedVMM: Bool
    /// `pinned_bytes_quota`: overrides `[policy] owner_pinned_bytes_quota` for the owners this
    /// identity creates. nil: the policy default applies.
    public var pinnedBytesQuota: ByteQuota?
    public init(subject: Subject, role: Role, trustedVMM: Bool = false, pinnedBytesQuota: ByteQuota? = nil) {
        self.subject = subject
        self.role = role
        self.trustedVMM = trustedVMM
        self.pinnedBytesQuota = pinnedBytesQuota
    }
}

extension DaemonConfig {
    /// The `[[access]]` entry that applies to a peer (from `SO_PEERCRED`, plus its supplementary
    /// groups when known): the first entry naming its uid, else the first naming one of its
    /// groups. nil: the peer is refused.
    public func accessRule(uid: uid_t, gid: gid_t, supplementaryGroups: [gid_t] = []) -> AccessRule? {
        for rule in access {
            if case .user(let id, _) = rule.subject, id == uid { return rule }
        }
        for rule in access {
            if case .group(let id, _) = rule.subject, id == gid || supplementaryGroups.contains(id) {
                return rule
            }
        }
        return nil
    }

    /// The pinned-byte quota for owners created by `rule`'s identity.
    public func pinnedBytesQuota(for rule: AccessRule) -> ByteQuota {
        rule.pinnedBytesQuota ?? policy.ownerPinnedBytesQuota
    }
}

/// One entry of `[devices] allow`.
public enum DeviceMatch: Sendable, Equatable, CustomStringConvertible {
    /// A PCI function, normalized to `dddd:bb:dd.f` in lower case.
    case pciAddress(String)
    /// A device name: a VFIO cdev (`vfio3`), a simulated or a mock device name.
    case name(String)

    public func matches(_ device: DeviceDescriptor) -> Bool {
        switch self {
        case .pciAddress(let address):
            return device.pciAddress.map { PCIAddress.normalize($0) == address } ?? false
        case .name(let name):
            if device.name == name { return true }
            if let cdev = device.cdevPath, cdev == name || cdev.hasSuffix("/" + name) { return true }
            return false
        }
    }

    public var description: String {
        switch self {
        case .pciAddress(let a): a
        case .name(let n): n
        }
    }
}

/// `[[kernel.mock_devices]]` / `mock_devices = [{ ... }]`
public struct MockDevice: Sendable, Equatable {
    public var name: String
    /// Create it with `MOCK_FLAGS_DEVICE_NO_DIRTY`: its IOMMU refuses dirty tracking.
    public var noDirty: Bool
    /// `pasid`: create it with `MOCK_FLAGS_DEVICE_PASID` (20-bit PASIDs).
    public var pasid: Bool
    public init(name: String, noDirty: Bool = false, pasid: Bool = false) {
        self.name = name
        self.noDirty = noDirty
        self.pasid = pasid
    }
}

/// `[[sim.iommu]]`: a simulated physical IOMMU instance.
public struct SimIOMMU: Sendable, Equatable {
    public var name: String
    /// `driver`: the kernel IOMMU driver it behaves like.
    public var driver: SimIOMMUDriver
    /// It can allocate HWPTs with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`.
    public var dirtyTracking: Bool
    /// It can allocate nest-parent HWPTs, and vIOMMUs where its driver has them (ARM SMMUv3).
    public var nesting: Bool
    /// `shares_nest_parent` (nestedgaps): its driver takes another instance's nest parent
    /// (`SimTopology.IOMMU.sharesNestParent`); nil: the driver's default (selftest-mock only).
    public var sharesNestParent: Bool? = nil
    public init(name: String, driver: SimIOMMUDriver = .intelVTd, dirtyTracking: Bool = false, nesting: Bool = false) {
        self.name = name
        self.driver = driver
        self.dirtyTracking = dirtyTracking
        self.nesting = nesting
    }
}

/// `[[sim.iommu]] driver`: which Linux 7.3 IOMMU driver a simulated instance answers like
/// (hw_info type, reserved regions, what nesting means).
public enum SimIOMMUDriver: String, Sendable, CaseIterable, Equatable {
    /// drivers/iommu/intel: nest-parent HWPTs but no vIOMMU (IOMMU_VIOMMU_ALLOC is EOPNOTSUPP).
    case intelVTd = "intel-vtd"
    /// drivers/iommu/arm/arm-smmu-v3: nest-parent HWPTs and vIOMMUs of type ARM_SMMUV3; dirty
    /// tracking never on a nest parent.
    case armSMMUv3 = "arm-smmuv3"
    /// The kernel selftest's mock IOMMU driver (CONFIG_IOMMUFD_TEST): nest-parent HWPTs,
    /// vIOMMUs of the selftest type, and the one driver whose nested HWPTs (selftest data) and
    /// cache invalidation the simulator models.
    case selftestMock = "selftest-mock"
}

/// `[[sim.device]]`: a simulated device.
public struct SimDevice: Sendable, Equatable {
    public var name: String
    /// The `[[sim.iommu]]` it sits behind; nil for an mdev-like device.
    public var iommu: String?
    public var pciAddress: String?
    /// mdev-like: no IOMMU of its own, no HWPT; attaches to an IOAS only.
    public var mdev: Bool
    /// false: the device refuses dirty tracking even behind a dirty-capable IOMMU.
    public var dirtyTracking: Bool
    /// `pasid_width`: the device's PASID width in bits (0: no PASID; at most 20).
    public var pasidWidth: UInt8
    public init(
        name: String, iommu: String?, pciAddress: String?, mdev: Bool = false, dirtyTracking: Bool = true, pasidWidth: UInt8 = 0
    ) {
        self.name = name
        self.iommu = iommu
        self.pciAddress = pciAddress
        self.mdev = mdev
        self.dirtyTracking = dirtyTracking
        self.pasidWidth = pasidWidth
    }
}

/// PCI addresses in the `domain:bus:device.function` form sysfs uses.
public enum PCIAddress {
    /// `0000:03:00.0` (or `03:00.0`, domain 0) in canonical lower-case form; nil if malformed.
    public static func parse(_ text: String) -> String? {
        var parts = text.lowercased().split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 2 { parts.insert("0000", at: 0) }
        guard parts.count == 3 else { return nil }
        let devFn = parts[2].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard devFn.count == 2,
            let domain = UInt32(parts[0], radix: 16), parts[0].count <= 8, !parts[0].isEmpty,
            let bus = UInt8(parts[1], radix: 16), parts[1].count == 2,
            let dev = UInt8(devFn[0], radix: 16), devFn[0].count == 2, dev < 32,
            let fn = UInt8(devFn[1], radix: 10), devFn[1].count == 1, fn < 8
        else { return nil }
        let hexDomain = String(domain, radix: 16)
        let paddedDomain = String(repeating: "0", count: max(0, 4 - hexDomain.count)) + hexDomain
        func hex2(_ v: UInt8) -> String { v < 16 ? "0" + String(v, radix: 16) : String(v, radix: 16) }
        return "\(paddedDomain):\(hex2(bus)):\(hex2(dev)).\(fn)"
    }

    /// `parse(text)`, or the text unchanged when it is not a PCI address.
    static func normalize(_ text: String) -> String { parse(text) ?? text }
}
