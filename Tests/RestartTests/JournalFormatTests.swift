import Foundation
import IommufdCore
import IommufdSim
import TestProcesses
import Testing

@testable import IommufdBroker
import IommufdContract

#if canImport(Glibc)
import Glibc
#endif

/// A golden journal: the broker's object journal and the simulator's iommufd log as a daemon of
/// one format version wrote them, with the memory files they name and what a daemon that adopts
/// them must show. Checked in under Tests/Fixtures/journal-v<N>/ (one directory per format
/// version, never rewritten once a newer version exists), and written by `GoldenJournal.write`
/// when IOMMUFDD_WRITE_GOLDEN_JOURNAL=1.
struct GoldenJournal {
    struct Memory: Codable {
        var name: String
        var bytes: Int
    }
    struct Manifest: Codable {
        var journalFormat: Int
        var simFormat: Int
        /// The journal's fd-store name (`journal.N`).
        var journalName: String
        var memory: [Memory]
        var expected: AdoptedView
    }

    /// What a daemon shows of the objects it adopted: every owner, IOAS (with mappings), HWPT,
    /// vIOMMU (with vDevices), device and dirty-tracking status, with their IDs.
    struct AdoptedView: Codable, Equatable {
        var owners: [OwnerInfo]
        var ioas: [IOASInfo]
        var hwpts: [HWPTInfo]
        var viommus: [VIOMMUInfo]
        var devices: [DeviceInfo]
        var dirty: [DirtyStatusResult]

        init(_ broker: Broker) throws {
            let a = Incarnation.admin
            owners = try broker.ownerList(a).owners
            ioas = try broker.ioasList(a, IOASListParams()).ioas.map { try broker.ioasInfo(a, IOASInfoParams(ioas: $0.ioas)) }
            hwpts = try broker.hwptList(a, HWPTListParams()).hwpts
            viommus = try broker.viommuList(a, VIOMMUListParams()).viommus
            devices = try broker.deviceList(a, DeviceListParams()).devices
            dirty = try ioas.map { try broker.dirtyStatus(a, DirtyParams(ioas: $0.ioas)) }
        }
    }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static func directory(version: Int) -> URL { directory.appendingPathComponent("journal-v\(version)") }

    var manifest: Manifest
    var journal: [UInt8]
    var simLog: [UInt8]

