#if canImport(Glibc)
import Glibc
#endif
import IommufdCore
import Testing
import IommufdContract

@testable import IommufdBroker

/// The harness of the batch property tests (`MapBatchPropertyTests`, `UnmapBatchPropertyTests`):
/// two identical worlds (`SweepWorld`: a broker with its journal over a fault-injecting
/// simulator), set up alike; one runs a batch through the broker's batch call, the other sends
/// the same entries one at a time (stopping at the first error). Both must give the same
/// results and error, leave the same records, pinned bytes, memory-file references and
/// simulator state (each world consistent, its journal reading back as its broker), and their
/// journals must replay to the same mappings through the same changes, mapping by mapping —
/// though not in the same records: a batch writes one record a group (journal format 2), the
/// entries one by one a record each, so the batch's journal has at most as many.
struct BatchAgainstOneByOne<Entry, Result: Equatable> {
    /// The worlds' options: features the simulator lacks, each owner's quota, and the kernel
    /// call (counted from the batch's first) that fails, if one does.
    var without: Set<Feature> = []
    var quotaPages: UInt64 = SweepWorld.quotaPages
    var failAt: Int?
    /// The same objects and mappings in each world (called once a world).
    var setUp: (SweepWorld) throws -> Void
    /// The batch, made once, in the first world after its set-up (the IDs are the same in both).
    var makeBatch: (SweepWorld) throws -> [Entry]
    /// One entry through the one-at-a-time call.
    var one: (SweepWorld, Entry) throws -> Result
    /// The whole batch through the batch call: its results and the error that stopped it.
    var batch: (SweepWorld, [Entry]) -> (results: [Result], failure: (any Error)?)

    /// Runs both worlds and checks everything above; `label` starts every message.
    func check(ram: Int32, _ label: String) throws {
        var entries: [Entry]?
        var worlds: [SweepWorld] = []
        var outcomes: [(results: [Result], failure: String?)] = []
        for oneByOne in [false, true] {
            let w = try SweepWorld(ram: ram, without: without, quotaPages: quotaPages)
            try setUp(w)
            if entries == nil { entries = try makeBatch(w) }
            if let failAt { w.backend.arm(failAt: failAt) }
            if oneByOne {
                var results: [Result] = []
                var failure: String?
                for entry in entries! {
                    do {
                        results.append(try one(w, entry))
                    } catch {
                        failure = "\(error)"
                        break
                    }
                }
                outcomes.append((results, failure))
            } else {
                let outcome = batch(w, entries!)
                outcomes.append((outcome.results, outcome.failure.map { "\($0)" }))
            }
            // Whatever stopped it, the batch answered with every record written (a group's
            // record may wait for the batch's next hold of the lock, never for its answer).
            #expect(try w.broker.locked { w.broker.journal?.log.hasPending } == false, "\(label): records left unwritten")
            w.backend.disarm()
            worlds.append(w)
        }
        let (batched, single) = (worlds[0], worlds[1])
        let context = "\(label), \(entries!.count) entries, stopped at \(outcomes[1].results.count): \(outcomes[1].failure ?? "no error")"
        #expect(outcomes[0].results == outcomes[1].results, "\(context)")
        #expect(outcomes[0].failure == outcomes[1].failure, "\(context)")
        let (a, b) = (try batched.snapshot(), try single.snapshot())
        #expect(a == b, "\(context): \(a.differences(from: b))")
        #expect(try batched.inconsistencies() == [], "\(context)")
        #expect(try single.inconsistencies() == [], "\(context)")
        let journals = try [batched, single].map { try $0.journalMappings() }
        #expect(journals[0].replayed == journals[1].replayed, "\(context): the journals replay to different mappings")
        #expect(journals[0].changes == journals[1].changes, "\(context): the journals' mapping changes differ")
        #expect(journals[0].records <= journals[1].records, "\(context): the batch wrote \(journals[0].records) mapping records, one by one \(journals[1].records)")
    }
}

extension SweepWorld {
    /// What the journal says of the mappings, read back as a restarted daemon would.
    struct JournalMappings {
        /// The mappings its records replay to, each as its fields in a `map` record but the IOAS and IOVA.
        var replayed: [ObjectID: [UInt64: [UInt8]]]
        /// Every change of a mapping in order, a batch record's one by one, each as the record
        /// one by one would have written (type and payload): `map`, `unmap`, `clear`.
        var changes: [[UInt8]]
        /// Records of mapping changes (batch records count once).
        var records: Int
    }

    func journalMappings() throws -> JournalMappings {
        let fd = try #require(try broker.locked { broker.journal?.log.fd })
        var records: [RecordLog.Record] = []
        var torn = 0
        let log = try RecordLog(adopting: fcntl(fd, F_DUPFD_CLOEXEC, 0), magic: ObjectJournal.magic, records: &records, tornBytes: &torn)
        withExtendedLifetime(log) {}
        #expect(torn == 0)
        typealias T = ObjectJournal.RecordType
        var changes: [[UInt8]] = []
        var count = 0
        for record in records where ![T.state, .ownerState, .globalState, .stateSet].map(\.rawValue).contains(record.type) {
            count += 1
            let payload = Array(record.payload)
            switch T(rawValue: record.type) {
            case .mapBatch:
                #expect(payload.count % ObjectJournal.mapBytes == 0)
                for at in stride(from: 0, to: payload.count, by: ObjectJournal.mapBytes) {
                    changes.append([T.map.rawValue] + payload[at..<(at + ObjectJournal.mapBytes)])
                }
            case .unmapBatch:
                #expect(payload.count % ObjectJournal.unmapBytes == 0)
                for at in stride(from: 0, to: payload.count, by: ObjectJournal.unmapBytes) {
                    changes.append([T.unmap.rawValue] + payload[at..<(at + ObjectJournal.unmapBytes)])
                }
            default:
                changes.append([record.type] + payload)
            }
        }
        let contents = ObjectJournal.read(records)
        #expect(contents.problems == [])
        let replayed = contents.mappings.filter { !$0.value.isEmpty }.mapValues { entries in
            entries.mapValues { m -> [UInt8] in
                var w = ByteWriter()
                w.u64(m.length); w.u64(m.charged); w.u32(m.flags.rawValue); w.u8(m.backing.rawValue)
                w.u64(m.file.device); w.u64(m.file.inode); w.u64(m.offset)
                return w.bytes
            }
        }
        return JournalMappings(replayed: replayed, changes: changes, records: count)
    }
}
