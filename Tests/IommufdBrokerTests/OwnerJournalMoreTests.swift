import Foundation
import IommufdCore
import IommufdSim
import TestProcesses
import Testing

@testable import IommufdBroker
import IommufdContract

// MARK: replay
/// `nestingTopology`'s two selftest mock IOMMUs (nesting, dirty tracking, the selftest vIOMMU
/// with its HW queues) and devices, and eight more for the new steps, so that four owners do not
/// all wait for one device: for the PASID steps pasid0 and pasid2 with 20-bit PASIDs (like
/// `MOCK_FLAGS_DEVICE_PASID`), pasid1 and pasid3 with 8-bit ones; for the HW queue and fault
/// steps acc0...acc3 with none; half of them behind each IOMMU.
let replayTopology = SimTopology(
    iommus: [
        .selftestMock(name: "mock0", dirtyTracking: true, nesting: true),
        .selftestMock(name: "mock1", dirtyTracking: true, nesting: true, sharesNestParent: false),
    ],
    devices: [
        .init(name: "gpu0", iommu: "mock0", pciAddress: "0000:01:00.0"),
        .init(name: "nic0", iommu: "mock0", pciAddress: "0000:02:00.0"),
        .init(name: "nvme0", iommu: "mock1", pciAddress: "0000:03:00.0"),
        .init(name: "pasid0", iommu: "mock0", pciAddress: "0000:04:00.0", pasidWidth: 20),
        .init(name: "pasid1", iommu: "mock1", pciAddress: "0000:05:00.0", pasidWidth: 8),
        .init(name: "pasid2", iommu: "mock0", pciAddress: "0000:06:00.0", pasidWidth: 20),
        .init(name: "pasid3", iommu: "mock1", pciAddress: "0000:07:00.0", pasidWidth: 8),
        .init(name: "acc0", iommu: "mock0", pciAddress: "0000:08:00.0"),
        .init(name: "acc1", iommu: "mock1", pciAddress: "0000:09:00.0"),
        .init(name: "acc2", iommu: "mock0", pciAddress: "0000:0a:00.0"),
        .init(name: "acc3", iommu: "mock1", pciAddress: "0000:0b:00.0"),
    ])

/// `OwnerJournalTests` extended to the requests its sequences did not make: PASID attach,
/// replace and detach (on HWPTs allocated with `pasid`), HW queues of a vIOMMU (`hwqueue.alloc`
/// over a mapped range, `hwqueue.destroy`), and a fault queue's relay (a fault the pump reads
/// and hands to the holder, the holder's response: the queue's `awaiting` cookies change
/// without any request, `markOwnerChanged` in the relay is all that records them). Each step
/// builds what it needs when missing (the HWPT, the attachment, the vIOMMU's mapping, the queue
/// and its HWPT), one request at a time, so the later ones succeed often; the other steps are
/// `OwnerJournalTests.step`'s. After every step the journal replayed from its memfd must equal
/// the whole state built the old way (`journalState()`), and its mappings the broker's.
@Suite struct OwnerJournalMoreTests {
    typealias Rng = SplitMix64

    /// The holders' ends of the fault queues the steps created (to answer faults), closed at the end.
    final class Holders {
        var fds: [ObjectID: Int32] = [:]
        deinit { for fd in fds.values { close(fd) } }
    }

    /// What a step knows of `owner` (under the lock).
    struct OwnerView {
        var ioas: [ObjectID] = []
        var pasidHWPTs: [ObjectID] = []
        var faultHWPTs: [ObjectID] = []
        var devices: [String] = []
        var viommus: [(id: ObjectID, ioas: ObjectID, queues: [UInt32: ObjectID])] = []
        var faultQueues: [(id: ObjectID, awaiting: [UInt32])] = []
    }

