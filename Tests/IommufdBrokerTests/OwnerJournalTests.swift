import Foundation
import IommufdCore
import TestProcesses
import Testing

@testable import IommufdBroker
import IommufdContract

// MARK: ownerjournal
/// Journal format 3 (issue 16 targets 1 and 5): a request records the slices of the owners it
/// looked up (`markOwnerChanged`), not the whole state. A missed mark would leave an owner's
/// change out of the journal, and a restart would lose it; these tests replay the journal from
/// its memfd after every request of random sequences and compare it with the whole state
/// built the old way (`journalState()`), so a missing mark fails them.
@Suite struct OwnerJournalTests {
    /// The generator of the sequences (SplitMix64, shared with the other tests and the bench in
    /// TestProcesses): the same sequence for a seed, so a failure names the seed to replay.
    typealias Rng = SplitMix64

    /// The journal replayed from its memfd, as a restarted daemon reads it.
    static func replayed(_ broker: Broker) throws -> (ObjectJournal.Contents, Int) {
        let fd = try #require(try broker.locked { broker.journal?.log.fd })
        var records: [RecordLog.Record] = []
        var torn = 0
        let log = try RecordLog(adopting: fcntl(fd, F_DUPFD_CLOEXEC, 0), magics: ObjectJournal.readableMagics, records: &records, tornBytes: &torn)
        withExtendedLifetime(log) {}
        return (ObjectJournal.read(records), torn)
    }

