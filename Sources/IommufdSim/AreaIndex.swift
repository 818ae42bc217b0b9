import IommufdCore

/// The areas of one IOAS in IOVA order, never overlapping (the kernel's `iopt->area_itree`).
///
/// A sorted list of sorted chunks of at most `chunkCapacity` areas: finding an area is two binary
/// searches, and inserting or removing one moves at most one chunk's areas, so map and unmap cost
/// the same at ten mappings and at a million (one sorted array would move megabytes per insert).
/// Each chunk remembers the largest hole between its own areas, so the IOVA allocator steps over
/// full chunks without looking inside them.
struct AreaIndex {
    struct Chunk {
        var areas: [SimArea]
        /// The largest number of free bytes between two consecutive areas of this chunk.
        var maxGap: UInt64 = 0

        init(_ areas: [SimArea]) {
            self.areas = areas
            updateMaxGap()
        }

        mutating func updateMaxGap() {
            var gap: UInt64 = 0
            var index = 1
            while index < areas.count {
                gap = max(gap, areas[index].iova &- areas[index - 1].last &- 1)
                index += 1
            }
            maxGap = gap
        }
    }

    /// Where an area sits: its chunk and its index inside it.
    struct Position: Equatable {
        var chunk: Int
        var index: Int
    }

    /// A chunk splits when an insert would take it past this many areas.
    static var chunkCapacity: Int { 512 }

    private(set) var chunks: [Chunk] = []
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    subscript(position: Position) -> SimArea { chunks[position.chunk].areas[position.index] }

    var first: SimArea? { chunks.first?.areas.first }
    var last: SimArea? { chunks.last?.areas.last }

    // MARK: Lookups