    static func view(_ b: Broker, _ owner: String) -> OwnerView {
        b.readLocked {
            var v = OwnerView()
            guard let o = b.owners[owner] else { return v }
            v.ioas = o.ioas.sorted()
            let hwpts = o.hwpts.sorted().compactMap { b.hwptTable[$0] }
            v.pasidHWPTs = hwpts.filter { $0.flags.contains(.pasid) }.map(\.id)
            v.faultHWPTs = hwpts.filter { $0.faultQueue != nil }.map(\.id)
            v.devices = o.devices.sorted()
            v.viommus = o.viommus.sorted().compactMap { b.viommuTable[$0] }.map { vi in
                (vi.id, vi.ioas, Dictionary(uniqueKeysWithValues: b.hwQueues(ofVIOMMU: vi.id).map { ($0.index, $0.id) }))
            }
            v.faultQueues = b.queueTable.values.filter { $0.owner == owner && $0.kind == .fault }.sorted { $0.id < $1.id }.map { ($0.id, $0.awaiting.sorted()) }
            return v
        }
    }

    /// A device of `candidates` for `owner`: one leased to it when there is one (now and then
    /// any), else a free one, else any (refused: leased to another owner).
    static func device(_ b: Broker, _ rng: inout Rng, _ owner: String, _ candidates: [String]) -> (name: String, leased: Bool, attached: Bool) {
        let state = b.readLocked { candidates.map { (name: $0, owner: b.devices[$0]?.owner, attached: b.devices[$0]?.pt != nil) } }
        let mine = state.filter { $0.owner == owner }
        let free = state.filter { $0.owner == nil }
        let pick = rng.below(8) == 0 ? rng.pick(state)! : rng.pick(mine) ?? rng.pick(free) ?? rng.pick(state)!
        return (pick.name, pick.owner == owner, pick.attached)
    }

    /// One step: mostly one of the new kinds, otherwise one of `OwnerJournalTests.step`'s.
    static func step(_ f: Fixture, _ rng: inout Rng, _ holders: Holders) -> String {
        let kind = rng.below(10)
        if kind >= 7 { return OwnerJournalTests.step(f, &rng) }
        let b = f.broker
        let owners = ["vm-0", "vm-1", "vm-2", "vm-3"]
        let owner = owners[rng.below(owners.count)]
        let mine = owner < "vm-2" ? f.a : f.b
        let caller = [mine, mine, mine, mine, f.admin, owner < "vm-2" ? f.b : f.a][rng.below(6)]
        let v = view(b, owner)
        let name: String
        do {
            // What every kind needs first: the owner and an IOAS.
            if b.readLocked({ b.owners[owner] == nil }) {
                name = "owner.create \(owner)"
                _ = try b.ownerCreate(mine, OwnerCreateParams(name: owner))
                return "\(name) by \(mine.identity)"
            }
            guard let ioas = rng.pick(v.ioas) else {
                name = "ioas.create \(owner)"
                _ = try b.ioasCreate(caller, IOASCreateParams(owner: owner))
                return "\(name) by \(caller.identity)"
            }
            switch kind {
            case 0, 1:
                name = try pasidStep(f, &rng, caller, owner, v, ioas)
            case 2, 3:
                name = try hwQueueStep(f, &rng, caller, owner, v, ioas)
            default:
                name = try faultStep(f, &rng, caller, owner, v, ioas, holders)
            }
        } catch {
            return "refused (\(error))"
        }
        return "\(name) by \(caller.identity)"
    }

