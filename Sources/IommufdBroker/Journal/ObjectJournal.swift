import Foundation
import IommufdContract
import IommufdCore

/// The broker's object journal: a `RecordLog` in a memfd kept in systemd's fd store, so that a
/// restarted daemon (even after SIGKILL) knows every object it had, under the same IDs.
///
/// Records, appended under the broker's lock and written before the request answers:
/// - `state`: the whole `JournalState` as JSON (owners, policies, IOAS, HWPTs, leases,
///   attachments, vIOMMUs, vDevices, dirty tracking), whenever a request changed it;
/// - `map`: one mapping (IOAS, IOVA, length, flags, charged bytes, backing: memory file by
///   `(st_dev, st_ino)` and offset, or an `IOMMU_IOAS_COPY`), 57 bytes;
/// - `unmap`: one mapping removed (IOAS, IOVA); `clear`: every mapping of an IOAS removed;
/// - (format 2) `mapBatch`: the mappings of a group of a batched map (the VMM channel's MAP,
///   up to `Broker.mapGroup` entries) or of a compaction, each as a `map` record's 57 bytes,
///   one after the other; `unmapBatch`: the mappings a group of a batched unmap removed, 12
///   bytes `(IOAS, IOVA)` each. One record, so one checksum: a batch record torn by a crash is
///   dropped whole, and the group is then all or nothing in the journal (recovery makes the
///   backend agree, as for a torn single record).
/// - (format 3) `ownerState`: one owner's slice of the state as JSON (`OwnerSlice`: the owner,
///   its IOASes, HWPTs, vIOMMUs, vDevices, nest parents, channels, queues, HW queues), whenever
///   a request changed it; with no owner and no objects, the owner's tombstone (released).
///   `globalState`: the state keyed to devices, not owners (`GlobalSlice`: the device table and
///   PASID attachments), whenever it changed. When one request changes more than one slice,
///   they go into one `stateSet` record, so a torn write keeps the request whole or drops it.
///   Format 3 writes no `state` record; a `state`
///   record (formats 1 and 2) replaces everything recorded before it.
/// Pinned bytes are not recorded: they are the sum of the mappings' charged bytes.
///
/// Map and unmap cost one short record (a group of a batch one record) and one `pwrite` of
/// the request's records, whatever the number of mappings. When the log has grown to four
/// times its size after the last compaction (and at least 16 MiB), it is compacted: the current
/// state and every mapping are written to a new memfd stored as the next generation
/// (`journal.N+1`), then `journal.N` is removed from the store, so a crash at any point leaves
/// at least one complete journal.
final class ObjectJournal {
    /// The format this daemon writes. A change to the records or to `JournalState` that an
    /// older daemon would misread takes the next version, keeps reading every earlier one, and
    /// adds a golden journal of the new version under Tests/Fixtures/ (JournalFormatTests).
    /// A journal of an earlier version is adopted and at once compacted into a new generation
    /// of this version (`Broker.recover`), so one log never mixes two versions.
    /// Version 2: the batch records (`mapBatch`, `unmapBatch`). Version 3: the state in
    /// per-owner slices (`ownerState`, `globalState`) instead of whole `state` records.
    static let format = RecordLogFormat(kind: "IFDJRN", version: 3)
    static let magic: UInt64 = format.magic  // "IFDJRN03"
    /// The headers of every version this daemon reads.
    static let readableMagics = (1...format.version).map { RecordLogFormat(kind: format.kind, version: $0).magic }
    enum RecordType: UInt8 {
        case state = 1, map, unmap, clear
        /// Format 2.
        case mapBatch, unmapBatch
        /// Format 3.
        case ownerState, globalState
        /// Format 3: the slices one commit recorded when there is more than one, in one record
        /// (one checksum: a crash that tears the write keeps all of them or none, so a restart
        /// never sees half a request). Each: type (u8, `ownerState` or `globalState`), length
        /// (u32 LE), the slice's JSON.
        case stateSet
    }
    /// Bytes of one mapping in a `map` or `mapBatch` record, and of one in an `unmapBatch`.
    static let mapBytes = 57
    static let unmapBytes = 12
    /// Mappings a compaction writes in one `mapBatch` record (about 220 KiB).
    static let compactionBatch = 4096
    enum Backing: UInt8 {
        case file = 0, mmap, copy
        /// A dma-buf (branch p2p): an older daemon reads it as a copy, charged 0.
        case dmabuf
    }

