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
///   them (phase 3). A group ends before an entry whose range meets the range of an entry
///   already in it (same IOAS): every plan then reads records that the unmaps before it in the
///   group do not change, so it is the plan it would have been after them. A plan changes
///   nothing, so one that is refused, or follows a kernel failure, is simply dropped: the batch
///   stops at that entry, with the entries before it done.
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

    /// Under `owner`'s gate: unmaps `batch[start...]` up to the first entry of another owner;
    /// returns that entry's index (or the batch's end). Throws the error of the entry that
    /// stopped it (`results` then holds the entries before it).
    private func unmapRun(
        _ caller: Caller, _ batch: [IOASUnmapParams], from start: Int, owner: OwnerRecord, results: inout [IOASUnmapResult]
    ) throws -> Int {
        var i = start
        var plans: [UnmapPlan] = []
        plans.reserveCapacity(min(Self.unmapGroup, batch.count - start))
        while i < batch.count {
            // 1. Under `lock`: plan a group.
            plans.removeAll(keepingCapacity: true)
            var refused: (any Error)?
            var runEnds = false
            try locked {
                journal?.stateUnchanged = true  // a plan changes nothing
                var ranges: [(ioas: ObjectID, first: UInt64, last: UInt64)] = []
                ranges.reserveCapacity(min(Self.unmapGroup, batch.count - i))
                var previous: IOASRecord?  // the entry before's IOAS: the table cannot change during this hold
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
                    if ranges.contains(where: { $0.ioas == ioas.id && $0.first <= range.last && range.first <= $0.last }) { break }
                    do {
                        plans.append(try unmapPlan(ioas, params, owner))
                    } catch {
                        if plans.isEmpty { throw error }
                        refused = error  // after the entries planned before it
                        break
                    }
                    ranges.append((ioas.id, range.first, range.last))
                    previous = ioas
                }
            }
            // 2. Under the owner's gate only: the kernel calls, in order, up to a failure.
            var unmapped: [Result<UInt64, any Error>] = []
            unmapped.reserveCapacity(plans.count)
            for plan in plans {
                guard case .unmap(let ioas, let iova, let length, _, let all) = plan else {
                    unmapped.append(.success(0))
                    continue
                }
                let result = backendUnmap(ioas, iova: iova, length: length, all: all)
                unmapped.append(result)
                if case .failure = result { break }
            }
            // 3. Under `lock`: record them, in order; the first failure stops the batch.
            try locked {
                journal?.stateUnchanged = true
                for (plan, result) in zip(plans, unmapped) {
                    switch plan {
                    case .done(var answer):
                        // Planned before the unmaps ahead of it in the group were refunded.
                        answer.ownerPinnedBytes = owner.pinnedBytes
                        results.append(answer)
                    case .unmap(let ioas, _, _, let inside, let all): results.append(try finishUnmap(ioas, inside: inside, all: all, result, owner))
                    }
                }
            }
            i += plans.count
            if let refused { throw refused }
            if runEnds { return i }
        }
        return i
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
