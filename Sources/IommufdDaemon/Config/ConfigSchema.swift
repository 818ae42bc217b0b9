import TOMLKit

/// Every key of iommufdd.toml: its table, type, default and meaning. iommufdd.toml(5) is
/// generated from this list, and tests hold it to the decoder (every key it reads is here and
/// nothing else) and to `DaemonConfig.defaults` (each default shown is the one in force).
public struct ConfigKey: Sendable, Equatable {
    /// The table: `daemon`, `limits`, …; `[[…]]` tables are named as `access`, `sim.iommu`.
    public var table: String
    public var key: String
    /// How the value is written.
    public var type: String
    /// The default as TOML, to be parsed back by the tests; nil when there is none to write
    /// (unset, or a key of an entry that is added, not defaulted). `defaultText` says it in words.
    public var defaultTOML: String?
    public var defaultText: String
    public var meaning: String

    init(_ table: String, _ key: String, _ type: String, _ defaultTOML: String?, _ defaultText: String? = nil, _ meaning: String) {
        self.table = table
        self.key = key
        self.type = type
        self.defaultTOML = defaultTOML
        self.defaultText = defaultText ?? defaultTOML ?? "unset"
        self.meaning = meaning
    }

    /// Whether the table is an array of tables (`[[access]]`).
    public var inArrayOfTables: Bool { ConfigSchema.arraysOfTables.contains(table) }
}

public enum ConfigSchema {
    /// Tables written `[[name]]`, one per entry; the others are `[name]`.
    public static let arraysOfTables: Set<String> = ["access", "kernel.mock_devices", "sim.iommu", "sim.device"]

    /// What each table is for, in file order.
    public static let tables: [(name: String, meaning: String)] = [
        ("daemon", "The daemon itself: its socket when it creates one, the backend, logging."),
        ("limits", "What one client may cost the daemon."),
        ("policy", "Defaults for what a request does not say."),
        ("devices", "Which devices may be leased to owners."),
        ("access", "Who may connect, and as what. A peer (SO_PEERCRED) is matched first against user entries, then against group entries (its primary group or a supplementary one); the first match wins, and a peer matching none is refused at accept. One entry per user or group. Without any entry, root is an admin and nobody else may connect; listing any entry replaces that default, so keep root if root should stay admin."),
        ("kernel", "The kernel backend."),
        ("kernel.mock_devices", "The kernel's selftest mock devices to create (also written mock_devices = [{ name = \"mock0\" }, ...] in [kernel]). CONFIG_IOMMUFD_TEST kernels only, and only with allow_mock_devices."),
        ("sim", "The simulator (backend \"sim\", or \"auto\" without /dev/iommu)."),
        ("sim.iommu", "A simulated physical IOMMU instance. If the file defines no [[sim.iommu]] and no [[sim.device]], three are built in: sim-iommu0, an Intel VT-d with dirty tracking and nesting; sim-iommu1, an ARM SMMUv3 with nesting and vIOMMUs but no dirty tracking; and sim-iommu2, the kernel's selftest mock driver with dirty tracking, nesting, vIOMMUs and nested HWPTs."),
        ("sim.device", "A simulated device. Built in when none is defined: sim-pci0 and sim-pci1 (20-bit PASIDs) behind sim-iommu0, sim-pci2 behind sim-iommu1, sim-pci3 behind sim-iommu2, and the mdev-like sim-mdev0."),
    ]

