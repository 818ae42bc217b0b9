#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import IommufdContract
import IommufdCore
import IommufdRPC

/// `iommuctl ioas ...`
struct IOASCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ioas",
        abstract: "Create IO address spaces and map memory into them.",
        discussion: """
            An IOAS is a set of IOVA -> memory mappings that devices' DMA goes through (via the \
            HWPTs allocated from it). Mapping is object-based: you can only unmap whole \
            mappings, and unmapping a hole fails unless the owner tolerates it.
            """,
        subcommands: [
            IOASCreate.self, IOASDestroy.self, IOASList.self, IOASInfoCommand.self, IOASMap.self,
            IOASUnmap.self, IOASCopy.self, IOASRanges.self, IOASSet.self,
        ])
}

struct IOASCreate: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create an IOAS for an owner.",
        discussion: """
            Example:
              $ iommuctl ioas create --owner vm1
              IOAS 1 created for owner vm1 (huge pages on)
            """)

    @Option(help: "The owner of the new IOAS.")
    var owner: String

    @Option(help: ArgumentHelp("Let the IOAS use huge IOPTEs. Off gives base-page granularity, which dirty tracking of a small working set wants. (default: the owner's policy)", valueName: "on|off"))
    var hugePages: Switch?

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("ioas.create", encoding: IOASCreateParams(owner: owner, hugePages: hugePages?.isOn))
        try context.emit(result, as: IOASCreateResult.self) {
            "IOAS \($0.ioas) created for owner \($0.owner) (huge pages \(Words.onOff($0.hugePages)))"
        }
    }
}

struct IOASDestroy: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy",
        abstract: "Destroy an IOAS (its mappings go with it; it must have no HWPT or device).")

    @Argument(help: "The IOAS id.")
    var ioas: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("ioas.destroy", encoding: IOASDestroyParams(ioas: ioas))
        try context.emit(result, as: IOASDestroyResult.self) { "IOAS \($0.ioas) destroyed" }
    }
}

struct IOASList: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the IOAS you can see.")

    @Option(help: "Only this owner's IOAS.")
    var owner: String?

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("ioas.list", encoding: IOASListParams(owner: owner))
        try context.emit(result, as: IOASListResult.self) { Self.render($0.ioas) }
    }

    static func render(_ list: [IOASInfo]) -> String {
        var table = Table([
            .init("ioas", .right), .init("owner"), .init("mappings", .right), .init("pinned", .right),
            .init("huge pages"), .init("dirty"), .init("hwpts"), .init("devices"),
        ])
        for i in list.sorted(by: { $0.ioas < $1.ioas }) {
            table.add([
                "\(i.ioas)", i.owner, "\(i.mappingCount)", Units.bytes(i.pinnedBytes), Words.onOff(i.hugePages),
                i.dirtyTracking ? "tracking" : "off", i.hwpts.map(String.init).joined(separator: ","),
                i.devices.sorted().joined(separator: ","),
            ])
        }
        return table.render(empty: "no IOAS")
    }
}

struct IOASInfoCommand: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show one IOAS and its mappings.")

    @Argument(help: "The IOAS id.")
    var ioas: UInt32

    @Option(help: "List at most this many mappings (in IOVA order). (default: the daemon's, 1000)")
    var maxMappings: Int?

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("ioas.info", encoding: IOASInfoParams(ioas: ioas, maxMappings: maxMappings))
        try context.emit(result, as: IOASInfo.self, human: Self.render)
    }

    static func render(_ i: IOASInfo) -> String {
        var f = Fields()
        f.add("ioas", "\(i.ioas)")
        f.add("owner", i.owner)
        f.add("huge pages", Words.onOff(i.hugePages))
        f.add("dirty tracking", Words.onOff(i.dirtyTracking))
        f.add("hwpts", Words.ids(i.hwpts))
        f.add("devices", Words.list(i.devices.sorted()))
        f.add("pinned", Units.bytes(i.pinnedBytes))
        if let p2p = i.p2pBytes, p2p > 0 {  // MARK: p2p
            f.add("p2p (dma-buf)", Units.bytes(p2p) + ((i.revokedMappings ?? 0) > 0 ? ", \(i.revokedMappings ?? 0) mapping(s) revoked by the exporter" : ""))
        }
        f.add("mappings", "\(i.mappingCount)" + (i.mappings.count < i.mappingCount ? " (first \(i.mappings.count) shown)" : ""))
        var table = Table([.init("iova"), .init("last"), .init("size", .right), .init("perm"), .init("source")])
        for m in i.mappings.sorted(by: { $0.iova < $1.iova }) {
            table.add([
                Units.hex(m.iova), Units.hex(m.iova &+ (m.length &- 1)), Units.bytes(m.length),
                Words.permissions(readable: m.readable, writeable: m.writeable), m.source + (m.revoked == true ? " (revoked)" : ""),
            ])
        }
        return i.mappings.isEmpty ? f.render() : f.render() + "\n\n" + table.render()
    }
}