    /// PASIDs: an HWPT allocated with `pasid`, a PASID-capable device's RID on one, then
    /// attach, replace and detach of PASIDs 1...4 (now and then one out of range or 0).
    static func pasidStep(_ f: Fixture, _ rng: inout Rng, _ caller: Caller, _ owner: String, _ v: OwnerView, _ ioas: ObjectID) throws -> String {
        let b = f.broker
        let (device, leased, _) = Self.device(b, &rng, owner, ["pasid0", "pasid1", "pasid2", "pasid3"])
        if v.pasidHWPTs.isEmpty || rng.below(8) == 0 {
            var params = HWPTAllocParams(ioas: ioas, device: device)
            params.pasid = true
            _ = try b.hwptAlloc(caller, params)
            return "hwpt.alloc pasid \(ioas) \(device)"
        }
        // Mostly an HWPT of the device's IOMMU instance (another instance's: EINVAL).
        let sameInstance = b.readLocked { v.pasidHWPTs.filter { b.hwptTable[$0]?.iommuInstance == b.devices[device]?.descriptor.iommuInstance } }
        let hwpt = (rng.below(8) == 0 ? nil : rng.pick(sameInstance)) ?? rng.pick(v.pasidHWPTs)!
        let (ridOnPASID, attached) = b.readLocked { () -> (Bool, [UInt32: ObjectID]) in
            let dev = b.devices[device]
            let rid = dev?.pt.flatMap { b.hwptTable[$0] }
            return (rid?.flags.contains(.pasid) == true, dev?.pasids ?? [:])
        }
        if !leased || b.readLocked({ b.devices[device]?.pt == nil }) {
            _ = try b.deviceAttach(caller, DeviceAttachParams(owner: owner, device: device, hwpt: hwpt))
            return "device.attach \(device) \(owner) pasid HWPT \(hwpt)"
        }
        if !ridOnPASID {
            _ = try b.deviceReplace(caller, DeviceReplaceParams(device: device, hwpt: hwpt))
            return "device.replace \(device) pasid HWPT \(hwpt)"
        }
        // An attached PASID (to replace or detach) half the time, else 1...4, now and then one
        // the device cannot have (0 is its RID; 256 and 2^20 are past 8 and 20 bits).
        var pasid = UInt32(1 + rng.below(4))
        if let some = rng.pick(attached.keys.sorted()), rng.below(2) == 0 { pasid = some }
        if rng.below(12) == 0 { pasid = [0, 256, 1 << 20][rng.below(3)] }
        switch rng.below(3) {
        case 0 where attached[pasid] != nil:
            _ = try b.deviceDetachPASID(caller, DevicePASIDDetachParams(device: device, pasid: pasid))
            return "device.detach_pasid \(device) \(pasid)"
        case 1 where attached[pasid] != nil:
            _ = try b.deviceReplacePASID(caller, DevicePASIDParams(device: device, pasid: pasid, hwpt: hwpt))
            return "device.replace_pasid \(device) \(pasid) \(hwpt)"
        default:
            _ = try b.deviceAttachPASID(caller, DevicePASIDParams(device: device, pasid: pasid, hwpt: hwpt))
            return "device.attach_pasid \(device) \(pasid) \(hwpt)"
        }
    }

    /// HW queues: a vIOMMU (on a leased device), two pages mapped at `base` in its IOAS, then
    /// queues of index 0 and 1 over them and their destruction, highest first (now and then out
    /// of order: Busy).
    static func hwQueueStep(_ f: Fixture, _ rng: inout Rng, _ caller: Caller, _ owner: String, _ v: OwnerView, _ ioas: ObjectID) throws -> String {
        let b = f.broker
        let base: UInt64 = 0x40_0000
        guard let vi = rng.pick(v.viommus) else {
            let (device, leased, attached) = Self.device(b, &rng, owner, ["acc0", "acc1", "acc2", "acc3"])
            guard leased && attached else {
                _ = try b.deviceAttach(caller, DeviceAttachParams(owner: owner, device: device, ioas: ioas))
                return "device.attach \(device) \(owner) \(ioas)"
            }
            _ = try b.viommuCreate(caller, VIOMMUCreateParams(device: device, type: VIOMMUType.selftest))
            return "viommu.create \(device)"
        }
        let mapped = b.readLocked { b.ioasTable[vi.ioas]?.mappings.all.contains { $0.key == base } == true }
        if !mapped {
            let fd = try memfd(pages: 2)
            defer { close(fd) }
            _ = try b.ioasMap(caller, IOASMapParams(ioas: vi.ioas, length: 2 * page, iova: base), fd: fd)
            return "ioas.map \(vi.ioas) at \(base)"
        }
        let next = UInt32(vi.queues.count)
        if vi.queues.isEmpty || (next < 2 && rng.below(3) == 0) {
            let index = rng.below(8) == 0 ? UInt32(rng.below(3)) : next
            let info = try b.hwqueueAlloc(caller, HWQueueAllocParams(viommu: vi.id, type: .name("selftest"), index: index, baseAddress: base + UInt64(index) * page, length: page, flags: nil))
            return "hwqueue.alloc \(vi.id) index \(index) = \(info.hwQueue)"
        }
        let index = rng.below(6) == 0 ? vi.queues.keys.min()! : vi.queues.keys.max()!
        let id = vi.queues[index]!
        _ = try b.hwqueueDestroy(caller, HWQueueParams(hwQueue: id))
        return "hwqueue.destroy \(id) (index \(index))"
    }