    public static let keys: [ConfigKey] = [
        ConfigKey("daemon", "socket_path", "string (absolute path)", "\"/run/iommufdd/control.sock\"", nil,
                  "The control socket the daemon creates when it is not socket-activated. Under systemd, iommufdd.socket creates it instead (ListenStream=, SocketMode=, SocketGroup= there). Run as another user than root with this default, the daemon uses $XDG_RUNTIME_DIR/iommufdd/control.sock."),
        ConfigKey("daemon", "socket_mode", "string (octal)", "\"0660\"", nil,
                  "Permission bits of that socket. Connecting also needs an [[access]] entry; the mode only decides who can reach the socket at all."),
        ConfigKey("daemon", "socket_group", "string (group name) or integer (gid)", nil, "unset: the daemon's own group",
                  "Group of that socket."),
        ConfigKey("daemon", "backend", "\"auto\", \"kernel\" or \"sim\"", "\"auto\"", nil,
                  "Which iommufd to drive: \"kernel\" is /dev/iommu and the VFIO cdevs in /dev/vfio/devices (the daemon refuses to start without them); \"sim\" the in-memory simulator with the topology of [sim]; \"auto\" the kernel when /dev/iommu exists, else the simulator. --backend overrides it."),
        ConfigKey("daemon", "log_level", "\"trace\", \"debug\", \"info\", \"notice\", \"warning\", \"error\" or \"critical\"", "\"info\"", nil,
                  "The least severe level logged. --log-level overrides it; a reload applies it at once."),
        ConfigKey("limits", "max_message_bytes", "integer (1024 to 2^30)", "1048576", nil,
                  "The longest request (one JSON-RPC message, one line). Longer: an error, then the connection closes."),
        ConfigKey("limits", "max_clients", "integer (1 to 2^20)", "512", nil,
                  "Concurrent client connections. Further connections are accepted and closed at once."),
        ConfigKey("limits", "max_fds_per_message", "integer (0 to 253)", "16", nil,
                  "File descriptors accepted with one message (SCM_RIGHTS). The kernel's own cap is 253."),
        ConfigKey("limits", "idle_timeout_sec", "number of seconds (0 to a year)", "0", "0 (never)",
                  "Close a connection with nothing in flight after this long; 0 never does (a VM manager keeps one connection for a VM's lifetime, and event subscribers wait indefinitely)."),
        ConfigKey("limits", "partial_message_timeout_sec", "number of seconds (more than 0)", "10", nil,
                  "Close a connection that sent part of a message and stalled for this long."),
        ConfigKey("limits", "max_output_buffer_bytes", "integer (4096 to 2^34)", "16777216", nil,
                  "Replies queued for a client that does not read them. Past this, the connection closes."),
        ConfigKey("limits", "channel_busy_poll_us", "integer (0 to 1000)", "50", "50 (adaptive; 0: off)",
                  "Microseconds a VMM channel's thread may keep polling its socket without sleeping (yielding to any other runnable thread) after it answered a request, so a request sent within that window is read without a thread wake-up (under a hypervisor or QEMU TCG, a wake-up across CPUs costs more than a small request: docs/vmm-channel.md, \"Pipelining and busy polling\"). Adaptive, as rpc_spin_us: only when that channel's VMM came back within this long the time before (a VMM sending now and then costs one spin, then none), and no channel spins for 100 ms after a spin lost its CPU to other work. It costs CPU: up to this long per request of a VMM sending back to back (on the 2-vCPU benchmark machine 34 microseconds of process CPU a message spinning against 26 to 43 sleeping and being woken). A reload applies it to every channel. 0: the thread sleeps in poll(2) at once."),
        ConfigKey("limits", "rpc_linger_us", "integer (0 to 10000)", "200", "200 (0: never)",
                  "Microseconds the thread that answered a quick control-socket request (under 100 µs) waits on that client's socket for its next request, when no other connection is being served, before handing the socket back to Dispatch: a client sending requests back to back is then served without the epoll thread's hop (Benchmarks/RESULTS.md, target 3). Another connection's request takes the thread back at once. Read at start; a reload warns that it takes effect at the next start."),
        ConfigKey("limits", "rpc_spin_us", "integer (0 to 1000)", "50", "50 (0: never spin)",
                  "The first part of rpc_linger_us (at most all of it) during which that thread polls the socket without sleeping, yielding to any other runnable thread, for a client that came back within this long the time before: a sleeping thread must be woken, and on a VM whose idle vCPUs halt that wake-up costs more than a small request. It costs CPU: up to this long per request of such a client, only while no other connection is being served, and the server stops spinning for 100 ms when a spin loses its CPU to other work. Read at start."),
        ConfigKey("policy", "dirty_tracking", "\"off\", \"preferred\" or \"required\"", "\"off\"", nil,
                  "Dirty tracking for the HWPTs device.attach allocates when the request does not say: \"off\" never (no IOMMU_HWPT_ALLOC_DIRTY_TRACKING), \"preferred\" where the device's IOMMU supports it, \"required\" refuses devices whose IOMMU cannot track dirty pages."),
        ConfigKey("policy", "huge_pages", "boolean", "true", nil,
                  "IOMMU_OPTION_HUGE_PAGES for new IOAS. Off forces base-page mappings: finer dirty tracking of small working sets, at the cost of IOTLB reach and page-table memory."),
        ConfigKey("policy", "unmap_tolerate_missing", "boolean", "false", nil,
                  "Unmapping an IOVA range with no mapping in it: false answers ENOENT (iommufd's behaviour); true answers success with 0 bytes unmapped (what QEMU does for guest vIOMMU invalidations)."),
        ConfigKey("policy", "owner_pinned_bytes_quota", "integer (bytes), size string (\"64GiB\", \"512M\") or \"unlimited\"", "\"unlimited\"", nil,
                  "Guest memory one owner (one VM) may have pinned for DMA. [[access]] entries can override it."),
        ConfigKey("devices", "allow", "array of strings", "[]", "[] (no device)",
                  "Devices that may be leased to owners: PCI addresses (\"0000:03:00.0\"), VFIO cdev names (\"vfio3\" or \"/dev/vfio/devices/vfio3\"), simulated device names (\"sim-pci0\"), kernel mock device names. An empty list means no device may be handed out, except on the simulator backend, where an empty list allows every simulated device (for demos)."),
        ConfigKey("access", "user", "string (user name) or integer (uid)", nil, "none: an entry names user or group",
                  "The user this entry is for; a name is resolved when the file is read. Exactly one of user and group."),
        ConfigKey("access", "group", "string (group name) or integer (gid)", nil, "none: an entry names user or group",
                  "The group this entry is for: a peer whose primary or supplementary group it is."),
        ConfigKey("access", "role", "\"admin\", \"manager\" or \"reader\"", nil, "none: required",
                  "\"admin\": everything, on every owner; \"manager\": creates owners and acts on its own owners only; \"reader\": list, info, metrics, events."),
        ConfigKey("access", "trusted_vmm", "boolean", nil, "false",
                  "May receive bound device fds (device.fd). Whoever holds such an fd can attach that device to any IOAS of the shared iommufd, including another VM's, so grant it only to a VMM trusted with every VM. Not for readers."),
        ConfigKey("access", "pinned_bytes_quota", "integer (bytes), size string or \"unlimited\"", nil, "[policy] owner_pinned_bytes_quota",
                  "Overrides [policy] owner_pinned_bytes_quota for the owners this identity creates."),
        ConfigKey("kernel", "allow_mock_devices", "boolean", "false", nil,
                  "Create the kernel's selftest mock devices (IOMMU_TEST_CMD). Only on kernels built with CONFIG_IOMMUFD_TEST, a test configuration: never on a production host."),
        ConfigKey("kernel", "mock_devices", "array of tables", "[]", nil,
                  "The mock devices to create, as [[kernel.mock_devices]] entries (below) or inline: mock_devices = [{ name = \"mock0\" }, { name = \"mock1\", no_dirty = true }]. Needs allow_mock_devices."),
        ConfigKey("kernel", "test_hooks", "boolean", "false", nil,
                  "TEST ONLY: serve sim.dma on the kernel backend (a mock device writes guest memory through IOMMU_TEST_OP_DIRTY, so tests see dirty tracking work) and test.stall_main_queue (the daemon stops its watchdog pings, as a wedged daemon would), and honour IOMMUFDD_TEST_CRASH_POINT=N (the daemon kills itself at its Nth crash point, for the crash-point sweep). Needs allow_mock_devices."),
        ConfigKey("kernel.mock_devices", "name", "string (letters, digits, -, _, .)", nil, "none: required",
                  "The device's name, as clients and [devices] allow call it."),
        ConfigKey("kernel.mock_devices", "no_dirty", "boolean", nil, "false",
                  "Create it with MOCK_FLAGS_DEVICE_NO_DIRTY: its IOMMU refuses dirty tracking."),
        ConfigKey("kernel.mock_devices", "pasid", "boolean", nil, "false",
                  "Create it with MOCK_FLAGS_DEVICE_PASID: 20-bit PASIDs, for device.attach_pasid."),
        ConfigKey("sim", "test_hooks", "boolean", "false", nil,
                  "TEST ONLY: serve sim.dma (a simulated device writes guest memory, so tests see dirty tracking work), test.stall_main_queue (the daemon stops its watchdog pings) and test.sim_inventory (what the simulator holds), and honour IOMMUFDD_TEST_CRASH_POINT=N (the daemon kills itself at its Nth crash point, for the crash-point sweep). Never useful outside a test; no effect on the kernel backend."),
        ConfigKey("sim", "pin_ns_per_page", "integer (0 to 1000000000)", "0", nil,
                  "Nanoseconds the simulator takes to pin each page that an ioas.map or ioas.copy pins (into an IOAS with a device attached: where Linux pins at map time), slept after the simulated ioctl as the kernel's pinning would take. Linux pins fresh memory at about 0.25 s per GB (about 1000 ns per 4 KiB page): set that to see how long maps of large VMs behave, e.g. in scripts/bench. It models the time only, not the CPU, and not the pinning that attaching the first device to an IOAS with mappings does. 0: no delay."),
        ConfigKey("sim", "iommu", "array of tables", nil, "three built-in IOMMUs",
                  "The simulated IOMMUs, as [[sim.iommu]] entries (below)."),
        ConfigKey("sim", "device", "array of tables", nil, "five built-in devices",
                  "The simulated devices, as [[sim.device]] entries (below)."),
        ConfigKey("sim.iommu", "name", "string (letters, digits, -, _, .)", nil, "none: required", "Unique name."),
        ConfigKey("sim.iommu", "driver", "\"intel-vtd\", \"arm-smmuv3\" or \"selftest-mock\"", nil, "\"intel-vtd\"",
                  "The Linux 7.3 IOMMU driver it answers like. \"intel-vtd\": hw_info type INTEL_VTD, the x86 MSI window reserved; nesting gives nest-parent HWPTs but never a vIOMMU (IOMMU_VIOMMU_ALLOC is EOPNOTSUPP). \"arm-smmuv3\": hw_info type ARM_SMMUV3, the MSI window 0x8000000-0x80fffff reserved; nesting gives nest-parent HWPTs and vIOMMUs of type ARM_SMMUV3; dirty tracking never on a nest parent. \"selftest-mock\": the kernel's selftest mock driver (CONFIG_IOMMUFD_TEST): hw_info type SELFTEST, vIOMMUs of the selftest type, and nested HWPTs with selftest data (the only nested HWPTs the simulator models) and their cache invalidation."),
        ConfigKey("sim.iommu", "dirty_tracking", "boolean", nil, "false", "It can allocate HWPTs with dirty tracking."),
        ConfigKey("sim.iommu", "nesting", "boolean", nil, "false", "It can allocate nest-parent HWPTs, and vIOMMUs where its driver has them."),
        ConfigKey("sim.iommu", "shares_nest_parent", "boolean", nil, "true for \"selftest-mock\", else false",
                  "Its driver takes a nest-parent HWPT allocated behind another instance of the same driver that shares too: its devices attach to it and IOMMU_VIOMMU_ALLOC accepts it (Linux 7.3's sharable nesting parent across physical IOMMUs; the mock driver checks no instance). false: both are EINVAL, and the daemon gives this instance a nest parent of its own (docs/nested.md, \"One shared stage 2\")."),
        ConfigKey("sim.device", "name", "string (letters, digits, -, _, .)", nil, "none: required", "Unique name: what clients call the device."),
        ConfigKey("sim.device", "iommu", "string", nil, "none: required unless mdev", "The [[sim.iommu]] it sits behind (not for mdev-like devices)."),
        ConfigKey("sim.device", "pci_address", "string (\"dddd:bb:dd.f\")", nil, "unset", "Its PCI address (not for mdev-like devices)."),
        ConfigKey("sim.device", "mdev", "boolean", nil, "false", "mdev-like: no IOMMU of its own, no HWPT; attaches to an IOAS only."),
        ConfigKey("sim.device", "dirty_tracking", "boolean", nil, "true (false for mdev)", "false: the device refuses dirty tracking even behind a dirty-capable IOMMU."),
        ConfigKey("sim.device", "pasid_width", "integer (0 to 20)", nil, "0",
                  "The device's PASID width in bits (IOMMU_GET_HW_INFO out_max_pasid_log2), for device.attach_pasid; 0: no PASID. Not for mdev-like devices."),
    ]
}

extension ConfigSchema {
    /// The keys the decoder looks up while reading `text`, as `table.key` (for the tests that
    /// hold this schema to the decoder).
    static func keysConsulted(reading text: String) throws -> Set<String> {
        let table = try TOMLTable(string: text)
        var decoder = ConfigDecoder(file: "schema", source: text, names: NameResolver(uid: { _ in 0 }, gid: { _ in 0 }))
        _ = decoder.decode(table)
        return decoder.consulted
    }
}
