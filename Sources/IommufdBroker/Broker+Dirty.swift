#if canImport(Glibc)
import Glibc
#endif
import IommufdContract
import IommufdCore

extension Broker {
    func dirtyStatus(_ ioas: IOASRecord) -> DirtyStatusResult {
        let hwpts = ioas.hwpts.sorted().compactMap { hwptTable[$0] }
        var untracked = Set(ioas.directDevices)
        for h in hwpts where !h.tracking { untracked.formUnion(h.devices) }
        // Devices on nested HWPTs: tracked by the nest parent (stage 2), or not at all.
        for n in nestedHWPTs(of: ioas) where !dirtyTracker(of: n).tracking { untracked.formUnion(n.devices) }
        return DirtyStatusResult(
            ioas: ioas.id, enabled: ioas.dirtyEnabled,
            trackingHWPTs: hwpts.filter(\.tracking).map(\.id),
            untrackableHWPTs: hwpts.filter { !$0.flags.contains(.dirtyTracking) }.map(\.id),
            untrackedDevices: ioas.dirtyEnabled ? untracked.sorted() : [])
    }

    /// `dirty.status`.
    public func dirtyStatus(_ caller: Caller, _ params: DirtyParams) throws -> DirtyStatusResult {
        try reading { dirtyStatus(try ioas(caller, params.ioas)) }
    }

    /// `dirty.start`: starts tracking on every HWPT of the IOAS, or on none: if one fails, the
    /// ones already started are stopped again. Refused when an HWPT with devices was allocated
    /// without dirty tracking (their DMA could not be seen). HWPTs that join later track too.
    public func dirtyStart(_ caller: Caller, _ params: DirtyParams) throws -> DirtyStatusResult {
        try locked {
            let ioas = try ioas(caller, params.ioas, write: "dirty.start")
            guard backend.features.contains(.dirtyTracking) else {
                throw BrokerError(.unsupported, "this kernel has no IOMMU dirty tracking (IOMMU_HWPT_SET_DIRTY_TRACKING, Linux >= 6.7)")
            }
            if ioas.dirtyEnabled { return dirtyStatus(ioas) }
            let hwpts = ioas.hwpts.sorted().compactMap { hwptTable[$0] }
            // A nest parent's devices include those on its nested HWPTs: their DMA goes through it.
            let untrackable = hwpts.filter { !$0.flags.contains(.dirtyTracking) && !devicesThrough($0).isEmpty }
            if !untrackable.isEmpty {
                let list = untrackable.map { "HWPT \($0.id) (devices \(devicesThrough($0).sorted().joined(separator: ", ")))" }.joined(separator: "; ")
                throw BrokerError(.policyRefused, "IOAS \(ioas.id) cannot be dirty-tracked: \(list) was allocated without dirty tracking, so that DMA would go unseen; re-attach those devices with dirty=required or preferred (behind a dirty-capable IOMMU)")
            }
            var started: [HWPTRecord] = []
            for h in hwpts where h.flags.contains(.dirtyTracking) && !h.tracking {
                do {
                    try backend.setDirtyTracking(hwpt: h.id, enabled: true)
                    h.tracking = true
                    started.append(h)
                } catch let error as IommuError {
                    var rollback: [String] = []
                    for s in started.reversed() {
                        do {
                            try backend.setDirtyTracking(hwpt: s.id, enabled: false)
                            s.tracking = false
                        } catch {
                            rollback.append("HWPT \(s.id): \(error)")
                        }
                    }
                    var failure = BrokerError.kernel(error, "starting dirty tracking on HWPT \(h.id) of IOAS \(ioas.id)")
                    failure.message += started.isEmpty ? " Nothing was started." : " Tracking was stopped again on HWPT \(started.map(\.id).map(String.init).joined(separator: ", "))."
                    if !rollback.isEmpty { failure.message += " Rolling back failed on: \(rollback.joined(separator: "; "))." }
                    throw failure
                }
            }
            ioas.dirtyEnabled = true
            emit(.dirtyTrackingStarted(owner: ioas.owner, ioas: ioas.id))
            return dirtyStatus(ioas)
        }
    }

