#if canImport(Glibc)
import Glibc
#endif
import FaultInjection
import Foundation
import IommufdCore
import IommufdSim
import Logging
import Testing

@testable import IommufdBroker
import IommufdContract

// The fail-nth sweep (issue 17): for every state-changing broker method in representative
// scenarios, fail backend call 1, 2, 3, ... until the method runs through, and after each
// failure check that the request left nothing behind. The kernel's iommufd_fail_nth selftest does
// the same to the kernel's own error paths.
//
// After each injected failure:
// - the broker's state (objects, leases, attachments, dirty tracking, mappings, pinned bytes,
//   held memory files) is exactly what it was before the request, or for the methods that
//   report partial success (owner.release, dirty.stop) consistent with the backend;
// - the simulator holds no object, mapping, attachment or dirty-tracking state the broker does
//   not know, and the reverse;
// - pinned-byte counters and held memory files equal the sums over the live mappings;
// - the journal, read back, gives the broker's state and mappings;
// - the error names the failing call and its errno.
// Then the same request runs again and must succeed, ending exactly where a run without a
// failure ends; finally owner.release of everything must leave the simulator empty.
//
// The default sweep injects each call's most likely errno; IOMMUFDD_LONG_SWEEP=1 (.ci/run sets
// it) injects every errno the call can answer and repeats every scenario over the mmap fallback
// (a kernel without IOMMU_IOAS_MAP_FILE).

/// An fd store in this process (systemd's, for the journal): keeps a dup of each fd by name.
final class InMemoryFDStore: FileDescriptorStore, @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(name: String, fd: Int32)] = []

    func store(_ fd: Int32, name: String) {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        lock.withLock { entries.append((name, copy)) }
    }

    func remove(name: String) {
        lock.withLock {
            for e in entries where e.name == name { close(e.fd) }
            entries.removeAll { $0.name == name }
        }
    }

    var names: [String] { lock.withLock { entries.map(\.name) } }

    deinit {
        for e in entries { close(e.fd) }
    }
}

/// One broker over a fault-injecting simulator, journaling into an in-memory fd store.
final class SweepWorld {
    /// Two IOMMU instances with dirty tracking and nesting, two devices on the first, one on the
    /// second, and an mdev-like device.
    static let topology = SimTopology(
        iommus: [
            .selftestMock(name: "iommu0", dirtyTracking: true, nesting: true),
            .selftestMock(name: "iommu1", dirtyTracking: true, nesting: true),
        ],
        devices: [
            .init(name: "d0", iommu: "iommu0", pciAddress: "0000:00:02.0"),
            .init(name: "d1", iommu: "iommu0", pciAddress: "0000:00:03.0"),
            .init(name: "d2", iommu: "iommu1", pciAddress: "0000:00:04.0"),
            .init(name: "mdev0", iommu: nil),
        ])
    static let quotaPages: UInt64 = 64
    /// Pages of the guest-memory memfd every world maps from.
    static let ramPages: UInt64 = 128

    let sim: SimBackend
    let backend: FaultInjectingBackend
    let broker: Broker
    let store = InMemoryFDStore()
    let caller: Caller
    /// The guest memory (one memfd for the whole sweep: its `(st_dev, st_ino)` is part of the
    /// broker's state, and runs in different worlds are compared).
    let ram: Int32
    /// Objects the scenario made, by name ("X": an IOAS, "v0": a vIOMMU ...).
    var ids: [String: ObjectID] = [:]

    /// `quotaPages`: the quota of each owner of the manager (the batch property tests map more).
    init(ram: Int32, without: Set<Feature>, quotaPages: UInt64 = SweepWorld.quotaPages) throws {
        sim = try SimBackend(topology: Self.topology)
        backend = FaultInjectingBackend(sim, without: without)
        let access = AccessControl(
            rules: [AccessRule(.uid(TestUID.managerA), role: .manager, name: "libvirt-a", quotaBytes: quotaPages * page)],
            rootIsAdmin: false, groupsOf: { _, _ in [] })
        var logger = Logger(label: "fail-nth")
        logger.logLevel = .critical
        broker = try Broker(
            backend: backend, config: BrokerConfig(access: access, allowList: .all, defaultVIOMMUType: VIOMMUType.selftest), logger: logger)
        _ = try broker.recover(storedFDs: [], store: store)
        caller = try #require(access.resolve(uid: TestUID.managerA, gid: TestUID.managerA, pid: 1))
        self.ram = ram
    }

    func id(_ name: String) throws -> ObjectID {
        try #require(ids[name], "the scenario has no object '\(name)'")
    }

    // MARK: Scenario steps

    func owner(_ name: String = "vm") throws {
        _ = try broker.ownerCreate(caller, OwnerCreateParams(name: name))
    }

    func ioas(_ key: String, hugePages: Bool? = nil) throws {
        ids[key] = try broker.ioasCreate(caller, IOASCreateParams(owner: "vm", hugePages: hugePages)).ioas
    }

    @discardableResult
    func map(_ key: String, pages: UInt64, at iova: UInt64?, offsetPages: UInt64 = 0) throws -> IOASMapResult {
        try broker.ioasMap(caller, IOASMapParams(ioas: try id(key), offset: offsetPages * page, length: pages * page, iova: iova), fd: ram)
    }

