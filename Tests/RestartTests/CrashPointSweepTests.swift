import Foundation
import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdRPC
import IommufdSim
import IommufdTestSupervisor
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

// The crash-point sweep (issue 17 item 3). The real daemon binary runs on the persistent
// simulator (its objects outlive the daemon through its log in the fd store, as the kernel's do
// through the iommufd) under the systemd-like test supervisor. For each scenario and N = 1, 2,
// 3, ...: a fresh world is built, the daemon is restarted with IOMMUFDD_TEST_CRASH_POINT=N
// (honoured with [sim] test_hooks only), and the scenario's request is sent; the daemon SIGKILLs
// itself at the Nth point (before or after a simulated ioctl, before, half-way through or after
// a journal write). Restarted without the switch, it must show:
// - exactly the state before the request or exactly the state after it (same objects, same IDs,
//   same mappings, leases, attachments and dirty tracking: nothing half-done);
// - the simulator holding exactly what the daemon shows, both ways (`test.sim_inventory`), so
//   every journaled object is there and every unjournaled one was cleaned up; what recovery
//   cleaned up is reported in daemon.info's recovery problems;
// - pinned bytes equal to the sum over the live mappings, per IOAS and per owner;
// - the client's retry of the cut-off request succeeding (when the state is "before"), or,
//   when the request had completed, failing cleanly (a domain error, never an internal one) or
//   succeeding, and ending in the "after" state — never EEXIST on a half-done mapping;
// - and owner.release of everything leaving the simulator empty.
// The sweep ends at the first N the request runs through without reaching.
//
// By default a short sweep (map, attach, owner.release) runs; IOMMUFDD_LONG_SWEEP=1 (.ci/run
// sets it) adds every other state-changing scenario.

/// One scenario: the world before, and the request the daemon is cut off in.
struct CrashScenario: CustomStringConvertible, Sendable {
    var name: String
    /// Whether the default (short) sweep runs it.
    var short: Bool
    /// A retry of a request that had completed would make a second object (a create): the
    /// client looks before retrying, so it is retried only when the state is "before".
    var retryOnlyIfNotDone = false
    /// A request that reports partial success (owner.release tears down step by step): cut off,
    /// it may leave a state between "before" and "after", consistent with the backend, which its
    /// retry completes.
    var partialAllowed = false
    /// Run after the common world is built, before the request (part of "before").
    var prepare: (@Sendable (CrashWorld) throws -> Void)? = nil
    var request: @Sendable (CrashWorld) throws -> Void
    var description: String { name }
}

/// The objects every scenario starts from: owner vm-1 with IOAS A (two mappings, sim-pci0
/// attached on an auto-domain, dirty tracking on), IOAS B (sim-pci2 attached, no tracking, a
/// mapping) and an unattached lease-free sim-pci1.
final class CrashWorld: @unchecked Sendable {
    let client: Client
    let memfd: Int32
    let page: UInt64
    var a: ObjectID = 0
    var b: ObjectID = 0

    init(client: Client, memfd: Int32, page: UInt64) {
        self.client = client
        self.memfd = memfd
        self.page = page
    }

    func build() throws {
        let c = client
        _ = try c.raw("owner.create", OwnerCreateParams(name: "vm-1", dirty: .preferred))
        a = try c.call("ioas.create", IOASCreateParams(owner: "vm-1"), as: IOASCreateResult.self).ioas
        b = try c.call("ioas.create", IOASCreateParams(owner: "vm-1"), as: IOASCreateResult.self).ioas
        _ = try c.map(a, memfd: memfd, offset: 0, length: 8 * page, iova: 0x10_0000)
        _ = try c.map(a, memfd: memfd, offset: 8 * page, length: 8 * page, iova: 0x20_0000)
        _ = try c.map(b, memfd: memfd, offset: 0, length: 4 * page, iova: 0x10_0000)
        _ = try c.raw("device.attach", DeviceAttachParams(owner: "vm-1", device: "sim-pci0", ioas: a))
        _ = try c.raw("device.attach", DeviceAttachParams(owner: "vm-1", device: "sim-pci2", ioas: b, dirty: .off))
        _ = try c.raw("dirty.start", IOASParams(ioas: a))
        _ = try c.raw("sim.dma", SimDMA(device: "sim-pci0", iova: 0x10_0000, length: 2 * page, page_size: page))
    }

