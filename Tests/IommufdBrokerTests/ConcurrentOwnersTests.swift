#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdCore
import IommufdSim
import TestProcesses
import Testing

@testable import IommufdBroker
import IommufdContract

/// Owners that do not wait for each other (issue 16, target 1): the slow part of a map, copy,
/// unmap or dirty read runs under its owner's gate only (Broker.swift, "Locking design"). This
/// stress test runs several owners, each from two threads at once, mapping, copying, unmapping
/// and reading dirty bitmaps through one broker while simulated devices write, and checks:
/// - at every moment (a watcher thread, under the broker's lock): no owner's mapped plus
///   reserved bytes exceed its quota, and its pinned bytes are the sum of its mappings';
/// - every request either succeeds or fails for a reason the workload can cause (quota, a
///   mapping the other thread unmapped first), never with a kernel error or a conflict between
///   the broker's records and the simulator's;
/// - once quiet: nothing reserved, the broker's records, the simulator's objects and mappings,
///   the pinned-byte counters, the held memory files and the journal read back all agree
///   (`SweepWorld.inconsistencies`); and releasing every owner leaves the simulator empty.
@Suite("Concurrent owners")
struct ConcurrentOwnersTests {
    static let owners = ["o0", "o1", "o2", "o3"]
    /// Devices with dirty tracking, one per owner that tracks (o3 has none: its IOAS has no domain).
    static let devices = ["o0": "d0", "o1": "d1", "o2": "d2"]
    static let iterations = 150

    /// What one owner has: two IOAS the threads map into and unmap from, the first with a
    /// dirty-tracking device when it has one; and a third with one mapping that is never
    /// unmapped, the source of copies.
    struct OwnerSetup {
        var name: String
        var ioas: [ObjectID]
        var hwpt: ObjectID?
        var source: ObjectID
        var sourceMapping: IOASMapResult
    }
    static let sourcePages: UInt64 = 4