    @discardableResult
    func attach(_ device: String, _ key: String, dirty: DirtyPolicy? = nil) throws -> DeviceAttachResult {
        let result = try broker.deviceAttach(caller, DeviceAttachParams(owner: "vm", device: device, ioas: try id(key), dirty: dirty))
        ids["pt:\(device)"] = result.pt
        return result
    }

    func viommu(_ key: String, device: String) throws {
        ids[key] = try broker.viommuCreate(caller, VIOMMUCreateParams(device: device)).viommu
        ids["pt:\(device)"] = try broker.deviceInfo(caller, DeviceInfoParams(device: device)).pt
    }

    func vdevice(_ key: String, on viommu: String, device: String, virtualID: UInt64) throws {
        ids[key] = try broker.vdeviceCreate(caller, VDeviceCreateParams(viommu: try id(viommu), device: device, virtualID: virtualID)).vdevice
    }

    /// A device wrote `pages` pages at `iova` through the HWPT `device` is attached to.
    func deviceWrite(_ device: String, iova: UInt64, pages: UInt64) throws {
        try sim.simulateDeviceWrite(hwpt: try id("pt:\(device)"), iova: iova, length: pages * page, pageSize: page)
    }

    // MARK: What is compared

    /// One mapping as the broker records it (the memory file by identity).
    struct Mapping: Equatable {
        var iova: UInt64
        var length: UInt64
        var charged: UInt64
        var flags: UInt32
        var source: String
    }

    /// The broker's whole state: the journal's view of the tables, every mapping, the counters
    /// and the memory files it holds.
    struct Snapshot: Equatable {
        var state: JournalState
        var mappings: [ObjectID: [Mapping]]
        var ownerPinned: [String: UInt64]
        var ioasPinned: [ObjectID: UInt64]
        var files: [String: Int]

        /// The fields that differ, in words.
        func differences(from other: Snapshot) -> [String] {
            var d: [String] = []
            func compare<T: Equatable>(_ name: String, _ a: T, _ b: T) {
                if a != b { d.append("\(name): \(b) → \(a)") }
            }
            compare("owners", state.owners, other.state.owners)
            compare("IOAS", state.ioas, other.state.ioas)
            compare("HWPTs", state.hwpts, other.state.hwpts)
            compare("devices", state.devices, other.state.devices)
            compare("vIOMMUs", state.viommus, other.state.viommus)
            compare("vDevices", state.vdevices, other.state.vdevices)
            compare("nest parents", state.nestParents, other.state.nestParents)
            compare("mappings", mappings, other.mappings)
            compare("owner pinned bytes", ownerPinned, other.ownerPinned)
            compare("IOAS pinned bytes", ioasPinned, other.ioasPinned)
            compare("memory files", files, other.files)
            return d
        }
    }

    static func source(_ backing: MappingRecord.Backing) -> String {
        switch backing {
        case .file(let key): "file \(key.device).\(key.inode)"
        case .mmap(let key, _): "mmap \(key.device).\(key.inode)"
        case .copy: "copy"
        case .dmabuf(let key): "dmabuf \(key.device).\(key.inode)"
        }
    }

    func snapshot() throws -> Snapshot {
        try broker.locked {
            Snapshot(
                state: broker.journalState(),
                mappings: broker.ioasTable.mapValues { ioas in
                    ioas.mappings.all.map {
                        Mapping(iova: $0.key, length: $0.value.length, charged: $0.value.charged, flags: $0.value.flags.rawValue, source: Self.source($0.value.backing))
                    }
                },
                ownerPinned: broker.owners.mapValues(\.pinnedBytes),
                ioasPinned: broker.ioasTable.mapValues(\.pinnedBytes),
                files: Dictionary(uniqueKeysWithValues: broker.files.files.map { ("\($0.key.device).\($0.key.inode)", $0.value.references) }))
        }
    }

