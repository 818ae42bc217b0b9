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

/// An fd store in this process: keeps a dup of each fd under its name, like systemd.
final class MemoryFDStore: FileDescriptorStore, @unchecked Sendable {
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

    /// What a restarted daemon gets: fresh dups, as LISTEN_FDS would pass them.
    func passed() -> [(name: String, fd: Int32)] {
        lock.withLock { entries.map { ($0.name, fcntl($0.fd, F_DUPFD_CLOEXEC, 0)) } }
    }
}

/// A daemon's backend and broker in this process, over an fd store that outlives them.
struct Incarnation {
    let sim: PersistentSimBackend
    let broker: Broker
    let recovery: JournalRecovery?

    static let admin = Caller(uid: 0, gid: 0, pid: 1, role: .admin, identity: "root")

    static func config() -> BrokerConfig {
        BrokerConfig(access: AccessControl(rules: []), allowList: .all, defaultVIOMMUType: VIOMMUType.selftest)
    }

    /// A first start.
    static func fresh(_ store: MemoryFDStore) throws -> Incarnation {
        let sim = try PersistentSimBackend(SimBackend())
        let broker = try Broker(backend: sim, config: config())
        let recovery = try broker.recover(storedFDs: [], store: store)
        store.store(sim.log.fd, name: PersistentSimBackend.fdStoreName)
        return Incarnation(sim: sim, broker: broker, recovery: recovery)
    }

    /// A restart from what `store` holds (the previous incarnation is simply abandoned).
    static func restarted(_ store: MemoryFDStore) throws -> (Incarnation, PersistentSimBackend.ReplayReport) {
        let fds = store.passed()
        var files: [String: Int32] = [:]
        for (name, fd) in fds { if let k = StoredFDName.parseMemory(name) { files["\(k.device).\(k.inode)"] = fd } }
        let log = try #require(fds.first { $0.name == PersistentSimBackend.fdStoreName })
        var report = PersistentSimBackend.ReplayReport()
        let sim = try PersistentSimBackend(SimBackend(), adopting: log.fd, resolveFile: { files["\($0).\($1)"] }, report: &report)
        let broker = try Broker(backend: sim, config: config())
        let recovery = try broker.recover(storedFDs: fds.filter { $0.name != PersistentSimBackend.fdStoreName }, store: store)
        return (Incarnation(sim: sim, broker: broker, recovery: recovery), report)
    }
}

