import IommufdCore

public typealias DirtyParams = IOASParams

/// `dirty.start` / `dirty.stop` / `dirty.status`.
public struct DirtyStatusResult: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var enabled: Bool
    /// HWPTs of the IOAS with tracking on.
    public var trackingHWPTs: [ObjectID]
    /// HWPTs of the IOAS that cannot track (allocated without dirty tracking).
    public var untrackableHWPTs: [ObjectID]
    /// Devices whose DMA is not tracked (on untrackable HWPTs, or mdevs on the IOAS itself).
    public var untrackedDevices: [String]
    public init(
        ioas: ObjectID,
        enabled: Bool,
        trackingHWPTs: [ObjectID],
        untrackableHWPTs: [ObjectID],
        untrackedDevices: [String]
    ) {
        self.ioas = ioas
        self.enabled = enabled
        self.trackingHWPTs = trackingHWPTs
        self.untrackableHWPTs = untrackableHWPTs
        self.untrackedDevices = untrackedDevices
    }
    enum CodingKeys: String, CodingKey {
        case ioas, enabled
        case trackingHWPTs = "tracking_hwpts"
        case untrackableHWPTs = "untrackable_hwpts"
        case untrackedDevices = "untracked_devices"
    }
}

public enum DirtyReadFormat: String, Codable, Sendable, Hashable, CaseIterable {
    /// Coalesced JSON runs.
    case runs
    /// The raw bitmap in a memfd sent back with the reply (or written into `into`).
    case bitmap
    /// The runs of `runs`, packed (`DirtyRunPacking`): one base64 string instead of an array of
    /// objects, for large harvests (a tenth of the bytes, no object per run to build or parse).
    case packedRuns = "packed_runs"
}

/// `dirty.read`: the union of the dirty bitmaps of every tracking HWPT of the IOAS over
/// `[iova, iova+length)` at `page_size` (a power of two; iova and length multiples of it).
public struct DirtyReadParams: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var iova: UInt64
    public var length: UInt64
    public var pageSize: UInt64?
    /// Default true (read-and-clear); false is `NO_CLEAR`.
    public var clear: Bool?
    /// Default `runs`.
    public var format: DirtyReadFormat?
    /// Cap on returned runs (default and upper bound from config).
    public var maxRuns: Int?
    /// For `bitmap`: a memfd (sent with the request, `{"fd": N}`) the bitmap is written into at
    /// offset 0, instead of a new memfd in the answer. It must be a memfd (tmpfs or hugetlbfs)
    /// open for writing and at least `bitmap_bytes` long; keep one and send it with every read.
    public var into: FDRef?
    public init(ioas: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64? = nil, clear: Bool? = nil, format: DirtyReadFormat? = nil, maxRuns: Int? = nil, into: FDRef? = nil) {
        self.ioas = ioas
        self.iova = iova
        self.length = length
        self.pageSize = pageSize
        self.clear = clear
        self.format = format
        self.maxRuns = maxRuns
        self.into = into
    }
    enum CodingKeys: String, CodingKey {
        case ioas, iova, length, clear, format, into
        case pageSize = "page_size"
        case maxRuns = "max_runs"
    }
}

public struct DirtyReadResult: Codable, Hashable, Sendable {
    public var ioas: ObjectID
    public var iova: UInt64
    public var length: UInt64
    public var pageSize: UInt64
    public var cleared: Bool
    public var format: DirtyReadFormat
    public var dirtyPages: UInt64
    /// For `runs`.
    public var runs: [DirtyRun]?
    /// For `packed_runs`: the runs, packed (`DirtyRunPacking`), and how many there are.
    public var packedRuns: String?
    public var runCount: Int?
    /// For `runs` cut short at `max_runs`: read again from here. Every dirty page before it was
    /// answered (and, with `clear`, cleared); none after it was cleared.
    public var resumeIOVA: UInt64?
    /// For `bitmap`: the memfd with the bitmap (bit `(addr - iova) / page_size` of u64 words).
    public var bitmap: FDRef?
    public var bitmapBytes: Int?
    /// HWPTs whose clearing read failed. The answer still holds what was read; their pages that
    /// were not cleared stay dirty and come again in the next read.
    public var clearFailures: [DirtyClearFailure]?
    public init(
        ioas: ObjectID,
        iova: UInt64,
        length: UInt64,
        pageSize: UInt64,
        cleared: Bool,
        format: DirtyReadFormat,
        dirtyPages: UInt64,
        runs: [DirtyRun]? = nil,
        packedRuns: String? = nil,
        runCount: Int? = nil,
        resumeIOVA: UInt64? = nil,
        bitmap: FDRef? = nil,
        bitmapBytes: Int? = nil,
        clearFailures: [DirtyClearFailure]? = nil
    ) {
        self.ioas = ioas
        self.iova = iova
        self.length = length
        self.pageSize = pageSize
        self.cleared = cleared
        self.format = format
        self.dirtyPages = dirtyPages
        self.runs = runs
        self.packedRuns = packedRuns
        self.runCount = runCount
        self.resumeIOVA = resumeIOVA
        self.bitmap = bitmap
        self.bitmapBytes = bitmapBytes
        self.clearFailures = clearFailures
    }
    enum CodingKeys: String, CodingKey {
        case ioas, iova, length, cleared, format, runs, bitmap
        case pageSize = "page_size"
        case dirtyPages = "dirty_pages"
        case resumeIOVA = "resume_iova"
        case bitmapBytes = "bitmap_bytes"
        case clearFailures = "clear_failures"
        case packedRuns = "packed_runs"
        case runCount = "run_count"
    }
}

/// One HWPT whose clearing dirty read failed (see `DirtyReadResult.clearFailures`).
public struct DirtyClearFailure: Codable, Hashable, Sendable {
    public var hwpt: ObjectID
    /// What failed, with the kernel's errno.
    public var error: String
    public init(hwpt: ObjectID, error: String) {
        self.hwpt = hwpt
        self.error = error
    }
}
