import IommufdCore

// MARK: replay
extension Broker {
    /// What one compaction cost (`compactJournalNow`).
    public struct CompactionCost: Sendable {
        /// Time the broker's lock was held: every request waited this long.
        public var nanoseconds: UInt64
        /// The new generation's size.
        public var bytes: Int
        public var generation: UInt64
    }

    /// Compacts the journal now, as the request whose commit finds the log due does (under the
    /// broker's lock, in `journalCommit`), and says how long that held the lock and what it
    /// wrote: for the benchmark (`iommufdd-bench` figure 8, compaction rows). Nil without a
    /// journal.
    public func compactJournalNow() throws -> CompactionCost? {
        try locked { () throws -> CompactionCost? in
            guard let journal else { return nil }
            let t0 = monotonicNanoseconds()
            try compact(journal)
            let t1 = monotonicNanoseconds()
            return CompactionCost(nanoseconds: t1 &- t0, bytes: journal.log.size, generation: journal.generation)
        }
    }
}
