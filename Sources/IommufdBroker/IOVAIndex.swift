/// An ordered map from IOVA to a value, for the mappings of one IOAS.
///
/// A sorted list of sorted chunks (at most `maxChunk` entries each): lookups are two binary
/// searches and an insert or remove moves at most one chunk's entries, so map/unmap cost stays
/// flat from ten mappings to a million (a single sorted array would move megabytes per insert).
struct IOVAIndex<Value> {
    struct Entry {
        var key: UInt64
        var value: Value
    }

    static var maxChunk: Int { 512 }

    private var chunks: [[Entry]] = []
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Index of the chunk that holds `key` or would: the last chunk whose first key <= key
    /// (0 when key is below every chunk).
    private func chunkIndex(for key: UInt64) -> Int {
        var lo = 0, hi = chunks.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if chunks[mid][0].key <= key { lo = mid + 1 } else { hi = mid }
        }
        return max(lo - 1, 0)
    }

    /// First position in `chunk` whose key >= key.
    private static func lowerBound(_ chunk: [Entry], _ key: UInt64) -> Int {
        var lo = 0, hi = chunk.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if chunk[mid].key < key { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    subscript(key: UInt64) -> Value? {
        guard !chunks.isEmpty else { return nil }
        let c = chunkIndex(for: key)
        let i = Self.lowerBound(chunks[c], key)
        return i < chunks[c].count && chunks[c][i].key == key ? chunks[c][i].value : nil
    }

    /// Inserts `value` at `key`; false (and no change) when the key is present.
    @discardableResult
    mutating func insert(_ value: Value, at key: UInt64) -> Bool {
        guard !chunks.isEmpty else {
            chunks = [[Entry(key: key, value: value)]]
            count = 1
            return true
        }
        let c = chunkIndex(for: key)
        let i = Self.lowerBound(chunks[c], key)
        if i < chunks[c].count && chunks[c][i].key == key { return false }
        Self.makeRoom(&chunks[c])
        chunks[c].insert(Entry(key: key, value: value), at: i)
        count += 1
        if chunks[c].count > 2 * Self.maxChunk {
            // Both halves exactly sized: the lower one would keep the whole chunk's capacity.
            let upper = Array(chunks[c][Self.maxChunk...])
            chunks[c] = Array(chunks[c][..<Self.maxChunk])
            chunks.insert(upper, at: c + 1)
        }
        return true
    }

    /// Grows a full chunk by an eighth (at least 4 entries) instead of doubling it: with a
    /// million mappings the doubling's spare half would be a third of the memory they take.
    private static func makeRoom(_ chunk: inout [Entry]) {
        if chunk.count == chunk.capacity { chunk.reserveCapacity(chunk.count + max(4, chunk.count / 8)) }
    }

    /// Removes and returns the value at `key`.
    @discardableResult
    mutating func remove(at key: UInt64) -> Value? {
        guard !chunks.isEmpty else { return nil }
        let c = chunkIndex(for: key)
        let i = Self.lowerBound(chunks[c], key)
        guard i < chunks[c].count && chunks[c][i].key == key else { return nil }
        let value = chunks[c].remove(at: i).value
        count -= 1
        if chunks[c].isEmpty { chunks.remove(at: c) }
        return value
    }

    /// The entry with the largest key <= `key`.
    func floor(_ key: UInt64) -> Entry? {
        guard !chunks.isEmpty else { return nil }
        let c = chunkIndex(for: key)
        let i = Self.lowerBound(chunks[c], key)
        if i < chunks[c].count && chunks[c][i].key == key { return chunks[c][i] }
        if i > 0 { return chunks[c][i - 1] }
        return nil  // key is below the first key of chunk 0
    }

    /// Entries with `lo <= key <= hi`, in order.
    func entries(from lo: UInt64, through hi: UInt64) -> [Entry] { entries(from: lo, through: hi) { $0 } }

    /// `transform` of each entry with `lo <= key <= hi`, in order, into one array (a caller
    /// that converts the entries allocates no array in between: one an unmap, issue 16 target 2).
    func entries<T>(from lo: UInt64, through hi: UInt64, _ transform: (Entry) -> T) -> [T] {
        var out: [T] = []
        forEach(from: lo, through: hi) { out.append(transform($0)) }
        return out
    }

    /// Calls `body` with each entry with `lo <= key <= hi`, in order (a caller appending them
    /// to an array it keeps allocates nothing: a batch's unmaps, issue 16 target 2).
    func forEach(from lo: UInt64, through hi: UInt64, _ body: (Entry) -> Void) {
        forEach(from: lo, through: hi, before: { _ in true }, body)
    }

    /// `forEach(from:through:_:)`, after handing `before` the entry with the largest key below
    /// `lo` when no key is `lo` (with a key `lo`, the entry below it or none): when `before`
    /// answers false, no entry follows. One search for both (an unmap's check for a mapping it
    /// would cut, which with a mapping at `lo` there cannot be, and its mappings).
    func forEach(from lo: UInt64, through hi: UInt64, before: (Entry) -> Bool, _ body: (Entry) -> Void) {
        guard !chunks.isEmpty else { return }
        var c = chunkIndex(for: lo)
        var i = Self.lowerBound(chunks[c], lo)
        // i == 0: `lo` is below every key (c == 0), or the first key of chunk c is `lo` itself.
        if i > 0, !before(chunks[c][i - 1]) { return }
        guard lo <= hi else { return }
        while c < chunks.count {
            let chunk = chunks[c]
            while i < chunk.count {
                if chunk[i].key > hi { return }
                body(chunk[i])
                i += 1
            }
            c += 1
            i = 0
        }
    }

    /// Removes the entries at `keys` (absent keys are skipped), calling `removed` with each
    /// entry removed. Keys that follow each other in the index, in the same order in `keys`, go
    /// in one move of the chunk's tail: a batch of unmaps removing the first 64 entries of a
    /// chunk moves the rest once, not 64 times (issue 16 target 2). Any order is correct.
    mutating func remove<Keys: Collection<UInt64>>(_ keys: Keys, _ removed: (Entry) -> Void) {
        var k = keys.startIndex
        while k != keys.endIndex, !chunks.isEmpty {
            let key = keys[k]
            keys.formIndex(after: &k)
            let c = chunkIndex(for: key)
            let first = Self.lowerBound(chunks[c], key)
            guard first < chunks[c].count && chunks[c][first].key == key else { continue }
            var end = first + 1
            while k != keys.endIndex, end < chunks[c].count, chunks[c][end].key == keys[k] {
                end += 1
                keys.formIndex(after: &k)
            }
            for i in first..<end { removed(chunks[c][i]) }
            chunks[c].removeSubrange(first..<end)
            count -= end - first
            if chunks[c].isEmpty { chunks.remove(at: c) }
        }
    }

    /// Every entry, in order.
    var all: [Entry] { chunks.flatMap { $0 } }

    /// The first `limit` entries, in order.
    func prefix(_ limit: Int) -> [Entry] {
        var out: [Entry] = []
        out.reserveCapacity(min(limit, count))
        for chunk in chunks {
            for entry in chunk {
                if out.count >= limit { return out }
                out.append(entry)
            }
        }
        return out
    }
}
