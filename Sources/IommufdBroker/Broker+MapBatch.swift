import IommufdContract
import IommufdCore

/// What `Broker.ioasMapBatch` did: the results of the entries it mapped, in order, and the
/// error that stopped it at entry `results.count`, if one did (the entries before it stay
/// mapped, as each `ioas.map` would have left them).
public struct MapBatchOutcome {
    public var results: [IOASMapResult]
    public var failure: (any Error)?
}

/// A batch of maps (the VMM channel's MAP message): each entry is `ioas.map` with its checks,
/// kernel call and records, in order, with the same results and errors as the
/// entries sent one by one. What a batch saves is the owner's gate (and the two look-ups around
/// it) for every entry but the first of a run of one owner's entries, the dma-buf probe of an
/// fd already found not to be one, and per group of up to `mapGroup` entries, the holds of the
/// broker's lock and the journal write (one each for phases 1 and 3 of the whole group, instead
/// of two holds and one write an entry), the journal's records (one `mapBatch` record holding
/// the group's mappings instead of one `map` record each) and the `fstat` of the memory fd. A dma-buf entry is
/// mapped alone by `ioas.map` (outside any run). Issue 16 target 2.
extension Broker {
    /// The batch's entries: the parameters and the memory fd of each.
    public func ioasMapBatch(_ caller: Caller, _ batch: [(params: IOASMapParams, fd: Int32)]) -> MapBatchOutcome {
        var results: [IOASMapResult] = []
        results.reserveCapacity(batch.count)
        var plainFD: Int32 = -1  // an fd found not to be a dma-buf (the caller holds it open throughout)
        var next = 0
        while next < batch.count {
            do {
                let start = next
                let (params, fd) = batch[start]
                if fd != plainFD {
                    if try dmabufInfo(fd) != nil {  // MARK: p2p
                        results.append(try ioasMap(caller, params, fd: fd))
                        next += 1
                        continue
                    }
                    plainFD = fd
                }
                let flags = try Self.mapChecks(params)
                next = try serialized({ try ownerOfIOAS(caller, params.ioas, write: "ioas.map") }) { owner in
                    try mapRun(caller, batch, from: start, flags: flags, owner: owner, plainFD: &plainFD, results: &results)
                }
            } catch {
                return MapBatchOutcome(results: results, failure: error)
            }
        }
        return MapBatchOutcome(results: results, failure: nil)
    }

    /// At most this many entries are checked and held in one hold of the lock, and recorded
    /// (and journaled: one write) in one.
    static let mapGroup = 64

    /// One planned entry of a group: its IOAS, parameters and checked flags, and the memory
    /// file phase 1 holds for it (its quota reserved).
    private struct MapPlan {
        let ioas: IOASRecord
        let params: IOASMapParams
        let flags: MapFlags
        let key: MemoryFileTable.Key
        let heldFD: Int32
    }