    /// The last chunk whose first area starts at or below `iova` (0 when none does).
    private func chunkIndex(for iova: UInt64) -> Int {
        var lo = 0
        var hi = chunks.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if chunks[mid].areas[0].iova <= iova { lo = mid + 1 } else { hi = mid }
        }
        return max(lo - 1, 0)
    }

    /// The first index in `areas` whose area starts above `iova`.
    private static func upperBound(_ areas: [SimArea], _ iova: UInt64) -> Int {
        var lo = 0
        var hi = areas.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if areas[mid].iova <= iova { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The area that starts last at or below `iova`.
    func floor(_ iova: UInt64) -> Position? {
        guard !chunks.isEmpty else { return nil }
        let c = chunkIndex(for: iova)
        let i = Self.upperBound(chunks[c].areas, iova)
        return i == 0 ? nil : Position(chunk: c, index: i - 1)
    }

    func next(_ position: Position) -> Position? {
        if position.index + 1 < chunks[position.chunk].areas.count {
            return Position(chunk: position.chunk, index: position.index + 1)
        }
        return position.chunk + 1 < chunks.count ? Position(chunk: position.chunk + 1, index: 0) : nil
    }

    private var firstPosition: Position? { chunks.isEmpty ? nil : Position(chunk: 0, index: 0) }

    /// The first area (in IOVA order) that ends at or above `iova`.
    func firstEnding(atOrAbove iova: UInt64) -> Position? {
        guard let below = floor(iova) else { return firstPosition }
        return self[below].last >= iova ? below : next(below)
    }

    /// The first area that intersects `[start, last]`.
    func firstIntersecting(_ start: UInt64, _ last: UInt64) -> Position? {
        guard let position = firstEnding(atOrAbove: start), self[position].iova <= last else { return nil }
        return position
    }

    func area(containing iova: UInt64) -> SimArea? {
        guard let position = floor(iova) else { return nil }
        let area = self[position]
        return area.last >= iova ? area : nil
    }

    func intersects(_ start: UInt64, _ last: UInt64) -> Bool { firstIntersecting(start, last) != nil }

    /// The areas that intersect `[start, last]`, in IOVA order.
    func areas(intersecting start: UInt64, _ last: UInt64) -> [SimArea] {
        var result: [SimArea] = []
        var position = firstIntersecting(start, last)
        while let p = position, self[p].iova <= last {
            result.append(self[p])
            position = next(p)
        }
        return result
    }

    /// Every area, in IOVA order, until `body` returns false.
    func forEach(_ body: (SimArea) throws -> Bool) rethrows {
        for chunk in chunks {
            for area in chunk.areas where try !body(area) { return }
        }
    }

    /// The holes between areas inside `window` (before the first area, between two, after the
    /// last), in IOVA order, leaving out holes of fewer than `minimumSize` bytes, until `body`
    /// returns false. Chunks whose inner holes are all too small are stepped over whole.
    func forEachHole(within window: IOVARange, minimumSize: UInt64, _ body: (IOVARange) -> Bool) {
        // A hole [a, b] is large enough when b - a + 1 >= minimumSize.
        func fits(_ start: UInt64, _ last: UInt64) -> Bool { minimumSize == 0 || last - start >= minimumSize - 1 }
        var cursor = window.start
        var position = firstEnding(atOrAbove: window.start)
        while let p = position {
            let area = self[p]
            if area.iova > window.last { break }
            if area.iova > cursor, fits(cursor, area.iova - 1), !body(IOVARange(start: cursor, last: area.iova - 1)) { return }
            if area.last >= window.last { return }
            cursor = area.last + 1
            // Entering a chunk that lies inside the window and has no hole big enough: skip it.
            var chunk = p.index + 1 < chunks[p.chunk].areas.count ? p.chunk : p.chunk + 1
            if chunk == p.chunk {
                position = Position(chunk: chunk, index: p.index + 1)
                continue
            }
            while chunk < chunks.count, chunks[chunk].maxGap < minimumSize,
                let chunkLast = chunks[chunk].areas.last?.last, chunkLast < window.last
            {
                let chunkFirst = chunks[chunk].areas[0].iova
                if chunkFirst > cursor, fits(cursor, chunkFirst - 1), !body(IOVARange(start: cursor, last: chunkFirst - 1)) { return }
                cursor = chunkLast + 1
                chunk += 1
            }
            position = chunk < chunks.count ? Position(chunk: chunk, index: 0) : nil
        }
        if cursor <= window.last, fits(cursor, window.last) { _ = body(IOVARange(start: cursor, last: window.last)) }
    }

    // MARK: Changes

    /// Inserts `area`, which must not overlap any area already in the index.
    mutating func insert(_ area: SimArea) {
        count += 1
        guard !chunks.isEmpty else {
            chunks = [Chunk([area])]
            return
        }
        var c = chunkIndex(for: area.iova)
        var i = Self.upperBound(chunks[c].areas, area.iova)
        if chunks[c].areas.count >= Self.chunkCapacity {
            if i == chunks[c].areas.count {
                // Appending past a full chunk (mappings laid out upwards): a new chunk, and this
                // one stays full.
                chunks.insert(Chunk([area]), at: c + 1)
                return
            }
            // Split in halves, so no chunk grows past its capacity.
            let full = chunks[c].areas
            let cut = full.count / 2
            chunks[c] = Chunk(Array(full[..<cut]))
            chunks.insert(Chunk(Array(full[cut...])), at: c + 1)
            if i >= cut {
                c += 1
                i -= cut
            }
        }
        chunks[c].areas.insert(area, at: i)
        chunks[c].updateMaxGap()
    }

    /// Removes the area at `position` and returns it.
    @discardableResult
    mutating func remove(at position: Position) -> SimArea {
        count -= 1
        let c = position.chunk
        let area = chunks[c].areas.remove(at: position.index)
        if chunks[c].areas.isEmpty {
            chunks.remove(at: c)
        } else if chunks[c].areas.count < Self.chunkCapacity / 4, c + 1 < chunks.count,
            chunks[c].areas.count + chunks[c + 1].areas.count <= Self.chunkCapacity / 2
        {
            // Keep chunks from thinning out after many unmaps: fold the next one in.
            chunks[c].areas.append(contentsOf: chunks[c + 1].areas)
            chunks.remove(at: c + 1)
            chunks[c].updateMaxGap()
        } else {
            chunks[c].updateMaxGap()
        }
        return area
    }

    mutating func removeAll() {
        chunks = []
        count = 0
    }
}