    /// Where the broker's records and the simulator disagree, where a counter is not the sum
    /// over the live mappings, and where the journal read back differs from the broker.
    func inconsistencies() throws -> [String] {
        let inventory = sim.inventory()
        var problems = try broker.locked { () -> [String] in
            var p: [String] = []
            let b = broker
            // IOAS and their mappings.
            let simIOAS = Dictionary(uniqueKeysWithValues: inventory.ioas.map { ($0.id, $0) })
            if Set(simIOAS.keys) != Set(b.ioasTable.keys) {
                p.append("IOAS: the simulator has \(simIOAS.keys.sorted()), the broker \(b.ioasTable.keys.sorted())")
            }
            for (id, record) in b.ioasTable.sorted(by: { $0.key < $1.key }) {
                let charged = record.mappings.all.reduce(UInt64(0)) { $0 + $1.value.charged }
                if charged != record.pinnedBytes { p.append("IOAS \(id): pinned bytes \(record.pinnedBytes) but its mappings charge \(charged)") }
                guard let s = simIOAS[id] else { continue }
                let recorded = Self.merged(record.mappings.all.map { IOVARange(start: $0.key, length: $0.value.length) })
                if Self.merged(s.areas) != recorded { p.append("IOAS \(id): the simulator maps \(Self.merged(s.areas)), the broker records \(recorded)") }
                if s.hugePages != record.hugePages { p.append("IOAS \(id): huge pages \(s.hugePages) in the simulator, \(record.hugePages) in the broker") }
                if Set(s.hwpts) != record.hwpts { p.append("IOAS \(id): HWPTs \(s.hwpts.sorted()) in the simulator, \(record.hwpts.sorted()) in the broker") }
            }
            // Devices.
            var nameOf: [ObjectID: String] = [:]
            for d in b.devices.values { if let bound = d.bound { nameOf[bound.id] = d.name } }
            let simDevices = Dictionary(uniqueKeysWithValues: inventory.devices.map { ($0.id, $0) })
            if Set(simDevices.keys) != Set(nameOf.keys) {
                p.append("bound devices: the simulator has \(simDevices.keys.sorted()), the broker \(nameOf.keys.sorted())")
            }
            for (id, s) in simDevices.sorted(by: { $0.key < $1.key }) {
                guard let name = nameOf[id], let d = b.devices[name] else { continue }
                if s.name != name { p.append("device \(id) is \(s.name) in the simulator, \(name) in the broker") }
                if s.attached != d.pt { p.append("device \(name): attached to \(s.attached.map(String.init) ?? "nothing") in the simulator, \(d.pt.map(String.init) ?? "nothing") in the broker") }
                if d.owner == nil { p.append("device \(name) is bound but leased to no owner") }
            }
            for d in b.devices.values where d.owner != nil && d.bound == nil {
                p.append("device \(d.name) is leased but not bound")
            }
            // HWPTs.
            let simHWPTs = Dictionary(uniqueKeysWithValues: inventory.hwpts.map { ($0.id, $0) })
            if Set(simHWPTs.keys) != Set(b.hwptTable.keys) {
                p.append("HWPTs: the simulator has \(simHWPTs.keys.sorted()), the broker \(b.hwptTable.keys.sorted())")
            }
            for (id, record) in b.hwptTable.sorted(by: { $0.key < $1.key }) {
                guard let s = simHWPTs[id] else { continue }
                if s.ioas != record.ioas { p.append("HWPT \(id): in IOAS \(s.ioas) in the simulator, \(record.ioas) in the broker") }
                if s.flags != record.flags { p.append("HWPT \(id): flags \(s.flags.rawValue) in the simulator, \(record.flags.rawValue) in the broker") }
                if s.dirtyTracking != record.tracking { p.append("HWPT \(id): dirty tracking \(s.dirtyTracking) in the simulator, \(record.tracking) in the broker") }
                let devices = Set(s.devices.compactMap { nameOf[$0] })
                if devices != record.devices { p.append("HWPT \(id): devices \(devices.sorted()) in the simulator, \(record.devices.sorted()) in the broker") }
                if s.viommuUsers != record.viommus.count { p.append("HWPT \(id): \(s.viommuUsers) vIOMMUs in the simulator, \(record.viommus.sorted()) in the broker") }
            }
            // vIOMMUs and vDevices.
            let simVIOMMUs = Dictionary(uniqueKeysWithValues: inventory.viommus.map { ($0.id, $0) })
            if Set(simVIOMMUs.keys) != Set(b.viommuTable.keys) {
                p.append("vIOMMUs: the simulator has \(simVIOMMUs.keys.sorted()), the broker \(b.viommuTable.keys.sorted())")
            }
            for (id, record) in b.viommuTable where simVIOMMUs[id].map({ $0.hwpt != record.hwpt }) ?? false {
                p.append("vIOMMU \(id): on HWPT \(simVIOMMUs[id]?.hwpt ?? 0) in the simulator, \(record.hwpt) in the broker")
            }
            let simVDevices = Dictionary(uniqueKeysWithValues: inventory.vdevices.map { ($0.id, $0) })
            if Set(simVDevices.keys) != Set(b.vdeviceTable.keys) {
                p.append("vDevices: the simulator has \(simVDevices.keys.sorted()), the broker \(b.vdeviceTable.keys.sorted())")
            }
            for (id, record) in b.vdeviceTable {
                guard let s = simVDevices[id] else { continue }
                if s.viommu != record.viommu || nameOf[s.device] != record.device || s.virtualID != record.virtualID {
                    p.append("vDevice \(id): \(s) in the simulator, \(record) in the broker")
                }
            }
            // Owners: their sets and counters.
            for owner in b.owners.values {
                let ioas = Set(b.ioasTable.values.filter { $0.owner == owner.name }.map(\.id))
                if ioas != owner.ioas { p.append("owner \(owner.name): IOAS \(owner.ioas.sorted()), but \(ioas.sorted()) name it") }
                let hwpts = Set(b.hwptTable.values.filter { $0.owner == owner.name }.map(\.id))
                if hwpts != owner.hwpts { p.append("owner \(owner.name): HWPTs \(owner.hwpts.sorted()), but \(hwpts.sorted()) name it") }
                let viommus = Set(b.viommuTable.values.filter { $0.owner == owner.name }.map(\.id))
                if viommus != owner.viommus { p.append("owner \(owner.name): vIOMMUs \(owner.viommus.sorted()), but \(viommus.sorted()) name it") }
                let vdevices = Set(b.vdeviceTable.values.filter { $0.owner == owner.name }.map(\.id))
                if vdevices != owner.vdevices { p.append("owner \(owner.name): vDevices \(owner.vdevices.sorted()), but \(vdevices.sorted()) name it") }
                let devices = Set(b.devices.values.filter { $0.owner == owner.name }.map(\.name))
                if devices != owner.devices { p.append("owner \(owner.name): devices \(owner.devices.sorted()), but \(devices.sorted()) are leased to it") }
                let pinned = ioas.reduce(UInt64(0)) { $0 + (b.ioasTable[$1]?.pinnedBytes ?? 0) }
                if pinned != owner.pinnedBytes { p.append("owner \(owner.name): pinned bytes \(owner.pinnedBytes), its IOAS pin \(pinned)") }
                if let quota = owner.quotaBytes, owner.pinnedBytes > quota { p.append("owner \(owner.name): \(owner.pinnedBytes) pinned bytes over its quota \(quota)") }
                if owner.reservedBytes != 0 { p.append("owner \(owner.name): \(owner.reservedBytes) bytes still reserved with no request running") }
            }
            // Memory files: one reference per file or mmap mapping.
            var references: [MemoryFileTable.Key: Int] = [:]
            for ioas in b.ioasTable.values {
                for entry in ioas.mappings.all {
                    switch entry.value.backing {
                    case .file(let key), .mmap(let key, _): references[key, default: 0] += 1
                    case .copy, .dmabuf: break
                    }
                }
            }
            let held = b.files.files.mapValues(\.references)
            if held != references { p.append("memory files: the broker holds \(held), its mappings use \(references)") }
            return p
        }
        problems += try journalDifferences()
        return problems
    }

