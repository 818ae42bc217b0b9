import ArgumentParser
import IommufdContract
import IommufdCore
import IommufdRPC

/// `iommuctl viommu ...`
struct VIOMMUCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "viommu",
        abstract: "Create and destroy virtual IOMMUs (Linux >= 6.13).",
        discussion: """
            A vIOMMU sits on one physical IOMMU instance, over a nest-parent HWPT of the VM's \
            IOAS. The daemon keeps one nest parent per IOMMU instance per IOAS, shared by the \
            vIOMMUs on it, and moves the device onto it if needed.
            """,
        subcommands: [VIOMMUCreate.self, VIOMMUDestroy.self, VIOMMUList.self, VIOMMUInvalidate.self])
}

struct VIOMMUCreate: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a vIOMMU for an attached device's physical IOMMU.",
        discussion: """
            Example:
              iommuctl viommu create vfio3
              iommuctl viommu create vfio3 --type arm-smmuv3
            """)

    @Argument(help: "A device attached (through an HWPT) in the VM's IOAS.")
    var device: String

    @Option(help: ArgumentHelp("vIOMMU type: arm-smmuv3, tegra241-cmdqv, selftest, or a number. (default: implied by the device's IOMMU, else the daemon's config)", valueName: "type"))
    var type: VIOMMUTypeArgument?

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("viommu.create", encoding: VIOMMUCreateParams(device: device, type: type?.value))
        try context.emit(result, as: VIOMMUCreateResult.self, human: Self.render)
    }

    static func render(_ r: VIOMMUCreateResult) -> String {
        var line = "vIOMMU \(r.viommu) created in IOAS \(r.ioas)" + (r.iommuInstance.map { " on \($0)" } ?? "")
        line += ", nest parent HWPT \(r.nestParent) (\(r.nestParentCreated ? "new" : "shared"))"
        if let moved = r.movedFrom { line += "\ndevice moved from HWPT \(moved) onto the nest parent" }
        return line
    }
}

struct VIOMMUDestroy: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy",
        abstract: "Destroy a vIOMMU (its vDevices must be gone).")

    @Argument(help: "The vIOMMU id.")
    var viommu: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("viommu.destroy", encoding: VIOMMUDestroyParams(viommu: viommu))
        try context.emit(result, as: VIOMMUDestroyResult.self) { r in
            "vIOMMU \(r.viommu) destroyed" + (r.destroyedHWPTs.isEmpty ? "" : "; unused nest parent HWPT \(Words.ids(r.destroyedHWPTs)) destroyed")
        }
    }
}

struct VIOMMUList: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List vIOMMUs.",
        discussion: """
            Each vIOMMU with its IOAS, nest-parent HWPT, physical IOMMU instance, vDevices \
            (shown as id:device=virtual-id) and HW queues (id:index@base+length). With a daemon older than viommu.list, lists the \
            vIOMMU ids of each owner from owner.list.
            """)

    @Option(help: "Only this owner's vIOMMUs.")
    var owner: String?

    @Option(help: "Only the vIOMMUs in this IOAS.")
    var ioas: UInt32?

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        var params: [String: JSONValue] = [:]
        if let owner { params["owner"] = .string(owner) }
        if let ioas { params["ioas"] = .int(Int64(ioas)) }
        let result: JSONValue
        do {
            result = try context.call("viommu.list", .object(params))
        } catch let error as RPCError where error.code == RPCError.Code.methodNotFound {
            result = try fromOwners(context)
        }
        try context.emit(result) { Self.render(result) }
    }

    /// `{"viommus": [{"viommu": N, "owner": ...}]}` from owner.list.
    func fromOwners(_ context: CommandContext) throws -> JSONValue {
        let owners = try context.decode(OwnerListResult.self, from: try context.call("owner.list")).owners
        var rows: [JSONValue] = []
        if ioas != nil {
            throw CtlError(.unsupported, "--ioas needs a daemon with viommu.list; this one has only owner.list (use --owner)")
        }
        for o in owners where owner == nil || o.name == owner {
            for id in o.viommus.sorted() {
                rows.append(["viommu": .int(Int64(id)), "owner": .string(o.name)])
            }
        }
        return ["viommus": .array(rows)]
    }

    /// `7:gpu0=0x100`: a vDevice's id, device and guest-visible ID.
    static func vdevice(_ v: JSONValue) -> String {
        let id = v["vdevice"].map(Status.scalar) ?? "?"
        let device = v["device"]?.stringValue ?? "?"
        let virtualID = v["virtual_id"]?.int64Value.map { "0x" + String($0, radix: 16) } ?? "?"
        return "\(id):\(device)=\(virtualID)"
    }

    /// Renders the list whatever members the objects carry: known ones first, in a fixed order.
    static func render(_ result: JSONValue) -> String {
        let items = result["viommus"]?.arrayValue ?? []
        let preferred = ["viommu", "owner", "ioas", "iommu_instance", "nest_parent", "type", "device", "vdevices", "hw_queues"]
        var keys = Set<String>()
        for item in items { keys.formUnion(item.objectValue.map { Array($0.keys) } ?? []) }
        let ordered = preferred.filter(keys.contains) + keys.subtracting(preferred).sorted()
        var table = Table(ordered.map { key in
            Table.Column(Words.splitWords(key), ["viommu", "ioas", "nest_parent"].contains(key) ? .right : .left)
        })
        for item in items {
            table.add(ordered.map { key -> String in
                guard let value = item[key] else { return "" }
                if key == "type", let t = value.int64Value, let type = UInt32(exactly: t) { return Words.viommuType(type) }
                if key == "vdevices", let vdevices = value.arrayValue {
                    return vdevices.isEmpty ? "none" : vdevices.map(Self.vdevice).joined(separator: ", ")
                }
                if key == "hw_queues", let queues = value.arrayValue {  // hwqueue3
                    return queues.isEmpty ? "none" : queues.map(Self.hwQueue).joined(separator: ", ")
                }
                return Status.scalar(value)
            })
        }
        return ordered.isEmpty ? "no vIOMMUs" : table.render(empty: "no vIOMMUs")
    }
}

/// `iommuctl vdevice ...`
struct VDeviceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vdevice",
        abstract: "Give a device its guest-visible ID on a vIOMMU.",
        subcommands: [VDeviceCreate.self, VDeviceDestroy.self])
}

struct VDeviceCreate: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a vDevice: a device's virtual ID (e.g. vSMMU stream ID) on a vIOMMU.",
        discussion: """
            Example:
              iommuctl vdevice create --viommu 4 --device vfio3 --virtual-id 0x10
            """)

    @Option(help: "The vIOMMU id.")
    var viommu: UInt32

    @Option(help: "The device (on the vIOMMU's physical IOMMU).")
    var device: String

    @Option(help: "The guest-visible ID (hex with 0x, or decimal).")
    var virtualID: Address

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("vdevice.create", encoding: VDeviceCreateParams(viommu: viommu, device: device, virtualID: virtualID.value))
        try context.emit(result, as: VDeviceCreateResult.self) { r in
            "vDevice \(r.vdevice) created: \(r.device) is \(Units.hex(r.virtualID)) on vIOMMU \(r.viommu)"
        }
    }
}

struct VDeviceDestroy: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy",
        abstract: "Destroy a vDevice.")

    @Argument(help: "The vDevice id.")
    var vdevice: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("vdevice.destroy", encoding: VDeviceDestroyParams(vdevice: vdevice))
        try context.emit(result, as: VDeviceDestroyResult.self) { "vDevice \($0.vdevice) destroyed" }
    }
}
