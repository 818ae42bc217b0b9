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
///   `(st_dev, st_ino)` and offset, or an `IOMMU_IOAS_COPY`), 54 bytes;
/// - `unmap`: one mapping removed (IOAS, IOVA); `clear`: every mapping of an IOAS removed.
/// Pinned bytes are not recorded: they are the sum of the mappings' charged bytes.
///
/// Map and unmap cost one short record and one `pwrite` of the request's records, whatever
/// the number of mappings. When the log has grown to four times its size after the last
/// compaction (and at least 16 MiB), it is compacted: the current state and every mapping are
/// written to a new memfd stored as the next generation (`journal.N+1`), then `journal.N` is
/// removed from the store, so a crash at any point leaves at least one complete journal.
final class ObjectJournal {
    /// The format this daemon writes. A change to the records or to `JournalState` that an
    /// older daemon would misread takes the next version, keeps reading every earlier one, and
    /// adds a golden journal of the new version under Tests/Fixtures/ (JournalFormatTests).
    static let format = RecordLogFormat(kind: "IFDJRN", version: 1)
    static let magic: UInt64 = format.magic  // "IFDJRN01"
    enum RecordType: UInt8 {
        case state = 1, map, unmap, clear
    }
    enum Backing: UInt8 {
        case file = 0, mmap, copy
        /// A dma-buf (branch p2p): an older daemon reads it as a copy, charged 0.
        case dmabuf
    }

    let store: any FileDescriptorStore
    private(set) var log: RecordLog
    private(set) var generation: UInt64
    /// The state last recorded, to record it again only when it changed.
    var lastState: JournalState?
    /// Set by requests that only change mappings (map, unmap, copy): the state is not compared.
    var stateUnchanged = false
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
        var w = ByteWriter(reserving: 54)
        w.u32(ioas); w.u64(iova); w.u64(mapping.length); w.u64(mapping.charged); w.u32(mapping.flags.rawValue)
        switch mapping.backing {
        case .file(let key):
            w.u8(Backing.file.rawValue); w.u64(key.device); w.u64(key.inode)
        case .mmap(let key, _):
            w.u8(Backing.mmap.rawValue); w.u64(key.device); w.u64(key.inode)
            mmapOffsets[ioas, default: [:]][iova] = offset
        case .copy:
            w.u8(Backing.copy.rawValue); w.u64(0); w.u64(0)
        case .dmabuf(let key):
            w.u8(Backing.dmabuf.rawValue); w.u64(key.device); w.u64(key.inode)
        }
        w.u64(offset)
        log.append(type: RecordType.map.rawValue, w.bytes)
    }

    func unmapped(ioas: ObjectID, iova: UInt64) {
        // The 12 bytes on the stack (a batch of unmaps writes one record a mapping).
        withUnsafeTemporaryAllocation(byteCount: 12, alignment: 8) { record in
            record.storeBytes(of: ioas.littleEndian, toByteOffset: 0, as: UInt32.self)
            record.storeBytes(of: iova.littleEndian, toByteOffset: 4, as: UInt64.self)
            log.append(type: RecordType.unmap.rawValue, UnsafeRawBufferPointer(record))
        }
        if !mmapOffsets.isEmpty { mmapOffsets[ioas]?[iova] = nil }
    }

    func cleared(ioas: ObjectID) {
        var w = ByteWriter(reserving: 4)
        w.u32(ioas)
        log.append(type: RecordType.clear.rawValue, w.bytes)
        mmapOffsets[ioas] = nil
    }

    func recordState(_ state: JournalState) {
        guard let json = try? JSONEncoder().encode(state) else { return }
        log.append(type: RecordType.state.rawValue, Array(json))
        lastState = state
    }

    /// Writes the request's records. A failure is kept for `daemon.info` and logged by the caller.
    func flush() -> String? {
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
        let old = (log, generation)
        let next = try RecordLog(memfdName: "iommufdd-journal", magic: Self.magic)
        log = next
        generation += 1
        recordState(state)
        mappings(self)
        do {
            try log.flush()
        } catch {
            (log, generation) = old
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
        var mappings: [ObjectID: [UInt64: Mapping]] = [:]
        var records = 0
        var problems: [String] = []
    }

    static func read(_ records: [RecordLog.Record]) -> Contents {
        var c = Contents()
        var states: [(index: Int, payload: ArraySlice<UInt8>)] = []
        for record in records {
            c.records += 1
            var r = ByteReader(record.payload)
            switch RecordType(rawValue: record.type) {
            case .state:
                states.append((c.records, record.payload))
            case .map:
                let ioas = r.u32(), iova = r.u64(), length = r.u64(), charged = r.u64(), flags = MapFlags(rawValue: r.u32())
                let backing = Backing(rawValue: r.u8()) ?? .copy
                let key = MemoryFileTable.Key(device: r.u64(), inode: r.u64())
                let offset = r.u64()
                c.mappings[ioas, default: [:]][iova] = Mapping(length: length, charged: charged, flags: flags, backing: backing, file: key, offset: offset)
            case .unmap:
                let ioas = r.u32(), iova = r.u64()
                c.mappings[ioas]?[iova] = nil
            case .clear:
                c.mappings[r.u32()] = nil
            case nil:
                c.problems.append("journal record \(c.records) has unknown type \(record.type); skipped")
            }
        }
        // Only the newest state counts; an undecodable one falls back to the one before.
        for (index, payload) in states.reversed() {
            do {
                c.state = try JSONDecoder().decode(JournalState.self, from: Data(payload))
                c.hasState = true
                break
            } catch {
                c.problems.append("journal record \(index) (object state) cannot be decoded: \(error); the state before it is used")
            }
        }
        return c
    }
}
