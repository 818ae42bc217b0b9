import IommufdCore

extension Broker {
    func dirtyStatus(_ ioas: IOASRecord) -> DirtyStatusResult {
        let hwpts = ioas.hwpts.sorted().compactMap { hwptTable[$0] }
        var untracked = Set(ioas.directDevices)
        for h in hwpts where !h.tracking { untracked.formUnion(h.devices) }
        return DirtyStatusResult(
            ioas: ioas.id, enabled: ioas.dirtyEnabled,
            trackingHWPTs: hwpts.filter(\.tracking).map(\.id),
            untrackableHWPTs: hwpts.filter { !$0.flags.contains(.dirtyTracking) }.map(\.id),
            untrackedDevices: ioas.dirtyEnabled ? untracked.sorted() : [])
    }

    /// `dirty.status`.
    public func dirtyStatus(_ caller: Caller, _ params: DirtyParams) throws -> DirtyStatusResult {
        try locked { dirtyStatus(try ioas(caller, params.ioas)) }
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
            let untrackable = hwpts.filter { !$0.flags.contains(.dirtyTracking) && !$0.devices.isEmpty }
            if !untrackable.isEmpty {
                let list = untrackable.map { "HWPT \($0.id) (devices \($0.devices.sorted().joined(separator: ", ")))" }.joined(separator: "; ")
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
        try locked {
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
            if !ioasTable.values.contains(where: \.dirtyEnabled) { dirtyScratch.release() }
            return dirtyStatus(ioas)
        }
    }

    /// `dirty.read`: the union of the tracking HWPTs' dirty bitmaps over the range, as runs or
    /// as a bitmap memfd (returned in `fds`; the result's `bitmap` indexes it).
    public func dirtyRead(_ caller: Caller, _ params: DirtyReadParams) throws -> WithFDs<DirtyReadResult> {
        let pageSize = params.pageSize ?? Self.pageSize
        guard pageSize >= 512, pageSize & (pageSize - 1) == 0 else {
            throw BrokerError.invalid("dirty.read: page_size \(pageSize) must be a power of two of at least 512 (usually 4096)")
        }
        try Self.checkRange(iova: params.iova, length: params.length, alignment: pageSize, "dirty.read")
        let format = params.format ?? .runs
        let clear = params.clear ?? true
        return try locked {
            let ioas = try ioas(caller, params.ioas, write: clear ? "dirty.read (read-and-clear)" : nil)
            guard ioas.dirtyEnabled else {
                throw BrokerError(.conflict, "dirty tracking is not started on IOAS \(ioas.id); call dirty.start first")
            }
            let bitCount = params.length / pageSize
            let words = DirtyBitmap.wordCount(length: params.length, pageSize: pageSize)
            guard bitCount <= UInt64(Int.max), words <= config.maxDirtyBitmapBytes / 8 else {
                throw BrokerError(.limitExceeded, "dirty.read: a bitmap of \(params.length / pageSize) pages is larger than the limit of \(config.maxDirtyBitmapBytes) bytes; read a smaller range or a larger page_size")
            }
            // The kernel only sets bits, so reading every tracking HWPT into one zeroed bitmap
            // gives their union without a second buffer. For a memfd answer that bitmap is the
            // memfd itself, mapped here: no copy, and its fresh pages are already zero.
            let union = try dirtyScratch.zeroed(words: words)
            for h in ioas.hwpts.sorted().compactMap({ hwptTable[$0] }) where h.tracking {
                try kcall("reading the dirty bitmap of HWPT \(h.id)") {
                    try backend.readDirtyBitmap(hwpt: h.id, iova: params.iova, length: params.length, pageSize: pageSize, clear: clear, into: UnsafeMutableRawBufferPointer(union))
                }
            }
            var result = DirtyReadResult(
                ioas: ioas.id, iova: params.iova, length: params.length, pageSize: pageSize, cleared: clear,
                format: format, dirtyPages: 0)
            switch format {
            case .runs:
                let maxRuns = min(max(params.maxRuns ?? config.maxDirtyRuns, 1), config.maxDirtyRuns)
                let coalesced = DirtyBitmap.runs(UnsafeBufferPointer(union), bitCount: Int(bitCount), base: params.iova, pageSize: pageSize, maxRuns: maxRuns)
                // Clear what was set (the runs, all past a truncation, the last word whole), so
                // the scratch needs no full clear next time.
                if let start = union.baseAddress {
                    let shift = UInt64(pageSize.trailingZeroBitCount)
                    for run in coalesced.runs {
                        let first = Int((run.iova - params.iova) >> shift) / 64
                        let last = Int((run.iova - params.iova + run.length - 1) >> shift) / 64
                        (start + first).update(repeating: 0, count: last - first + 1)
                    }
                    if let resume = coalesced.resumeIOVA {
                        let first = Int((resume - params.iova) >> shift) / 64
                        (start + first).update(repeating: 0, count: union.count - first)
                    }
                    union[union.count - 1] = 0
                    dirtyScratch.markClean()
                }
                result.runs = coalesced.runs
                result.dirtyPages = coalesced.dirtyPages
                result.resumeIOVA = coalesced.resumeIOVA
                return WithFDs(result: result, fds: [])
            case .bitmap:
                let (fd, dirtyPages) = try makeBitmapMemfd(name: "iommufdd-dirty-\(ioas.id)", words: union)
                dirtyScratch.markClean()
                result.dirtyPages = dirtyPages
                result.bitmap = FDRef(fd: 0)
                result.bitmapBytes = words * 8
                return WithFDs(result: result, fds: [fd])
            }
        }
    }
}
