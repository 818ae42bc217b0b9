#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import IommufdContract
import IommufdCore
import IommufdRPC

/// `iommuctl dirty ...`
struct DirtyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dirty",
        abstract: "Start, stop and read dirty-page tracking of an IOAS.",
        discussion: """
            Tracking is per IOAS: `dirty start` turns it on for every HWPT of the IOAS (rolling \
            back if one fails), `dirty read` returns the union of their dirty bitmaps. Devices \
            on HWPTs without dirty tracking, and mdev-like devices, are not tracked: \
            `dirty status` names them.

            A live-migration pass:
              iommuctl dirty start 1
              iommuctl dirty read 1 --iova 0 --length 4G               # read and clear
              iommuctl dirty read 1 --iova 0 --length 4G --bitmap /tmp/pass2.bitmap
              iommuctl dirty stop 1
            """,
        subcommands: [DirtyStart.self, DirtyStop.self, DirtyRead.self, DirtyStatus.self])
}

struct DirtyStart: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start dirty tracking on every HWPT of an IOAS.")

    @Argument(help: "The IOAS id.")
    var ioas: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("dirty.start", encoding: DirtyParams(ioas: ioas))
        try context.emit(result, as: DirtyStatusResult.self, human: DirtyStatus.render)
    }
}

struct DirtyStop: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop dirty tracking on every HWPT of an IOAS.")

    @Argument(help: "The IOAS id.")
    var ioas: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("dirty.stop", encoding: DirtyParams(ioas: ioas))
        try context.emit(result, as: DirtyStatusResult.self, human: DirtyStatus.render)
    }
}

struct DirtyStatus: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show whether an IOAS is tracked, and what escapes tracking.")

    @Argument(help: "The IOAS id.")
    var ioas: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("dirty.status", encoding: DirtyParams(ioas: ioas))
        try context.emit(result, as: DirtyStatusResult.self, human: Self.render)
    }

    static func render(_ s: DirtyStatusResult) -> String {
        var f = Fields()
        f.add("tracking HWPTs", Words.ids(s.trackingHWPTs))
        if !s.untrackableHWPTs.isEmpty { f.add("untrackable HWPTs", Words.ids(s.untrackableHWPTs)) }
        if !s.untrackedDevices.isEmpty {
            f.add("untracked devices", Words.list(s.untrackedDevices.sorted()) + " (their DMA writes are not seen)")
        }
        return "IOAS \(s.ioas): dirty tracking \(Words.onOff(s.enabled))\n" + f.render()
    }
}

