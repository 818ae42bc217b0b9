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
/// its two holds of the broker's lock, its kernel call, records and journal, in order, with the
/// same results and errors as the entries sent one by one. What a batch saves is the owner's
/// gate (and the two look-ups around it) for every entry but the first of a run of one owner's
/// entries, and the dma-buf probe of an fd already found not to be one. A dma-buf entry is
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

    /// Thrown by a run's look-up of an IOAS it cannot map under the gate it holds.
    private struct RunEnds: Error {}

    /// Under `owner`'s gate: maps `batch[start...]` (whose checks gave `firstFlags`) up to the
    /// first entry of another owner, or of a dma-buf; returns that entry's index (or the
    /// batch's end). Throws the error of the entry that stopped it.
    private func mapRun(
        _ caller: Caller, _ batch: [(params: IOASMapParams, fd: Int32)], from start: Int, flags firstFlags: MapFlags,
        owner: OwnerRecord, plainFD: inout Int32, results: inout [IOASMapResult]
    ) throws -> Int {
        results.append(try mapUnderGate(batch[start].params, fd: batch[start].fd, flags: firstFlags, owner: owner) {
            try self.ioas(caller, batch[start].params.ioas, write: "ioas.map")
        })
        var i = start + 1
        while i < batch.count {
            let (params, fd) = batch[i]
            if fd != plainFD {
                if try dmabufInfo(fd) != nil { return i }  // mapped alone, outside the gate
                plainFD = fd
            }
            let flags = try Self.mapChecks(params)
            do {
                results.append(try mapUnderGate(params, fd: fd, flags: flags, owner: owner) {
                    // The caller may change the first entry's IOAS (`serialized` found its owner
                    // with the caller's rights), so every IOAS of that owner, which cannot change
                    // hands while its gate is held. An IOAS of another owner, or none, ends the
                    // run: the next run's look-up answers for it.
                    guard let record = ioasTable[params.ioas], record.owner == owner.name else { throw RunEnds() }
                    return record
                })
            } catch is RunEnds {
                return i
            }
            i += 1
        }
        return i
    }
}