    /// A fault queue's relay: a fault queue (its holder's fd kept), an HWPT delivering to it, a
    /// device on that HWPT, then a fault the pump relays (a cookie awaiting) or the holder's
    /// response to one (the cookie answered), each taken by the broker outside any request.
    static func faultStep(
        _ f: Fixture, _ rng: inout Rng, _ caller: Caller, _ owner: String, _ v: OwnerView, _ ioas: ObjectID, _ holders: Holders
    ) throws -> String {
        let b = f.broker
        guard let queue = rng.pick(v.faultQueues) else {
            let created = try b.faultCreate(caller, FaultCreateParams(owner: owner))
            if let fd = created.fds.first { holders.fds[created.result.queue.queue] = fd }
            for fd in created.fds.dropFirst() { close(fd) }
            return "fault.create \(owner) = \(created.result.queue.queue)"
        }
        let (device, leased, attached) = Self.device(b, &rng, owner, ["acc0", "acc1", "acc2", "acc3"])
        let onFaultHWPT = b.readLocked { b.devices[device].flatMap(\.pt).flatMap { b.hwptTable[$0]?.faultQueue } != nil }
        if v.faultHWPTs.isEmpty || rng.below(10) == 0 {
            _ = try b.hwptAlloc(caller, HWPTAllocParams(ioas: ioas, device: device, faultQueue: queue.id))
            return "hwpt.alloc \(ioas) \(device) fault queue \(queue.id)"
        }
        if !onFaultHWPT {
            let hwpt = rng.pick(v.faultHWPTs)!
            if leased && attached {
                _ = try b.deviceReplace(caller, DeviceReplaceParams(device: device, hwpt: hwpt))
                return "device.replace \(device) fault HWPT \(hwpt)"
            }
            _ = try b.deviceAttach(caller, DeviceAttachParams(owner: owner, device: device, hwpt: hwpt))
            return "device.attach \(device) \(owner) fault HWPT \(hwpt)"
        }
        let faultQueue = b.readLocked { b.devices[device].flatMap(\.pt).flatMap { b.hwptTable[$0]?.faultQueue } }!
        let awaiting = v.faultQueues.first { $0.id == faultQueue }?.awaiting ?? []
        if let cookie = rng.pick(awaiting), rng.below(2) == 0 {
            // The holder answers (a new holder fd first when the old one is gone).
            var fd = holders.fds[faultQueue]
            if fd == nil {
                let again = try b.queueFD(caller, QueueParams(queue: faultQueue))
                fd = again.fds.first
                holders.fds[faultQueue] = fd
                return "queue.fd \(faultQueue)"
            }
            let response = PageResponse(cookie: cookie, code: PageResponse.success).bytes
            _ = response.withUnsafeBytes { send(fd!, $0.baseAddress, $0.count, 0) }
            b.pumpRelay(faultQueue)
            return "fault response \(faultQueue) cookie \(cookie) (relayed)"
        }
        let deviceID = try f.deviceID(device)
        try f.sim.triggerIOPF(deviceID: deviceID, pasid: 0, groupID: UInt32(rng.below(1000)), perm: 2, address: UInt64(rng.below(64)) * page)
        // The pump thread may take it first; either way it is taken when this returns.
        _ = b.pumpQueue(faultQueue)
        return "fault \(device) into queue \(faultQueue) (relayed)"
    }