struct IOASMap: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "Map a file's memory (a memfd or regular file) into an IOAS.",
        discussion: """
            iommuctl opens FILE and passes its descriptor to the daemon (SCM_RIGHTS); the \
            daemon maps it with IOMMU_IOAS_MAP_FILE (Linux >= 6.13) or mmaps it and uses \
            IOMMU_IOAS_MAP. The pages are pinned and counted against the owner's quota; they \
            stay mapped after iommuctl exits. A memfd of a running process can be named as \
            /proc/PID/fd/N. --memfd SIZE maps fresh zeroed memory instead of a file.

            Offset, length and IOVA must be multiples of the IOAS's alignment (see \
            `iommuctl ioas ranges`). Without --iova the kernel picks the IOVA.

            Examples:
              iommuctl ioas map 1 /dev/hugepages/vm1-ram --iova 0
              iommuctl ioas map 1 /proc/4242/fd/12 --offset 2M --length 64M --iova 4G
              iommuctl ioas map 1 --memfd 256M --iova 0x80000000 --read-only

            --fd N maps iommuctl's own open descriptor N, inherited from the shell or the \
            program that started it: how a dma-buf (a VFIO PCI BAR exported with \
            VFIO_DEVICE_FEATURE_DMA_BUF, which has no path) is mapped for P2P. The daemon \
            tells a dma-buf apart by its fdinfo; it is not pinned and is counted in the \
            owner's p2p bytes, not against its quota (Linux >= 6.19).
              iommuctl ioas map 1 --fd 3 --iova 0x1000000000   (fd 3 open, from the launcher)
            """)

    @Argument(help: "The IOAS id.")
    var ioas: UInt32

    @Argument(help: "The file whose memory to map (memfd path, hugetlbfs or regular file).", completion: .file())
    var file: String?

    @Option(help: ArgumentHelp("Map a new zero-filled memfd of this size instead of a file.", valueName: "size"))
    var memfd: ByteSize?

    @Option(help: ArgumentHelp("Map this open descriptor of iommuctl's (a memfd or a dma-buf it inherited) instead of a file.", valueName: "n"))
    var fd: Int32?

    @Option(help: "Start of the range in the file.")
    var offset: ByteSize = ByteSize(0)

    @Option(help: "Bytes to map. (default: from --offset to the end of the file)")
    var length: ByteSize?

    @Option(help: "Map at this IOVA. (default: the kernel chooses)")
    var iova: Address?

    @Flag(help: "Map read-only for devices (no IOMMU_IOAS_MAP_WRITEABLE); the file is opened read-only.")
    var readOnly = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if [file != nil, memfd != nil, fd != nil].filter({ $0 }).count != 1 {
            throw ValidationError("give one of a FILE to map, --memfd SIZE or --fd N")
        }
        if memfd != nil && offset.value != 0 {
            throw ValidationError("--offset applies to a FILE, not to --memfd")
        }
    }

    func execute(_ context: CommandContext) throws {
        let fd: Int32
        let size: UInt64
        let source: String
        if let file {
            (fd, size) = try LocalFiles.openMemory(file, writeable: !readOnly)
            source = file
        } else if let inherited = self.fd {
            (fd, size) = try LocalFiles.inheritedMemory(inherited)
            source = "descriptor \(inherited)"
        } else {
            size = memfd?.value ?? 0
            fd = try LocalFiles.createMemory(size: size, name: "iommuctl-ioas\(ioas)")
            source = "a new \(Units.bytes(size)) memfd"
        }
        defer { _ = Glibc.close(fd) }
        guard offset.value <= size else {
            throw CtlError(.usage, "--offset \(Units.hex(offset.value)) is past the end of \(source) (\(Units.bytes(size)))")
        }
        let length = self.length?.value ?? (size - offset.value)
        guard length > 0 else {
            throw CtlError(.usage, "nothing to map: \(source) has no bytes after offset \(Units.hex(offset.value)); give --length")
        }
        let params = IOASMapParams(
            ioas: ioas, fd: FDRef(fd: 0), offset: offset.value, length: length, iova: iova?.value,
            readable: true, writeable: !readOnly)
        let result = try context.call("ioas.map", encoding: params, fds: [fd])
        try context.emit(result, as: IOASMapResult.self) { r in
            "mapped \(Units.bytes(r.length)) of \(source) at IOVA \(Units.hexRange(iova: r.iova, length: r.length)) in IOAS \(r.ioas)" +
                " (\(readOnly ? "read-only" : "read-write"); " +
                (r.ownerP2PBytes.map { "P2P dma-buf, not pinned; the owner now has \(Units.bytes($0)) of P2P mappings)" }
                    ?? "the owner now pins \(Units.bytes(r.ownerPinnedBytes)))")
        }
    }
}

