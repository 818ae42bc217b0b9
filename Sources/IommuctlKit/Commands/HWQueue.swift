import ArgumentParser
import IommufdContract
import IommufdCore
import IommufdRPC

// MARK: hwqueue3

// `iommuctl hwqueue alloc|destroy`: HW queues of a vIOMMU (IOMMU_HW_QUEUE_ALLOC, Linux >= 6.17).

/// `iommuctl hwqueue ...`
struct HWQueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hwqueue",
        abstract: "Allocate and destroy a vIOMMU's HW queues (Linux >= 6.17).",
        discussion: """
            A HW queue is a guest command queue the IOMMU reads directly, over guest memory \
            that must be mapped in the vIOMMU's IOAS: the kernel pins that memory while the \
            queue exists (an unmap of it is refused Busy). The kernel's mock vIOMMU takes type \
            selftest at indexes 0 and 1, each after the one before; destroy them highest index \
            first. `viommu list` shows each vIOMMU's queues. Tegra241 CMDQV queues are refused: \
            their guest reaches them through an mmap of the iommufd, which iommufdd never hands \
            out (docs/nested.md).
            """,
        subcommands: [HWQueueAlloc.self, HWQueueDestroy.self])
}

/// A HW queue type by name or number: sent to the daemon as given, which checks it.
struct HWQueueTypeArgument: ExpressibleByArgument, Sendable, Hashable {
    var value: HWQueueTypeParam

    init?(argument: String) {
        if let number = Units.parseAddress(argument), let type = UInt32(exactly: number) {
            value = .number(type)
        } else if argument.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }), !argument.isEmpty {
            value = .name(String(argument.lowercased().map { $0 == "-" ? "_" : $0 }))
        } else {
            return nil
        }
    }

    static var allValueStrings: [String] { ["selftest", "tegra241_cmdqv"] }

    var defaultValueDescription: String {
        switch value {
        case .name(let s): s
        case .number(let n): "0x" + String(n, radix: 16)
        }
    }
}

struct HWQueueAlloc: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "alloc",
        abstract: "Allocate a HW queue of a vIOMMU over mapped guest memory.",
        discussion: """
            Example:
              iommuctl hwqueue alloc --viommu 14 --type selftest --index 0 --base 0x100000 --length 4K
            """)

    @Option(help: "The vIOMMU id.")
    var viommu: UInt32

    @Option(help: ArgumentHelp("HW queue type: selftest, tegra241_cmdqv (refused), or a number of enum iommu_hw_queue_type.", valueName: "type"))
    var type: HWQueueTypeArgument = HWQueueTypeArgument(argument: "selftest")!

    @Option(help: "The queue's index on the vIOMMU.")
    var index: UInt32 = 0

    @Option(help: "The queue's guest-physical base address (an IOVA of the vIOMMU's IOAS, mapped).")
    var base: Address

    @Option(help: "The queue's length in bytes (4096, 4K ...).")
    var length: ByteSize

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let params = HWQueueAllocParams(viommu: viommu, type: type.value, index: index, baseAddress: base.value, length: length.value)
        let result = try context.call("hwqueue.alloc", encoding: params)
        try context.emit(result, as: HWQueueInfo.self, human: Self.render)
    }

    static func render(_ q: HWQueueInfo) -> String {
        "HW queue \(q.hwQueue) allocated: index \(q.index) of vIOMMU \(q.viommu) (\(q.typeName)) over \(Units.hex(q.baseAddress))+\(Units.hex(q.length)), pinned in IOAS \(q.ioas) until it is destroyed"
    }
}

struct HWQueueDestroy: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy",
        abstract: "Destroy a HW queue (on the mock vIOMMU, highest index first).")

    @Argument(help: "The HW queue id.")
    var hwQueue: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("hwqueue.destroy", encoding: HWQueueParams(hwQueue: hwQueue))
        try context.emit(result, as: HWQueueDestroyResult.self) { r in "HW queue \(r.hwQueue) destroyed; its memory is unpinned" }
    }
}

extension VIOMMUList {
    /// `21:0@0x100000+0x1000`: a HW queue's id, index, base and length.
    static func hwQueue(_ q: JSONValue) -> String {
        let id = q["hw_queue"].map(Status.scalar) ?? "?"
        let index = q["index"].map(Status.scalar) ?? "?"
        let base = q["base_address"]?.int64Value.map { "0x" + String(UInt64(bitPattern: $0), radix: 16) } ?? "?"
        let length = q["length"]?.int64Value.map { "0x" + String(UInt64(bitPattern: $0), radix: 16) } ?? "?"
        return "\(id):\(index)@\(base)+\(length)"
    }
}