    /// The journal read back from its memfd, as a restarted daemon would, against the broker.
    func journalDifferences() throws -> [String] {
        guard let journal = try broker.locked({ broker.journal }) else { return ["the broker has no journal"] }
        var records: [RecordLog.Record] = []
        var torn = 0
        let log = try RecordLog(adopting: fcntl(journal.log.fd, F_DUPFD_CLOEXEC, 0), magic: ObjectJournal.magic, records: &records, tornBytes: &torn)
        _ = log
        let contents = ObjectJournal.read(records)
        var p: [String] = []
        if torn != 0 { p.append("the journal has \(torn) torn bytes") }
        p += contents.problems.map { "journal: \($0)" }
        let now = try snapshot()
        if contents.state != now.state {
            let journaled = Snapshot(state: contents.state, mappings: now.mappings, ownerPinned: now.ownerPinned, ioasPinned: now.ioasPinned, files: now.files)
            p.append("the journal's state differs from the broker's: \(journaled.differences(from: now).joined(separator: "; "))")
        }
        var journaled: [ObjectID: [Mapping]] = [:]
        for (ioas, entries) in contents.mappings where !entries.isEmpty {
            journaled[ioas] = entries.sorted { $0.key < $1.key }.map { iova, m in
                let file = "\(m.file.device).\(m.file.inode)"
                let source = switch m.backing {
                case .file: "file \(file)"
                case .mmap: "mmap \(file)"
                case .copy: "copy"
                case .dmabuf: "dmabuf \(file)"
                }
                return Mapping(iova: iova, length: m.length, charged: m.charged, flags: m.flags.rawValue, source: source)
            }
        }
        let live = now.mappings.filter { !$0.value.isEmpty }
        if journaled != live { p.append("the journal's mappings \(journaled) differ from the broker's \(live)") }
        return p
    }

    static func merged(_ ranges: [IOVARange]) -> [IOVARange] {
        var out: [IOVARange] = []
        for r in ranges.sorted(by: { $0.start < $1.start }) {
            if let last = out.last, last.last &+ 1 == r.start {
                out[out.count - 1].last = r.last
            } else {
                out.append(r)
            }
        }
        return out
    }

    /// Takes everything down the way a client would, one object at a time (vDevices, vIOMMUs,
    /// devices, the HWPTs it allocated, IOAS), without injected failures, then releases the
    /// (empty) owners; returns what is left behind. Unlike owner.release alone, this finds an
    /// object the broker knows but no request can remove any more (an IOAS kept busy by an
    /// unused HWPT the daemon created).
    func leftBehind() throws -> [String] {
        backend.disarm()
        var p: [String] = []
        func step(_ what: String, _ body: () throws -> Void) {
            do { try body() } catch { p.append("\(what) failed: \(error)") }
        }
        let (vdevices, viommus, leased, explicit, spaces) = try broker.locked {
            (
                broker.vdeviceTable.keys.sorted(), broker.viommuTable.keys.sorted(),
                broker.devices.values.filter { $0.owner != nil }.map(\.name).sorted(),
                broker.hwptTable.values.filter { !$0.auto }.map(\.id).sorted(), broker.ioasTable.keys.sorted()
            )
        }
        for id in vdevices { step("vdevice.destroy \(id)") { _ = try broker.vdeviceDestroy(caller, VDeviceDestroyParams(vdevice: id)) } }
        for id in viommus { step("viommu.destroy \(id)") { _ = try broker.viommuDestroy(caller, VIOMMUDestroyParams(viommu: id)) } }
        for name in leased { step("device.release \(name)") { _ = try broker.deviceRelease(caller, DeviceReleaseParams(device: name)) } }
        for id in explicit { step("hwpt.destroy \(id)") { _ = try broker.hwptDestroy(caller, HWPTDestroyParams(hwpt: id)) } }
        for id in spaces { step("ioas.destroy \(id)") { _ = try broker.ioasDestroy(caller, IOASDestroyParams(ioas: id)) } }
        for owner in try broker.ownerList(caller).owners {
            let result = try broker.ownerRelease(caller, OwnerReleaseParams(name: owner.name))
            if !result.released { p.append("owner.release of '\(owner.name)' did not complete: \(result.failures)") }
            if !result.destroyed.isEmpty { p.append("owner.release of '\(owner.name)' found objects no other request removed: \(result.destroyed)") }
        }
        let inventory = sim.inventory()
        if !inventory.isEmpty { p.append("the simulator still holds, after every owner was released:\n\(inventory)") }
        if broker.heldFileCount != 0 { p.append("the broker still holds \(broker.heldFileCount) memory files") }
        if store.names.contains(where: { !$0.hasPrefix("journal.") }) { p.append("the fd store still holds \(store.names)") }
        return p
    }
}