struct DirtyRead: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Read (and by default clear) the dirty pages of an IOVA range.",
        discussion: """
            Prints the dirty runs (coalesced ranges of dirty pages) and a summary: dirty pages, \
            bytes and the share of the range. With --bitmap FILE the daemon sends the raw \
            bitmap in a memfd instead (bit (iova - start) / page-size of little-endian u64 \
            words, the IOMMU_HWPT_GET_DIRTY_BITMAP layout) and iommuctl writes it to FILE.

            By default the read clears what it reports (the next read shows only new writes); \
            --no-clear leaves the bits set (IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR).

            With --max-runs (or past the daemon's limit of runs) the answer can be cut short: \
            the summary then says where it stopped. Every dirty page before that point was \
            shown (and cleared), none after it was cleared: read on from there with the \
            --iova and --length it prints, until it no longer says "cut short". A warning \
            names an HWPT whose clearing read failed: what was read is shown, and its pages \
            stay dirty for the next read. Nothing is lost either way.

            Examples:
              $ iommuctl dirty read 1 --iova 0 --length 1G
              IOVA      LAST      PAGES   SIZE
              0x0       0x1fff        2  8 KiB
              0x100000  0x100fff      1  4 KiB
              3 dirty pages (12 KiB) of 262144 (0.001%) in 0x0-0x3fffffff at 4 KiB pages, cleared
              $ iommuctl dirty read 1 --iova 0 --length 1G --bitmap pass1.bin --no-clear
            """)

    @Argument(help: "The IOAS id.")
    var ioas: UInt32

    @Option(help: "Start of the range (aligned to the page size).")
    var iova: Address

    @Option(help: "Length of the range (a multiple of the page size).")
    var length: ByteSize

    @Option(help: "Bitmap granularity, a power of two. (default: the daemon's, the IOMMU's base page size)")
    var pageSize: ByteSize?

    @Flag(name: .customLong("no-clear"), help: "Leave the dirty bits set (NO_CLEAR).")
    var noClear = false

    @Option(help: ArgumentHelp("Write the raw bitmap to this file instead of listing runs.", valueName: "file"), completion: .file())
    var bitmap: String?

    @Option(help: "Return at most this many runs; the summary says where to resume. (default: the daemon's)")
    var maxRuns: Int?

    @Flag(help: "Print only the summary line, not the runs.")
    var summary = false

    @Flag(help: "Ask for the runs packed (format packed_runs: one base64 string, much faster for large harvests); printed as usual.")
    var packed = false

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let params = DirtyReadParams(
            ioas: ioas, iova: iova.value, length: length.value, pageSize: pageSize?.value,
            clear: noClear ? false : nil, format: bitmap != nil ? .bitmap : packed ? .packedRuns : .runs, maxRuns: maxRuns)
        let (json, fds) = try context.callWithFDs("dirty.read", context.encode(params))
        defer { context.closeAll(fds) }
        let result = try context.decode(DirtyReadResult.self, from: json)
        var runs = result.runs ?? []
        if let packedRuns = result.packedRuns {
            guard let unpacked = DirtyRunPacking.unpack(packedRuns, base: result.iova, pageSize: result.pageSize) else {
                throw CtlError(.failure, "the daemon's packed_runs answer is not valid (bad base64 or a cut varint)")
            }
            runs = unpacked
        }
        var written: String?
        if let bitmap {
            let bytes = try Self.bitmapBytes(result, fds: fds)
            try LocalFiles.write(bytes, to: bitmap)
            written = "bitmap written to \(bitmap) (\(Units.bytes(UInt64(bytes.count))))"
            if !summary { runs = Self.runs(fromBitmap: bytes, result: result) }
        }
        try context.emit(json) {
            var parts: [String] = []
            if !summary && (bitmap == nil || !runs.isEmpty) { parts.append(Self.renderRuns(runs, pageSize: result.pageSize)) }
            parts.append(Self.summaryLine(result))
            if let written { parts.append(written) }
            return parts.joined(separator: "\n")
        }
    }

    /// The bitmap memfd the answer names, read whole.
    static func bitmapBytes(_ result: DirtyReadResult, fds: [Int32]) throws -> [UInt8] {
        guard let ref = result.bitmap, ref.fd >= 0, ref.fd < fds.count else {
            throw CtlError(.failure, "the daemon answered dirty.read without the bitmap memfd it names (\(fds.count) fd(s) received)")
        }
        let pages = result.pageSize == 0 ? 0 : result.length / result.pageSize
        let needed = Int((pages + 63) / 64 * 8)
        let count = result.bitmapBytes ?? needed
        guard count >= needed else {
            throw CtlError(.failure, "the daemon's bitmap has \(count) bytes, \(needed) are needed for \(pages) pages")
        }
        return try LocalFiles.readAll(fds[ref.fd], count: count, what: "the dirty bitmap memfd")
    }

    /// Coalesces a bitmap (little-endian u64 words) into runs.
    static func runs(fromBitmap bytes: [UInt8], result: DirtyReadResult) -> [DirtyRun] {
        guard result.pageSize > 0 else { return [] }
        let pages = Int(clamping: result.length / result.pageSize)
        var words = [UInt64](repeating: 0, count: bytes.count / 8)
        for i in words.indices {
            var w: UInt64 = 0
            for b in 0..<8 { w |= UInt64(bytes[i * 8 + b]) << UInt64(8 * b) }
            words[i] = w
        }
        return words.withUnsafeBufferPointer {
            DirtyBitmap.runs($0, bitCount: pages, base: result.iova, pageSize: result.pageSize).runs
        }
    }

    static func renderRuns(_ runs: [DirtyRun], pageSize: UInt64) -> String {
        var table = Table([.init("iova"), .init("last"), .init("pages", .right), .init("size", .right)])
        for run in runs {
            table.add([
                Units.hex(run.iova), Units.hex(run.iova &+ (run.length &- 1)),
                pageSize == 0 ? "" : "\(run.length / pageSize)", Units.bytes(run.length),
            ])
        }
        return table.render(empty: "no dirty pages")
    }

    /// `3 dirty pages (12 KiB) of 262144 (0.001%) in 0x0-0x3fffffff at 4 KiB pages, cleared`.
    static func summaryLine(_ r: DirtyReadResult) -> String {
        let total = r.pageSize == 0 ? 0 : r.length / r.pageSize
        var line = "\(r.dirtyPages) dirty \(r.dirtyPages == 1 ? "page" : "pages") (\(Units.bytes(r.dirtyPages &* r.pageSize)))"
        line += " of \(total) (\(Units.percent(r.dirtyPages, of: total)))"
        line += " in \(Units.hexRange(iova: r.iova, length: r.length)) at \(Units.bytes(r.pageSize)) pages"
        line += r.cleared ? ", cleared" : ", not cleared"
        if let resume = r.resumeIOVA {
            let rest = "--iova \(Units.hex(resume)) --length \(Units.hex(r.iova &+ r.length &- resume))"
            line += r.cleared
                ? "\ncut short at \(Units.hex(resume)): nothing from there on was cleared or shown; read the rest with \(rest)"
                : "\ncut short at \(Units.hex(resume)): nothing from there on was shown; read the rest with \(rest)"
        }
        for failure in r.clearFailures ?? [] {
            line += "\nwarning: HWPT \(failure.hwpt) was not cleared (\(failure.error)); its pages stay dirty and come again in the next read"
        }
        return line
    }
}
