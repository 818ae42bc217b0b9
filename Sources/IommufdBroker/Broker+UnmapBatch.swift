import IommufdCore
import IommufdContract

/// What `Broker.ioasUnmapBatch` did: the results of the entries it unmapped, in order, and the
/// error that stopped it at entry `results.count`, if one did (the entries before it stay
/// unmapped, as each `ioas.unmap` would have left them).
public struct UnmapBatchOutcome {
    public var results: [IOASUnmapResult]
    public var failure: (any Error)?
}

/// A batch of unmaps (the VMM channel's UNMAP message): each entry is `ioas.unmap`'s phases 1-3
/// with its checks, kernel call, records and journal, with the same results and errors as the
/// entries sent one by one; what a batch saves is the overhead around them:
/// - the owner's gate is taken once for all the consecutive entries of one owner;
/// - the entries go in groups (at most `unmapGroup`): one hold of the broker's lock plans a
///   group (phase 1), the kernel calls follow under the gate only (phase 2), one hold records
///   them (phase 3), journaled as one `unmapBatch` record of the group's mappings. A group ends before an entry whose range meets the range of an entry
///   already in it (same IOAS): every plan then reads records that the unmaps before it in the
///   group do not change, so it is the plan it would have been after them. A plan changes
///   nothing, so one that is refused, or follows a kernel failure, is simply dropped: the batch
///   stops at that entry, with the entries before it done;
/// - nothing is allocated an entry: a group's plans and the mappings they found go in arrays
///   kept from group to group; entries in ascending order (a VMM's usual) are found apart
///   without comparing ranges; the mappings leave the index in runs (one move of a chunk for a
///   run of them) and the references of a run of mappings of one memory file go with one hash.
/// Issue 16 target 2.
extension Broker {
    /// At most this many entries are planned in one hold of the lock (about 10 µs; other owners
    /// wait for no longer).
    static let unmapGroup = 64

    public func ioasUnmapBatch(_ caller: Caller, _ batch: [IOASUnmapParams]) -> UnmapBatchOutcome {
        var results: [IOASUnmapResult] = []
        results.reserveCapacity(batch.count)
        var next = 0
        while next < batch.count {
            do {
                let start = next
                next = try serialized({ try ownerOfIOAS(caller, batch[start].ioas, write: "ioas.unmap") }) { owner in
                    try unmapRun(caller, batch, from: start, owner: owner, results: &results)
                }
            } catch {
                return UnmapBatchOutcome(results: results, failure: error)
            }
        }
        return UnmapBatchOutcome(results: results, failure: nil)
    }

    /// One planned entry of a group: its IOAS, the range for the backend (nil: nothing to
    /// unmap, a 0-byte success) and its mappings, `found[inside]` in the group's one array.
    private struct GroupPlan {
        let ioas: IOASRecord
        let range: (iova: UInt64, length: UInt64, all: Bool)?
        let inside: Range<Int>
    }