struct IOASUnmap: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "unmap",
        abstract: "Unmap whole mappings inside an IOVA range (or all of them).",
        discussion: """
            The range must not cut a mapping. A range with no mapping fails with NotFound \
            (exit status 5) unless --tolerate-missing or the owner's policy makes it a 0-byte \
            success.

            Examples:
              iommuctl ioas unmap 1 --iova 0 --length 1G
              iommuctl ioas unmap 1 --all
            """)

    @Argument(help: "The IOAS id.")
    var ioas: UInt32

    @Option(help: "Start of the range.")
    var iova: Address?

    @Option(help: "Length of the range.")
    var length: ByteSize?

    @Flag(help: "Unmap every mapping of the IOAS.")
    var all = false

    @Flag(inversion: .prefixedNo, help: "A range without mappings is a 0-byte success. (default: the owner's policy)")
    var tolerateMissing: Bool?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if all && (iova != nil || length != nil) {
            throw ValidationError("--all unmaps everything: leave out --iova and --length")
        }
        if !all && (iova == nil || length == nil) {
            throw ValidationError("give --iova and --length, or --all")
        }
    }

    func execute(_ context: CommandContext) throws {
        let params = IOASUnmapParams(ioas: ioas, iova: iova?.value, length: length?.value, all: all ? true : nil, tolerateMissing: tolerateMissing)
        let result = try context.call("ioas.unmap", encoding: params)
        try context.emit(result, as: IOASUnmapResult.self) { r in
            "unmapped \(Units.bytes(r.unmappedBytes)) (\(Words.count(r.mappings, "mapping"))) from IOAS \(r.ioas); the owner now pins \(Units.bytes(r.ownerPinnedBytes))"
        }
    }
}

struct IOASCopy: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Map the pages behind a range of one IOAS into another IOAS.",
        discussion: """
            IOMMU_IOAS_COPY: the same pages, already pinned, appear in the destination IOAS \
            too (both IOAS of the same owner). The source range must cover whole mappings.

            Example:
              iommuctl ioas copy --from 1 --src-iova 0 --length 1G --to 2 --dst-iova 0
            """)

    @Option(help: "The source IOAS.")
    var from: UInt32

    @Option(help: "Start of the source range.")
    var srcIOVA: Address

    @Option(help: "Length of the range.")
    var length: ByteSize

    @Option(help: "The destination IOAS.")
    var to: UInt32

    @Option(help: "IOVA in the destination. (default: the kernel chooses)")
    var dstIOVA: Address?

    @Flag(help: "Map the copy read-only for devices.")
    var readOnly = false

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let params = IOASCopyParams(
            dstIOAS: to, srcIOAS: from, srcIOVA: srcIOVA.value, length: length.value, dstIOVA: dstIOVA?.value,
            readable: true, writeable: !readOnly)
        let result = try context.call("ioas.copy", encoding: params)
        try context.emit(result, as: IOASCopyResult.self) { r in
            "copied \(Units.bytes(r.length)) from IOAS \(from) at \(Units.hex(srcIOVA.value)) to IOAS \(r.dstIOAS) at IOVA \(Units.hexRange(iova: r.dstIOVA, length: r.length))"
        }
    }
}

struct IOASRanges: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "ranges",
        abstract: "Show the IOVA ranges usable in an IOAS and the required alignment.",
        discussion: "IOMMU_IOAS_IOVA_RANGES: the intersection of what every attached device's IOMMU allows (reserved regions such as the MSI window are holes).")

    @Argument(help: "The IOAS id.")
    var ioas: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("ioas.ranges", encoding: IOASRangesParams(ioas: ioas))
        try context.emit(result, as: IOASRangesResult.self, human: Self.render)
    }

    static func render(_ r: IOASRangesResult) -> String {
        var table = Table([.init("start"), .init("last"), .init("size", .right)])
        for range in r.ranges {
            let size = range.last &- range.start &+ 1
            table.add([Units.hex(range.start), Units.hex(range.last), size == 0 ? "16 EiB" : Units.bytes(size)])
        }
        return "IOAS \(r.ioas): alignment \(Units.bytes(r.alignment))\n" + table.render(empty: "no usable IOVA range")
    }
}

struct IOASSet: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Change an IOAS option (huge pages).",
        discussion: """
            IOMMU_OPTION_HUGE_PAGES. The kernel only allows the change while the IOAS has no \
            HWPT or device attached (else Busy, exit status 6).

            Example:
              iommuctl ioas set 1 --huge-pages off
            """)

    @Argument(help: "The IOAS id.")
    var ioas: UInt32

    @Option(help: ArgumentHelp("Huge IOPTEs (IOMMU_OPTION_HUGE_PAGES).", valueName: "on|off"))
    var hugePages: Switch

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("ioas.set_option", encoding: IOASSetOptionParams(ioas: ioas, hugePages: hugePages.isOn))
        try context.emit(result, as: IOASSetOptionResult.self) { "IOAS \($0.ioas): huge pages \(Words.onOff($0.hugePages))" }
    }
}