/// What a swept method returned.
enum SweepAttempt {
    case done
    /// It answered, but says part of it failed (owner.release's `failures`).
    case incomplete([String])
}

/// One state-changing request, swept in one scenario.
struct SweepCase {
    enum Kind {
        /// All or nothing: a failure leaves the state as it was.
        case atomic
        /// Documented partial outcome (owner.release, dirty.stop): a failure leaves what was
        /// done done, consistently; the retry finishes it.
        case partial
        /// All or nothing for objects; a failed clearing read may already have cleared the
        /// dirty bits of the HWPTs read before the failure.
        case dirtyRead
    }
    var method: String
    var kind: Kind = .atomic
    var run: (SweepWorld) throws -> SweepAttempt
}

enum SweepScenario: String, CaseIterable, Sendable, CustomStringConvertible {
    case fresh = "fresh daemon"
    case freshOwner = "fresh owner"
    case twoIOMMUs = "devices on two IOMMU instances"
    case dirtyOn = "dirty tracking on"
    case viommu = "a vIOMMU present"
    case quotaNearlyFull = "quota nearly full"

    var description: String { rawValue }

    func setUp(_ w: SweepWorld) throws {
        switch self {
        case .fresh:
            break
        case .freshOwner:
            try w.owner()
        case .twoIOMMUs:
            try w.owner()
            try w.ioas("X")
            try w.ioas("Y")
            try w.ioas("E")
            try w.map("X", pages: 8, at: 0x10_0000)
            try w.map("X", pages: 4, at: 0x20_0000, offsetPages: 8)
            try w.attach("d0", "X")
            try w.attach("d2", "X")
            w.ids["H"] = try w.broker.hwptAlloc(w.caller, HWPTAllocParams(ioas: try w.id("Y"), device: "d0")).hwpt
        case .dirtyOn:
            try w.owner()
            try w.ioas("X")
            try w.ioas("Y")
            try w.map("X", pages: 8, at: 0x10_0000)
            try w.map("X", pages: 4, at: 0x20_0000, offsetPages: 8)
            try w.attach("d0", "X")
            try w.attach("d2", "X")
            _ = try w.broker.dirtyStart(w.caller, DirtyParams(ioas: try w.id("X")))
            try w.deviceWrite("d0", iova: 0x10_0000, pages: 2)
            try w.deviceWrite("d2", iova: 0x10_4000, pages: 3)
            try w.deviceWrite("d2", iova: 0x20_0000, pages: 1)
        case .viommu:
            try w.owner()
            try w.ioas("X")
            try w.map("X", pages: 8, at: 0x10_0000)
            try w.attach("d0", "X")
            try w.viommu("v0", device: "d0")
            try w.vdevice("vd0", on: "v0", device: "d0", virtualID: 1)
            try w.attach("d1", "X")
            try w.viommu("v1", device: "d1")
            try w.attach("d2", "X")
        case .quotaNearlyFull:
            try w.owner()
            try w.ioas("X")
            try w.ioas("Y")
            try w.map("X", pages: 52, at: 0x10_0000)
            try w.map("X", pages: 8, at: 0x100_0000, offsetPages: 52)
            try w.attach("d0", "X")
        }
    }