    static let scenarios: [CrashScenario] = [
        CrashScenario(name: "ioas.map at a fixed IOVA", short: true) { w in
            _ = try w.client.map(w.a, memfd: w.memfd, offset: 16 * w.page, length: 4 * w.page, iova: 0x80_0000)
        },
        CrashScenario(name: "device.attach with an auto-domain (bind, HWPT alloc, attach)", short: true) { w in
            _ = try w.client.raw("device.attach", DeviceAttachParams(owner: "vm-1", device: "sim-pci1", ioas: w.b, dirty: .off))
        },
        CrashScenario(name: "owner.release of a VM (detach, destroy, unmap, unbind)", short: true, partialAllowed: true) { w in
            _ = try w.client.raw("owner.release", OwnerInfoParams(name: "vm-1"))
        },
        CrashScenario(name: "ioas.unmap", short: false) { w in
            _ = try w.client.raw("ioas.unmap", IOASUnmapParams(ioas: w.a, iova: 0x20_0000, length: 8 * w.page, tolerateMissing: false))
        },
        CrashScenario(name: "ioas.create", short: false, retryOnlyIfNotDone: true) { w in
            _ = try w.client.raw("ioas.create", IOASCreateParams(owner: "vm-1"))
        },
        CrashScenario(name: "hwpt.alloc with dirty tracking", short: false, retryOnlyIfNotDone: true) { w in
            _ = try w.client.raw("hwpt.alloc", HWPTAllocParams(ioas: w.a, device: "sim-pci0", dirtyTracking: true))
        },
        CrashScenario(
            name: "dirty.start", short: false,
            prepare: { w in _ = try w.client.raw("dirty.stop", IOASParams(ioas: w.a)) }
        ) { w in
            _ = try w.client.raw("dirty.start", IOASParams(ioas: w.a))
        },
        CrashScenario(name: "device.attach of a second device to a dirty-tracked IOAS", short: false) { w in
            _ = try w.client.raw("device.attach", DeviceAttachParams(owner: "vm-1", device: "sim-pci1", ioas: w.a, dirty: .required))
        },
        CrashScenario(name: "dirty.stop", short: false) { w in
            _ = try w.client.raw("dirty.stop", IOASParams(ioas: w.a))
        },
        CrashScenario(name: "viommu.create", short: false, retryOnlyIfNotDone: true) { w in
            _ = try w.client.raw("viommu.create", VIOMMUCreateParams(device: "sim-pci2"))
        },
        CrashScenario(name: "device.detach (the auto-domain goes with it)", short: false) { w in
            _ = try w.client.raw("device.detach", DeviceNameParams(device: "sim-pci0"))
        },
    ]
}

/// What the daemon shows (every owner, IOAS with mappings and pinned bytes, HWPT, device) and
/// what the simulator holds, side by side.
struct CrashView: Equatable, CustomStringConvertible {
    var owners: JSONValue
    var ioas: [JSONValue]
    var hwpts: JSONValue
    var devices: JSONValue

    init(_ c: Client) throws {
        owners = try c.raw("owner.list", NoParams())
        let list = try c.call("ioas.list", IOASListParams(), as: IOASListResult.self)
        ioas = try list.ioas.map(\.ioas).sorted().map { try c.raw("ioas.info", IOASInfoParams(ioas: $0, maxMappings: 100_000)) }
        hwpts = try c.raw("hwpt.list", IOASListParams())
        devices = try c.raw("device.list", DeviceListParams())
    }