    /// One random request; failures (refusals) are part of the sequence too.
    static func step(_ f: Fixture, _ rng: inout Rng) -> String {
        let b = f.broker
        let owners = ["vm-0", "vm-1", "vm-2", "vm-3"]
        let devices = ["gpu0", "nic0", "nvme0"]
        let owner = owners[rng.below(owners.count)]
        // Mostly the owner's own manager (vm-0, vm-1: A; vm-2, vm-3: B), sometimes the admin,
        // sometimes the other manager (refused as NotFound).
        let mine = owner < "vm-2" ? f.a : f.b
        let caller = [mine, mine, mine, f.admin, owner < "vm-2" ? f.b : f.a][rng.below(5)]
        // Objects of that owner mostly, so that requests succeed; any object at times.
        let any = rng.below(6) == 0
        let (ioas, hwpts, viommus, vdevices, queues, attached) = b.readLocked { () -> ([ObjectID], [ObjectID], [ObjectID], [ObjectID], [ObjectID], [String]) in
            let o = b.owners[owner]
            return (
                (any ? Set(b.ioasTable.keys) : o?.ioas ?? []).sorted(),
                (any ? Set(b.hwptTable.keys) : o?.hwpts ?? []).sorted(),
                (any ? Set(b.viommuTable.keys) : o?.viommus ?? []).sorted(),
                (any ? Set(b.vdeviceTable.keys) : o?.vdevices ?? []).sorted(),
                b.queueTable.values.filter { any || $0.owner == owner }.map(\.id).sorted(),
                (o?.devices ?? []).sorted())
        }
        let device = rng.below(3) == 0 ? devices[rng.below(devices.count)] : rng.pick(attached) ?? devices[rng.below(devices.count)]
        let anyIOAS = rng.pick(ioas) ?? 999
        let exists = b.readLocked { b.owners[owner] != nil }
        var op = rng.below(22)
        // Mostly requests that can succeed: an owner before its objects, an IOAS before its
        // devices, a device before its vIOMMU; a release now and then.
        if !exists && rng.below(4) != 0 { op = 0 }
        else if ioas.isEmpty && rng.below(4) != 0 { op = 3 }
        else if attached.isEmpty && (8...14).contains(op) { op = 6 }
        if op == 2 && rng.below(2) == 0 { op = 4 }
        let name: String
        do {
            switch op {
            case 0, 1:
                name = "owner.create \(owner)"
                _ = try b.ownerCreate(rng.below(4) == 0 ? caller : mine, OwnerCreateParams(name: owner))
            case 2:
                name = "owner.release \(owner)"
                _ = try b.ownerRelease(caller, OwnerReleaseParams(name: owner))
            case 3, 4:
                name = "ioas.create \(owner)"
                _ = try b.ioasCreate(caller, IOASCreateParams(owner: owner))
            case 5:
                name = "ioas.destroy \(anyIOAS)"
                try b.ioasDestroy(caller, IOASDestroyParams(ioas: anyIOAS))
            case 6, 7:
                name = "device.attach \(device) \(owner) \(anyIOAS)"
                _ = try b.deviceAttach(caller, DeviceAttachParams(owner: owner, device: device, ioas: anyIOAS))
            case 8:
                name = "device.detach \(device)"
                _ = try b.deviceDetach(caller, DeviceDetachParams(device: device))
            case 9:
                name = "device.release \(device)"
                _ = try b.deviceRelease(caller, DeviceReleaseParams(device: device))
            case 10:
                name = "hwpt.alloc \(anyIOAS) \(device)"
                _ = try b.hwptAlloc(caller, HWPTAllocParams(ioas: anyIOAS, device: device))
            case 11:
                let id = rng.pick(hwpts) ?? 999
                name = "hwpt.destroy \(id)"
                _ = try b.hwptDestroy(caller, HWPTDestroyParams(hwpt: id))
            case 12:
                name = "viommu.create \(device)"
                _ = try b.viommuCreate(caller, VIOMMUCreateParams(device: device, type: VIOMMUType.selftest))
            case 13:
                if rng.below(2) == 0, let v = rng.pick(viommus) {
                    name = "vdevice.create \(v) \(device)"
                    _ = try b.vdeviceCreate(caller, VDeviceCreateParams(viommu: v, device: device, virtualID: UInt64(rng.below(8))))
                } else {
                    let id = rng.pick(vdevices) ?? 999
                    name = "vdevice.destroy \(id)"
                    _ = try b.vdeviceDestroy(caller, VDeviceDestroyParams(vdevice: id))
                }
            case 14:
                let id = rng.pick(viommus) ?? 999
                name = "viommu.destroy \(id)"
                _ = try b.viommuDestroy(caller, VIOMMUDestroyParams(viommu: id))
            case 15:
                if rng.below(2) == 0 {
                    name = "fault.create \(owner)"
                    let created = try b.faultCreate(caller, FaultCreateParams(owner: owner))
                    for fd in created.fds { close(fd) }
                } else {
                    let id = rng.pick(queues) ?? 999
                    name = "fault.destroy \(id)"
                    _ = try b.faultDestroy(caller, QueueParams(queue: id))
                }
            case 17:
                // A reload that changes manager A's quota: every owner of A has a new quota.
                var config = b.readLocked { b.config }
                config.access.rules[0].quotaBytes = UInt64(1 + rng.below(64)) * page
                name = "reload quota \(config.access.rules[0].quotaBytes ?? 0)"
                try b.reload(config: config)
            case 18:
                // A delegated channel opened, or one closed (its VMM hung up: no look-up).
                let open = b.readLocked { b.channels.filter { any || $0.value == owner }.keys.sorted() }
                if rng.below(2) == 0 || open.isEmpty {
                    name = "channel open \(owner)"
                    let end = try memfd(pages: 1)
                    defer { close(end) }
                    _ = try b.channelOpen(caller, owner: owner, daemonEnd: end)
                } else {
                    let id = open[rng.below(open.count)]
                    name = "channel closed \(id)"
                    b.channelClosed(id)
                }
            case 19:
                // Mappings (the journal's map/unmap records; the state is not compared for them).
                let fd = try memfd(pages: 1)
                defer { close(fd) }
                if rng.below(2) == 0 {
                    name = "ioas.map \(anyIOAS)"
                    _ = try b.ioasMap(caller, IOASMapParams(ioas: anyIOAS, length: page), fd: fd)
                } else {
                    name = "ioas.unmap \(anyIOAS) all"
                    _ = try b.ioasUnmap(caller, IOASUnmapParams(ioas: anyIOAS, all: true))
                }
            case 20:
                // A nested HWPT on a nest parent of the owner (or a new nest parent).
                let parents = b.readLocked { hwpts.filter { b.hwptTable[$0]?.flags.contains(.nestParent) == true } }
                if let parent = rng.pick(parents), rng.below(3) != 0 {
                    name = "hwpt.alloc nested \(device) on \(parent)"
                    _ = try b.hwptAlloc(caller, HWPTAllocParams(device: device, parent: parent, data: NestedDataParams(type: "selftest", iotlb: UInt32(rng.below(8)))))
                } else {
                    name = "hwpt.alloc nest parent \(anyIOAS) \(device)"
                    _ = try b.hwptAlloc(caller, HWPTAllocParams(ioas: anyIOAS, device: device, nestParent: true))
                }
            case 21:
                // A vEVENTQ of a vIOMMU, or one destroyed.
                if rng.below(2) == 0, let v = rng.pick(viommus) {
                    name = "veventq.create \(v)"
                    let created = try b.veventqCreate(caller, VEventQCreateParams(viommu: v))
                    for fd in created.fds { close(fd) }
                } else {
                    let id = rng.pick(queues) ?? 999
                    name = "veventq.destroy \(id)"
                    _ = try b.veventqDestroy(caller, QueueParams(queue: id))
                }
            default:
                switch rng.below(3) {
                case 0:
                    name = "dirty.start \(anyIOAS)"
                    _ = try b.dirtyStart(caller, DirtyParams(ioas: anyIOAS))
                case 1:
                    name = "dirty.stop \(anyIOAS)"
                    _ = try b.dirtyStop(caller, DirtyParams(ioas: anyIOAS))
                default:
                    name = "ioas.set_option \(anyIOAS)"
                    _ = try b.ioasSetOption(caller, IOASSetOptionParams(ioas: anyIOAS, hugePages: rng.below(2) == 0))
                }
            }
        } catch {
            return "refused (\(error))"
        }
        return "\(name) by \(caller.identity)"
    }