    /// Under `owner`'s gate: unmaps `batch[start...]` up to the first entry of another owner;
    /// returns that entry's index (or the batch's end). Throws the error of the entry that
    /// stopped it (`results` then holds the entries before it).
    private func unmapRun(
        _ caller: Caller, _ batch: [IOASUnmapParams], from start: Int, owner: OwnerRecord, results: inout [IOASUnmapResult]
    ) throws -> Int {
        var i = start
        // Kept from group to group: no allocation an entry.
        let capacity = min(Self.unmapGroup, batch.count - start)
        var plans: [GroupPlan] = []
        var found: [MappingIndex.Entry] = []
        var ranges: [(ioas: ObjectID, first: UInt64, last: UInt64)] = []
        var unmapped: [Result<UInt64, any Error>] = []
        plans.reserveCapacity(capacity)
        found.reserveCapacity(capacity)
        ranges.reserveCapacity(capacity)
        unmapped.reserveCapacity(capacity)
        while i < batch.count {
            // 1. Under `lock`: plan a group.
            plans.removeAll(keepingCapacity: true)
            found.removeAll(keepingCapacity: true)
            ranges.removeAll(keepingCapacity: true)
            var refused: (any Error)?
            var runEnds = false
            try locked {
                journal?.stateUnchanged = true  // a plan changes nothing
                var previous: IOASRecord?  // the entry before's IOAS: the table cannot change during this hold
                var highest: UInt64?  // the highest last IOVA of the group's ranges, of any IOAS
                while i + plans.count < batch.count, plans.count < Self.unmapGroup {
                    let params = batch[i + plans.count]
                    let ioas: IOASRecord
                    if i + plans.count == start {
                        ioas = try self.ioas(caller, params.ioas, write: "ioas.unmap")
                    } else if let previous, previous.id == params.ioas {
                        ioas = previous  // looked up (and found this owner's) by an entry before
                    } else {
                        // The caller may change the first entry's IOAS (`serialized` found its
                        // owner with the caller's rights), so every IOAS of that owner, which
                        // cannot change hands while its gate is held. An IOAS of another owner,
                        // or none, ends the run: the next run's lookup answers for it.
                        guard let record = ioasTable[params.ioas], record.owner == owner.name else {
                            runEnds = true
                            break
                        }
                        ioas = record
                    }
                    let range = Self.unmapRange(params)
                    // Entries in ascending order (a VMM's usual) pass the first test, no scan.
                    if let highest, range.first <= highest,
                        ranges.contains(where: { $0.ioas == ioas.id && $0.first <= range.last && range.first <= $0.last })
                    {
                        break
                    }
                    let from = found.count
                    do {
                        let backendRange = try unmapChecks(ioas, params, owner, appendingTo: &found)
                        plans.append(GroupPlan(ioas: ioas, range: backendRange, inside: from..<found.count))
                    } catch {
                        if plans.isEmpty { throw error }
                        refused = error  // after the entries planned before it
                        break
                    }
                    ranges.append((ioas.id, range.first, range.last))
                    highest = max(highest ?? 0, range.last)
                    previous = ioas
                }
                // Phase 3 follows, and takes the lock again: a record pending from the group
                // before is written then.
                if !plans.isEmpty { journal?.flushLater = true }
            }
            // 2. Under the owner's gate only: the kernel calls, in order, up to a failure.
            unmapped.removeAll(keepingCapacity: true)
            for plan in plans {
                guard let range = plan.range else {
                    unmapped.append(.success(0))
                    continue
                }
                let result = backendUnmap(plan.ioas, iova: range.iova, length: range.length, all: range.all)
                unmapped.append(result)
                if case .failure = result { break }
            }
            // 3. Under `lock`: record them, in order; the first failure stops the batch.
            try locked {
                journal?.stateUnchanged = true
                try recordGroup(plans, found, unmapped, owner: owner, results: &results)
                // The run goes on with the next group's plan (another hold of the lock), which
                // writes this group's record: one journal write a batch, not one a group.
                if refused == nil, !runEnds, i + plans.count < batch.count { journal?.flushLater = true }
            }
            i += plans.count
            if let refused { throw refused }
            if runEnds { return i }
        }
        return i
    }

