import Foundation
import ArgumentParser
import IommufdContract
import IommufdCore
import IommufdRPC

/// The nested-HWPT options of `iommuctl hwpt alloc`.
struct NestedDataOptions: ParsableArguments {
    @Option(help: "A nest-parent HWPT: allocate a nested HWPT on it.")
    var parent: UInt32?

    @Option(help: "A vIOMMU: allocate a nested HWPT on it (over its nest parent).")
    var viommu: UInt32?

    @Option(help: ArgumentHelp("The nested HWPT's data type: selftest, vtd_s1, arm_smmuv3, amd_guest.", valueName: "type"))
    var dataType: String?

    @Option(help: "selftest data: the value every mock IOTLB entry starts with.")
    var iotlb: Address?

    @Option(help: "vtd_s1 data: the flags (SRE 1, EAFE 2, WPE 4).")
    var vtdFlags: Address?

    @Option(help: "vtd_s1 data: the guest's first-stage page table root (4 KiB aligned).")
    var pgtblAddr: Address?

    @Option(help: "vtd_s1 data: the first-stage address width, 48 or 57.")
    var addrWidth: UInt32?

    @Option(help: ArgumentHelp("arm_smmuv3 data: the guest STE's first two 64-bit words, comma-separated.", valueName: "w0,w1"))
    var ste: String?

    @Option(help: ArgumentHelp("amd_guest data: the guest DTE's four 64-bit words, comma-separated.", valueName: "w0,w1,w2,w3"))
    var dte: String?

    /// The data params, or nil when no nested option is given.
    func data() throws -> NestedDataParams? {
        let any = parent != nil || viommu != nil || dataType != nil || iotlb != nil || vtdFlags != nil || pgtblAddr != nil
            || addrWidth != nil || ste != nil || dte != nil
        guard any else { return nil }
        guard let dataType else {
            throw ValidationError("a nested HWPT needs --data-type (\(NestedDataParams.typeNames.joined(separator: ", "))) and its fields")
        }
        return NestedDataParams(
            type: dataType, iotlb: try iotlb.map { v in
                guard v.value <= UInt64(UInt32.max) else { throw ValidationError("--iotlb \(v.value) does not fit 32 bits") }
                return UInt32(v.value)
            }, flags: vtdFlags?.value, pgtblAddr: pgtblAddr?.value, addrWidth: addrWidth,
            ste: try ste.map { try Self.words($0, "--ste") }, dte: try dte.map { try Self.words($0, "--dte") })
    }

    static func words(_ list: String, _ option: String) throws -> [UInt64] {
        try list.split(separator: ",").map {
            guard let a = Address(argument: String($0).trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("\(option): '\($0)' is not a number (decimal or 0x hex)")
            }
            return a.value
        }
    }
}

/// `--entry key=value,...` of the invalidate commands.
enum InvalidationEntryArgument {
    static let keys = ["iotlb_id", "all", "vdev_id", "cache_id", "addr", "npages", "leaf", "cmd"]

    static func parse(_ text: String) throws -> InvalidationEntryParams {
        var e = InvalidationEntryParams()
        // `cmd=w0:w1` keeps the two words of an SMMUv3 command in one field.
        for part in text.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            let key = kv[0]
            func number() throws -> UInt64 {
                guard kv.count == 2, let a = Address(argument: kv[1]) else { throw ValidationError("--entry \(text): \(key) needs a number, e.g. \(key)=1") }
                return a.value
            }
            func u32() throws -> UInt32 {
                let v = try number()
                guard v <= UInt64(UInt32.max) else { throw ValidationError("--entry \(text): \(key) \(v) does not fit 32 bits") }
                return UInt32(v)
            }
            switch key {
            case "iotlb_id": e.iotlbID = try u32()
            case "vdev_id": e.vdevID = try u32()
            case "cache_id": e.cacheID = try u32()
            case "addr": e.addr = try number()
            case "npages": e.npages = try number()
            case "all": e.all = kv.count == 1 ? true : (kv[1] == "true" || kv[1] == "1")
            case "leaf": e.leaf = kv.count == 1 ? true : (kv[1] == "true" || kv[1] == "1")
            case "cmd":
                guard kv.count == 2 else { throw ValidationError("--entry \(text): cmd needs two words, cmd=W0:W1") }
                e.cmd = try NestedDataOptions.words(kv[1].replacingOccurrences(of: ":", with: ","), "--entry cmd")
            default:
                throw ValidationError("--entry \(text): unknown field '\(key)'; fields: \(keys.joined(separator: ", "))")
            }
        }
        return e
    }

    static func render(_ r: InvalidateResult, what: String) -> String {
        var s = "\(what): \(r.done) of \(r.requested) \(r.dataType) entries invalidated in one IOMMU_HWPT_INVALIDATE"
        if let stop = r.stopped { s += "\nstopped: \(stop.errno) from \(stop.ioctl): \(stop.message)" }
        return s
    }
}

struct HWPTInvalidate: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "invalidate",
        abstract: "Invalidate a nested HWPT's caches: every --entry in one IOMMU_HWPT_INVALIDATE.",
        discussion: """
            Entries by the HWPT's data type: selftest iotlb_id=N or all; vtd_s1 \
            addr=A,npages=N[,leaf]. When the kernel refuses an entry after others took effect, \
            the answer says how many were done and why it stopped.

            Example:
              iommuctl hwpt invalidate 7 --entry iotlb_id=0 --entry iotlb_id=1
            """)

    @Argument(help: "The nested HWPT id.")
    var hwpt: UInt32

    @Option(name: .customLong("entry"), help: ArgumentHelp("One entry, key=value,... (repeat for more).", valueName: "fields"))
    var entries: [String] = []

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let params = HWPTInvalidateParams(hwpt: hwpt, entries: try entries.map(InvalidationEntryArgument.parse))
        let result = try context.call("hwpt.invalidate", encoding: params)
        try context.emit(result, as: InvalidateResult.self) { InvalidationEntryArgument.render($0, what: "HWPT \($0.object)") }
    }
}

struct VIOMMUInvalidate: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "invalidate",
        abstract: "Invalidate a vIOMMU's caches: every --entry in one IOMMU_HWPT_INVALIDATE.",
        discussion: """
            Entries by the vIOMMU's type: selftest vdev_id=V,cache_id=N (or all); arm-smmuv3 \
            cmd=W0:W1 (one CMDQ command). When the kernel refuses an entry after others took \
            effect, the answer says how many were done and why it stopped.

            Example:
              iommuctl viommu invalidate 9 --entry vdev_id=7,cache_id=0
            """)

    @Argument(help: "The vIOMMU id.")
    var viommu: UInt32

    @Option(name: .customLong("entry"), help: ArgumentHelp("One entry, key=value,... (repeat for more).", valueName: "fields"))
    var entries: [String] = []

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let params = VIOMMUInvalidateParams(viommu: viommu, entries: try entries.map(InvalidationEntryArgument.parse))
        let result = try context.call("viommu.invalidate", encoding: params)
        try context.emit(result, as: InvalidateResult.self) { InvalidationEntryArgument.render($0, what: "vIOMMU \($0.object)") }
    }
}
