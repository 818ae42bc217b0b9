import ArgumentParser
import IommufdContract
import IommufdCore
import IommufdRPC

/// `iommuctl hwpt ...`
struct HWPTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hwpt",
        abstract: "List, allocate and destroy hardware page tables.",
        discussion: """
            An HWPT is an IOMMU domain allocated from an IOAS for one physical IOMMU. Usually \
            the daemon's auto-domain policy allocates them at `device attach --ioas` (AUTO \
            column) and destroys them when their last device leaves; `hwpt alloc` makes one \
            that stays until `hwpt destroy` or `owner release`.
            """,
        subcommands: [HWPTList.self, HWPTAlloc.self, HWPTDestroy.self, HWPTInvalidate.self])
}

struct HWPTList: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List HWPTs with their flags, devices and vIOMMUs.")

    @Option(help: "Only this owner's HWPTs.")
    var owner: String?

    @Option(help: "Only HWPTs of this IOAS.")
    var ioas: UInt32?

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("hwpt.list", encoding: HWPTListParams(owner: owner, ioas: ioas))
        try context.emit(result, as: HWPTListResult.self) { Self.render($0.hwpts) }
    }

    static func flags(_ h: HWPTInfo) -> String {
        var words: [String] = []
        if h.dirtyTracking { words.append("dirty-tracking") }
        if h.nestParent { words.append("nest-parent") }
        if let n = h.nested { words.append("nested(\(n.dataType) on \(n.viommu.map { "viommu \($0)" } ?? "hwpt \(n.parent)"))") }
        if let queue = h.faultQueue { words.append("faults-to-queue-\(queue)") }
        if h.pasid == true { words.append("pasid") }  // pasid
        for p in h.pasids ?? [] { words.append("pasid-\(p.pasid)-of-\(p.device ?? "?")") }
        return words.joined(separator: ",")
    }

    /// The DIRTY column: a nested HWPT's DMA is tracked by its nest parent (stage 2), so it
    /// shows the parent's state ("tracking via 13") when the parent is listed too (nestedgaps).
    static func dirty(_ h: HWPTInfo, parent: HWPTInfo?) -> String {
        if let n = h.nested {
            guard let parent, parent.dirtyTracking else { return "" }
            return (parent.tracking ? "tracking" : "off") + " via \(n.parent)"
        }
        return h.dirtyTracking ? (h.tracking ? "tracking" : "off") : ""
    }

    static func render(_ hwpts: [HWPTInfo]) -> String {
        var table = Table([
            .init("hwpt", .right), .init("owner"), .init("ioas", .right), .init("iommu"), .init("flags"),
            .init("dirty"), .init("auto"), .init("devices"), .init("viommus"),
        ])
        let byID = Dictionary(hwpts.map { ($0.hwpt, $0) }, uniquingKeysWith: { a, _ in a })
        for h in hwpts.sorted(by: { $0.hwpt < $1.hwpt }) {
            table.add([
                "\(h.hwpt)", h.owner, "\(h.ioas)", h.iommuInstance ?? "", flags(h),
                dirty(h, parent: h.nested.flatMap { byID[$0.parent] }), Words.yesNo(h.auto),
                h.devices.sorted().joined(separator: ","), h.viommus.map(String.init).joined(separator: ","),
            ])
        }
        return table.render(empty: "no HWPTs")
    }
}

