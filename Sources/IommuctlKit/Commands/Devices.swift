import ArgumentParser
import IommufdContract
import IommufdCore
import IommufdRPC

/// `iommuctl devices`: `device.list` as a table.
struct Devices: DaemonCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the devices the daemon knows, their IOMMU, lease and attachment.",
        discussion: """
            Calls device.list. ALLOWED says whether the config's allow-list lets the device be \
            handed out; OWNER is the owner holding its lease ("(other)" when it is leased to an \
            owner you cannot see); ATTACHED says what its DMA goes through: an HWPT of an IOAS, \
            or the IOAS itself for mdev-like devices.

            Example:
              $ iommuctl devices
              DEVICE     KIND       PCI ADDRESS   IOMMU       GROUP  ALLOWED  OWNER  DEV ID  ATTACHED        CAPABILITIES
              sim-mdev0  mdev       -             -               -  yes      -           -  -               -
              sim-pci0   simulated  0000:00:02.0  sim-iommu0      0  yes      vm1         2  IOAS 1, HWPT 3  dirty-tracking (Intel VT-d)
            """)

    @Option(help: "Only devices leased to this owner.")
    var owner: String?

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("device.list", encoding: DeviceListParams(owner: owner))
        try context.emit(result, as: DeviceListResult.self) { Self.render($0.devices) }
    }

    static func render(_ devices: [DeviceInfo]) -> String {
        var table = Table([
            .init("device"), .init("kind"), .init("pci address"), .init("iommu"), .init("group", .right),
            .init("allowed"), .init("owner"), .init("dev id", .right), .init("attached"), .init("capabilities"),
        ])
        for d in devices.sorted(by: { $0.name < $1.name }) {
            table.add([
                d.name, d.kind.rawValue, d.pciAddress ?? "", d.iommuInstance ?? "",
                d.iommuGroup.map(String.init) ?? "", Words.yesNo(d.allowed), owner(d),
                d.deviceID.map(String.init) ?? "", attachment(d), d.capabilities.map(Words.capabilities) ?? "",
            ])
        }
        return table.render(empty: "no devices")
    }

    static func owner(_ d: DeviceInfo) -> String {
        if let owner = d.owner { return owner }
        return d.leased ? "(other)" : ""
    }

    /// `IOAS 2, HWPT 3`; `IOAS 2 (direct)` for a device attached to the IOAS itself.
    static func attachment(_ d: DeviceInfo) -> String {
        guard let ioas = d.ioas else { return "" }
        guard let pt = d.pt, pt != ioas else { return "IOAS \(ioas) (direct)" }
        return "IOAS \(ioas), HWPT \(pt)"
    }
}

/// `iommuctl device ...`
struct DeviceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device",
        abstract: "Attach, detach, re-attach and inspect one device.",
        discussion: """
            A device is named by its daemon name (vfio3, sim0) or its PCI address. Attaching \
            leases it to the owner; it stays leased (and bound) until `device release` or \
            `owner release`. `iommuctl devices` lists them all.

            device.fd (handing the bound device fd to a trusted VMM) has no command: the fd is \
            only useful to the process that receives it, which is a VMM, not a shell.
            """,
        subcommands: [
            DeviceInfoCommand.self, DeviceAttach.self, DeviceDetach.self, DeviceReplace.self, DeviceRelease.self,
            // MARK: pasid
            DeviceAttachPASID.self, DeviceReplacePASID.self, DeviceDetachPASID.self,
        ])
}

struct DeviceInfoCommand: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show one device: IOMMU instance, group, lease, attachment, capabilities.",
        discussion: """
            Calls device.info. For a bound device, the capabilities and the vendor data are \
            what IOMMU_GET_HW_INFO answered: PASID width, ATS, and the IOMMU driver's registers \
            (VT-d CAP/ECAP, SMMUv3 IDR0-5/IIDR/AIDR, ...), which a VMM compares with its vIOMMU \
            model before creating one. --json has them decoded (capabilities.vendor) and raw.

            Example:
              $ iommuctl device info sim-pci0
              ...
              capabilities  dirty-tracking (Intel VT-d)
              pasid         no
              ats           not supported (IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED)
              vendor data   intel_vtd, 24 bytes
              cap_reg       0x9ff078c206f0466
              ecap_reg      0x1eb9824f0505e
            """)

    @Argument(help: "Device name or PCI address.")
    var device: String

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("device.info", encoding: DeviceInfoParams(device: device))
        try context.emit(result, as: DeviceInfo.self, human: Self.render)
    }

    static func render(_ d: DeviceInfo) -> String {
        var f = Fields()
        f.add("device", d.name)
        f.add("kind", d.kind.rawValue)
        f.addIfPresent("pci address", d.pciAddress)
        f.addIfPresent("vendor:device", d.vendorDevice)
        f.addIfPresent("driver", d.driver)
        f.add("iommu", d.iommuInstance ?? "none (no IOMMU: mdev-like, DMA through the IOAS)")
        f.addIfPresent("iommu group", d.iommuGroup.map(String.init))
        f.add("allowed", d.allowed ? "yes" : "no (not on the config's allow-list)")
        f.add("owner", d.owner ?? (d.leased ? "leased to an owner you cannot see" : "not leased"))
        f.add("device id", d.deviceID.map { "\($0) (bound)" } ?? "not bound")
        f.add("attached", Devices.attachment(d).isEmpty ? "no" : Devices.attachment(d))
        f.addIfPresent("capabilities", d.capabilities.map(Words.capabilities))
        if let c = d.capabilities {
            f.add("pasid", Words.pasid(c))
            if let pasids = d.pasids, !pasids.isEmpty {  // pasid
                f.add("pasids", pasids.map { "\($0.pasid) on HWPT \($0.hwpt.map(String.init) ?? "?")" }.joined(separator: ", "))
            }
            if let ats = c.ats { f.add("ats", ats ? "may be used" : "not supported (IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED)") }
            for (key, value) in Words.vendorData(c.vendor) { f.add(key, value) }
        }
        return f.render()
    }
}