    /// After every request of 24 random sequences of 150 over four owners of two managers and
    /// eleven devices (four with PASIDs): the journal replayed from its memfd equals the whole
    /// state and the broker's mappings; and each new kind of request succeeds in each sequence.
    @Test(arguments: 0..<24)
    func replayEqualsTheWholeStateAfterPASIDHWQueueAndFaultRelaySteps(seed: UInt64) throws {
        let f = try Fixture(topology: replayTopology)
        _ = try f.broker.recover(storedFDs: [], store: InMemoryFDStore())
        let holders = Holders()
        var rng = Rng(seed: seed &* 104_729 &+ 17)
        var done: [String] = []
        for i in 0..<150 {
            done.append(Self.step(f, &rng, holders))
            // Now and then a compaction, which reuses the JSON of the slices that did not change.
            if i % 37 == 36 {
                try f.broker.locked { try f.broker.compact(try #require(f.broker.journal)) }
                done.append("compaction")
            }
            guard try OwnerJournalTests.expectReplayMatches(f.broker, seed: seed, done: done) else { return }
        }
        let succeeded = done.filter { !$0.hasPrefix("refused") }
        if ProcessInfo.processInfo.environment["OWNERJOURNAL_PRINT"] != nil { print("seed \(seed): \(succeeded)\nrefused: \(done.filter { $0.hasPrefix("refused") })") }
        // The sequence reaches the new paths: a PASID attach, replace or detach, a HW queue
        // allocated or destroyed, a fault or a response relayed, each at least once. (Over the
        // 24 seeds: 130 PASID attaches, 23 replaces, 28 detaches, 148 HW queues allocated, 80
        // destroyed, 291 faults and 106 responses relayed; OWNERJOURNAL_PRINT=1 lists them.)
        for kind in ["_pasid ", "hwqueue.", "(relayed)"] {
            #expect(succeeded.contains { $0.contains(kind) }, "seed \(seed): no \(kind) succeeded in \(succeeded)")
        }
    }
}

extension OwnerJournalMoreTests {
    /// `hwqueue.destroy` runs under its owner's gate: the gate's look-up (which marks the
    /// owner) and the destruction are two holds of the broker's lock, and another owner's request
    /// may commit in between, taking the marks made so far. The destruction must then still be
    /// journaled: here another owner's `ioas.create` runs exactly there (the lock hook), and the
    /// journal must replay to the state without the queue.
    @Test func aHWQueueDestroyedAfterAnotherOwnersCommitIsJournaled() throws {
        let f = try Fixture(topology: replayTopology)
        let b = f.broker
        _ = try b.recover(storedFDs: [], store: InMemoryFDStore())
        let ioas = try f.ownerWithIOAS("vm-1")
        _ = try f.ownerWithIOAS("vm-2")
        _ = try b.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "gpu0", ioas: ioas))
        let v = try b.viommuCreate(f.a, VIOMMUCreateParams(device: "gpu0", type: VIOMMUType.selftest))
        let fd = try memfd(pages: 1)
        defer { close(fd) }
        let base: UInt64 = 0x40_0000
        _ = try b.ioasMap(f.a, IOASMapParams(ioas: ioas, length: page, iova: base), fd: fd)
        let queue = try b.hwqueueAlloc(f.a, HWQueueAllocParams(viommu: v.viommu, type: .name("selftest"), index: 0, baseAddress: base, length: page, flags: nil))
        #expect(try OwnerJournalTests.expectReplayMatches(b, seed: 0, done: ["hwqueue.alloc"]))

        final class Hook { var acquisitions = 0, inside = false, ran = false }
        let hook = Hook()
        b.lockWaitWillBlock = {
            guard !hook.inside else { return }
            hook.acquisitions += 1
            // The second acquisition of hwqueue.destroy: after the gate's look-up, before its body.
            guard hook.acquisitions == 2 else { return }
            hook.inside = true
            defer { hook.inside = false }
            hook.ran = (try? b.ioasCreate(f.a, IOASCreateParams(owner: "vm-2"))) != nil
        }
        _ = try b.hwqueueDestroy(f.a, HWQueueParams(hwQueue: queue.hwQueue))
        b.lockWaitWillBlock = nil
        #expect(hook.ran, "the other owner's request ran between the look-up and the destruction")
        #expect(b.readLocked { b.hwQueueTable.isEmpty })
        #expect(try OwnerJournalTests.expectReplayMatches(b, seed: 0, done: ["ioas.create vm-2 (between)", "hwqueue.destroy"]))
    }

