import IommufdCore

/// The mappings of one IOAS by IOVA, packed to 16 bytes a mapping: the IOVA, and one word
/// holding the length in 4 KiB units, the memory file as a small per-IOAS number, the backing
/// kind and the access flags. A million mappings are kept (issue 16 target 5), so no mapping
/// holds a class, a String or the 16-byte identity of its file.
///
/// The memory files are interned per IOAS (`files`, numbered from 1, reference-counted by the
/// mappings that use them; a VM maps a handful of memfds). A mapping the word cannot hold — a
/// length that is not a multiple of 4 KiB or is 16 TiB or more, charged bytes other than its
/// length, an `mmap` backing (its daemon address; kernels without `IOMMU_IOAS_MAP_FILE`), flags
/// beyond read/write, or a 16,777,216th file — is kept whole in `unusual` instead.
///
/// It answers as `IOVAIndex<MappingRecord>` would: records go in and come out whole.
struct MappingIndex {
    typealias Entry = IOVAIndex<MappingRecord>.Entry

    private var packed = IOVAIndex<UInt64>()
    private var unusual: [UInt64: MappingRecord] = [:]
    /// Interned memory files: `files[n - 1]` is file number n, used by `fileUses[n - 1]` mappings.
    private var files: [MemoryFileTable.Key] = []
    private var fileUses: [UInt32] = []
    private var fileNumbers: [MemoryFileTable.Key: UInt32] = [:]
    private var freeNumbers: [UInt32] = []

    // The packed word.
    private static let unit: UInt64 = 4096
    private static let lengthMask: UInt64 = 0xffff_ffff
    private static let fileShift: UInt64 = 32
    private static let fileMask: UInt64 = 0xff_ffff
    private static let copyBit: UInt64 = 1 << 56
    private static let flagsShift: UInt64 = 57
    private static let flagsMask: UInt64 = 0x7
    private static let unusualBit: UInt64 = 1 << 63

    var count: Int { packed.count }
    var isEmpty: Bool { packed.isEmpty }

    subscript(key: UInt64) -> MappingRecord? {
        packed[key].map { decode($0, key: key) }
    }

    /// Inserts `value` at `key`; false (and no change) when the key is present.
    @discardableResult
    mutating func insert(_ value: MappingRecord, at key: UInt64) -> Bool {
        let word = encode(value)
        guard packed.insert(word, at: key) else {
            forgetFile(of: word)
            return false
        }
        if word & Self.unusualBit != 0 { unusual[key] = value }
        return true
    }

    /// Removes and returns the value at `key`.
    @discardableResult
    mutating func remove(at key: UInt64) -> MappingRecord? {
        guard let word = packed.remove(at: key) else { return nil }
        if word & Self.unusualBit != 0 { return unusual.removeValue(forKey: key) }
        let value = decode(word, key: key)
        forgetFile(of: word)
        return value
    }

    /// The entry with the largest key <= `key`.
    func floor(_ key: UInt64) -> Entry? {
        packed.floor(key).map { Entry(key: $0.key, value: decode($0.value, key: $0.key)) }
    }

    /// Entries with `lo <= key <= hi`, in order.
    func entries(from lo: UInt64, through hi: UInt64) -> [Entry] {
        packed.entries(from: lo, through: hi) { Entry(key: $0.key, value: decode($0.value, key: $0.key)) }
    }

    /// Appends the entries with `lo <= key <= hi` to `out`, in order (no array of its own: a
    /// batch of unmaps collects its entries in one).
    func appendEntries(from lo: UInt64, through hi: UInt64, to out: inout [Entry]) {
        packed.forEach(from: lo, through: hi) { out.append(Entry(key: $0.key, value: decode($0.value, key: $0.key))) }
    }