    var cases: [SweepCase] {
        func done(_ body: @escaping (SweepWorld) throws -> Void) -> (SweepWorld) throws -> SweepAttempt {
            { w in
                try body(w)
                return .done
            }
        }
        let ownerRelease = SweepCase(method: "owner.release", kind: .partial) { w in
            let result = try w.broker.ownerRelease(w.caller, OwnerReleaseParams(name: "vm"))
            return result.released ? .done : .incomplete(result.failures)
        }
        func attach(_ device: String, _ ioas: String, dirty: DirtyPolicy? = nil) -> SweepCase {
            SweepCase(method: "device.attach \(device) → IOAS \(ioas)\(dirty.map { " dirty=\($0.rawValue)" } ?? "")", run: done { try $0.attach(device, ioas, dirty: dirty) })
        }
        let detach = { (device: String) in
            SweepCase(method: "device.detach \(device)", run: done { _ = try $0.broker.deviceDetach($0.caller, DeviceDetachParams(device: device)) })
        }
        let release = { (device: String) in
            SweepCase(method: "device.release \(device)", run: done { _ = try $0.broker.deviceRelease($0.caller, DeviceReleaseParams(device: device)) })
        }
        let unmapAll = SweepCase(method: "ioas.unmap all of X", run: done { _ = try $0.broker.ioasUnmap($0.caller, IOASUnmapParams(ioas: try $0.id("X"), all: true)) })
        switch self {
        case .fresh:
            return [SweepCase(method: "owner.create", run: done { try $0.owner("vm-new") })]
        case .freshOwner:
            return [
                SweepCase(method: "ioas.create", run: done { try $0.ioas("N") }),
                SweepCase(method: "ioas.create huge_pages=false", run: done { try $0.ioas("N", hugePages: false) }),
                ownerRelease,
            ]
        case .twoIOMMUs:
            return [
                attach("d1", "X"),
                attach("d1", "X", dirty: .off),
                SweepCase(method: "device.attach d1 → HWPT H", run: done { _ = try $0.broker.deviceAttach($0.caller, DeviceAttachParams(owner: "vm", device: "d1", hwpt: try $0.id("H"))) }),
                attach("mdev0", "X"),
                detach("d2"),
                SweepCase(method: "device.replace d0 → IOAS Y", run: done { _ = try $0.broker.deviceReplace($0.caller, DeviceReplaceParams(device: "d0", ioas: try $0.id("Y"))) }),
                SweepCase(method: "device.replace d0 → HWPT H", run: done { _ = try $0.broker.deviceReplace($0.caller, DeviceReplaceParams(device: "d0", hwpt: try $0.id("H"))) }),
                release("d2"),
                SweepCase(method: "ioas.map 4 pages at a fixed IOVA", run: done { try $0.map("X", pages: 4, at: 0x30_0000, offsetPages: 12) }),
                SweepCase(method: "ioas.map 4 pages where the kernel chooses", run: done { try $0.map("X", pages: 4, at: nil, offsetPages: 16) }),
                SweepCase(method: "ioas.unmap one mapping", run: done { _ = try $0.broker.ioasUnmap($0.caller, IOASUnmapParams(ioas: try $0.id("X"), iova: 0x20_0000, length: 4 * page)) }),
                unmapAll,
                SweepCase(method: "ioas.copy X → Y", run: done {
                    _ = try $0.broker.ioasCopy($0.caller, IOASCopyParams(dstIOAS: try $0.id("Y"), srcIOAS: try $0.id("X"), srcIOVA: 0x10_0000, length: 8 * page, dstIOVA: 0x10_0000))
                }),
                SweepCase(method: "ioas.set_option huge_pages=false", run: done { _ = try $0.broker.ioasSetOption($0.caller, IOASSetOptionParams(ioas: try $0.id("E"), hugePages: false)) }),
                SweepCase(method: "ioas.destroy", run: done { _ = try $0.broker.ioasDestroy($0.caller, IOASDestroyParams(ioas: try $0.id("E"))) }),
                SweepCase(method: "ioas.create", run: done { try $0.ioas("N") }),
                SweepCase(method: "hwpt.alloc d1 dirty_tracking", run: done { _ = try $0.broker.hwptAlloc($0.caller, HWPTAllocParams(ioas: try $0.id("X"), device: "d1", dirtyTracking: true)) }),
                SweepCase(method: "hwpt.alloc d2 nest_parent", run: done { _ = try $0.broker.hwptAlloc($0.caller, HWPTAllocParams(ioas: try $0.id("Y"), device: "d2", nestParent: true)) }),
                SweepCase(method: "hwpt.destroy H", run: done { _ = try $0.broker.hwptDestroy($0.caller, HWPTDestroyParams(hwpt: try $0.id("H"))) }),
                SweepCase(method: "dirty.start", run: done { _ = try $0.broker.dirtyStart($0.caller, DirtyParams(ioas: try $0.id("X"))) }),
                // A reading method: its failure must name the call too, and change nothing.
                SweepCase(method: "ioas.ranges", run: done { _ = try $0.broker.ioasRanges($0.caller, IOASRangesParams(ioas: try $0.id("X"))) }),
                ownerRelease,
            ]
        case .dirtyOn:
            return [
                attach("d1", "X"),
                detach("d2"),
                SweepCase(method: "device.replace d0 → IOAS Y", run: done { _ = try $0.broker.deviceReplace($0.caller, DeviceReplaceParams(device: "d0", ioas: try $0.id("Y"))) }),
                SweepCase(method: "hwpt.alloc d1 dirty_tracking (tracking at once)", run: done {
                    _ = try $0.broker.hwptAlloc($0.caller, HWPTAllocParams(ioas: try $0.id("X"), device: "d1", dirtyTracking: true))
                }),
                SweepCase(method: "dirty.stop", kind: .partial, run: done { _ = try $0.broker.dirtyStop($0.caller, DirtyParams(ioas: try $0.id("X"))) }),
                SweepCase(method: "dirty.read clear (runs)", kind: .dirtyRead, run: done {
                    _ = try $0.broker.dirtyRead($0.caller, DirtyReadParams(ioas: try $0.id("X"), iova: 0x10_0000, length: 0x20_0000, clear: true))
                }),
                SweepCase(method: "dirty.read clear (bitmap)", kind: .dirtyRead, run: done {
                    let answer = try $0.broker.dirtyRead($0.caller, DirtyReadParams(ioas: try $0.id("X"), iova: 0x10_0000, length: 0x20_0000, clear: true, format: .bitmap))
                    for fd in answer.fds { close(fd) }
                }),
                SweepCase(method: "viommu.create d2 (dirty-tracking nest parent)", run: done { try $0.viommu("v", device: "d2") }),
                unmapAll,
                ownerRelease,
            ]
        case .viommu:
            return [
                SweepCase(method: "vdevice.create", run: done { try $0.vdevice("vd1", on: "v1", device: "d1", virtualID: 2) }),
                SweepCase(method: "vdevice.destroy", run: done { _ = try $0.broker.vdeviceDestroy($0.caller, VDeviceDestroyParams(vdevice: try $0.id("vd0"))) }),
                SweepCase(method: "viommu.destroy", run: done { _ = try $0.broker.viommuDestroy($0.caller, VIOMMUDestroyParams(viommu: try $0.id("v1"))) }),
                SweepCase(method: "viommu.create d2 (new nest parent)", run: done { try $0.viommu("v2", device: "d2") }),
                detach("d1"),
                release("d2"),
                attach("mdev0", "X"),
                SweepCase(method: "ioas.map 4 pages", run: done { try $0.map("X", pages: 4, at: 0x30_0000, offsetPages: 8) }),
                ownerRelease,
            ]
        case .quotaNearlyFull:
            return [
                SweepCase(method: "ioas.map the last 4 pages of the quota", run: done { try $0.map("X", pages: 4, at: 0x200_0000, offsetPages: 60) }),
                SweepCase(method: "ioas.copy the last 4 pages of the quota", run: done {
                    _ = try $0.broker.ioasCopy($0.caller, IOASCopyParams(dstIOAS: try $0.id("Y"), srcIOAS: try $0.id("X"), srcIOVA: 0x100_0000, length: 4 * page, dstIOVA: 0x10_0000))
                }),
                SweepCase(method: "ioas.unmap one mapping", run: done { _ = try $0.broker.ioasUnmap($0.caller, IOASUnmapParams(ioas: try $0.id("X"), iova: 0x100_0000, length: 8 * page)) }),
                unmapAll,
                ownerRelease,
            ]
        }
    }
}