    var description: String { "owners \(owners)\nIOAS \(ioas)\nHWPTs \(hwpts)\ndevices \(devices)" }

    /// How the daemon's view and the simulator's inventory disagree, in words (empty: they agree).
    func disagreements(with sim: SimInventory) -> [String] {
        var d: [String] = []
        // IOAS and their mapped ranges.
        var daemonIOAS: [UInt64: [IOVARange]] = [:]
        for info in ioas {
            guard let id = info["ioas"]?.uint64Value else { continue }
            var ranges: [IOVARange] = []
            for m in info["mappings"]?.arrayValue ?? [] {
                let iova = m["iova"]?.uint64Value ?? 0, length = m["length"]?.uint64Value ?? 0
                ranges.append(IOVARange(start: iova, last: iova + length - 1))
            }
            daemonIOAS[id] = Self.merged(ranges)
        }
        let simIOAS = Dictionary(uniqueKeysWithValues: sim.ioas.map { (UInt64($0.id), Self.merged($0.areas)) })
        if daemonIOAS != simIOAS { d.append("IOAS and mapped ranges: daemon \(daemonIOAS), simulator \(simIOAS)") }
        // HWPTs: IOAS, devices, dirty tracking.
        var daemonHWPTs: [UInt64: String] = [:]
        for h in hwpts["hwpts"]?.arrayValue ?? [] {
            guard let id = h["hwpt"]?.uint64Value else { continue }
            daemonHWPTs[id] = "ioas \(h["ioas"]?.uint64Value ?? 0) tracking \(h["tracking"]?.boolValue ?? false)"
        }
        let simHWPTs = Dictionary(uniqueKeysWithValues: sim.hwpts.map { (UInt64($0.id), "ioas \($0.ioas) tracking \($0.dirtyTracking)") })
        if daemonHWPTs != simHWPTs { d.append("HWPTs: daemon \(daemonHWPTs), simulator \(simHWPTs)") }
        // Bound devices and what they are attached to.
        var daemonDevices: [String: String] = [:]
        for dev in devices["devices"]?.arrayValue ?? [] {
            guard let id = dev["device_id"]?.uint64Value, let name = dev["name"]?.stringValue else { continue }
            daemonDevices[name] = "id \(id) on \(dev["pt"]?.uint64Value.map(String.init) ?? "-")"
        }
        let simDevices = Dictionary(uniqueKeysWithValues: sim.devices.map { ($0.name, "id \($0.id) on \($0.attached.map(String.init) ?? "-")") })
        if daemonDevices != simDevices { d.append("bound devices: daemon \(daemonDevices), simulator \(simDevices)") }
        // vIOMMUs and vDevices, through the owners that hold them.
        var daemonVIOMMUs = Set<UInt64>(), daemonVDevices = Set<UInt64>()
        for o in owners["owners"]?.arrayValue ?? [] {
            for v in o["viommus"]?.arrayValue ?? [] { if let id = v.uint64Value { daemonVIOMMUs.insert(id) } }
            for v in o["vdevices"]?.arrayValue ?? [] { if let id = v.uint64Value { daemonVDevices.insert(id) } }
        }
        if daemonVIOMMUs != Set(sim.viommus.map { UInt64($0.id) }) { d.append("vIOMMUs: daemon \(daemonVIOMMUs.sorted()), simulator \(sim.viommus.map(\.id))") }
        if daemonVDevices != Set(sim.vdevices.map { UInt64($0.id) }) { d.append("vDevices: daemon \(daemonVDevices.sorted()), simulator \(sim.vdevices.map(\.id))") }
        return d
    }