    /// For an unmap of `[lo, hi]`: the mapping that starts before `lo` and reaches into it (the
    /// range would cut it), or nil after appending the entries with `lo <= key <= hi` to `out`.
    /// `mutating` though it changes nothing: called through an `IOASRecord`'s property it then
    /// works on the index in place, where a non-mutating call copies the index out of the class
    /// (a retain and a release of each of its six tables: most of a batched unmap's own cost).
    mutating func unmapLookup(from lo: UInt64, through hi: UInt64, appendingTo out: inout [Entry]) -> Entry? {
        var cut: Entry?
        packed.forEach(from: lo, through: hi, before: { below in
            let record = decode(below.value, key: below.key)
            guard below.key &+ (record.length - 1) >= lo else { return true }
            cut = Entry(key: below.key, value: record)
            return false
        }) { out.append(Entry(key: $0.key, value: decode($0.value, key: $0.key))) }
        return cut
    }

    /// Removes the mappings at `keys` (as `remove(at:)` each, absent keys skipped); runs of
    /// keys in index order go in one move (`IOVAIndex.remove(_:_:)`).
    mutating func remove<Keys: Collection<UInt64>>(_ keys: Keys) {
        // The index is moved out while it changes, so the closure may change the other tables.
        var index = IOVAIndex<UInt64>()
        swap(&index, &packed)
        defer { swap(&index, &packed) }
        index.remove(keys) { entry in
            if entry.value & Self.unusualBit != 0 {
                unusual.removeValue(forKey: entry.key)
            } else {
                forgetFile(of: entry.value)
            }
        }
    }

    /// Every entry, in order.
    var all: [Entry] { packed.all.map { Entry(key: $0.key, value: decode($0.value, key: $0.key)) } }

    /// The first `limit` entries, in order.
    func prefix(_ limit: Int) -> [Entry] {
        packed.prefix(limit).map { Entry(key: $0.key, value: decode($0.value, key: $0.key)) }
    }

    /// Memory files interned, for tests: how many numbers are in use.
    var internedFiles: Int { fileNumbers.count }

    // MARK: Packing

    private mutating func encode(_ value: MappingRecord) -> UInt64 {
        let units = value.length / Self.unit
        guard value.length % Self.unit == 0, units > 0, units <= Self.lengthMask, value.charged == value.length,
            value.flags.rawValue <= UInt32(Self.flagsMask)
        else { return Self.unusualBit }
        var word = units | (UInt64(value.flags.rawValue) << Self.flagsShift)
        switch value.backing {
        case .copy:
            word |= Self.copyBit
        case .mmap, .dmabuf:  // dma-bufs (charged 0) are unusual anyway
            return Self.unusualBit
        case .file(let key):
            guard let number = intern(key) else { return Self.unusualBit }
            word |= UInt64(number) << Self.fileShift
        }
        return word
    }

    private func decode(_ word: UInt64, key: UInt64) -> MappingRecord {
        if word & Self.unusualBit != 0, let value = unusual[key] { return value }
        let length = (word & Self.lengthMask) * Self.unit
        let flags = MapFlags(rawValue: UInt32((word >> Self.flagsShift) & Self.flagsMask))
        let number = Int((word >> Self.fileShift) & Self.fileMask)
        let backing: MappingRecord.Backing = word & Self.copyBit != 0 || number == 0 ? .copy : .file(files[number - 1])
        return MappingRecord(length: length, charged: length, backing: backing, flags: flags)
    }

    /// The number of `key`, taking one more use of it; nil when every number is taken.
    private mutating func intern(_ key: MemoryFileTable.Key) -> UInt32? {
        if let number = fileNumbers[key] {
            fileUses[Int(number) - 1] += 1
            return number
        }
        let number: UInt32
        if let free = freeNumbers.popLast() {
            number = free
            files[Int(number) - 1] = key
            fileUses[Int(number) - 1] = 1
        } else {
            guard UInt64(files.count) < Self.fileMask else { return nil }
            files.append(key)
            fileUses.append(1)
            number = UInt32(files.count)
        }
        fileNumbers[key] = number
        return number
    }

    /// Drops the use of its file that `word` took.
    private mutating func forgetFile(of word: UInt64) {
        guard word & (Self.unusualBit | Self.copyBit) == 0 else { return }
        let number = Int((word >> Self.fileShift) & Self.fileMask)
        guard number > 0 else { return }
        fileUses[number - 1] -= 1
        if fileUses[number - 1] == 0 {
            fileNumbers[files[number - 1]] = nil
            freeNumbers.append(UInt32(number))
        }
    }
}
