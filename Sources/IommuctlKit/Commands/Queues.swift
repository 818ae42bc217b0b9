import ArgumentParser
import IommufdContract
import IommufdCore
import IommufdRPC

// `iommuctl fault ...`, `iommuctl veventq ...`, `iommuctl queue list` (branch `queues`).

/// `iommuctl fault ...`
struct FaultCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fault",
        abstract: "Create and destroy I/O page fault queues (Linux >= 6.11).",
        discussion: """
            A fault queue receives the I/O page faults of the devices on HWPTs allocated with \
            `hwpt alloc --fault-queue ID`. The daemon reads it and relays each fault as an \
            event.queue notification (see `iommuctl watch`) and to the holder of the queue's \
            fd, who answers the faults there. The fd goes to a VMM through the API (fault.create, \
            queue.fd); iommuctl closes it, so from a shell the faults are seen in notifications \
            only, and stay unanswered.
            """,
        subcommands: [FaultCreate.self, FaultDestroy.self])
}

struct FaultCreate: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a fault queue of an owner.",
        discussion: """
            Example:
              iommuctl fault create vm1
              iommuctl hwpt alloc --ioas 1 --device vfio3 --fault-queue 7
            """)

    @Argument(help: "The owner.")
    var owner: String

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("fault.create", encoding: FaultCreateParams(owner: owner))
        try context.emit(result, as: QueueFDResult.self) { r in "fault queue \(r.queue.queue) created for owner \(r.queue.owner)" }
    }
}

struct FaultDestroy: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy",
        abstract: "Destroy a fault queue (no HWPT may deliver to it).")

    @Argument(help: "The fault queue id.")
    var queue: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("fault.destroy", encoding: QueueParams(queue: queue))
        try context.emit(result, as: QueueDestroyResult.self) { r in "fault queue \(r.queue) destroyed" }
    }
}

/// `iommuctl veventq ...`
struct VEventQCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "veventq",
        abstract: "Create and destroy vIOMMU event queues (Linux >= 6.15).",
        discussion: """
            A vEVENTQ receives the events the IOMMU reports for a vIOMMU's vDevices (SMMUv3 \
            event records). The daemon reads it and relays each event as an event.queue \
            notification and to the holder of the queue's fd; when the kernel queue overflows \
            (more than --depth events unread), a record with the lost-events flag says so.
            """,
        subcommands: [VEventQCreate.self, VEventQDestroy.self])
}

struct VEventQCreate: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a vEVENTQ on a vIOMMU.",
        discussion: """
            Example:
              iommuctl veventq create 5 --depth 256
            """)

    @Argument(help: "The vIOMMU id.")
    var viommu: UInt32

    @Option(help: ArgumentHelp("enum iommu_veventq_type (1: ARM SMMUv3). (default: implied by the vIOMMU's IOMMU)", valueName: "type"))
    var type: UInt32?

    @Option(help: ArgumentHelp("Events queued before the queue loses events, 1 ... 524288. (default: 1024)", valueName: "n"))
    var depth: UInt32?

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("veventq.create", encoding: VEventQCreateParams(viommu: viommu, type: type, depth: depth))
        try context.emit(result, as: QueueFDResult.self) { r in
            "vEVENTQ \(r.queue.queue) created on vIOMMU \(viommu) (type \(Self.typeName(r.queue.type)), depth \(r.queue.depth ?? 0))"
        }
    }
}

extension VEventQCreate {
    /// enum iommu_veventq_type by name where known (nestedgaps), else its number in hex.
    static func typeName(_ type: UInt32?) -> String {
        switch type ?? 0 {
        case VEventQueueType.armSMMUv3: "arm_smmuv3"
        case VEventQueueType.tegra241CMDQV: "tegra241_cmdqv"
        case VEventQueueType.selftest: "selftest"
        case let other: "0x" + String(other, radix: 16)
        }
    }
}

struct VEventQDestroy: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy",
        abstract: "Destroy a vEVENTQ.")

    @Argument(help: "The vEVENTQ id.")
    var queue: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("veventq.destroy", encoding: QueueParams(queue: queue))
        try context.emit(result, as: QueueDestroyResult.self) { r in "vEVENTQ \(r.queue) destroyed" }
    }
}

/// `iommuctl queue ...`
struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "List fault queues and vEVENTQs, and read their records.",
        subcommands: [QueueList.self, QueueRead.self])
}

struct QueueList: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List fault queues and vEVENTQs with their counters.",
        discussion: """
            CONNECTED says whether a holder of the queue's fd is connected; RELAYED counts the \
            records read, UNDELIVERED those no holder received (notifications saw them all), \
            LOST the lost-events records (the kernel queue overflowed), AWAITING the faults not \
            answered yet.
            """)

    @Option(help: "Only this owner's queues.")
    var owner: String?

    @Option(help: "Only the vEVENTQs of this vIOMMU.")
    var viommu: UInt32?

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("queue.list", encoding: QueueListParams(owner: owner, viommu: viommu))
        try context.emit(result, as: QueueListResult.self, human: Self.render)
    }

    static func render(_ r: QueueListResult) -> String {
        var table = Table([
            Table.Column("QUEUE", .right), Table.Column("KIND"), Table.Column("OWNER"), Table.Column("VIOMMU", .right),
            Table.Column("HWPTS"), Table.Column("CONNECTED"), Table.Column("RELAYED", .right), Table.Column("UNDELIVERED", .right),
            Table.Column("LOST", .right), Table.Column("AWAITING", .right),
        ])
        for q in r.queues {
            table.add([
                "\(q.queue)", q.kind, q.owner, q.viommu.map(String.init) ?? "", q.kind == "fault" ? Words.ids(q.hwpts) : "",
                Words.yesNo(q.connected), "\(q.relayed)", "\(q.undelivered)", "\(q.lostEvents)", q.kind == "fault" ? "\(q.awaitingResponse)" : "",
            ])
        }
        return table.render(empty: "no queues")
    }
}