/// Counts of one scenario's sweep, for the log.
struct SweepCount {
    var cases = 0
    var failures = 0
    var tolerated: [String] = []
}

/// Runs the sweep of one scenario; records an issue for each check that does not hold.
func sweep(_ scenario: SweepScenario, without: Set<Feature>, everyErrno: Bool, ram: Int32) throws -> SweepCount {
    var count = SweepCount()
    let variant = without.isEmpty ? "" : " without \(without.map(\.rawValue).sorted())"
    for c in scenario.cases {
        count.cases += 1
        let name = "\(scenario)\(variant) / \(c.method)"
        // The run without a failure: where every retry must end.
        let clean = try SweepWorld(ram: ram, without: without)
        try scenario.setUp(clean)
        clean.backend.disarm()
        let cleanAttempt: SweepAttempt
        do {
            cleanAttempt = try c.run(clean)
        } catch {
            Issue.record("\(name): fails without an injected failure: \(error)")
            continue
        }
        guard case .done = cleanAttempt else {
            Issue.record("\(name): incomplete without an injected failure: \(cleanAttempt)")
            continue
        }
        let cleanState = try clean.snapshot()
        let cleanSim = clean.sim.inventory()
        for p in try clean.inconsistencies() { Issue.record("\(name), run without a failure: \(p)") }
        for p in try clean.leftBehind() { Issue.record("\(name), run without a failure: \(p)") }

        var n = 1
        while n <= 500 {
            var errnos: [Errno?] = [nil]
            var index = 0
            var fired = false
            while index < errnos.count {
                let errno = errnos[index]
                index += 1
                guard let call = try sweepStep(c, name: name, scenario: scenario, n: n, errno: errno, without: without, ram: ram, clean: (cleanState, cleanSim), count: &count)
                else { break }
                fired = true
                if everyErrno && errno == nil { errnos += call.errnos.dropFirst().map { $0 } }
            }
            if !fired { break }
            n += 1
        }
        if n > 500 { Issue.record("\(name): still failing at call 500; the sweep stops there") }
    }
    return count
}