    /// Phase 3 of a group, under `lock`: each entry the kernel unmapped is `finishUnmap`'s work
    /// (journal records, refunds and the result, in order; the kernel failure of an entry is
    /// thrown after the entries before it), except that the mappings leave the IOAS's index in
    /// runs (`MappingIndex.remove(_:)`: one move of a chunk's tail for a run, not one an entry)
    /// and the references of consecutive mappings of one memory file are dropped with one hash.
    private func recordGroup(
        _ plans: [GroupPlan], _ found: [MappingIndex.Entry], _ unmapped: [Result<UInt64, any Error>],
        owner: OwnerRecord, results: inout [IOASUnmapResult]
    ) throws {
        var keys: [UInt64] = []  // of `keysOf`'s index, still to remove
        keys.reserveCapacity(found.count)
        var keysOf: IOASRecord?
        var file: (key: MemoryFileTable.Key, count: Int)?  // references still to drop
        let journal = self.journal  // once, not an entry
        func removeKeys() {
            if let keysOf, !keys.isEmpty { keysOf.mappings.remove(keys) }
            keys.removeAll(keepingCapacity: true)
        }
        defer {
            removeKeys()
            if let file { files.release(file.key, count: file.count) }
            journal?.endGroup()  // the group's one `unmapBatch` record
        }
        // unmapfast: the group's `unmapBatch` bytes in one reservation, before the loop below
        // (nothing is written before the commit, and nothing reads the records in between),
        // when no entry of it unmaps everything: those record a `clear` in `forget`, which
        // must follow the group's entries before it, so they keep one call a plan.
        var journaledAhead = false
        if let journal, !plans.contains(where: { $0.range?.all == true }) {
            var count = 0
            for (plan, result) in zip(plans, unmapped) where plan.range != nil {
                guard case .success = result else { break }
                count += plan.inside.count
            }
            journal.groupUnmapped(count: count) { writer in
                for (plan, result) in zip(plans, unmapped) where plan.range != nil {
                    guard case .success = result else { break }
                    let id = plan.ioas.id
                    for j in plan.inside { writer.append(ioas: id, iova: found[j].key) }
                }
            }
            journaledAhead = true
        }
        for (plan, result) in zip(plans, unmapped) {
            guard let range = plan.range else {
                results.append(IOASUnmapResult(ioas: plan.ioas.id, unmappedBytes: 0, mappings: 0, ownerPinnedBytes: owner.pinnedBytes))
                continue
            }
            let kernelBytes = try result.get()
            let ioas = plan.ioas
            var bytes: UInt64 = 0
            if range.all {
                if keysOf === ioas { removeKeys() }  // never: an `all` entry meets every range of its IOAS
                bytes = forget(Array(found[plan.inside]), of: ioas, all: true, owner: owner)
            } else {
                if keysOf !== ioas {
                    removeKeys()
                    keysOf = ioas
                }
                let ioasID = ioas.id
                var charged: UInt64 = 0  // refunded once a plan (each a class property access)
                defer {
                    ioas.pinnedBytes -= charged
                    owner.pinnedBytes -= charged
                }
                if !journaledAhead { journal?.groupUnmapped(ioas: ioasID, found[plan.inside]) }  // unmapfast: one call a plan
                for j in plan.inside {
                    let entry = found[j]
                    keys.append(entry.key)
                    if case .file(let key) = entry.value.backing {
                        if file?.key == key {
                            file!.count += 1
                        } else {
                            if let file { files.release(file.key, count: file.count) }
                            file = (key, 1)
                        }
                    } else {
                        if case .dmabuf = entry.value.backing { forgetDmabufMapping(entry.key, length: entry.value.length, of: ioas) }
                        release(entry.value.backing, length: entry.value.length)
                    }
                    charged += entry.value.charged
                    bytes += entry.value.length
                }
            }
            if kernelBytes != bytes {
                logger.warning("kernel and records disagree on unmapped bytes", metadata: ["ioas": "\(ioas.id)", "kernel": "\(kernelBytes)", "records": "\(bytes)"])
            }
            results.append(IOASUnmapResult(
                ioas: ioas.id, unmappedBytes: range.all ? bytes : kernelBytes, mappings: plan.inside.count, ownerPinnedBytes: owner.pinnedBytes))
        }
    }

    /// The IOVA an unmap entry may touch: its range, or the whole IOAS (`all`, or parameters
    /// its plan refuses).
    private static func unmapRange(_ params: IOASUnmapParams) -> (first: UInt64, last: UInt64) {
        guard params.all != true, let iova = params.iova, let length = params.length, length > 0 else { return (0, .max) }
        let (last, overflow) = iova.addingReportingOverflow(length - 1)
        return overflow ? (0, .max) : (iova, last)
    }

    /// Phase 2 of an unmap: the backend call (the message for a failure built only then).
    func backendUnmap(_ ioas: IOASRecord, iova: UInt64, length: UInt64, all: Bool) -> Result<UInt64, any Error> {
        Result {
            try kcall(
                all ? "unmapping everything of IOAS \(ioas.id)"
                    : "unmapping [\(Self.hex(iova)), \(Self.hex(iova &+ (length &- 1)))] of IOAS \(ioas.id)"
            ) { try backend.unmap(ioas: ioas.id, iova: iova, length: length) }
        }
    }

    /// Phase 3 of an unmap, under `lock`: forgets and refunds what the kernel unmapped.
    func finishUnmap(
        _ ioas: IOASRecord, inside: [MappingIndex.Entry], all: Bool, _ unmapped: Result<UInt64, any Error>, _ owner: OwnerRecord
    ) throws -> IOASUnmapResult {
        let kernelBytes = try unmapped.get()
        let bytes = forget(inside, of: ioas, all: all, owner: owner)
        if kernelBytes != bytes {
            logger.warning("kernel and records disagree on unmapped bytes", metadata: ["ioas": "\(ioas.id)", "kernel": "\(kernelBytes)", "records": "\(bytes)"])
        }
        return IOASUnmapResult(ioas: ioas.id, unmappedBytes: all ? bytes : kernelBytes, mappings: inside.count, ownerPinnedBytes: owner.pinnedBytes)
    }
}