    /// `dirty.stop`: stops tracking on every HWPT of the IOAS, trying all of them; an error
    /// lists those that still track.
    public func dirtyStop(_ caller: Caller, _ params: DirtyParams) throws -> DirtyStatusResult {
        // Under the owner's gate: no dirty read of the owner uses its scratch bitmap meanwhile.
        try serialized({ try ownerOfIOAS(caller, params.ioas, write: "dirty.stop") }) { owner in try locked {
            let ioas = try ioas(caller, params.ioas, write: "dirty.stop")
            var failures: [String] = []
            var firstError: IommuError?
            for h in ioas.hwpts.sorted().compactMap({ hwptTable[$0] }) where h.tracking {
                do {
                    try backend.setDirtyTracking(hwpt: h.id, enabled: false)
                    h.tracking = false
                } catch let error as IommuError {
                    firstError = firstError ?? error
                    failures.append("HWPT \(h.id): \(error)")
                }
            }
            if let firstError {
                throw BrokerError(.kernel, "stopping dirty tracking on IOAS \(ioas.id) failed; still tracking: \(failures.joined(separator: "; ")). Retry dirty.stop.", kernel: firstError)
            }
            if ioas.dirtyEnabled {
                ioas.dirtyEnabled = false
                emit(.dirtyTrackingStopped(owner: ioas.owner, ioas: ioas.id))
            }
            // Daemon-made HWPTs that devices left while tracking was on were kept for their dirty
            // pages (see `leave`): with tracking off, nothing is lost by destroying them.
            for h in ioas.hwpts.sorted().compactMap({ hwptTable[$0] }) where h.auto && h.isUnused {
                do {
                    try destroyHWPT(h)
                } catch {
                    logger.warning("could not destroy unused HWPT after dirty.stop", metadata: ["hwpt": "\(h.id)", "error": "\(error)"])
                }
            }
            if !owner.ioas.contains(where: { ioasTable[$0]?.dirtyEnabled == true }) { owner.dirtyScratch.release() }
            return dirtyStatus(ioas)
        } }
    }