    let store: any FileDescriptorStore
    private(set) var log: RecordLog
    private(set) var generation: UInt64
    // MARK: ownerjournal
    /// The slices last recorded, to record one again only when it changed.
    private(set) var lastSlices: [String: OwnerSlice] = [:]
    // MARK: replay
    /// The JSON each slice of `lastSlices` was recorded as (when this log or the one before it
    /// recorded it; absent for slices taken as recorded after a restart): a compaction writes
    /// every owner's slice again, and reuses these bytes for each that has not changed since
    /// instead of encoding 10,000 slices under the broker's lock (78-86 ms instead of 167-250 ms at
    /// 10,000 owners, Benchmarks/RESULTS.md).
    private var lastJSON: [String: [UInt8]] = [:]
    /// One encoder for every slice (the daemon's state lock serializes its use).
    private let encoder = JSONEncoder()
    private(set) var lastGlobal: GlobalSlice?
    /// Owners the request under way may have changed (`Broker.markOwnerChanged`): the commit
    /// builds and compares their slices only.
    var changedOwners = Set<String>()
    /// The state last recorded (tests).
    var lastState: JournalState? {
        lastGlobal.map { JournalState.assembled(owners: lastSlices, global: $0) }
    }
    /// The slices a replay of this log gives (`Contents.slices`), taken as recorded.
    func assumeRecorded(owners: [String: OwnerSlice], global: GlobalSlice) {
        lastSlices = owners.filter { !$0.value.isEmpty }
        lastJSON = [:]
        lastGlobal = global
    }
    /// `state` taken as recorded (a recovery whose checks changed nothing worth a record).
    func assumeRecorded(_ state: JournalState) {
        let (owners, global) = state.slices()
        assumeRecorded(owners: owners, global: global)
    }
    /// Set by requests that only change mappings (map, unmap, copy): the state is not compared.
    var stateUnchanged = false
    /// Set by a phase of a batch that is certain to take the lock again before it answers (the
    /// next group's plan or records): this hold's records wait for that hold's write (or for
    /// any other request's, whichever comes first), so a 256-entry batch costs one `pwrite`,
    /// not one a group. Cleared by every commit, so a hold that does not set it writes
    /// everything pending, and a request never answers before its records are written.
    var flushLater = false
    // MARK: scale10k
    /// How many requests built the state to compare it (`Broker.journalStatesBuilt`).
    var statesBuilt = 0
    /// Objects dropped from the records by this request, to destroy in the backend once the
    /// journal has recorded that (`Broker.destroyAfterJournalCommit`).
    var destroyAfterCommit: [HWPTRecord] = []
    /// Device IDs whose cdev fd is in the store.
    var storedDevices = Set<ObjectID>()
    /// File offsets of `.mmap` mappings (the broker's records keep only the address), to map the
    /// file again after a restart.
    var mmapOffsets: [ObjectID: [UInt64: UInt64]] = [:]
    private var compactedSize: Int
    /// The last write error, reported in `daemon.info` (the journal is then out of date).
    private(set) var writeError: String?

    static let minimumCompactionBytes = 16 << 20
    /// The size below which the log is never compacted (smaller in tests).
    var compactionFloor = ObjectJournal.minimumCompactionBytes

    init(store: any FileDescriptorStore, log: RecordLog, generation: UInt64) {
        self.store = store
        self.log = log
        self.generation = generation
        compactedSize = log.size
    }

    // MARK: Records

    func mapped(ioas: ObjectID, iova: UInt64, _ mapping: MappingRecord, offset: UInt64) {
        if groupType != nil { endGroup() }
        withUnsafeTemporaryAllocation(byteCount: Self.mapBytes, alignment: 8) { record in
            encodeMap(into: record.baseAddress!, ioas: ioas, iova: iova, mapping, offset: offset)
            log.append(type: RecordType.map.rawValue, UnsafeRawBufferPointer(record))
        }
    }