    /// Pinned bytes that are not the sum over the live mappings, in words.
    func pinnedMismatches() -> [String] {
        var d: [String] = []
        var perOwner: [String: UInt64] = [:]
        for info in ioas {
            let sum = (info["mappings"]?.arrayValue ?? []).reduce(UInt64(0)) { $0 + ($1["length"]?.uint64Value ?? 0) }
            let pinned = info["pinned_bytes"]?.uint64Value ?? 0
            if sum != pinned { d.append("IOAS \(info["ioas"] ?? .null): pinned_bytes \(pinned), mappings sum to \(sum)") }
            perOwner[info["owner"]?.stringValue ?? "", default: 0] += sum
        }
        for o in owners["owners"]?.arrayValue ?? [] {
            let name = o["name"]?.stringValue ?? ""
            let pinned = o["pinned_bytes"]?.uint64Value ?? 0
            if pinned != perOwner[name, default: 0] { d.append("owner \(name): pinned_bytes \(pinned), its mappings sum to \(perOwner[name, default: 0])") }
        }
        return d
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
}

extension Client {
    func simInventory() throws -> SimInventory {
        let value = try raw("test.sim_inventory", NoParams())
        return try JSONValueDecoder().decode(SimInventory.self, from: value)
    }
}

/// What one crash point did, for the report.
struct CrashPointOutcome: CustomStringConvertible {
    var n: Int
    var label: String
    var state: String
    var retry: String
    var recoveryNotes: Int
    var description: String { "point \(n) (\(label)): \(state), retry \(retry), \(recoveryNotes) recovery notes" }
}

/// Runs one scenario's sweep; returns one outcome per crash point (the last N ran through).
func crashSweep(_ scenario: CrashScenario, memfd: Int32, page: UInt64, maxPoints: Int = 64) throws -> [CrashPointOutcome] {
    let config = NSTemporaryDirectory() + "iommufdd-crash-\(getpid()).toml"
    try "[daemon]\nbackend = \"sim\"\nlog_level = \"warning\"\n[sim]\ntest_hooks = true\n".write(toFile: config, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: config) }
    let binary = try daemonBinary()

    // The reference: the states before and after the request, run without a crash.
    func world(_ body: (Supervisor, CrashWorld) throws -> Void) throws {
        let log = NSTemporaryDirectory() + "iommufdd-crash-\(getpid())-\(UUID().uuidString.prefix(8)).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let sup = try Supervisor(daemonPath: binary, arguments: ["--config", config], logPath: log)
        defer { sup.shutdown() }
        try sup.start()
        try sup.waitReady(count: 1)
        let w = CrashWorld(client: try Client(path: sup.controlPath), memfd: memfd, page: page)
        defer { w.client.rpc.close() }
        try w.build()
        try scenario.prepare?(w)
        try body(sup, w)
    }
    var before: CrashView!
    var after: CrashView!
    try world { _, w in
        before = try CrashView(w.client)
        try scenario.request(w)
        after = try CrashView(w.client)
        let inventory = try w.client.simInventory()
        #expect(after.disagreements(with: inventory).isEmpty, "\(scenario): the reference run: \(after.disagreements(with: inventory))")
    }
    #expect(before != after, "\(scenario): the request changes nothing, so the sweep could not tell a lost change")