    /// Under `owner`'s gate: maps `batch[start...]` (whose checks gave `firstFlags`) up to the
    /// first entry of another owner, or of a dma-buf; returns that entry's index (or the
    /// batch's end). Throws the error of the entry that stopped it.
    ///
    /// In groups (at most `mapGroup`), each entry `ioas.map`'s phases, with the entries of a
    /// group sharing each phase's hold of the lock: 0. outside the lock, the parameters' checks
    /// and the dma-buf probe of each new fd, up to the group's end; 1. one hold: the IOAS
    /// look-up, the quota reserved and the memory file held, for each entry in order; 2. the
    /// kernel calls, in order, up to a failure; 3. one hold: each mapping recorded and
    /// journaled in order (one `mapBatch` record and one journal write for the group), what 1 took for entries the kernel
    /// did not map given back. Each check reads what the entries before it left as their own
    /// `ioas.map`s would have (the quota counts the group's earlier entries as mapped; the
    /// kernel calls are the same calls in the same order), so the results and the first error,
    /// in entry order, are those of entry-by-entry, which MapBatchTests checks.
    private func mapRun(
        _ caller: Caller, _ batch: [(params: IOASMapParams, fd: Int32)], from start: Int, flags firstFlags: MapFlags,
        owner: OwnerRecord, plainFD: inout Int32, results: inout [IOASMapResult]
    ) throws -> Int {
        let byFile = backend.features.contains(.ioasMapFile)
        let capacity = min(Self.mapGroup, batch.count - start)
        var flags: [MapFlags] = []
        var plans: [MapPlan] = []
        var mapped: [(result: Result<UInt64, any Error>, backing: MappingRecord.Backing)] = []
        flags.reserveCapacity(capacity)
        plans.reserveCapacity(capacity)
        mapped.reserveCapacity(capacity)
        var i = start
        while i < batch.count {
            // 0. Outside the lock: the group's extent. A dma-buf entry ends the run (it is mapped
            // alone); an entry whose own checks fail ends the group, its error thrown after the
            // entries before it are done.
            flags.removeAll(keepingCapacity: true)
            var checkFailure: (any Error)?
            var dmabufNext = false
            while i + flags.count < batch.count, flags.count < Self.mapGroup {
                let (params, fd) = batch[i + flags.count]
                if i + flags.count == start {
                    flags.append(firstFlags)
                    continue
                }
                do {
                    if fd != plainFD {
                        if try dmabufInfo(fd) != nil {  // MARK: p2p
                            dmabufNext = true
                            break
                        }
                        plainFD = fd
                    }
                    flags.append(try Self.mapChecks(params))
                } catch {
                    checkFailure = error
                    break
                }
            }
            // 1. Under `lock`: look up, reserve, hold, entry by entry.
            plans.removeAll(keepingCapacity: true)
            var refused: (any Error)?
            var runEnds = false
            try locked {
                journal?.stateUnchanged = true  // mappings only: the journal records them in phase 3
                var previous: IOASRecord?  // the entry before's IOAS: the table cannot change during this hold
                var planned: UInt64 = 0  // bytes the group's entries before reserved
                var lastStat: MemoryFileTable.Stat?  // the last fd's, for the entries after it
                for k in 0..<flags.count {
                    let (params, fd) = batch[i + k]
                    let ioas: IOASRecord
                    if i + k == start {
                        ioas = try self.ioas(caller, params.ioas, write: "ioas.map")
                    } else if let previous, previous.id == params.ioas {
                        ioas = previous
                    } else {
                        // The caller may change the first entry's IOAS (`serialized` found its
                        // owner with the caller's rights), so every IOAS of that owner, which
                        // cannot change hands while its gate is held. An IOAS of another owner,
                        // or none, ends the run: the next run's look-up answers for it.
                        guard let record = ioasTable[params.ioas], record.owner == owner.name else {
                            runEnds = true
                            break
                        }
                        ioas = record
                    }
                    do {
                        // As `ioas.map` would see it: the group's earlier entries mapped, not in flight.
                        owner.pinnedBytes += planned
                        owner.reservedBytes -= planned
                        defer {
                            owner.pinnedBytes -= planned
                            owner.reservedBytes += planned
                        }
                        try reserve(owner, params.length)
                        do {
                            let (key, heldFD) = try files.retain(fd: fd, offset: params.offset, length: params.length, stat: &lastStat)
                            plans.append(MapPlan(ioas: ioas, params: params, flags: flags[k], key: key, heldFD: heldFD))
                        } catch {
                            owner.reservedBytes -= params.length
                            throw error
                        }
                    } catch {
                        if plans.isEmpty { throw error }
                        refused = error  // after the entries planned before it
                        break
                    }
                    planned += params.length
                    previous = ioas
                }
                // Phase 3 follows, and takes the lock again: a record pending from the group
                // before is written then.
                if !plans.isEmpty { journal?.flushLater = true }
            }
            // 2. Under the owner's gate only: the backend calls, which pin the pages, in order,
            // up to a failure.
            mapped.removeAll(keepingCapacity: true)
            for plan in plans {
                var backing: MappingRecord.Backing = .file(plan.key)
                let result = Result { () throws -> UInt64 in
                    let params = plan.params
                    var kernelFlags = plan.flags
                    if params.iova != nil { kernelFlags.insert(.fixedIOVA) }
                    let source: MemorySource
                    if byFile {
                        source = .file(fd: plan.heldFD, offset: params.offset)
                    } else {
                        let address = try mapShared(fd: plan.heldFD, offset: params.offset, length: params.length, writable: plan.flags.contains(.writeable))
                        backing = .mmap(plan.key, address: address)
                        source = .userAddress(address)
                    }
                    return try kcall("mapping \(Self.hex(params.length)) bytes into IOAS \(plan.ioas.id)") {
                        try backend.map(ioas: plan.ioas.id, source: source, length: params.length, iova: params.iova ?? 0, flags: kernelFlags)
                    }
                }
                mapped.append((result, backing))
                if case .failure = result { break }
            }
            // 3. Under `lock`: record and journal the mappings in order, or give back what 1
            // took; the first failure stops the batch.
            try locked {
                journal?.stateUnchanged = true
                defer { journal?.endGroup() }  // the group's one `mapBatch` record
                var failure: (any Error)?
                for (k, plan) in plans.enumerated() {
                    let length = plan.params.length
                    owner.reservedBytes -= length
                    guard k < mapped.count else {
                        release(.file(plan.key), length: length)  // not reached: a failure before it
                        continue
                    }
                    let (result, backing) = mapped[k]
                    if failure != nil {
                        // Mapped by the kernel after an entry whose records refused it (below):
                        // not an entry `ioas.map` one by one would have reached.
                        if case .success(let iova) = result { _ = try? backend.unmap(ioas: plan.ioas.id, iova: iova, length: length) }
                        release(backing, length: length)
                        continue
                    }
                    let iova: UInt64
                    do {
                        iova = try result.get()
                    } catch {
                        release(backing, length: length)
                        failure = error
                        continue
                    }
                    let mapping = MappingRecord(length: length, charged: length, backing: backing, flags: plan.flags)
                    guard ioasTable[plan.ioas.id] === plan.ioas, plan.ioas.mappings.insert(mapping, at: iova) else {
                        // The kernel accepted a mapping the records say overlaps: trust neither, undo it.
                        _ = try? backend.unmap(ioas: plan.ioas.id, iova: iova, length: length)
                        release(backing, length: length)
                        failure = BrokerError(.conflict, "IOAS \(plan.ioas.id) already has a mapping at \(Self.hex(iova)) in the daemon's records; the new mapping was undone")
                        continue
                    }
                    owner.pinnedBytes += length
                    plan.ioas.pinnedBytes += length
                    journal?.groupMapped(ioas: plan.ioas.id, iova: iova, mapping, offset: plan.params.offset)
                    results.append(IOASMapResult(ioas: plan.ioas.id, iova: iova, length: length, ownerPinnedBytes: owner.pinnedBytes))
                }
                if let failure { throw failure }
                // The run goes on with the next group's hold of the lock (phase 1), which writes
                // this group's record: one journal write a batch, not one a group.
                if refused == nil, !runEnds, !dmabufNext, checkFailure == nil, i + plans.count < batch.count { journal?.flushLater = true }
            }
            i += plans.count
            if let refused { throw refused }
            if runEnds || dmabufNext { return i }
            if let checkFailure { throw checkFailure }
        }
        return i
    }
}