    /// A `stateSet` record is read slice by slice (type, u32 length, JSON); one whose slices do
    /// not add up — a type that is not a slice, a length past the end, a short tail — is skipped
    /// whole and reported, never half applied.
    @Test func aMalformedStateSetIsSkippedWhole() throws {
        typealias T = ObjectJournal.RecordType
        let owner = try JSONEncoder().encode(OwnerSlice(name: "vm-1").with { $0.owner = JournalState.Owner(name: "vm-1", identity: "libvirt-a", creatorUID: 1000, quotaBytes: nil, policy: OwnerPolicy(), devices: []) })
        let global = try JSONEncoder().encode(GlobalSlice())
        func set(_ parts: [(UInt8, UInt32?, Data)], tail: [UInt8] = []) -> [UInt8] {
            var w = ByteWriter()
            for (type, length, json) in parts {
                w.u8(type)
                w.u32(length ?? UInt32(json.count))
                w.bytes += json
            }
            return w.bytes + tail
        }
        func read(_ payload: [UInt8]) throws -> ObjectJournal.Contents {
            let log = try RecordLog(memfdName: "stateset-test", magic: ObjectJournal.magic)
            log.append(type: T.stateSet.rawValue, payload)
            try log.flush()
            var records: [RecordLog.Record] = []
            var torn = 0
            let again = try RecordLog(adopting: fcntl(log.fd, F_DUPFD_CLOEXEC, 0), magics: ObjectJournal.readableMagics, records: &records, tornBytes: &torn)
            withExtendedLifetime((log, again)) {}
            #expect(torn == 0 && records.count == 1)
            return ObjectJournal.read(records)
        }
        let whole = try read(set([(T.ownerState.rawValue, nil, owner), (T.globalState.rawValue, nil, global)]))
        #expect(whole.problems == [] && whole.slices["vm-1"]?.owner?.name == "vm-1" && whole.state.owners.map(\.name) == ["vm-1"])
        for bad in [
            set([(T.ownerState.rawValue, nil, owner), (T.unmap.rawValue, nil, global)]),
            set([(T.ownerState.rawValue, nil, owner), (T.globalState.rawValue, UInt32(global.count + 1), global)]),
            set([(T.ownerState.rawValue, nil, owner)], tail: [T.globalState.rawValue, 0, 0]),
        ] {
            let c = try read(bad)
            #expect(c.slices.isEmpty && c.state.owners.isEmpty)
            #expect(c.problems.count == 1 && c.problems.first?.contains("malformed") == true, "\(c.problems)")
        }
    }
}

extension OwnerJournalMoreTests {
    /// A compaction writes each owner's slice as it is now: the JSON last recorded is reused
    /// only for a slice equal to the one it encoded. Here an owner's quota changes without a
    /// mark (so no record): the compaction still writes the new quota.
    @Test func aCompactionWritesAChangedSliceAnewEvenWithoutAMark() throws {
        let f = try Fixture()
        let b = f.broker
        _ = try b.recover(storedFDs: [], store: InMemoryFDStore())
        for i in 0..<5 { _ = try f.ownerWithIOAS("vm-\(i)") }
        b.readLocked { b.owners["vm-3"]?.quotaBytes = 7 * page }
        let whole = b.readLocked { b.journalState() }
        #expect(try OwnerJournalTests.replayed(b).0.state != whole, "the unmarked change is not journaled before the compaction")
        try b.locked { try b.compact(try #require(b.journal)) }
        #expect(try OwnerJournalTests.replayed(b).0.state == whole)
        #expect(whole.owners.first { $0.name == "vm-3" }?.quotaBytes == 7 * page)
    }
}

extension OwnerSlice {
    /// A copy changed by `body`.
    func with(_ body: (inout OwnerSlice) -> Void) -> OwnerSlice {
        var copy = self
        body(&copy)
        return copy
    }
}