    /// Today's daemon in a representative state: two owners; IOAS with file mappings, a copy and
    /// huge pages off; automatic, explicit and nest-parent HWPTs on two IOMMU instances; dirty
    /// tracking on with dirty pages; a vIOMMU with a vDevice; an mdev-like device on an IOAS;
    /// (format 2) mappings made and removed by batches.
    static func makeRepresentative() throws -> (GoldenJournal, MemoryFDStore) {
        let page: UInt64 = 0x1000
        let store = MemoryFDStore()
        let daemon = try Incarnation.fresh(store)
        let b = daemon.broker
        let a = Incarnation.admin
        let ram = try makeMemfd(bytes: 32 * page)
        defer { close(ram) }
        _ = try b.ownerCreate(a, OwnerCreateParams(name: "vm-a"))
        let a1 = try b.ioasCreate(a, IOASCreateParams(owner: "vm-a")).ioas
        let a2 = try b.ioasCreate(a, IOASCreateParams(owner: "vm-a", hugePages: false)).ioas
        _ = try b.ioasMap(a, IOASMapParams(ioas: a1, offset: 0, length: 8 * page, iova: 0x10_0000), fd: ram)
        _ = try b.ioasMap(a, IOASMapParams(ioas: a1, offset: 8 * page, length: 4 * page, iova: 0x20_0000, writeable: false), fd: ram)
        _ = try b.ioasCopy(a, IOASCopyParams(dstIOAS: a2, srcIOAS: a1, srcIOVA: 0x10_0000, length: 8 * page, dstIOVA: 0x10_0000))
        _ = try b.deviceAttach(a, DeviceAttachParams(owner: "vm-a", device: "sim0", ioas: a1))
        _ = try b.deviceAttach(a, DeviceAttachParams(owner: "vm-a", device: "sim2", ioas: a2))
        _ = try b.hwptAlloc(a, HWPTAllocParams(ioas: a2, device: "sim1"))
        _ = try b.dirtyStart(a, DirtyParams(ioas: a1))
        let viommu = try b.viommuCreate(a, VIOMMUCreateParams(device: "sim0"))
        _ = try b.vdeviceCreate(a, VDeviceCreateParams(viommu: viommu.viommu, device: "sim0", virtualID: 0x10))
        // sim0 wrote two pages through its (tracking) nest parent.
        try daemon.sim.simulateDeviceWrite(hwpt: viommu.nestParent, iova: 0x10_1000, length: 2 * page, pageSize: page)
        _ = try b.ownerCreate(a, OwnerCreateParams(name: "vm-b", tolerateMissing: true, dirty: .off))
        let b1 = try b.ioasCreate(a, IOASCreateParams(owner: "vm-b")).ioas
        _ = try b.ioasMap(a, IOASMapParams(ioas: b1, offset: 16 * page, length: 2 * page, iova: 0x40_0000), fd: ram)
        _ = try b.deviceAttach(a, DeviceAttachParams(owner: "vm-b", device: "mdev0", ioas: b1))
        // Format 2: a batch of maps and a batch of unmaps (the VMM channel's), one record each.
        let batch = (0..<4).map { i in (params: IOASMapParams(ioas: b1, offset: (20 + UInt64(i)) * page, length: page, iova: 0x50_0000 + UInt64(i) * page), fd: ram) }
        #expect(b.ioasMapBatch(a, batch).failure == nil)
        #expect(b.ioasUnmapBatch(a, [1, 2].map { IOASUnmapParams(ioas: b1, iova: 0x50_0000 + UInt64($0) * page, length: page) }).failure == nil)

        let journal = try #require(b.journal)
        let memory = try store.names.filter { $0.hasPrefix("mem.") }.map { name in
            Memory(name: name, bytes: Int(32 * page))
        }
        let golden = GoldenJournal(
            manifest: Manifest(
                journalFormat: ObjectJournal.format.version, simFormat: PersistentSimBackend.format.version,
                journalName: StoredFDName.journal(journal.generation), memory: memory, expected: try AdoptedView(b)),
            journal: try Memfd.readAll(journal.log.fd), simLog: try Memfd.readAll(daemon.sim.log.fd))
        return (golden, store)
    }

    static func load(version: Int) throws -> GoldenJournal {
        let dir = directory(version: version)
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: dir.appendingPathComponent("manifest.json")))
        return GoldenJournal(
            manifest: manifest, journal: Array(try Data(contentsOf: dir.appendingPathComponent("journal.bin"))),
            simLog: Array(try Data(contentsOf: dir.appendingPathComponent("sim-iommufd.bin"))))
    }

    func write() throws {
        let dir = Self.directory(version: manifest.journalFormat)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: dir.appendingPathComponent("manifest.json"))
        try Data(journal).write(to: dir.appendingPathComponent("journal.bin"))
        try Data(simLog).write(to: dir.appendingPathComponent("sim-iommufd.bin"))
    }

    /// An fd store holding what a daemon that wrote this journal would have left in it: the
    /// journal, the simulator's log and (empty) memory files under their names. Returns the
    /// fds it holds too, to check they stay open.
    func store() throws -> MemoryFDStore {
        let store = MemoryFDStore()
        func memfd(_ bytes: [UInt8], size: Int? = nil) throws -> Int32 {
            let fd = try makeMemfd(bytes: size ?? bytes.count)
            if !bytes.isEmpty { _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } }
            return fd
        }
        for (name, bytes) in [(manifest.journalName, journal), (PersistentSimBackend.fdStoreName, simLog)] {
            let fd = try memfd(bytes)
            store.store(fd, name: name)
            close(fd)
        }
        for m in manifest.memory {
            let fd = try memfd([], size: m.bytes)
            store.store(fd, name: m.name)
            close(fd)
        }
        return store
    }
}

/// `bytes` with its 8-byte log header saying format `version` instead.
func withFormatVersion(_ bytes: [UInt8], _ version: Int) -> [UInt8] {
    var copy = bytes
    copy[6] = UInt8(0x30 + version / 10)
    copy[7] = UInt8(0x30 + version % 10)
    return copy
}

@Suite("Journal format versions")
struct JournalFormatTests {
    /// Every journal format version there has been; each has a golden journal.
    static let versions = Array(1...ObjectJournal.format.version)