    /// Problems seen by the threads, in words.
    final class Problems: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [String] = []
        private(set) var counts: [String: Int] = [:]
        func add(_ p: String) { lock.withLock { if list.count < 50 { list.append(p) } } }
        func count(_ what: String) { lock.withLock { counts[what, default: 0] += 1 } }
        var all: [String] { lock.withLock { list } }
        var tally: [String: Int] { lock.withLock { counts } }
    }

    func setUp(_ w: SweepWorld) throws -> [OwnerSetup] {
        var setups: [OwnerSetup] = []
        for name in Self.owners {
            _ = try w.broker.ownerCreate(w.caller, OwnerCreateParams(name: name))
            let x = try w.broker.ioasCreate(w.caller, IOASCreateParams(owner: name)).ioas
            let y = try w.broker.ioasCreate(w.caller, IOASCreateParams(owner: name)).ioas
            let source = try w.broker.ioasCreate(w.caller, IOASCreateParams(owner: name)).ioas
            let mapping = try w.broker.ioasMap(w.caller, IOASMapParams(ioas: source, length: Self.sourcePages * page), fd: w.ram)
            var setup = OwnerSetup(name: name, ioas: [x, y], source: source, sourceMapping: mapping)
            if let device = Self.devices[name] {
                setup.hwpt = try w.broker.deviceAttach(w.caller, DeviceAttachParams(owner: name, device: device, ioas: x, dirty: .required)).pt
                _ = try w.broker.dirtyStart(w.caller, DirtyParams(ioas: x))
            }
            setups.append(setup)
        }
        return setups
    }

    /// One thread of one owner: `iterations` random requests.
    func worker(_ w: SweepWorld, _ setup: OwnerSetup, seed: UInt64, problems: Problems) {
        var rng = StressRandom(seed: seed)
        let broker = w.broker
        let caller = w.caller
        func attempt(_ what: String, expected: Set<BrokerError.Kind>, _ body: () throws -> Void) {
            do {
                try body()
                problems.count("\(what) ok")
            } catch let error as BrokerError where expected.contains(error.kind) {
                problems.count("\(what) \(error.kind)")
            } catch {
                problems.add("owner \(setup.name): \(what) failed unexpectedly: \(error)")
            }
        }
        func mappings(_ ioas: ObjectID) -> [MappingInfo] {
            (try? broker.ioasInfo(caller, IOASInfoParams(ioas: ioas)).mappings) ?? []
        }
        for _ in 0..<Self.iterations {
            let ioas = setup.ioas[Int(rng.next() % 2)]
            switch rng.next() % 10 {
            case 0, 1, 2:
                let pages = 1 + rng.next() % 12
                let offset = rng.next() % (SweepWorld.ramPages - pages)
                attempt("map", expected: [.quotaExceeded]) {
                    _ = try broker.ioasMap(caller, IOASMapParams(ioas: ioas, offset: offset * page, length: pages * page), fd: w.ram)
                }
            case 3, 4:
                // The other thread of this owner may unmap it first (NotFound), and map another
                // in its place that the range cuts (InvalidParams).
                guard let m = mappings(ioas).randomElement(using: &rng) else { continue }
                attempt("unmap", expected: [.notFound, .invalidParams]) {
                    _ = try broker.ioasUnmap(caller, IOASUnmapParams(ioas: ioas, iova: m.iova, length: m.length, tolerateMissing: false))
                }
            case 5:
                let m = setup.sourceMapping
                attempt("copy", expected: [.quotaExceeded]) {
                    _ = try broker.ioasCopy(caller, IOASCopyParams(dstIOAS: ioas, srcIOAS: setup.source, srcIOVA: m.iova, length: m.length))
                }
            case 6, 7:
                guard setup.hwpt != nil else { continue }
                let format: DirtyReadFormat = rng.next() % 2 == 0 ? .runs : .bitmap
                attempt("dirty.read", expected: []) {
                    let answer = try broker.dirtyRead(
                        caller, DirtyReadParams(ioas: setup.ioas[0], iova: 0, length: 1 << 30, clear: rng.next() % 2 == 0, format: format, maxRuns: 1 + Int(rng.next() % 8)))
                    for fd in answer.fds { close(fd) }
                }
            case 8:
                // A device writes into what is mapped (the mapping may be gone meanwhile).
                guard let hwpt = setup.hwpt, let m = mappings(setup.ioas[0]).randomElement(using: &rng) else { continue }
                try? w.sim.simulateDeviceWrite(hwpt: hwpt, iova: m.iova, length: page, pageSize: page)
            default:
                if rng.next() % 4 == 0 {
                    attempt("unmap all", expected: []) { _ = try broker.ioasUnmap(caller, IOASUnmapParams(ioas: ioas, all: true)) }
                } else {
                    attempt("ioas.info", expected: []) { _ = try broker.ioasInfo(caller, IOASInfoParams(ioas: ioas)) }
                }
            }
        }
    }

    /// Under the broker's lock: quotas hold with what is in flight, pinned bytes are the sum
    /// of the mappings' charges.
    static func liveInvariants(_ broker: Broker) -> [String] {
        broker.readLocked { () -> [String] in
            var p: [String] = []
            for owner in broker.owners.values {
                if let quota = owner.quotaBytes, owner.pinnedBytes + owner.reservedBytes > quota {
                    p.append("owner \(owner.name): \(owner.pinnedBytes) pinned + \(owner.reservedBytes) reserved > quota \(quota)")
                }
                let charged = owner.ioas.reduce(UInt64(0)) { sum, id in
                    sum + (broker.ioasTable[id]?.mappings.all.reduce(UInt64(0)) { $0 + $1.value.charged } ?? 0)
                }
                if charged != owner.pinnedBytes { p.append("owner \(owner.name): pinned bytes \(owner.pinnedBytes), its mappings charge \(charged)") }
            }
            return p
        }
    }

    @Test("owners mapping, copying, unmapping and reading dirty at once keep quotas, records and the journal exact", arguments: [false, true])
    func concurrentOwnersStayExact(mmapFallback: Bool) throws {
        let ram = try memfd(pages: SweepWorld.ramPages)
        defer { close(ram) }
        // Shared by the threads: the broker, the simulator and the fault-injecting backend lock.
        nonisolated(unsafe) let w = try SweepWorld(ram: ram, without: mmapFallback ? [.ioasMapFile] : [])
        let setups = try setUp(w)
        let problems = Problems()
        let group = DispatchGroup()
        let stop = StressFlag(false)
        let watcher = DispatchSemaphore(value: 0)
        Thread {
            var checks = 0
            while !stop.value {
                for p in Self.liveInvariants(w.broker) { problems.add("while running: \(p)") }
                checks += 1
                usleep(200)
            }
            problems.count("live checks \(checks > 0)")
            watcher.signal()
        }.start()
        for (index, setup) in setups.enumerated() {
            for thread in 0..<2 {
                group.enter()
                let seed = UInt64(index * 2 + thread + 1) &* 0x9E37_79B9_7F4A_7C15
                Thread {
                    worker(w, setup, seed: seed, problems: problems)
                    group.leave()
                }.start()
            }
        }
        group.wait()
        stop.value = true
        watcher.wait()

        #expect(problems.all == [])
        let tally = problems.tally
        // The workload did what it is for: maps, unmaps, copies and dirty reads succeeded, and
        // the quota refused some maps.
        for what in ["map ok", "unmap ok", "copy ok", "dirty.read ok", "map quotaExceeded", "live checks true"] {
            #expect((tally[what] ?? 0) > 0, "no '\(what)' in \(tally)")
        }
        let reserved = try w.broker.locked { w.broker.owners.values.map(\.reservedBytes).reduce(0, +) }
        #expect(reserved == 0, "bytes still reserved with no request running")
        #expect(try w.inconsistencies() == [])

        for name in Self.owners {
            let released = try w.broker.ownerRelease(w.caller, OwnerReleaseParams(name: name))
            #expect(released.released, "owner.release \(name): \(released.failures)")
        }
        #expect(w.sim.inventory().isEmpty, "the simulator still has \(w.sim.inventory())")
        #expect(try w.inconsistencies() == [])
    }
}