    /// The 57 bytes of a mapping at `at` (unaligned): IOAS, IOVA, length, charged, flags,
    /// backing, file `(st_dev, st_ino)`, offset.
    private func encodeMap(into at: UnsafeMutableRawPointer, ioas: ObjectID, iova: UInt64, _ mapping: MappingRecord, offset: UInt64) {
        let backing: Backing
        let key: MemoryFileTable.Key
        switch mapping.backing {
        case .file(let k):
            (backing, key) = (.file, k)
        case .mmap(let k, _):
            (backing, key) = (.mmap, k)
            mmapOffsets[ioas, default: [:]][iova] = offset
        case .copy:
            (backing, key) = (.copy, MemoryFileTable.Key(device: 0, inode: 0))
        case .dmabuf(let k):
            (backing, key) = (.dmabuf, k)
        }
        at.storeBytes(of: ioas.littleEndian, toByteOffset: 0, as: UInt32.self)
        at.storeBytes(of: iova.littleEndian, toByteOffset: 4, as: UInt64.self)
        at.storeBytes(of: mapping.length.littleEndian, toByteOffset: 12, as: UInt64.self)
        at.storeBytes(of: mapping.charged.littleEndian, toByteOffset: 20, as: UInt64.self)
        at.storeBytes(of: mapping.flags.rawValue.littleEndian, toByteOffset: 28, as: UInt32.self)
        at.storeBytes(of: backing.rawValue, toByteOffset: 32, as: UInt8.self)
        at.storeBytes(of: key.device.littleEndian, toByteOffset: 33, as: UInt64.self)
        at.storeBytes(of: key.inode.littleEndian, toByteOffset: 41, as: UInt64.self)
        at.storeBytes(of: offset.littleEndian, toByteOffset: 49, as: UInt64.self)
    }

    // MARK: Group records (format 2)

    /// The payload of the group's batch record being built (`groupMapped`/`groupUnmapped`),
    /// `groupBytes` of it used: kept from group to group, so an entry allocates nothing.
    private var group: [UInt8] = []
    private var groupBytes = 0
    private var groupType: RecordType?

    /// `count` more bytes of the group's record, of `type` (a group of the other type is
    /// recorded first, so the records keep the order of the changes).
    private func groupSpace(_ type: RecordType, _ count: Int) -> Int {
        if groupType != type {
            endGroup()
            groupType = type
        }
        let at = groupBytes
        if at + count > group.count { group.append(contentsOf: repeatElement(0, count: max(group.count, 64 * Self.mapBytes, at + count - group.count))) }
        groupBytes += count
        return at
    }

    /// A mapping of the current group (a group of a batched map): in its `mapBatch` record.
    func groupMapped(ioas: ObjectID, iova: UInt64, _ mapping: MappingRecord, offset: UInt64) {
        let at = groupSpace(.mapBatch, Self.mapBytes)
        group.withUnsafeMutableBytes { encodeMap(into: $0.baseAddress! + at, ioas: ioas, iova: iova, mapping, offset: offset) }
    }

    // MARK: unmapfast
    /// The mappings one entry of a group removed from `ioas` (a group of a batched unmap), in
    /// order, in the group's `unmapBatch` record.
    func groupUnmapped(ioas: ObjectID, _ entries: ArraySlice<MappingIndex.Entry>) {
        groupUnmapped(count: entries.count) { writer in
            for entry in entries { writer.append(ioas: ioas, iova: entry.key) }
        }
    }

    /// Stores `(IOAS, IOVA)` pairs into reserved bytes of an `unmapBatch` record.
    struct UnmapRecordWriter {
        fileprivate let base: UnsafeMutableRawPointer
        fileprivate var offset: Int
        fileprivate let end: Int
        mutating func append(ioas: ObjectID, iova: UInt64) {
            precondition(offset + ObjectJournal.unmapBytes <= end, "more unmapped mappings than reserved")
            base.storeBytes(of: ioas.littleEndian, toByteOffset: offset, as: UInt32.self)
            base.storeBytes(of: iova.littleEndian, toByteOffset: offset + 4, as: UInt64.self)
            offset += ObjectJournal.unmapBytes
        }
    }

