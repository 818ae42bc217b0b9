import ArgumentParser
import IommufdContract
import IommufdCore
import IommufdRPC

/// `iommuctl owner ...`
struct OwnerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "owner",
        abstract: "Create, inspect and release owners (one per VM, usually).",
        discussion: """
            Every IOAS, HWPT, vIOMMU, vDevice and device lease belongs to an owner, created by \
            one manager identity; no other manager can see or touch it. The owner's policy \
            (dirty tracking, huge pages, unmap of a hole) applies to requests that do not say \
            otherwise. `owner release` tears everything of the owner down in a safe order.
            """,
        subcommands: [OwnerCreate.self, OwnerList.self, OwnerInfoCommand.self, OwnerRelease.self])
}

struct OwnerCreate: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create an owner, with its policy.",
        discussion: """
            Examples:
              iommuctl owner create 6b8e2c1a-vm1
              iommuctl owner create vm2 --dirty required --huge-pages off --tolerate-missing
            Names are 1-128 characters of A-Z a-z 0-9 . _ : - (a VM's UUID fits).
            """)

    @Argument(help: "The owner's name, e.g. the VM's UUID.")
    var name: String

    @Option(help: ArgumentHelp("Dirty-tracking policy of attaches that do not name one. (default: from the daemon's config)", valueName: "policy"))
    var dirty: DirtyPolicy?

    @Option(help: ArgumentHelp("Huge IOPTEs for new IOAS. (default: from the daemon's config)", valueName: "on|off"))
    var hugePages: Switch?

    @Flag(inversion: .prefixedNo, help: "Unmapping a range with no mapping succeeds with 0 bytes instead of failing with NotFound (guest vIOMMU drivers send redundant unmaps). (default: from the daemon's config)")
    var tolerateMissing: Bool?

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let params = OwnerCreateParams(name: name, tolerateMissing: tolerateMissing, dirty: dirty, hugePages: hugePages?.isOn)
        let result = try context.call("owner.create", encoding: params)
        try context.emit(result, as: OwnerInfo.self) { "owner \($0.name) created: \(Words.policy($0.policy))" }
    }
}

struct OwnerList: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the owners you can see, with what they hold.")

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("owner.list")
        try context.emit(result, as: OwnerListResult.self) { Self.render($0.owners) }
    }

    static func render(_ owners: [OwnerInfo]) -> String {
        var table = Table([
            .init("owner"), .init("identity"), .init("ioas", .right), .init("hwpts", .right), .init("viommus", .right),
            .init("devices"), .init("mappings", .right), .init("pinned", .right), .init("quota", .right), .init("dirty"),
        ])
        for o in owners.sorted(by: { $0.name < $1.name }) {
            table.add([
                o.name, o.identity, "\(o.ioas.count)", "\(o.hwpts.count)", "\(o.viommus.count)",
                o.devices.sorted().joined(separator: ","), "\(o.mappings)", Units.bytes(o.pinnedBytes),
                o.quotaBytes.map(Units.bytes) ?? "none", o.policy.dirty.rawValue,
            ])
        }
        return table.render(empty: "no owners")
    }
}

struct OwnerInfoCommand: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show one owner: its policy, objects, devices and pinned memory.")

    @Argument(help: "The owner's name.")
    var name: String

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("owner.info", encoding: OwnerInfoParams(name: name))
        try context.emit(result, as: OwnerInfo.self, human: Self.render)
    }

    static func render(_ o: OwnerInfo) -> String {
        var f = Fields()
        f.add("owner", o.name)
        f.add("created by", o.identity == "uid:\(o.creatorUID)" ? "uid \(o.creatorUID)" : "\(o.identity) (uid \(o.creatorUID))")
        f.add("dirty policy", Words.dirtyPolicy(o.policy.dirty))
        f.add("huge pages", Words.onOff(o.policy.hugePages) + " for new IOAS")
        f.add("unmap of hole", o.policy.tolerateMissing ? "succeeds with 0 bytes (tolerate_missing)" : "fails with NotFound")
        f.add("ioas", Words.ids(o.ioas))
        f.add("hwpts", Words.ids(o.hwpts))
        f.add("viommus", Words.ids(o.viommus))
        f.add("vdevices", Words.ids(o.vdevices))
        if let queues = o.hwQueues { f.add("hw queues", Words.ids(queues)) }  // hwqueue3
        f.add("devices", Words.list(o.devices.sorted()))
        f.add("mappings", "\(o.mappings)")
        var pinned = Units.bytes(o.pinnedBytes)
        if let quota = o.quotaBytes {
            pinned += " of \(Units.bytes(quota)) quota (\(Units.percent(o.pinnedBytes, of: quota, digits: 1)))"
        }
        f.add("pinned", pinned)
        if let p2p = o.p2pBytes, p2p > 0 { f.add("p2p (dma-buf)", Units.bytes(p2p) + ", not pinned, outside the quota") }  // MARK: p2p
        return f.render()
    }
}

struct OwnerRelease: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "Tear down everything an owner holds, in a safe order, and forget it.",
        discussion: """
            vDevices, vIOMMUs, device attachments and leases, HWPTs, mappings and IOAS go, in \
            that order. If a step fails, the owner keeps exactly what could not be undone and \
            the command exits non-zero; running it again retries.
            """)

    @Argument(help: "The owner's name.")
    var name: String

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("owner.release", encoding: OwnerReleaseParams(name: name))
        try context.emit(result, as: OwnerReleaseResult.self, human: Self.render)
        if let r = try? context.decode(OwnerReleaseResult.self, from: result), !r.released {
            var error = CtlError(.busy, "owner \(r.name) was only partly released: \(r.failures.count) step(s) failed; run `iommuctl owner release \(r.name)` again to retry")
            error.printsJSON = false
            throw error
        }
    }

    static func render(_ r: OwnerReleaseResult) -> String {
        let order = ["pasid_attachment", "hw_queue", "vdevice", "viommu", "device", "hwpt", "mapping", "ioas"]
        let kinds = r.destroyed.keys.sorted { (order.firstIndex(of: $0) ?? 99, $0) < (order.firstIndex(of: $1) ?? 99, $1) }
        let destroyed = kinds.filter { (r.destroyed[$0] ?? 0) > 0 }.map { kind -> String in
            let n = r.destroyed[kind] ?? 0
            switch kind {
            case "ioas": return "\(n) IOAS"
            case "hwpt": return Words.count(n, "HWPT")
            case "viommu": return Words.count(n, "vIOMMU")
            case "vdevice": return Words.count(n, "vDevice")
            case "pasid_attachment": return Words.count(n, "PASID attachment")  // pasid
            case "hw_queue": return Words.count(n, "HW queue")  // hwqueue3
            default: return Words.count(n, kind)
            }
        }
        var lines = ["owner \(r.name) \(r.released ? "released" : "partly released"): destroyed \(Words.list(destroyed)); \(Units.bytes(r.refundedBytes)) unpinned"]
        for failure in r.failures { lines.append("failed: \(failure)") }
        return lines.joined(separator: "\n")
    }
}
