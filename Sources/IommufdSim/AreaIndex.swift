import IommufdCore

/// The areas of one IOAS in IOVA order, never overlapping (the kernel's `iopt->area_itree`).
///
/// A sorted list of sorted chunks of at most `chunkCapacity` areas: finding an area is two binary
/// searches, and inserting or removing one moves at most one chunk's areas, so map and unmap cost
/// the same at ten mappings and at a million (one sorted array would move megabytes per insert).
/// Each chunk remembers the largest hole between its own areas, so the IOVA allocator steps over
/// full chunks without looking inside them.
///
/// Areas are kept packed (`PackedArea`, 32 bytes, no reference): the file behind an area is a
/// number into this index's own table of files, reference-counted by the areas that use it.
/// Chunks grow by an eighth, not by doubling. (Issue 16 target 5: a million mappings.)
struct AreaIndex {
    /// One area as the index keeps it.
    struct PackedArea {
        var iova: UInt64
        var last: UInt64
        /// The user address, or the file offset, of the byte at `iova`.
        var source: UInt64
        /// Bits 0-27: the file's number in `files` (0: user memory); bit 28: the pages are
        /// writable (`SimPages.writable`); 29: readable; 30: writeable.
        var meta: UInt32
    }

    struct Chunk {
        var areas: [PackedArea]
        /// The largest number of free bytes between two consecutive areas of this chunk.
        var maxGap: UInt64 = 0

        init(_ areas: [PackedArea]) {
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

        /// Grows a full chunk by an eighth (at least 4 areas) instead of doubling it.
        mutating func makeRoom() {
            if areas.count == areas.capacity { areas.reserveCapacity(areas.count + max(4, areas.count / 8)) }
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
    /// The files behind areas: `files[n - 1]` is file number n, used by `fileUses[n - 1]` areas.
    private var files: [SimFile?] = []
    private var fileUses: [UInt32] = []
    private var fileNumbers: [ObjectIdentifier: UInt32] = [:]
    private var freeNumbers: [UInt32] = []

    var isEmpty: Bool { count == 0 }

    subscript(position: Position) -> SimArea { decode(chunks[position.chunk].areas[position.index]) }

    /// The IOVA bounds of the area at `position`, without unpacking it.
    private func bounds(_ position: Position) -> (iova: UInt64, last: UInt64) {
        let area = chunks[position.chunk].areas[position.index]
        return (area.iova, area.last)
    }

    var first: SimArea? { chunks.first?.areas.first.map(decode) }
    var last: SimArea? { chunks.last?.areas.last.map(decode) }

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
    private static func upperBound(_ areas: [PackedArea], _ iova: UInt64) -> Int {
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
        return bounds(below).last >= iova ? below : next(below)
    }

    /// The first area that intersects `[start, last]`.
    func firstIntersecting(_ start: UInt64, _ last: UInt64) -> Position? {
        guard let position = firstEnding(atOrAbove: start), bounds(position).iova <= last else { return nil }
        return position
    }

    func area(containing iova: UInt64) -> SimArea? {
        guard let position = floor(iova), bounds(position).last >= iova else { return nil }
        return self[position]
    }

    func intersects(_ start: UInt64, _ last: UInt64) -> Bool { firstIntersecting(start, last) != nil }

    /// The areas that intersect `[start, last]`, in IOVA order.
    func areas(intersecting start: UInt64, _ last: UInt64) -> [SimArea] {
        var result: [SimArea] = []
        var position = firstIntersecting(start, last)
        while let p = position, bounds(p).iova <= last {
            result.append(self[p])
            position = next(p)
        }
        return result
    }

    /// Every area, in IOVA order, until `body` returns false.
    func forEach(_ body: (SimArea) throws -> Bool) rethrows {
        for chunk in chunks {
            for area in chunk.areas where try !body(decode(area)) { return }
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
            let area = bounds(p)
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
    mutating func insert(_ unpacked: SimArea) {
        count += 1
        let area = encode(unpacked)
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
        chunks[c].makeRoom()
        chunks[c].areas.insert(area, at: i)
        chunks[c].updateMaxGap()
    }

    /// Removes the area at `position` and returns it.
    @discardableResult
    mutating func remove(at position: Position) -> SimArea {
        count -= 1
        let c = position.chunk
        let packed = chunks[c].areas.remove(at: position.index)
        let area = decode(packed)
        release(packed)
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
        files = []
        fileUses = []
        fileNumbers = [:]
        freeNumbers = []
    }

    // MARK: Packing

    private static let fileMask: UInt32 = (1 << 28) - 1
    private static let pagesWritable: UInt32 = 1 << 28
    private static let readableBit: UInt32 = 1 << 29
    private static let writeableBit: UInt32 = 1 << 30

    /// Files interned, for tests.
    var internedFiles: Int { fileNumbers.count }

    private mutating func encode(_ area: SimArea) -> PackedArea {
        var meta: UInt32 = 0
        let source: UInt64
        switch area.pages.backing {
        case .user(let address):
            source = address
        case .file(let file, let offset):
            source = offset
            meta = intern(file)
        }
        if area.pages.writable { meta |= Self.pagesWritable }
        if area.readable { meta |= Self.readableBit }
        if area.writeable { meta |= Self.writeableBit }
        return PackedArea(iova: area.iova, last: area.last, source: source, meta: meta)
    }

    private func decode(_ area: PackedArea) -> SimArea {
        let number = Int(area.meta & Self.fileMask)
        let backing: SimPages.Backing
        if number == 0 {
            backing = .user(address: area.source)
        } else {
            backing = .file(files[number - 1]!, offset: area.source)
        }
        return SimArea(
            iova: area.iova, last: area.last,
            pages: SimPages(backing: backing, writable: area.meta & Self.pagesWritable != 0),
            readable: area.meta & Self.readableBit != 0, writeable: area.meta & Self.writeableBit != 0)
    }

    private mutating func intern(_ file: SimFile) -> UInt32 {
        let id = ObjectIdentifier(file)
        if let number = fileNumbers[id] {
            fileUses[Int(number) - 1] += 1
            return number
        }
        let number: UInt32
        if let free = freeNumbers.popLast() {
            number = free
            files[Int(number) - 1] = file
            fileUses[Int(number) - 1] = 1
        } else {
            // Each file is an open fd of the simulator: RLIMIT_NOFILE ends them long before this.
            precondition(UInt32(files.count) < Self.fileMask, "more than 2^28 files mapped into one IOAS")
            files.append(file)
            fileUses.append(1)
            number = UInt32(files.count)
        }
        fileNumbers[id] = number
        return number
    }

    /// Drops the use of its file that `area` took (the file closes with its last use).
    private mutating func release(_ area: PackedArea) {
        let number = Int(area.meta & Self.fileMask)
        guard number > 0 else { return }
        fileUses[number - 1] -= 1
        if fileUses[number - 1] == 0, let file = files[number - 1] {
            fileNumbers[ObjectIdentifier(file)] = nil
            files[number - 1] = nil
            freeNumbers.append(UInt32(number))
        }
    }
}