    /// `count` mappings removed by a group of a batched unmap, stored by `fill` in order into
    /// the group's `unmapBatch` record (12 bytes each: IOAS u32, IOVA u64), with one reservation
    /// and one access to the buffer for all of them (no exclusivity check or call a mapping).
    /// `fill` must store exactly `count`.
    func groupUnmapped(count: Int, _ fill: (inout UnmapRecordWriter) -> Void) {
        guard count > 0 else { return }
        let at = groupSpace(.unmapBatch, Self.unmapBytes * count)
        let end = at + Self.unmapBytes * count
        group.withUnsafeMutableBytes { raw in
            var writer = UnmapRecordWriter(base: raw.baseAddress!, offset: at, end: end)
            fill(&writer)
            precondition(writer.offset == end, "fewer unmapped mappings than reserved")
        }
        if !mmapOffsets.isEmpty {
            var pairs: [(ObjectID, UInt64)] = []
            group.withUnsafeBytes { raw in
                for o in stride(from: at, to: end, by: Self.unmapBytes) {
                    pairs.append((UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)),
                                  UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o + 4, as: UInt64.self))))
                }
            }
            for (ioas, iova) in pairs { mmapOffsets[ioas]?[iova] = nil }
        }
    }

    /// Appends the group's batch record (none for an empty group); before any other record.
    func endGroup() {
        defer {
            groupBytes = 0
            groupType = nil
        }
        guard let type = groupType, groupBytes > 0 else { return }
        group.withUnsafeBytes { log.append(type: type.rawValue, UnsafeRawBufferPointer(rebasing: $0[0..<groupBytes])) }
    }

    func unmapped(ioas: ObjectID, iova: UInt64) {
        if groupType != nil { endGroup() }
        // The 12 bytes on the stack (a batch of unmaps writes one record a mapping).
        withUnsafeTemporaryAllocation(byteCount: 12, alignment: 8) { record in
            record.storeBytes(of: ioas.littleEndian, toByteOffset: 0, as: UInt32.self)
            record.storeBytes(of: iova.littleEndian, toByteOffset: 4, as: UInt64.self)
            log.append(type: RecordType.unmap.rawValue, UnsafeRawBufferPointer(record))
        }
        if !mmapOffsets.isEmpty { mmapOffsets[ioas]?[iova] = nil }
    }

    func cleared(ioas: ObjectID) {
        endGroup()
        var w = ByteWriter(reserving: 4)
        w.u32(ioas)
        log.append(type: RecordType.clear.rawValue, w.bytes)
        mmapOffsets[ioas] = nil
    }

    /// Records what differs between `state` and the slices last recorded: changed slices,
    /// tombstones of owners gone, the global slice if it changed (everything in a new log).
    func recordState(_ state: JournalState) {
        let (slices, global) = state.slices()
        for name in lastSlices.keys where slices[name] == nil { recordSlice(OwnerSlice(name: name)) }
        for (name, slice) in slices.sorted(by: { $0.key < $1.key }) where lastSlices[name] != slice { recordSlice(slice) }
        recordGlobal(global)
        endSlices()
    }

    /// The slice records of the commit under way, appended by `endSlices`.
    private var pendingSlices: [(type: RecordType, json: [UInt8])] = []

    /// Appends the commit's slices: one as its own record, several as one `stateSet` record.
    func endSlices() {
        defer { pendingSlices.removeAll(keepingCapacity: true) }
        guard !pendingSlices.isEmpty else { return }
        endGroup()
        if pendingSlices.count == 1 {
            log.append(type: pendingSlices[0].type.rawValue, pendingSlices[0].json)
            return
        }
        var w = ByteWriter(reserving: pendingSlices.reduce(0) { $0 + 5 + $1.json.count })
        for (type, json) in pendingSlices {
            w.u8(type.rawValue)
            w.u32(UInt32(json.count))
            w.bytes.append(contentsOf: json)
        }
        log.append(type: RecordType.stateSet.rawValue, w.bytes)
    }

    /// Records `slice` (a tombstone when empty) if it differs from the one last recorded.
    func recordSlice(_ slice: OwnerSlice) {
        if lastSlices[slice.name] == slice || (slice.isEmpty && lastSlices[slice.name] == nil) { return }
        guard let json = try? encoder.encode(slice) else { return }
        let bytes = Array(json)
        pendingSlices.append((.ownerState, bytes))
        lastSlices[slice.name] = slice.isEmpty ? nil : slice
        lastJSON[slice.name] = slice.isEmpty ? nil : bytes
    }

    /// Records the global slice if it differs from the one last recorded.
    func recordGlobal(_ global: GlobalSlice) {
        if lastGlobal == global { return }
        guard let json = try? encoder.encode(global) else { return }
        pendingSlices.append((.globalState, Array(json)))
        lastGlobal = global
    }

    /// Writes the request's records. A failure is kept for `daemon.info` and logged by the caller.
    func flush() -> String? {
        endGroup()
        // The crash-point sweep (TEST ONLY, see CrashPoints): before, half-way and after.
        CrashPoints.hit("before journal write")
        CrashPoints.hit("journal write torn half-way", beforeKill: { log.writeHalfOfPendingForCrashTest() })
        defer { CrashPoints.hit("after journal write") }
        do {
            try log.flush()
            return nil
        } catch {
            writeError = "the object journal could not be written (\(error)); a restart now would lose the latest changes"
            return writeError
        }
    }

    var needsCompaction: Bool {
        log.size > max(compactionFloor, compactedSize * 4)
    }

    /// Replaces the log by a new generation holding `state` and `mappings`, stored before the
    /// old one is removed.
    func compact(state: JournalState, mappings: (ObjectJournal) -> Void) throws(IommuError) {
        let old = (log, generation, lastSlices, lastGlobal, lastJSON)
        let next = try RecordLog(memfdName: "iommufdd-journal", magic: Self.magic)
        log = next
        generation += 1
        (lastSlices, lastGlobal, lastJSON) = ([:], nil, [:])
        // Every owner's slice (one `stateSet` with the global one): the bytes last recorded for
        // a slice that has not changed since, a new encoding for the others.
        let (slices, global) = state.slices()
        for (name, slice) in slices.sorted(by: { $0.key < $1.key }) {
            if let json = old.4[name], old.2[name] == slice {
                pendingSlices.append((.ownerState, json))
                lastSlices[name] = slice
                lastJSON[name] = json
            } else {
                recordSlice(slice)
            }
        }
        recordGlobal(global)
        endSlices()
        mappings(self)
        endGroup()
        // The compaction's records of 4,096 mappings (~230 KiB) are not kept for the batches'.
        if group.count > 64 * Self.mapBytes { group = [] }
        do {
            try log.flush()
        } catch {
            (log, generation, lastSlices, lastGlobal, lastJSON) = old
            throw error
        }
        store.store(log.fd, name: StoredFDName.journal(generation))
        store.remove(name: StoredFDName.journal(old.1))
        compactedSize = log.size
        writeError = nil
    }

    // MARK: Reading

    /// One mapping as the journal recorded it.
    struct Mapping {
        var length: UInt64
        var charged: UInt64
        var flags: MapFlags
        var backing: Backing
        var file: MemoryFileTable.Key
        var offset: UInt64
    }

    /// The state and mappings a journal's records describe, applied in order.
    struct Contents {
        var state = JournalState()
        var hasState = false
        /// The state in slices (format 3), `state` assembled from them.
        var slices: [String: OwnerSlice] = [:]
        var global = GlobalSlice()
        var mappings: [ObjectID: [UInt64: Mapping]] = [:]
        var records = 0
        var problems: [String] = []
    }

    /// One mapping's 57 bytes (a `map` record, or one of a `mapBatch`), applied to `c`.
    private static func readMap(_ r: inout ByteReader, into c: inout Contents) {
        let ioas = r.u32(), iova = r.u64(), length = r.u64(), charged = r.u64(), flags = MapFlags(rawValue: r.u32())
        let backing = Backing(rawValue: r.u8()) ?? .copy
        let key = MemoryFileTable.Key(device: r.u64(), inode: r.u64())
        let offset = r.u64()
        c.mappings[ioas, default: [:]][iova] = Mapping(length: length, charged: charged, flags: flags, backing: backing, file: key, offset: offset)
    }

    static func read(_ records: [RecordLog.Record]) -> Contents {
        var c = Contents()
        var states: [(index: Int, payload: ArraySlice<UInt8>, type: RecordType)] = []
        for record in records {
            c.records += 1
            var r = ByteReader(record.payload)
            switch RecordType(rawValue: record.type) {
            case .state, .ownerState, .globalState:
                states.append((c.records, record.payload, RecordType(rawValue: record.type)!))
            case .stateSet:
                // Each slice: type (u8, ownerState or globalState), length (u32 LE), its JSON.
                var set: [(index: Int, payload: ArraySlice<UInt8>, type: RecordType)] = []
                while r.remaining > 0 {
                    guard r.remaining >= 5, let type = RecordType(rawValue: r.u8()), type == .ownerState || type == .globalState
                    else { set = []; break }
                    let length = Int(r.u32())
                    guard r.remaining >= length else { set = []; break }
                    set.append((c.records, r.bytes(length), type))
                }
                if set.isEmpty {
                    c.problems.append("journal record \(c.records) (the slices of one request) is malformed; skipped, the objects it recorded are as the records before it left them")
                } else {
                    states.append(contentsOf: set)
                }
            case .map:
                readMap(&r, into: &c)
            case .unmap:
                let ioas = r.u32(), iova = r.u64()
                c.mappings[ioas]?[iova] = nil
            case .mapBatch:
                guard record.payload.count % mapBytes == 0 else {
                    c.problems.append("journal record \(c.records) (a batch of mappings) is \(record.payload.count) bytes, not a multiple of \(mapBytes); skipped")
                    continue
                }
                while r.remaining > 0 { readMap(&r, into: &c) }
            case .unmapBatch:
                guard record.payload.count % unmapBytes == 0 else {
                    c.problems.append("journal record \(c.records) (a batch of unmaps) is \(record.payload.count) bytes, not a multiple of \(unmapBytes); skipped")
                    continue
                }
                while r.remaining > 0 {
                    let ioas = r.u32(), iova = r.u64()
                    c.mappings[ioas]?[iova] = nil
                }
            case .clear:
                c.mappings[r.u32()] = nil
            case nil:
                c.problems.append("journal record \(c.records) has unknown type \(record.type); skipped")
            }
        }
        // Only the newest whole state counts (an undecodable one falls back to the one before),
        // then the slices recorded after it, in order.
        var from = 0
        for (position, (index, payload, type)) in states.enumerated().reversed() where type == .state {
            do {
                let whole = try JSONDecoder().decode(JournalState.self, from: Data(payload))
                (c.slices, c.global) = whole.slices()
                c.hasState = true
                from = position + 1
                break
            } catch {
                c.problems.append("journal record \(index) (object state) cannot be decoded: \(error); the state before it is used")
            }
        }
        for (index, payload, type) in states[from...] where type != .state {
            do {
                if type == .ownerState {
                    let slice = try JSONDecoder().decode(OwnerSlice.self, from: Data(payload))
                    c.slices[slice.name] = slice.isEmpty ? nil : slice
                } else {
                    c.global = try JSONDecoder().decode(GlobalSlice.self, from: Data(payload))
                }
                c.hasState = true
            } catch {
                c.problems.append("journal record \(index) (\(type == .ownerState ? "an owner's objects" : "the device table")) cannot be decoded: \(error); skipped, the objects it recorded are as the records before it left them")
            }
        }
        c.state = JournalState.assembled(owners: c.slices, global: c.global)
        return c
    }
}