struct HWPTAlloc: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "alloc",
        abstract: "Allocate an HWPT from an IOAS for a device's IOMMU, or a nested HWPT on a nest parent or vIOMMU.",
        discussion: """
            The device must be leased to the IOAS's owner (attach it first, or the daemon \
            refuses). Attach devices to the new HWPT with `device attach --hwpt` or \
            `device replace --hwpt`.

            A nested HWPT (stage 1 over a nest parent's stage 2) takes --parent (a nest-parent \
            HWPT) or --viommu, and the IOMMU driver's data: --data-type selftest --iotlb N; \
            vtd_s1 --vtd-flags --pgtbl-addr --addr-width; arm_smmuv3 --ste W0,W1; amd_guest \
            --dte W0,W1,W2,W3.

            Examples:
              iommuctl hwpt alloc --ioas 1 --device vfio3 --dirty-tracking
              iommuctl hwpt alloc --ioas 1 --device vfio3 --pasid
              iommuctl hwpt alloc --device vfio3 --parent 4 --data-type vtd_s1 --pgtbl-addr 0x1000 --addr-width 48
              iommuctl hwpt alloc --device vfio3 --viommu 9 --data-type selftest --iotlb 0 --fault-queue 11
            """)

    @Option(help: "The IOAS to allocate from (a paging HWPT).")
    var ioas: UInt32?

    @Option(help: "A device behind the IOMMU the HWPT is for.")
    var device: String

    @Flag(help: "IOMMU_HWPT_ALLOC_DIRTY_TRACKING: the HWPT can track dirty pages (fails on IOMMUs without it).")
    var dirtyTracking = false

    @Flag(help: "IOMMU_HWPT_ALLOC_NEST_PARENT: the HWPT can be the stage-2 parent of a vIOMMU.")
    var nestParent = false

    // MARK: pasid
    @Flag(help: "IOMMU_HWPT_ALLOC_PASID: device PASIDs may attach to the HWPT (`device attach-pasid`), and a device with PASIDs attached needs its RID on such an HWPT.")
    var pasid = false

    @OptionGroup var nested: NestedDataOptions

    @Option(help: ArgumentHelp("IOMMU_HWPT_FAULT_ID_VALID: the HWPT's I/O page faults go to this fault queue of the owner (`fault create`).", valueName: "id"))
    var faultQueue: UInt32?

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let params: HWPTAllocParams
        if let data = try nested.data() {
            params = HWPTAllocParams(device: device, parent: nested.parent, viommu: nested.viommu, data: data, faultQueue: faultQueue)
            var p = params
            p.ioas = ioas
            p.dirtyTracking = dirtyTracking ? true : nil
            p.nestParent = nestParent ? true : nil
            p.pasid = pasid ? true : nil
            let result = try context.call("hwpt.alloc", encoding: p)
            try context.emit(result, as: HWPTInfo.self) { h in
                "nested HWPT \(h.hwpt) allocated on " + (h.nested?.viommu.map { "vIOMMU \($0)" } ?? "nest parent \(h.nested?.parent ?? 0)")
                    + " (\(h.nested?.dataType ?? "?"))" + (h.iommuInstance.map { " for \($0)" } ?? "")
                    + (h.faultQueue.map { ", its I/O page faults to fault queue \($0)" } ?? "")
            }
            return
        }
        guard let ioas else { throw ValidationError("name --ioas (a paging HWPT), or --parent/--viommu with --data-type (a nested HWPT)") }
        var paging = HWPTAllocParams(ioas: ioas, device: device, dirtyTracking: dirtyTracking ? true : nil, nestParent: nestParent ? true : nil, faultQueue: faultQueue)
        paging.pasid = pasid ? true : nil
        params = paging
        let result = try context.call("hwpt.alloc", encoding: params)
        try context.emit(result, as: HWPTInfo.self) { h in
            let flags = HWPTList.flags(h)
            return "HWPT \(h.hwpt) allocated from IOAS \(h.ioas)" + (h.iommuInstance.map { " on \($0)" } ?? "") +
                (flags.isEmpty ? "" : " (\(flags))")
        }
    }
}

struct HWPTDestroy: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy",
        abstract: "Destroy an HWPT (no device or vIOMMU may use it).")

    @Argument(help: "The HWPT id.")
    var hwpt: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("hwpt.destroy", encoding: HWPTDestroyParams(hwpt: hwpt))
        try context.emit(result, as: HWPTDestroyResult.self) { "HWPT \($0.hwpt) destroyed" }
    }
}