    /// `dirty.read`: the union of the tracking HWPTs' dirty bitmaps over the range, as runs or
    /// as a bitmap memfd (returned in `fds`; the result's `bitmap` indexes it).
    ///
    /// Nothing the kernel clears is lost, whatever the answer's size (docs/PROTOCOL.md, "dirty.read"):
    /// - The kernel is only ever handed ranges that are mapped from end to end: on a hole, its
    ///   read stops there without an error (io_pagetable.c `__iommu_read_and_clear_dirty`), so
    ///   the range is read one contiguous mapped segment at a time.
    /// - A clearing read of runs that could be cut short at `max_runs` is made in two passes: a
    ///   `NO_CLEAR` read of the whole range finds where the answer must stop, then a clearing
    ///   read covers only the part that is answered. Pages past `resume_iova` stay dirty in the
    ///   kernel for the next read; pages the device dirtied between the two passes inside the
    ///   answered part are answered too (so such an answer may hold a few more runs than asked).
    /// - A clearing read that fails after others succeeded does not drop what was read: the
    ///   answer carries it, with the failure in `clear_failures` (those HWPTs keep their bits).
    ///
    /// With `into` (the VMM channel's bitmap memfd, supplied once and reused), a `bitmap` read
    /// writes the whole bitmap at offset 0 of that file instead of answering a new memfd; the
    /// file must be a regular file at least `bitmap_bytes` long.
    public func dirtyRead(_ caller: Caller, _ params: DirtyReadParams, into bitmapFD: Int32? = nil) throws -> WithFDs<DirtyReadResult> {
        let pageSize = params.pageSize ?? Self.pageSize
        guard pageSize >= 512, pageSize & (pageSize - 1) == 0 else {
            throw BrokerError.invalid("dirty.read: page_size \(pageSize) must be a power of two of at least 512 (usually 4096)")
        }
        try Self.checkRange(iova: params.iova, length: params.length, alignment: pageSize, "dirty.read")
        let format = params.format ?? .runs
        let clear = params.clear ?? true
        if let maxRuns = params.maxRuns, maxRuns < 1 {
            let limit = readLocked { config.maxDirtyRuns }  // `config` changes on reload, under `lock`
            throw BrokerError.invalid("dirty.read: max_runs \(maxRuns) must be at least 1 (leave it out for the daemon's limit of \(limit))")
        }
        let what = clear ? "dirty.read (read-and-clear)" : nil
        return try serialized({ try ownerOfIOAS(caller, params.ioas, write: what) }) { owner in
            // 1. Under `lock`: the checks, the mapped segments and the tracking HWPTs; the
            // owner's gate keeps them so (maps, unmaps, dirty.stop and ioas.destroy of the owner
            // wait for it). Nothing is reserved: a read changes no record.
            let (ioas, segments, hwpts, configuredMaxRuns) = try readLocked {
                () throws -> (IOASRecord, [(start: UInt64, end: UInt64)], [HWPTRecord], Int) in
                let ioas = try self.ioas(caller, params.ioas, write: what)
                guard ioas.dirtyEnabled else {
                    throw BrokerError(.conflict, "dirty tracking is not started on IOAS \(ioas.id); call dirty.start first")
                }
                let bitCount = params.length / pageSize
                let words = DirtyBitmap.wordCount(length: params.length, pageSize: pageSize)
                guard bitCount <= UInt64(Int.max), words <= config.maxDirtyBitmapBytes / 8 else {
                    throw BrokerError(.limitExceeded, "dirty.read: a bitmap of \(params.length / pageSize) pages is larger than the limit of \(config.maxDirtyBitmapBytes) bytes; read a smaller range or a larger page_size")
                }
                let segments = try dirtySegments(ioas, iova: params.iova, end: params.iova + params.length, pageSize: pageSize)
                let hwpts = ioas.hwpts.sorted().compactMap { hwptTable[$0] }.filter(\.tracking)
                return (ioas, segments, hwpts, config.maxDirtyRuns)
            }
            // 2. Under the owner's gate only: the kernel reads, the runs or the bitmap file.
            let bitCount = params.length / pageSize
            let words = DirtyBitmap.wordCount(length: params.length, pageSize: pageSize)
            let end = params.iova + params.length
            let dirtyScratch = owner.dirtyScratch
            // The kernel only sets bits, so reading every tracking HWPT into one zeroed bitmap
            // gives their union without a second buffer.
            var result = DirtyReadResult(
                ioas: ioas.id, iova: params.iova, length: params.length, pageSize: pageSize, cleared: clear,
                format: format, dirtyPages: 0)
            switch format {
            case .packedRuns:
                return try dirtyReadPacked(
                    params, result, hwpts, segments, dirtyScratch, ioas: ioas, words: words, bitCount: bitCount,
                    pageSize: pageSize, clear: clear, maxRuns: min(params.maxRuns ?? configuredMaxRuns, configuredMaxRuns))
            case .runs:
                let union = try dirtyScratch.zeroed(words: words)
                let maxRuns = min(params.maxRuns ?? configuredMaxRuns, configuredMaxRuns)
                // At most one run in two pages: below that, the answer cannot be cut short.
                let mayTruncate = UInt64(maxRuns) < (bitCount + 1) / 2
                let twoPass = clear && mayTruncate
                var failures = try readDirty(hwpts, segments, base: params.iova, pageSize: pageSize, clear: clear && !twoPass, into: union)
                var coalesced = DirtyBitmap.runs(UnsafeBufferPointer(union), bitCount: Int(bitCount), base: params.iova, pageSize: pageSize, maxRuns: maxRuns)
                var answeredEnd = end
                if twoPass {
                    // Clear only what is answered: up to the first run left out, rounded up to
                    // what the kernel accepts as a range end (the page size and the IOAS's IOVA
                    // alignment); the bits found past it stay dirty in the kernel.
                    if let resume = coalesced.resumeIOVA {
                        let granule = max(pageSize, try ioasAlignment(ioas))
                        answeredEnd = min(end, (resume + granule - 1) & ~(granule - 1))
                    }
                    let answered = segments.compactMap { s in s.start < answeredEnd ? (start: s.start, end: min(s.end, answeredEnd)) : nil }
                    failures = try readDirty(hwpts, answered, base: params.iova, pageSize: pageSize, clear: true, into: union)
                    let answeredBits = Int((answeredEnd - params.iova) / pageSize)
                    coalesced = DirtyBitmap.runs(UnsafeBufferPointer(union), bitCount: answeredBits, base: params.iova, pageSize: pageSize)
                    coalesced.resumeIOVA = answeredEnd < end ? answeredEnd : nil
                }
                clearScratch(union, dirtyScratch, after: coalesced, base: params.iova, pageSize: pageSize, answeredEnd: answeredEnd)
                result.runs = coalesced.runs
                result.dirtyPages = coalesced.dirtyPages
                result.resumeIOVA = coalesced.resumeIOVA
                result.clearFailures = failures.isEmpty ? nil : failures
                return WithFDs(result: result, fds: [])
            case .bitmap:
                if let bitmapFD {
                    // Checked before the (possibly clearing) read, so a bad file loses no bit.
                    try Self.checkBitmapFile(bitmapFD, bytes: UInt64(words) * 8)
                    // The client's memfd mapped (kept from its last read): the bits go straight there.
                    if let target = dirtyScratch.into.words(of: bitmapFD, bytes: words * 8) {
                        if let start = target.baseAddress { memset(start, 0, words * 8) }
                        let failures = try readDirty(hwpts, segments, base: params.iova, pageSize: pageSize, clear: clear, into: target)
                        var bits: UInt64 = 0
                        for w in target { bits &+= UInt64(w.nonzeroBitCount) }
                        result.dirtyPages = bits
                        result.bitmapBytes = words * 8
                        result.clearFailures = failures.isEmpty ? nil : failures
                        return WithFDs(result: result, fds: [])
                    }
                }
                let union = try dirtyScratch.zeroed(words: words)
                let failures = try readDirty(hwpts, segments, base: params.iova, pageSize: pageSize, clear: clear, into: union)
                if let bitmapFD {
                    result.dirtyPages = try Self.writeBitmap(union, to: bitmapFD)
                    // `writeBitmap` left the scratch all zero again: the next read skips its clear.
                    dirtyScratch.markClean()
                    result.bitmapBytes = words * 8
                    result.clearFailures = failures.isEmpty ? nil : failures
                    return WithFDs(result: result, fds: [])
                }
                let (fd, dirtyPages) = try makeBitmapMemfd(name: "iommufdd-dirty-\(ioas.id)", words: union)
                dirtyScratch.markClean()
                result.dirtyPages = dirtyPages
                result.bitmap = FDRef(fd: 0)
                result.bitmapBytes = words * 8
                result.clearFailures = failures.isEmpty ? nil : failures
                return WithFDs(result: result, fds: [fd])
            }
        }
    }