    @Test("the log headers spell kind and version: IFDJRN03 and IFDSIM01; the journal reader knows IFDJRN01 and IFDJRN02 too")
    func headers() {
        #expect(ObjectJournal.format.magic == 0x3330_4e52_4a44_4649)
        #expect(ObjectJournal.readableMagics == [0x3130_4e52_4a44_4649, 0x3230_4e52_4a44_4649, 0x3330_4e52_4a44_4649])
        #expect(PersistentSimBackend.format.magic == 0x3130_4d49_5344_4649)
        #expect(RecordLogFormat(magic: ObjectJournal.magic) == ObjectJournal.format)
        #expect(RecordLogFormat(magic: RecordLogFormat(kind: "IFDJRN", version: 12).magic)?.version == 12)
        #expect(RecordLogFormat(magic: 0) == nil)
    }

    @Test("today's daemon adopts the golden journal of every format version: same objects, same IDs", arguments: versions)
    func adoptsGolden(_ version: Int) throws {
        let golden = try GoldenJournal.load(version: version)
        #expect(golden.manifest.journalFormat == version)
        let (daemon, replay) = try Incarnation.restarted(try golden.store())
        #expect(replay.problems == [])
        #expect(daemon.recovery?.problems == [])
        #expect(daemon.recovery?.journal == golden.manifest.journalName)
        #expect(try GoldenJournal.AdoptedView(daemon.broker) == golden.manifest.expected)
        // And it goes on from there: the adopted objects work.
        let a = Incarnation.admin
        let ioas = try #require(golden.manifest.expected.ioas.first { $0.dirtyTracking })
        let dirty = try daemon.broker.dirtyRead(a, DirtyReadParams(ioas: ioas.ioas, iova: 0x10_0000, length: 0x8000, pageSize: 0x1000, clear: false))
        #expect(dirty.result.runs == [DirtyRun(iova: 0x10_1000, length: 0x2000)])
        let released = try daemon.broker.ownerRelease(a, OwnerReleaseParams(name: "vm-a"))
        #expect(released.released && released.failures == [])
    }

    @Test("today's writer gives the state of the current version's golden journal (IOMMUFDD_WRITE_GOLDEN_JOURNAL=1 rewrites it)")
    func currentGoldenMatchesWriter() throws {
        let (fresh, store) = try GoldenJournal.makeRepresentative()
        // Today's journal, adopted by today's daemon, shows what it was written from.
        let (daemon, replay) = try Incarnation.restarted(store)
        #expect(replay.problems == [])
        #expect(daemon.recovery?.problems == [])
        #expect(try GoldenJournal.AdoptedView(daemon.broker) == fresh.manifest.expected)
        if ProcessInfo.processInfo.environment["IOMMUFDD_WRITE_GOLDEN_JOURNAL"] == "1" { try fresh.write() }
        let golden = try GoldenJournal.load(version: ObjectJournal.format.version)
        #expect(golden.manifest.expected == fresh.manifest.expected, "the representative state changed: rewrite the golden journal of this version only if the format did not change")
    }

    @Test("a journal of format 1 or 2 is adopted and at once rewritten in today's format as the next generation; a restart from it shows the same", arguments: [1, 2])
    func olderJournalRewritten(_ version: Int) throws {
        let golden = try GoldenJournal.load(version: version)
        #expect(try Self.recordTypes(golden.journal).isSubset(of: version == 1 ? [1, 2, 3, 4] : [1, 2, 3, 4, 5, 6]), "format \(version) has no batch records (1) and no slice records (1, 2)")
        let store = try golden.store()
        let (daemon, _) = try Incarnation.restarted(store)
        #expect(daemon.recovery?.problems == [])
        let journal = try #require(daemon.broker.journal)
        let old = try #require(StoredFDName.parseJournal(golden.manifest.journalName))
        #expect(journal.generation == old + 1)
        #expect(store.names.contains(StoredFDName.journal(old + 1)))
        #expect(!store.names.contains(golden.manifest.journalName))
        #expect(RecordLogFormat.of(journal.log.fd) == ObjectJournal.format)
        #expect(try GoldenJournal.AdoptedView(daemon.broker) == golden.manifest.expected)
        // The next generation has the state in slices only (format 3), no whole state: the
        // compaction's slices (the owners' and the global one) in one `stateSet` record.
        let rewritten = try Self.recordTypes(Self.contents(of: journal.log.fd))
        #expect(!rewritten.contains(ObjectJournal.RecordType.state.rawValue))
        #expect(rewritten.contains(ObjectJournal.RecordType.stateSet.rawValue))
        // Today's records go on in it, and it reads back the same after another restart.
        let (again, _) = try Incarnation.restarted(store)
        #expect(again.recovery?.problems == [])
        #expect(again.recovery?.journal == StoredFDName.journal(old + 1))
        #expect(try GoldenJournal.AdoptedView(again.broker) == golden.manifest.expected)
    }