/// Fails call `n` of one run of `c` and checks what it leaves. Returns the call that was failed,
/// nil when the request made fewer than `n` calls (the sweep of `c` is complete).
func sweepStep(
    _ c: SweepCase, name: String, scenario: SweepScenario, n: Int, errno: Errno?, without: Set<Feature>, ram: Int32,
    clean: (state: SweepWorld.Snapshot, sim: SimInventory), count: inout SweepCount
) throws -> FaultInjectingBackend.Call? {
    let w = try SweepWorld(ram: ram, without: without)
    try scenario.setUp(w)
    let before = try w.snapshot()
    let simBefore = w.sim.inventory()
    w.backend.arm(failAt: n, errno: errno)
    let outcome = Result { try c.run(w) }
    let calls = w.backend.calls
    guard let injected = w.backend.injected, let failedCall = calls.first(where: { $0.injected != nil }) else {
        w.backend.disarm()
        if case .failure(let error) = outcome { Issue.record("\(name): failed with no failure injected (call \(n) never came): \(error)") }
        return nil
    }
    w.backend.disarm()
    count.failures += 1
    let label = "\(name), failing call \(n) [\(failedCall)] (calls: \(calls.map(\.description).joined(separator: ", ")))"
    for p in try w.inconsistencies() { Issue.record("\(label): \(p)") }

    func expectUnchanged() throws {
        let after = try w.snapshot()
        if after != before { Issue.record("\(label): the broker's state changed: \(after.differences(from: before).joined(separator: "; "))") }
        var simAfter = w.sim.inventory()
        var simExpected = simBefore
        if c.kind == .dirtyRead {
            // A clearing read that failed part-way may have cleared what it read before.
            for i in simAfter.hwpts.indices { simAfter.hwpts[i].dirty = [:] }
            for i in simExpected.hwpts.indices { simExpected.hwpts[i].dirty = [:] }
        }
        if simAfter != simExpected { Issue.record("\(label): the simulator changed:\nbefore:\n\(simBefore)\nafter:\n\(simAfter)") }
    }
    func expectRetryCompletes() throws {
        do {
            let retry = try c.run(w)
            guard case .done = retry else {
                Issue.record("\(label): the retry did not complete: \(retry)")
                return
            }
        } catch {
            Issue.record("\(label): the retry failed: \(error)")
            return
        }
        let after = try w.snapshot()
        if after != clean.state { Issue.record("\(label): after the retry the broker differs from a run without a failure: \(after.differences(from: clean.state).joined(separator: "; "))") }
        let simAfter = w.sim.inventory()
        if simAfter != clean.sim { Issue.record("\(label): after the retry the simulator differs from a run without a failure:\nexpected:\n\(clean.sim)\ngot:\n\(simAfter)") }
        for p in try w.inconsistencies() { Issue.record("\(label), after the retry: \(p)") }
    }
    func names(_ text: String) -> Bool { text.contains(injected.errno.name) && text.contains(injected.operation) }

    switch outcome {
    case .failure(let error):
        if let error = error as? BrokerError {
            if error.kernel?.errno != injected.errno || error.kernel?.operation != injected.operation || !names(error.message) {
                Issue.record("\(label): the error does not name the failed call \(injected.operation) and its errno \(injected.errno.name): \(error)")
            }
        } else {
            Issue.record("\(label): not a BrokerError: \(error)")
        }
        if c.kind != .partial { try expectUnchanged() }
        try expectRetryCompletes()
    case .success(.incomplete(let failures)):
        if c.kind != .partial { Issue.record("\(label): answered incomplete: \(failures)") }
        if !failures.contains(where: names) {
            Issue.record("\(label): the failures reported do not name \(injected.operation) and \(injected.errno.name): \(failures)")
        }
        try expectRetryCompletes()
    case .success(.done):
        // The broker got past the failure (an auto-domain candidate refused, a clean-up left to
        // later): what it did must still be consistent, and clean up completely below.
        count.tolerated.append("\(c.method): call \(n) \(failedCall)")
    }
    for p in try w.leftBehind() { Issue.record("\(label): \(p)") }
    return failedCall.call
}

@Suite("Fail-nth sweep")
struct FailNthTests {
    static let long = ProcessInfo.processInfo.environment["IOMMUFDD_LONG_SWEEP"] == "1"

    @Test("every state-changing method, failing each backend call in turn, leaves nothing behind", arguments: SweepScenario.allCases)
    func failNth(_ scenario: SweepScenario) throws {
        let ram = try memfd(pages: SweepWorld.ramPages)
        defer { close(ram) }
        var count = try sweep(scenario, without: [], everyErrno: Self.long, ram: ram)
        if Self.long {
            let fallback = try sweep(scenario, without: [.ioasMapFile], everyErrno: true, ram: ram)
            count.cases += fallback.cases
            count.failures += fallback.failures
            count.tolerated += fallback.tolerated
        }
        // Every scenario but the empty daemon's makes backend calls to fail.
        if scenario != .fresh { #expect(count.failures > 0) }
        print("fail-nth \(scenario): \(count.cases) requests, \(count.failures) injected failures, tolerated: \(count.tolerated)")
    }

    @Test("the fault-injecting backend fails exactly the armed call, with that call's errno, and records every call")
    func injector() throws {
        let sim = try SimBackend(topology: SweepWorld.topology)
        let backend = FaultInjectingBackend(sim)
        backend.arm(failAt: 2)
        let first = try backend.allocIOAS()
        #expect(errnoOf { _ = try backend.allocIOAS() } == .ENOMEM)
        #expect(backend.injected?.operation == "IOMMU_IOAS_ALLOC")
        // The failed call reached nothing: the next allocation gets the next free ID.
        let third = try backend.allocIOAS()
        #expect(third == first + 1)
        backend.arm(failAt: 1, errno: .EBUSY)
        #expect(errnoOf { try backend.destroy(third) } == .EBUSY)
        try backend.destroy(third)
        // close() cannot fail: unbind is recorded but not counted.
        let bound = try backend.bind(try #require(sim.discoverDevices().first))
        backend.arm(failAt: 1)
        try backend.unbind(deviceID: bound.id)
        #expect(backend.injected == nil)
        #expect(backend.calls.map(\.call) == [.unbind])
        #expect(backend.calls.first?.index == nil)
        #expect(sim.inventory().ioas.map(\.id) == [first])
    }
}