    /// After every request of 40 random sequences of 80, over four owners of two managers and
    /// three devices (vIOMMUs, vDevices, fault queues, dirty tracking, releases): the journal
    /// replayed from its memfd equals the whole state, and the state built from the slices the
    /// journal last recorded equals it too.
    @Test(arguments: 0..<40)
    func replayEqualsTheWholeStateAfterEveryRequest(seed: UInt64) throws {
        let f = try Fixture(topology: nestingTopology)
        _ = try f.broker.recover(storedFDs: [], store: InMemoryFDStore())
        var rng = Rng(seed: seed &* 7919 &+ 1)
        var done: [String] = []
        for _ in 0..<80 {
            done.append(Self.step(f, &rng))
            guard try Self.expectReplayMatches(f.broker, seed: seed, done: done) else { return }
        }
        let succeeded = done.filter { !$0.hasPrefix("refused") }
        if ProcessInfo.processInfo.environment["OWNERJOURNAL_PRINT"] != nil { print("refusals \(seed): \(done.filter { $0.hasPrefix("refused") })") }
        // The sequence does something: most kinds of request succeed in some seed.
        #expect(succeeded.count >= 20, "seed \(seed): only \(succeeded.count) of 80 requests succeeded")
        if ProcessInfo.processInfo.environment["OWNERJOURNAL_PRINT"] != nil { print("seed \(seed): \(succeeded)") }
    }

    /// The journal replayed from its memfd, compared with the whole state built the old way and
    /// with the broker's mappings; false (and an issue recorded) when the state differs.
    static func expectReplayMatches(_ broker: Broker, seed: UInt64, done: [String]) throws -> Bool {
        let whole = broker.readLocked { broker.journalState() }
        let (contents, torn) = try replayed(broker)
        #expect(torn == 0)
        #expect(contents.problems == [])
        // The mappings too: map and unmap records among the slices.
        let mappings = broker.readLocked { broker.ioasTable.filter { !$0.value.mappings.all.isEmpty }.mapValues { Set($0.mappings.all.map(\.key)) } }
        #expect(contents.mappings.filter { !$0.value.isEmpty }.mapValues { Set($0.keys) } == mappings, "seed \(seed): after \(done.suffix(2))")
        if contents.state != whole {
            Issue.record("seed \(seed): after \(done.count) requests (\(done.suffix(3).joined(separator: "; "))) the journal replays to a state that differs from the broker's:\njournal: \(contents.state)\nbroker:  \(whole)")
            return false
        }
        return true
    }

    /// A change of one owner records that owner's slice alone (and not the global slice when
    /// no device changed): the journal's growth does not follow the number of owners.
    @Test func aChangeRecordsOneOwnersSlice() throws {
        let f = try Fixture()
        _ = try f.broker.recover(storedFDs: [], store: InMemoryFDStore())
        for i in 0..<50 { _ = try f.ownerWithIOAS("vm-\(i)") }
        let (_, _) = try Self.replayed(f.broker)
        let before = try Self.recordCount(f.broker)
        let created = try f.broker.ioasCreate(f.a, IOASCreateParams(owner: "vm-7"))
        try f.broker.ioasDestroy(f.a, IOASDestroyParams(ioas: created.ioas))
        let types = try Self.recordTypes(f.broker).suffix(from: before)
        typealias T = ObjectJournal.RecordType
        // ioas.create: vm-7's slice; ioas.destroy: its mappings cleared, then vm-7's slice.
        #expect(Array(types) == [T.ownerState.rawValue, T.clear.rawValue, T.ownerState.rawValue])
        let (contents, _) = try Self.replayed(f.broker)
        #expect(contents.state == f.broker.readLocked { f.broker.journalState() })
    }

    static func recordTypes(_ broker: Broker) throws -> [UInt8] {
        let fd = try #require(try broker.locked { broker.journal?.log.fd })
        var records: [RecordLog.Record] = []
        var torn = 0
        let log = try RecordLog(adopting: fcntl(fd, F_DUPFD_CLOEXEC, 0), magics: ObjectJournal.readableMagics, records: &records, tornBytes: &torn)
        withExtendedLifetime(log) {}
        return records.map(\.type)
    }
    static func recordCount(_ broker: Broker) throws -> Int { try recordTypes(broker).count }

    /// A released owner is a tombstone: the replay no longer has it, nor its objects.
    @Test func aReleasedOwnerIsATombstone() throws {
        let f = try Fixture()
        _ = try f.broker.recover(storedFDs: [], store: InMemoryFDStore())
        _ = try f.ownerWithIOAS("vm-1")
        _ = try f.ownerWithIOAS("vm-2")
        _ = try f.broker.ownerRelease(f.a, OwnerReleaseParams(name: "vm-1"))
        let (contents, _) = try Self.replayed(f.broker)
        #expect(contents.state.owners.map(\.name) == ["vm-2"])
        #expect(contents.state.ioas.map(\.owner) == ["vm-2"])
        #expect(contents.slices["vm-1"] == nil)
    }
}