    /// Refuses a bitmap file that is not a regular file of at least `bytes` bytes.
    static func checkBitmapFile(_ fd: Int32, bytes: UInt64) throws {
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let err = Errno.current
            throw BrokerError.invalid("the dirty bitmap file cannot be used: fstat failed with \(err.name) (\(err.message))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw BrokerError.invalid("the dirty bitmap file is \(MemoryFileTable.kind(of: st.st_mode)), not a regular file; supply a memfd")
        }
        guard UInt64(max(st.st_size, 0)) >= bytes else {
            throw BrokerError.invalid("the dirty bitmap memfd is \(st.st_size) bytes, and this read needs \(bytes) (one bit per page); grow it (ftruncate) or read a smaller range")
        }
    }

    /// Writes `words` at offset 0 of `fd`; returns the bits set. On success the words are zero
    /// again: the pass that counts the bits clears the words that have some (a read of every
    /// word and a write of few, instead of clearing the whole scratch before the next read).
    static func writeBitmap(_ words: UnsafeMutableBufferPointer<UInt64>, to fd: Int32) throws -> UInt64 {
        guard let base = words.baseAddress else { return 0 }
        let raw = UnsafeRawPointer(base)
        let total = words.count * 8
        var offset = 0
        while offset < total {
            let rc = pwrite(fd, raw + offset, total - offset, off_t(offset))
            if rc < 0 {
                if errno == EINTR { continue }
                let err = Errno.current
                throw BrokerError(.io, "writing the dirty bitmap into the supplied memfd failed with \(err.name) (\(err.message)); the pages read were cleared and are lost unless read with clear off")
            }
            offset += rc
        }
        var bits: UInt64 = 0
        for i in 0..<words.count {
            let w = base[i]
            if w != 0 {
                bits &+= UInt64(w.nonzeroBitCount)
                base[i] = 0
            }
        }
        return bits
    }