/// Options naming where a device goes: an IOAS (auto-domain policy) or an HWPT.
struct AttachTargetOptions: ParsableArguments {
    @Option(help: "Attach through the auto-domain policy into this IOAS (reuses a compatible HWPT or allocates one).")
    var ioas: UInt32?

    @Option(help: "Attach to this HWPT (from `hwpt alloc`) instead.")
    var hwpt: UInt32?

    @Option(help: ArgumentHelp("Dirty-tracking policy of a new HWPT. (default: the owner's policy)", valueName: "policy"))
    var dirty: DirtyPolicy?

    func validate() throws {
        if (ioas == nil) == (hwpt == nil) {
            throw ValidationError("name exactly one of --ioas or --hwpt")
        }
    }
}

struct DeviceAttach: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Lease a device to an owner and attach it to an IOAS or HWPT.",
        discussion: """
            With --ioas, the daemon's auto-domain policy picks the page table: a compatible \
            HWPT of that IOAS if there is one, else a new HWPT (with dirty tracking per \
            --dirty), else (for mdev-like devices without an IOMMU) the IOAS itself. An HWPT \
            the daemon creates goes away when its last device leaves.

            Examples:
              iommuctl device attach vfio3 --owner vm1 --ioas 1
              iommuctl device attach 0000:03:00.0 --owner vm1 --ioas 1 --dirty required
              iommuctl device attach vfio3 --owner vm1 --hwpt 7

            --dirty required fails (exit status 8) on a device whose IOMMU cannot track dirty \
            pages; a device off the allow-list or leased to another owner is refused (4 or 6).
            """)

    @Argument(help: "Device name or PCI address.")
    var device: String

    @Option(help: "The owner that leases the device.")
    var owner: String

    @OptionGroup var target: AttachTargetOptions

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let params = DeviceAttachParams(owner: owner, device: device, ioas: target.ioas, hwpt: target.hwpt, dirty: target.dirty)
        let result = try context.call("device.attach", encoding: params)
        try context.emit(result, as: DeviceAttachResult.self) { Self.render($0, verb: "attached") }
    }

    static func render(_ r: DeviceAttachResult, verb: String) -> String {
        var line = "\(r.device) (device id \(r.deviceID)) \(verb) to "
        if r.pt == r.ioas {
            line += "IOAS \(r.ioas) directly (no HWPT: the device has no IOMMU of its own)"
        } else {
            line += "HWPT \(r.pt) of IOAS \(r.ioas)"
            var notes: [String] = [r.hwptCreated ? "new" : "shared"]
            notes.append(r.dirtyTracking ? "dirty tracking capable" : "no dirty tracking")
            line += " (\(notes.joined(separator: ", ")))"
        }
        var lines = [line]
        if let previous = r.previousPT { lines.append("left page table \(previous)") }
        if !r.destroyedHWPTs.isEmpty { lines.append("destroyed unused HWPT \(Words.ids(r.destroyedHWPTs))") }
        return lines.joined(separator: "\n")
    }
}

struct DeviceDetach: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach",
        abstract: "Detach a device from its page table (it stays leased and bound).",
        discussion: "An HWPT the daemon created for it is destroyed when this was its last device.")

    @Argument(help: "Device name or PCI address.")
    var device: String

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("device.detach", encoding: DeviceDetachParams(device: device))
        try context.emit(result, as: DeviceDetachResult.self) { r in
            var lines = ["\(r.device) detached from page table \(r.previousPT)"]
            if !r.destroyedHWPTs.isEmpty { lines.append("destroyed unused HWPT \(Words.ids(r.destroyedHWPTs))") }
            return lines.joined(separator: "\n")
        }
    }
}

struct DeviceReplace: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "replace",
        abstract: "Move an attached device to another IOAS or HWPT without a DMA gap.",
        discussion: """
            Uses the kernel's replace (VFIO_DEVICE_ATTACH_IOMMUFD_PT on an attached device): \
            DMA is never blocked in between.

            Example:
              iommuctl device replace vfio3 --hwpt 9
            """)

    @Argument(help: "Device name or PCI address.")
    var device: String

    @OptionGroup var target: AttachTargetOptions

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let params = DeviceReplaceParams(device: device, ioas: target.ioas, hwpt: target.hwpt, dirty: target.dirty)
        let result = try context.call("device.replace", encoding: params)
        try context.emit(result, as: DeviceAttachResult.self) { DeviceAttach.render($0, verb: "moved") }
    }
}

struct DeviceRelease: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "End an owner's lease on a device (detaches and unbinds it).")

    @Argument(help: "Device name or PCI address.")
    var device: String

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("device.release", encoding: DeviceReleaseParams(device: device))
        try context.emit(result, as: DeviceReleaseResult.self) { "\($0.device) released by owner \($0.owner)" }
    }
}