@Suite("Object journal")
struct JournalTests {
    let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    @Test("compaction writes a new generation, drops the old one, and loses nothing")
    func compaction() throws {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        first.broker.journal?.compactionFloor = 4096
        let ram = try makeMemfd(bytes: 64 * Int(page))
        defer { close(ram) }
        let a = Incarnation.admin
        _ = try first.broker.ownerCreate(a, OwnerCreateParams(name: "vm"))
        let ioas = try first.broker.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        for i in 0..<400 {
            _ = try first.broker.ioasMap(a, IOASMapParams(ioas: ioas, offset: UInt64(i % 64) * page, length: page, iova: 0x10_0000 + UInt64(i) * page), fd: ram)
            if i % 4 == 3 { _ = try first.broker.ioasUnmap(a, IOASUnmapParams(ioas: ioas, iova: 0x10_0000 + UInt64(i - 1) * page, length: page)) }
        }
        let generation = try #require(first.broker.journal?.generation)
        #expect(generation > 1)
        #expect(store.names.filter { $0.hasPrefix("journal.") } == [StoredFDName.journal(generation)])
        let before = try first.broker.ioasInfo(a, IOASInfoParams(ioas: ioas, maxMappings: 1000))

        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems.isEmpty)
        #expect(second.recovery?.problems == [])
        #expect(second.recovery?.mappings == 300)
        let after = try second.broker.ioasInfo(a, IOASInfoParams(ioas: ioas, maxMappings: 1000))
        #expect(after == before)
        #expect(try second.broker.ownerInfo(a, OwnerInfoParams(name: "vm")).pinnedBytes == 300 * page)
        // One memory file for all of them, taken over once.
        #expect(second.recovery?.memoryFiles == 1)
        #expect(second.broker.files.files.count == 1)
        #expect(second.broker.files.files.values.first?.references == 300)
    }

    @Test("a torn last record is dropped and reported; the journal goes on from there")
    func tornTail() throws {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let a = Incarnation.admin
        _ = try first.broker.ownerCreate(a, OwnerCreateParams(name: "vm"))
        // Half a record at the end, as a daemon killed inside pwrite leaves it.
        let log = try #require(first.broker.journal?.log)
        let garbage: [UInt8] = [40, 0, 0, 0, 1, 0x7b]
        _ = garbage.withUnsafeBytes { pwrite(log.fd, $0.baseAddress, $0.count, off_t(log.size)) }

        let (second, _) = try Incarnation.restarted(store)
        #expect(second.recovery?.tornBytes == garbage.count)
        #expect(second.recovery?.problems.contains { $0.contains("torn record") } == true)
        #expect(try second.broker.ownerList(a).owners.map(\.name) == ["vm"])
        _ = try second.broker.ownerCreate(a, OwnerCreateParams(name: "vm-2"))
        let (third, _) = try Incarnation.restarted(store)
        #expect(third.recovery?.tornBytes == 0)
        #expect(try third.broker.ownerList(a).owners.map(\.name) == ["vm", "vm-2"])
    }

    @Test("mappings the kernel has and the journal does not (a request cut off before its journal write) are unmapped at start and reported")
    func unjournaledMappingsUnmapped() throws {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let ram = try makeMemfd(bytes: 16 * Int(page))
        defer { close(ram) }
        let a = Incarnation.admin
        _ = try first.broker.ownerCreate(a, OwnerCreateParams(name: "vm"))
        let ioas = try first.broker.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        let empty = try first.broker.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        _ = try first.broker.ioasMap(a, IOASMapParams(ioas: ioas, length: page, iova: 0x10_0000), fd: ram)
        _ = try first.broker.ioasMap(a, IOASMapParams(ioas: ioas, offset: page, length: page, iova: 0x30_0000), fd: ram)
        // Three maps done in the backend whose requests never reached the journal: between two
        // journaled mappings, above the last one, and in an IOAS with none journaled.
        let fixed: MapFlags = [.readWrite, .fixedIOVA]
        _ = try first.sim.map(ioas: ioas, source: .file(fd: ram, offset: 2 * page), length: 2 * page, iova: 0x20_0000, flags: fixed)
        _ = try first.sim.map(ioas: ioas, source: .file(fd: ram, offset: 4 * page), length: page, iova: 0x7f_0000_0000, flags: fixed)
        _ = try first.sim.map(ioas: empty, source: .file(fd: ram, offset: 5 * page), length: page, iova: 0x10_0000, flags: fixed)
        let before = try first.broker.ioasInfo(a, IOASInfoParams(ioas: ioas, maxMappings: 100))

        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems.isEmpty)
        let recovery = try #require(second.recovery)
        #expect(recovery.unjournaledBytesUnmapped == 4 * page)
        #expect(recovery.problems.count == 3, "\(recovery.problems)")
        #expect(recovery.problems.contains { $0.contains("IOAS \(ioas)") && $0.contains("\(2 * page) bytes") }, "\(recovery.problems)")
        #expect(recovery.problems.contains { $0.contains("IOAS \(empty)") && $0.contains("\(page) bytes") }, "\(recovery.problems)")
        // The journaled mappings are untouched, and the freed ranges can be mapped again (the
        // retry of the cut-off request), which EEXIST refused before.
        #expect(try second.broker.ioasInfo(a, IOASInfoParams(ioas: ioas, maxMappings: 100)) == before)
        _ = try second.broker.ioasMap(a, IOASMapParams(ioas: ioas, offset: 2 * page, length: 2 * page, iova: 0x20_0000), fd: ram)
        _ = try second.broker.ioasMap(a, IOASMapParams(ioas: empty, length: page, iova: 0x10_0000), fd: ram)
        #expect(try second.broker.ownerInfo(a, OwnerInfoParams(name: "vm")).pinnedBytes == 5 * page)

        // Now the kernel and the journal agree: the next start finds nothing to clear.
        let (third, _) = try Incarnation.restarted(store)
        #expect(third.recovery?.unjournaledBytesUnmapped == 0)
        #expect(third.recovery?.problems == [])
        #expect(third.recovery?.mappings == 4)
    }

    @Test("an IOAS the backend no longer has is reported; the simulator, which lists its objects, has it dropped from the records")
    func missingObjectReported() throws {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let a = Incarnation.admin
        _ = try first.broker.ownerCreate(a, OwnerCreateParams(name: "vm"))
        let ioas = try first.broker.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        // The simulator's log is replaced by an empty one: its objects are gone, as if the
        // iommufd had been closed.
        store.remove(name: PersistentSimBackend.fdStoreName)
        let empty = try PersistentSimBackend(SimBackend())
        store.store(empty.log.fd, name: PersistentSimBackend.fdStoreName)

        let (second, _) = try Incarnation.restarted(store)
        let problems = second.recovery?.problems ?? []
        #expect(problems.contains { $0.contains("IOAS \(ioas) of owner 'vm' was journaled but is gone from the iommufd") }, "\(problems)")
        // (The kernel backend cannot list objects: there the records are kept for owner.release.)
        #expect(try second.broker.ioasList(a, IOASListParams()).ioas.map(\.ioas) == [])
        #expect(try second.broker.ownerInfo(a, OwnerInfoParams(name: "vm")).ioas == [])
    }

    @Test("a device not taken back after a restart can be detached and released, and its owner with it")
    func deviceNotTakenBack() throws {
        let a = Incarnation.admin
        let (broker, attached, recovery) = try Self.restartWithoutDevice()
        #expect(recovery.problems.contains { $0.contains("device 'sim0'") && $0.contains("does not check out") }, "\(recovery.problems)")
        let listed = try #require(try broker.deviceList(a, DeviceListParams()).devices.first { $0.name == "sim0" })
        #expect(listed.deviceID == nil)
        // The simulator lists what it holds: recovery records the device as detached (on the
        // kernel backend the attachment record stays until device.detach drops it).
        #expect(listed.pt == nil)
        #expect(recovery.problems.contains { $0.contains("device 'sim0' was journaled as attached to \(attached.pt)") && $0.contains("recorded as detached") }, "\(recovery.problems)")
        let again = try #require(throws: BrokerError.self) { try broker.deviceDetach(a, DeviceDetachParams(device: "sim0")) }
        #expect(again.kind == .conflict)
        _ = try broker.deviceRelease(a, DeviceReleaseParams(device: "sim0"))
        let released = try broker.ownerRelease(a, OwnerReleaseParams(name: "vm"))
        #expect(released.released, "\(released.failures)")
        #expect(released.failures.isEmpty)
        // The device binds and attaches again for the next owner.
        _ = try broker.ownerCreate(a, OwnerCreateParams(name: "vm-next"))
        let next = try broker.ioasCreate(a, IOASCreateParams(owner: "vm-next")).ioas
        _ = try broker.deviceAttach(a, DeviceAttachParams(owner: "vm-next", device: "sim0", ioas: next, dirty: .off))
    }

    @Test("owner.release alone clears the attachment of a device not taken back")
    func ownerReleaseOfDeviceNotTakenBack() throws {
        let a = Incarnation.admin
        let (broker, _, _) = try Self.restartWithoutDevice()

        let released = try broker.ownerRelease(a, OwnerReleaseParams(name: "vm"))
        #expect(released.released, "\(released.failures)")
        #expect(released.destroyed["hwpt"] == 1, "the auto-domain the device was on is freed: \(released.destroyed)")
        #expect(released.destroyed["ioas"] == 1)
        #expect(try broker.ownerList(a).owners.isEmpty)
    }

    /// Owner "vm" with device sim0 attached to an IOAS, then a restart whose backend no longer
    /// has the device (as a mock device whose selftest object is gone): the broker keeps its
    /// lease and attachment records and reports it.
    static func restartWithoutDevice() throws -> (Broker, DeviceAttachResult, JournalRecovery) {
        let store = MemoryFDStore()
        let first = try Incarnation.fresh(store)
        let a = Incarnation.admin
        _ = try first.broker.ownerCreate(a, OwnerCreateParams(name: "vm"))
        let ioas = try first.broker.ioasCreate(a, IOASCreateParams(owner: "vm")).ioas
        let attached = try first.broker.deviceAttach(a, DeviceAttachParams(owner: "vm", device: "sim0", ioas: ioas, dirty: .off))

        let fds = store.passed()
        let log = try #require(fds.first { $0.name == PersistentSimBackend.fdStoreName })
        var replay = PersistentSimBackend.ReplayReport()
        let sim = try PersistentSimBackend(SimBackend(), adopting: log.fd, resolveFile: { _, _ in nil }, report: &replay)
        try sim.unbind(deviceID: attached.deviceID)
        let broker = try Broker(backend: sim, config: Incarnation.config())
        let recovery = try broker.recover(storedFDs: fds.filter { $0.name != PersistentSimBackend.fdStoreName }, store: store)
        return (broker, attached, recovery)
    }
}
