import IommufdCore

// MARK: scale10k
extension Broker {
    /// `locked` for a request that only reads: the end of the request does not build the
    /// journal's state (every owner, IOAS, HWPT, lease, vIOMMU, vDevice, queue, sorted) to
    /// compare it with the last one recorded, since a read cannot have changed it. Building it
    /// costs time in proportion to every owner's objects (5.8 ms per `ioas.info` at 10,000
    /// owners, against 70 µs with one): a read of one owner must not pay for the others.
    ///
    /// Only for bodies that change nothing `journalState()` holds. Events they emit are still
    /// delivered, and mapping records (none for a read) still written, as by `locked`.
    func reading<T>(_ body: () throws -> T) throws -> T {
        try locked {
            journal?.stateUnchanged = true
            // ownerjournal: a read's look-ups mark owners it did not change; not kept.
            let marked = journal?.changedOwners
            defer { if let marked { journal?.changedOwners = marked } }
            return try body()
        }
    }

    /// How many times the journal's state was built and compared at the end of a request
    /// (0 without a journal): for tests that a read of one owner does not walk every owner.
    var journalStatesBuilt: Int { readLocked { journal?.statesBuilt ?? 0 } }
}