    /// The mapped parts of `[iova, end)`, back-to-back mappings merged: the ranges the kernel
    /// reads without stopping at a hole. Refused, before any read, when a part does not start and
    /// end on a multiple of `pageSize` (the kernel would round it out over the hole beside it).
    func dirtySegments(_ ioas: IOASRecord, iova: UInt64, end: UInt64, pageSize: UInt64) throws -> [(start: UInt64, end: UInt64)] {
        var segments: [(start: UInt64, end: UInt64)] = []
        func add(_ start: UInt64, _ length: UInt64) {
            let s = max(start, iova), e = min(start + length, end)
            guard s < e else { return }
            if let last = segments.last, last.end == s {
                segments[segments.count - 1].end = e
            } else {
                segments.append((s, e))
            }
        }
        if let before = ioas.mappings.floor(iova), before.key < iova { add(before.key, before.value.length) }
        for entry in ioas.mappings.entries(from: iova, through: end - 1) { add(entry.key, entry.value.length) }
        for s in segments where s.start % pageSize != 0 || s.end % pageSize != 0 {
            throw BrokerError.invalid("dirty.read: the mapped part 0x\(String(s.start, radix: 16))-0x\(String(s.end - 1, radix: 16)) of IOAS \(ioas.id) does not start and end on a multiple of page_size \(pageSize), and a dirty page there would cover unmapped IOVA; read with a page_size that divides its bounds (4096 always does)")
        }
        return segments
    }

    /// Reads the dirty bitmap of every HWPT over every segment into `union` (bit 0 = `base`). A
    /// non-clearing read that fails throws (nothing was cleared). A clearing one that fails is
    /// returned as a failure instead, so the bits already read and cleared are still answered.
    func readDirty(
        _ hwpts: [HWPTRecord], _ segments: [(start: UInt64, end: UInt64)], base: UInt64, pageSize: UInt64, clear: Bool,
        into union: UnsafeMutableBufferPointer<UInt64>
    ) throws -> [DirtyClearFailure] {
        var failures: [DirtyClearFailure] = []
        for h in hwpts {
            do {
                for s in segments {
                    try readDirtySegment(h.id, start: s.start, end: s.end, base: base, pageSize: pageSize, clear: clear, into: union)
                }
            } catch let error as IommuError {
                guard clear else { throw BrokerError.kernel(error, "reading the dirty bitmap of HWPT \(h.id)") }
                let failure = BrokerError.kernel(error, "clearing read of the dirty bitmap of HWPT \(h.id)")
                logger.warning("dirty.read: \(failure.message); the pages it had read are answered, the rest stay dirty for the next read")
                failures.append(DirtyClearFailure(hwpt: h.id, error: failure.message))
            }
        }
        return failures
    }

    /// One kernel read of `[start, end)` into `union` at its bit offset from `base`: straight into
    /// `union` when the offset is a whole number of words (the kernel wants u64-aligned memory
    /// whose bit 0 is `start`), else through a scratch buffer shifted into place.
    private func readDirtySegment(
        _ hwpt: ObjectID, start: UInt64, end: UInt64, base: UInt64, pageSize: UInt64, clear: Bool,
        into union: UnsafeMutableBufferPointer<UInt64>
    ) throws {
        let firstBit = Int((start - base) / pageSize)
        let bits = Int((end - start) / pageSize)
        let words = (bits + 63) / 64
        guard let unionBase = union.baseAddress else { return }
        if firstBit % 64 == 0 {
            try backend.readDirtyBitmap(
                hwpt: hwpt, iova: start, length: end - start, pageSize: pageSize, clear: clear,
                into: UnsafeMutableRawBufferPointer(start: unionBase + firstBit / 64, count: words * 8))
            return
        }
        var scratch = [UInt64](repeating: 0, count: words)
        try scratch.withUnsafeMutableBytes {
            try backend.readDirtyBitmap(hwpt: hwpt, iova: start, length: end - start, pageSize: pageSize, clear: clear, into: $0)
        }
        let shift = UInt64(firstBit % 64)
        let first = firstBit / 64
        for (i, word) in scratch.enumerated() where word != 0 {
            union[first + i] |= word << shift
            if first + i + 1 < union.count { union[first + i + 1] |= word >> (64 - shift) }
        }
    }