/// A small deterministic generator, so a failing run can be repeated (SplitMix64, TestProcesses).
typealias StressRandom = SplitMix64

/// A value behind a lock, for the flag the watcher polls.
final class StressFlag<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: Value
    init(_ value: Value) { _value = value }
    var value: Value {
        get { lock.withLock { _value } }
        set { lock.withLock { _value = newValue } }
    }
}

/// While one owner's request is inside the backend, other owners' requests run to the end, and
/// the owner's own next gated request waits for it. Made deterministic with the backend's
/// dirty-read hook: owner A's dirty read stays inside the backend until owner B's requests are
/// done (if they needed the broker's state lock, they would never be: the test then fails after
/// a minute instead of hanging). No time is measured.
@Suite("Owners do not wait for each other")
struct OwnersDoNotWaitTests {
    @Test func anotherOwnersRequestsRunWhileADirtyReadIsInTheBackend() throws {
        let f = try Fixture()
        let ram = try memfd(pages: 64)
        defer { close(ram) }
        let ioasA = try f.ownerWithIOAS("vm-a", as: f.a)
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-a", device: "sim0", ioas: ioasA, dirty: .required))
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioasA, length: 16 * page, iova: 0x100000), fd: ram)
        _ = try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioasA))
        let ioasB = try f.ownerWithIOAS("vm-b", as: f.b)

        let inBackend = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        f.backend.beforeDirtyRead { _, _ in
            inBackend.signal()
            release.wait()
        }
        nonisolated(unsafe) let broker = f.broker
        let a = f.a
        let readDone = DispatchSemaphore(value: 0)
        let readResult = StressFlag<String?>(nil)
        Thread {
            do {
                _ = try broker.dirtyRead(a, DirtyReadParams(ioas: ioasA, iova: 0x100000, length: 16 * page, clear: false))
            } catch {
                readResult.value = "\(error)"
            }
            readDone.signal()
        }.start()
        inBackend.wait()
        f.backend.beforeDirtyRead(nil)  // B's and A's later reads go straight through

        // Owner B, while A's read is in the backend: a map, info, unmap, copy, owner.info.
        let b = f.b
        let bDone = DispatchSemaphore(value: 0)
        let bProblems = StressFlag<[String]>([])
        Thread {
            do {
                let mapped = try broker.ioasMap(b, IOASMapParams(ioas: ioasB, length: 4 * page), fd: ram)
                _ = try broker.ioasInfo(b, IOASInfoParams(ioas: ioasB))
                _ = try broker.ioasCopy(b, IOASCopyParams(dstIOAS: ioasB, srcIOAS: ioasB, srcIOVA: mapped.iova, length: 4 * page))
                _ = try broker.ioasUnmap(b, IOASUnmapParams(ioas: ioasB, all: true))
                _ = try broker.ownerInfo(b, OwnerInfoParams(name: "vm-b"))
            } catch {
                bProblems.value.append("\(error)")
            }
            bDone.signal()
        }.start()
        let bFinished = bDone.wait(timeout: .now() + 60) == .success

        // A's own next map waits for A's read (its owner's gate) until the read is released.
        let ownerWaitBefore = f.broker.ownerWaitHistogram()
        let aMapDone = DispatchSemaphore(value: 0)
        Thread {
            _ = try? broker.ioasMap(a, IOASMapParams(ioas: ioasA, length: page), fd: ram)
            aMapDone.signal()
        }.start()
        release.signal()
        readDone.wait()
        aMapDone.wait()
        if !bFinished { bDone.wait() }

        #expect(bFinished, "owner B's requests did not finish while owner A's dirty read was inside the backend")
        #expect(bProblems.value == [])
        #expect(readResult.value == nil)
        let ownerWaitAfter = f.broker.ownerWaitHistogram()
        #expect(ownerWaitAfter.count > ownerWaitBefore.count)
        let pinned = try f.broker.ownerInfo(f.a, OwnerInfoParams(name: "vm-a")).pinnedBytes
        #expect(pinned == 17 * page)
    }
}