    var outcomes: [CrashPointOutcome] = []
    for n in 1...maxPoints {
        var finished = false
        try world { sup, w in
            // The same world, the daemon restarted with the switch.
            sup.environment = [CrashPoints.environmentVariable: String(n)]
            try sup.restart()
            try sup.waitReady(count: 2)
            try w.client.reconnect()
            do {
                try scenario.request(w)
                // No point left: the request ran through; the sweep is complete.
                #expect(try CrashView(w.client) == after, "\(scenario): with every point passed the request must end as the reference did")
                finished = true
                return
            } catch is RPCTransportError {
                // The daemon killed itself at point n.
            }
            sup.kill9()  // reaps it
            let label = sup.logTail(lines: 400).split(separator: "\n").last { $0.contains("TEST crash point \(n) reached") }
                .map { String($0).components(separatedBy: "reached (").last?.components(separatedBy: "):").first ?? "?" } ?? "?"
            #expect(label != "?", "\(scenario) point \(n): the connection broke but the daemon did not report reaching the point:\n\(sup.logTail(lines: 40))")
            sup.environment = [:]
            try sup.start()
            try sup.waitReady(count: 3)
            try w.client.reconnect()
            let where_ = "\(scenario), crash point \(n) (\(label))"

            let recovered = try CrashView(w.client)
            let isBefore = recovered == before, isAfter = recovered == after
            #expect(isBefore || isAfter || scenario.partialAllowed, "\(where_): the restarted daemon shows neither the state before the request nor the state after it:\n\(recovered)\n--- before:\n\(before!)\n--- after:\n\(after!)")
            let inventory = try w.client.simInventory()
            let disagreements = recovered.disagreements(with: inventory)
            #expect(disagreements.isEmpty, "\(where_): the daemon and the simulator disagree after recovery: \(disagreements)\nsimulator:\n\(inventory)")
            #expect(recovered.pinnedMismatches().isEmpty, "\(where_): \(recovered.pinnedMismatches())")
            let info = try w.client.raw("daemon.info", NoParams())
            let notes = (info["recovery"]?["journal"]?["problems"]?.arrayValue ?? []) + (info["recovery"]?["backend_problems"]?.arrayValue ?? [])
            // Nothing but what a cut-off request explains: no record kept for owner.release.
            let unexplained = notes.compactMap(\.stringValue).filter { $0.contains("could not") || $0.contains("kept for owner.release") || $0.contains("did not replay") }
            #expect(unexplained.isEmpty, "\(where_): recovery left work behind: \(unexplained)")

            // The client retries the request it had no answer to.
            var retry = "not needed"
            if isBefore || !scenario.retryOnlyIfNotDone {
                do {
                    try scenario.request(w)
                    retry = "succeeded"
                } catch let error as RPCError {
                    #expect(isAfter, "\(where_): the retry of a request that had not happened failed: \(error)")
                    // The request had completed (its answer was lost): the retry may be refused,
                    // as a domain error naming what exists (a completed map's EEXIST included).
                    #expect((-32099 ... -32000).contains(error.code), "\(where_): the retry failed uncleanly: \(error)")
                    retry = "failed cleanly (\(error.data?["name"]?.stringValue ?? "\(error.code)"))"
                }
                let retried = try CrashView(w.client)
                #expect(retried == after, "\(where_): after the retry the state is not the reference's:\n\(retried)\n--- reference:\n\(after!)")
                let afterRetry = retried.disagreements(with: try w.client.simInventory())
                #expect(afterRetry.isEmpty, "\(where_): after the retry: \(afterRetry)")
            }
            outcomes.append(CrashPointOutcome(n: n, label: label, state: isBefore ? "before" : isAfter ? "after" : "partial", retry: retry, recoveryNotes: notes.count))

            // Nothing is left behind: releasing every owner empties the simulator.
            for o in (try w.client.raw("owner.list", NoParams()))["owners"]?.arrayValue ?? [] {
                if let name = o["name"]?.stringValue { _ = try w.client.raw("owner.release", OwnerInfoParams(name: name)) }
            }
            let rest = try w.client.simInventory()
            #expect(rest.isEmpty, "\(where_): after owner.release of every owner the simulator still holds:\n\(rest)")
        }
        if finished { return outcomes }
    }
    Issue.record("\(scenario): still cut off after \(maxPoints) crash points")
    return outcomes
}

@Suite("Crash-point sweep: SIGKILL at every point of a request, restart, nothing half-done", .serialized)
struct CrashPointSweepTests {
    static var long: Bool { ProcessInfo.processInfo.environment["IOMMUFDD_LONG_SWEEP"] == "1" }
    static var scenarios: [CrashScenario] { CrashWorld.scenarios.filter { long || $0.short } }