    /// `dirty.read` `packed_runs`, under the owner's gate: as `runs` (the same reads, the same
    /// two passes when a clearing answer could be cut short, the same runs), but the runs go
    /// from the bitmap straight into the owner's kept byte buffer as varints, and the scan that
    /// finds them also zeroes the scratch words it reads: no array of runs, no byte array per
    /// answer, no second walk to clean the scratch. One allocation per answer is left: its
    /// base64 string (issue 16 target 4).
    private func dirtyReadPacked(
        _ params: DirtyReadParams, _ result: DirtyReadResult, _ hwpts: [HWPTRecord], _ segments: [(start: UInt64, end: UInt64)],
        _ dirtyScratch: DirtyScratch, ioas: IOASRecord, words: Int, bitCount: UInt64, pageSize: UInt64, clear: Bool, maxRuns: Int
    ) throws -> WithFDs<DirtyReadResult> {
        var result = result
        let end = params.iova + params.length
        let union = try dirtyScratch.zeroed(words: words)
        // At most one run in two pages: below that, the answer cannot be cut short.
        let twoPass = clear && UInt64(maxRuns) < (bitCount + 1) / 2
        var failures = try readDirty(hwpts, segments, base: params.iova, pageSize: pageSize, clear: clear && !twoPass, into: union)
        dirtyScratch.packed.removeAll()
        var packing = DirtyRunPacking.packBitmap(union, bitCount: Int(bitCount), maxRuns: maxRuns, zeroing: !twoPass, into: &dirtyScratch.packed)
        var answeredEnd = end
        var resumeIOVA = packing.resumeBit.map { params.iova + UInt64($0) * pageSize }
        if twoPass {
            // The first pass only found where the answer stops (its bytes are dropped); clear
            // only what is answered, as `runs` does.
            if let resume = resumeIOVA {
                let granule = max(pageSize, try ioasAlignment(ioas))
                answeredEnd = min(end, (resume + granule - 1) & ~(granule - 1))
            }
            let answered = segments.compactMap { s in s.start < answeredEnd ? (start: s.start, end: min(s.end, answeredEnd)) : nil }
            failures = try readDirty(hwpts, answered, base: params.iova, pageSize: pageSize, clear: true, into: union)
            dirtyScratch.packed.removeAll()
            let answeredBits = Int((answeredEnd - params.iova) / pageSize)
            packing = DirtyRunPacking.packBitmap(union, bitCount: answeredBits, zeroing: true, into: &dirtyScratch.packed)
            resumeIOVA = answeredEnd < end ? answeredEnd : nil
        }
        // The scan zeroed every word it read; what it did not read (from where it stopped, or
        // the end of the answered part) is zeroed here, the last word whole.
        if let start = union.baseAddress {
            let tailStart = min(resumeIOVA ?? answeredEnd, answeredEnd)
            let first = Int((tailStart - params.iova) / pageSize) / 64
            if first < union.count { (start + first).update(repeating: 0, count: union.count - first) }
            union[union.count - 1] = 0
        }
        dirtyScratch.markClean()
        result.packedRuns = dirtyScratch.takePackedString()
        result.runCount = packing.runs
        result.dirtyPages = packing.dirtyPages
        result.resumeIOVA = resumeIOVA
        result.clearFailures = failures.isEmpty ? nil : failures
        return WithFDs(result: result, fds: [])
    }

    /// The IOVA alignment the kernel requires of the IOAS's ranges (`IOMMU_IOAS_IOVA_RANGES`).
    private func ioasAlignment(_ ioas: IOASRecord) throws -> UInt64 {
        let ranges = try kcall("reading the IOVA alignment of IOAS \(ioas.id)") { try backend.iovaRanges(ioas: ioas.id, capacity: 256) }
        return max(ranges.alignment, 1)
    }

    /// Zeroes what a runs answer left set in the scratch (the runs, everything from the end of
    /// the answered part, the last word whole), so it needs no full clear next time.
    private func clearScratch(_ union: UnsafeMutableBufferPointer<UInt64>, _ dirtyScratch: DirtyScratch, after coalesced: DirtyBitmap.Coalesced, base: UInt64, pageSize: UInt64, answeredEnd: UInt64) {
        guard let start = union.baseAddress else { return }
        let shift = UInt64(pageSize.trailingZeroBitCount)
        for run in coalesced.runs {
            let first = Int((run.iova - base) >> shift) / 64
            let last = Int((run.iova - base + run.length - 1) >> shift) / 64
            (start + first).update(repeating: 0, count: last - first + 1)
        }
        let tailStart = min(coalesced.resumeIOVA ?? answeredEnd, answeredEnd)
        let first = Int((tailStart - base) >> shift) / 64
        if first < union.count { (start + first).update(repeating: 0, count: union.count - first) }
        union[union.count - 1] = 0
        dirtyScratch.markClean()
    }
}