    @Test("the golden journal of format 2 holds the batch records (one record a group)")
    func goldenHasBatchRecords() throws {
        let golden = try GoldenJournal.load(version: 2)
        let types = try Self.recordTypes(golden.journal)
        #expect(types.contains(ObjectJournal.RecordType.mapBatch.rawValue))
        #expect(types.contains(ObjectJournal.RecordType.unmapBatch.rawValue))
    }

    @Test("the golden journal of format 3 holds the state in slices (a request's one slice alone, several in one stateSet record), no whole state")
    func goldenHasSlices() throws {
        let golden = try GoldenJournal.load(version: 3)
        let types = try Self.recordTypes(golden.journal)
        #expect(types.contains(ObjectJournal.RecordType.ownerState.rawValue))
        #expect(types.contains(ObjectJournal.RecordType.stateSet.rawValue))
        #expect(!types.contains(ObjectJournal.RecordType.state.rawValue))
    }

    /// The bytes of a memfd.
    static func contents(of fd: Int32) throws -> [UInt8] {
        var st = stat()
        #expect(fstat(fd, &st) == 0)
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        #expect(n == bytes.count)
        return bytes
    }

    /// The record types of a journal file.
    static func recordTypes(_ bytes: [UInt8]) throws -> Set<UInt8> {
        let fd = try makeMemfd(bytes: bytes.count)
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        var records: [RecordLog.Record] = []
        var torn = 0
        let log = try RecordLog(adopting: fd, magics: ObjectJournal.readableMagics, records: &records, tornBytes: &torn)
        withExtendedLifetime(log) {}
        #expect(torn == 0)
        return Set(records.map(\.type))
    }

    @Test("a journal of a newer format is refused naming both versions, and every stored fd is kept")
    func newerJournalRefused() throws {
        var golden = try GoldenJournal.load(version: ObjectJournal.format.version)
        let newer = ObjectJournal.format.version + 1
        golden.journal = withFormatVersion(golden.journal, newer)
        let store = try golden.store()
        let names = store.names
        let passed = store.passed()
        defer { for (_, fd) in passed { close(fd) } }
        let sim = try PersistentSimBackend(SimBackend())
        let broker = try Broker(backend: sim, config: Incarnation.config())
        do {
            _ = try broker.recover(storedFDs: passed.filter { $0.name != PersistentSimBackend.fdStoreName }, store: store)
            Issue.record("a journal of format version \(newer) was adopted")
        } catch let error as JournalFormatTooNew {
            #expect(error.found.version == newer)
            #expect(error.known == ObjectJournal.format)
            #expect("\(error)".contains("journal format version \(newer), newer than this daemon's version \(ObjectJournal.format.version)"))
            #expect("\(error)".contains(golden.manifest.journalName))
        }
        #expect(store.names == names)
        for (name, fd) in passed { #expect(fcntl(fd, F_GETFD) >= 0, "\(name) was closed") }
        #expect(broker.journal == nil)
    }

    @Test("a simulator log of a newer format is refused naming both versions, before it is read")
    func newerSimLogRefused() throws {
        let golden = try GoldenJournal.load(version: ObjectJournal.format.version)
        let newer = PersistentSimBackend.format.version + 1
        let bytes = withFormatVersion(golden.simLog, newer)
        let fd = try makeMemfd(bytes: bytes.count)
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        #expect(throws: PersistentSimBackend.FormatTooNew.self) { try PersistentSimBackend.checkFormat(of: fd) }
        var report = PersistentSimBackend.ReplayReport()
        do {
            _ = try PersistentSimBackend(SimBackend(), adopting: fd, resolveFile: { _, _ in nil }, report: &report)
            Issue.record("a simulator log of format version \(newer) was replayed")
        } catch {
            #expect("\(error)".contains("format version \(newer), newer than this daemon's version \(PersistentSimBackend.format.version)"))
        }
        // Not truncated or rewritten: the newer daemon finds it as it was.
        #expect(try Memfd.readAll(fd) == bytes)
    }
}