    @Test("Crash-point sweep", arguments: CrashPointSweepTests.scenarios)
    func sweep(_ scenario: CrashScenario) throws {
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let ram = try makeMemfd(bytes: 64 * page)
        defer { close(ram) }
        let outcomes = try crashSweep(scenario, memfd: ram, page: page)
        #expect(outcomes.count >= 2, "\(scenario): only \(outcomes.count) crash points")
        print("crash-point sweep, \(scenario): \(outcomes.count) points")
        for o in outcomes { print("  \(o)") }
    }
}

@Suite("Crash-point switch: honoured with test hooks only", .serialized)
struct CrashPointSwitchTests {
    func daemon(config text: String, crashPoint: String, _ body: (Supervisor) throws -> Void) throws {
        let config = NSTemporaryDirectory() + "iommufdd-crash-switch-\(getpid()).toml"
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: config) }
        let log = config + ".log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let sup = try Supervisor(daemonPath: try daemonBinary(), arguments: ["--config", config], logPath: log)
        defer { sup.shutdown() }
        sup.environment = [CrashPoints.environmentVariable: crashPoint]
        try body(sup)
    }

    @Test("Without test hooks IOMMUFDD_TEST_CRASH_POINT is ignored: requests run through every point")
    func ignoredWithoutHooks() throws {
        try daemon(config: "[daemon]\nbackend = \"sim\"\nlog_level = \"warning\"\n", crashPoint: "1") { sup in
            try sup.start()
            try sup.waitReady(count: 1)
            let c = try Client(path: sup.controlPath)
            _ = try c.raw("owner.create", OwnerCreateParams(name: "vm"))
            let ioas = try c.call("ioas.create", IOASCreateParams(owner: "vm"), as: IOASCreateResult.self).ioas
            _ = try c.raw("ioas.destroy", IOASDestroyParams(ioas: ioas))
            let warnings = (try c.raw("daemon.info", NoParams()))["warnings"]?.arrayValue ?? []
            #expect(!warnings.contains { $0.stringValue?.contains("IOMMUFDD_TEST_CRASH_POINT") == true }, "\(warnings)")
            #expect(sup.logTail().contains("IOMMUFDD_TEST_CRASH_POINT is ignored"), "\(sup.logTail())")
            // Not served either: the simulator's inventory is a test hook.
            #expect(throws: RPCError.self) { _ = try c.raw("test.sim_inventory", NoParams()) }
        }
    }

    @Test("With test hooks, a value that is not a point number is refused at start, naming it")
    func badValue() throws {
        try daemon(config: "[daemon]\nbackend = \"sim\"\nlog_level = \"warning\"\n[sim]\ntest_hooks = true\n", crashPoint: "soon") { sup in
            try sup.start()
            let error = #expect(throws: Supervisor.NotReady.self) { try sup.waitReady(count: 1, timeout: 60) }
            #expect(error?.description.contains("IOMMUFDD_TEST_CRASH_POINT=soon is not a crash point number") == true, "\(error.map { "\($0)" } ?? "")")
        }
    }

    @Test("With test hooks the daemon dies at the point asked for, and says which")
    func diesAtThePoint() throws {
        try daemon(config: "[daemon]\nbackend = \"sim\"\nlog_level = \"warning\"\n[sim]\ntest_hooks = true\n", crashPoint: "1") { sup in
            try sup.start()
            try sup.waitReady(count: 1)
            let c = try Client(path: sup.controlPath)
            _ = try c.raw("daemon.ping", NoParams())  // no point: nothing changes
            #expect(throws: RPCTransportError.self) { _ = try c.raw("owner.create", OwnerCreateParams(name: "vm")) }
            #expect(sup.logTail().contains("TEST crash point 1 reached (before journal write): SIGKILL"), "\(sup.logTail())")
        }
    }
}
