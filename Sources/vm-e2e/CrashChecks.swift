import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC
import IommufdTestSupervisor

#if canImport(Glibc)
import Glibc
#endif

/// The crash-point sweep on the real kernel (issue 17 item 4, the bounded subset): the map and
/// dirty-tracking paths of `iommufdd --backend kernel` with selftest mock devices, under
/// `Supervisor`. For each scenario and N = 1, 2, ...: a fresh daemon (a fresh iommufd) builds an
/// owner with an IOAS, a memfd mapping, mock0 attached and dirty tracking on; it is restarted
/// with IOMMUFDD_TEST_CRASH_POINT=N ([kernel] test_hooks) and sent the request; it SIGKILLs
/// itself at the Nth point (before/after an ioctl, before/half-way/after a journal write); the
/// restarted daemon must show exactly the state before or after the request, with pinned bytes
/// the sum of its mappings; the retry succeeds (or, when the request had completed, fails with a
/// domain error) and ends in the "after" state; a map at the cut-off IOVA is never EEXIST from a
/// half-done mapping; owner.release then succeeds. The kernel has no call that lists an
/// iommufd's objects, so unlike the simulator's sweep this cannot compare the daemon with what
/// the kernel holds beyond that; attach paths (HWPT allocation) are not swept here.
enum CrashChecks {
    struct Scenario {
        var name: String
        var prepare: ((DaemonClient, ObjectID) throws -> Void)?
        var request: (DaemonClient, ObjectID, GuestMemory) throws -> Void
    }

    static var scenarios: [Scenario] { [
        Scenario(name: "map", prepare: nil) { c, ioas, memory in
            _ = try c.map(ioas: ioas, memory: memory, length: 16 * DaemonChecks.page, iova: 0x1800_0000)
        },
        Scenario(name: "dirty-stop", prepare: nil) { c, ioas, _ in
            _ = try c.json("dirty.stop", try JSONValueEncoder().encode(IOASParams(ioas: ioas)))
        },
        Scenario(name: "dirty-start", prepare: { c, ioas in _ = try c.json("dirty.stop", try JSONValueEncoder().encode(IOASParams(ioas: ioas))) }) { c, ioas, _ in
            _ = try c.json("dirty.start", try JSONValueEncoder().encode(IOASParams(ioas: ioas)))
        },
    ] }

    static func view(_ c: DaemonClient) throws -> JSONValue {
        let list: IOASListResult = try c.call("ioas.list", IOASListParams())
        var ioas: [JSONValue] = []
        for id in list.ioas.map(\.ioas).sorted() {
            ioas.append(try c.json("ioas.info", try JSONValueEncoder().encode(IOASInfoParams(ioas: id, maxMappings: 100_000))).result)
            ioas.append(try c.json("dirty.status", try JSONValueEncoder().encode(IOASParams(ioas: id))).result)
        }
        return .object([
            "owners": try c.json("owner.list").result, "ioas": .array(ioas), "hwpts": try c.json("hwpt.list").result,
        ])
    }

    static func pinnedMismatch(_ v: JSONValue) -> String? {
        var total: UInt64 = 0
        for info in v["ioas"]?.arrayValue ?? [] where info["mappings"] != nil {
            let sum = (info["mappings"]?.arrayValue ?? []).reduce(UInt64(0)) { $0 + ($1["length"]?.uint64Value ?? 0) }
            if sum != info["pinned_bytes"]?.uint64Value ?? 0 { return "IOAS \(info["ioas"] ?? .null): pinned \(info["pinned_bytes"] ?? .null), mappings \(sum)" }
            total += sum
        }
        let owner = v["owners"]?["owners"]?.arrayValue?.first?["pinned_bytes"]?.uint64Value ?? 0
        return owner == total ? nil : "owner pinned \(owner), mappings \(total)"
    }

    /// One fresh daemon under its own supervisor, the base state built; `body` gets it.
    static func world(_ scenario: Scenario, _ index: Int, _ body: (Supervisor, inout DaemonClient, ObjectID, GuestMemory) throws -> Void) throws {
        let directory = FileManager.default.currentDirectoryPath + "/crash-\(scenario.name)-\(index)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let configPath = directory + "/iommufdd.toml"
        try DaemonProcess.config(socketPath: directory + "/control.sock").write(toFile: configPath, atomically: true, encoding: .utf8)
        let sup = try Supervisor(
            daemonPath: DaemonProcess.executablePath(), arguments: ["--config", configPath, "--backend", "kernel"],
            directory: directory, logPath: directory + "/iommufdd.log")
        defer { sup.shutdown() }
        try sup.start()
        try sup.waitReady(count: 1)
        var c = try DaemonClient(path: sup.controlPath)
        defer { c.rpc.close() }
        let memory = try GuestMemory(size: 64 * DaemonChecks.page)
        _ = try c.json("owner.create", try JSONValueEncoder().encode(OwnerCreateParams(name: "vm-crash")))
        let ioas: IOASCreateResult = try c.call("ioas.create", IOASCreateParams(owner: "vm-crash"))
        // The mock IOMMU's aperture starts at 16 MiB (MOCK_APERTURE_START): attach, then map above it.
        _ = try c.json("device.attach", try JSONValueEncoder().encode(DeviceAttachParams(owner: "vm-crash", device: "mock0", ioas: ioas.ioas, dirty: .required)))
        _ = try c.map(ioas: ioas.ioas, memory: memory, length: 32 * DaemonChecks.page, iova: 0x1000_0000)
        _ = try c.json("dirty.start", try JSONValueEncoder().encode(IOASParams(ioas: ioas.ioas)))
        try scenario.prepare?(c, ioas.ioas)
        try body(sup, &c, ioas.ioas, memory)
    }

    static func runAll(run: CheckRunner) -> Bool {
        var total = 0
        for scenario in scenarios {
            run.check("crash-sweep-\(scenario.name)") {
                var before = JSONValue.null, after = JSONValue.null
                try world(scenario, 0) { _, c, ioas, memory in
                    before = try view(c)
                    try scenario.request(c, ioas, memory)
                    after = try view(c)
                }
                try expect(before != after, "the request changes nothing the daemon shows")
                var points: [String] = []
                for n in 1...40 {
                    var done = false
                    try world(scenario, n) { sup, c, ioas, memory in
                        sup.environment = [CrashPoints.environmentVariable: String(n)]
                        try sup.restart()
                        try sup.waitReady(count: 2)
                        c = try DaemonClient(path: sup.controlPath)
                        do {
                            try scenario.request(c, ioas, memory)
                            try expect(try view(c) == after, "point \(n) not reached, yet the state is not the reference's")
                            done = true
                            return
                        } catch is RPCTransportError {}
                        sup.kill9()
                        let label = sup.logTail(lines: 400).split(separator: "\n").last { $0.contains("TEST crash point \(n) reached") }.map(String.init) ?? "?"
                        try expect(label != "?", "point \(n): the daemon died without reporting the point")
                        sup.environment = [:]
                        try sup.start()
                        try sup.waitReady(count: 3)
                        c = try DaemonClient(path: sup.controlPath)
                        let recovered = try view(c)
                        let isBefore = recovered == before, isAfter = recovered == after
                        try expect(isBefore || isAfter, "point \(n) (\(label)): neither the state before nor after:\n\(recovered)\nbefore:\n\(before)\nafter:\n\(after)")
                        if let m = pinnedMismatch(recovered) { throw CheckFailure(description: "point \(n) (\(label)): \(m)") }
                        var retry = "succeeded"
                        do {
                            try scenario.request(c, ioas, memory)
                        } catch let error as RPCError {
                            try expect(isAfter && (-32099 ... -32000).contains(error.code), "point \(n) (\(label)): the retry failed: \(error)")
                            retry = "refused (\(error.data?["name"]?.stringValue ?? "?"))"
                        }
                        try expect(try view(c) == after, "point \(n) (\(label)): after the retry the state is not the reference's")
                        let released = try c.json("owner.release", try JSONValueEncoder().encode(OwnerInfoParams(name: "vm-crash"))).result
                        try expect(released["released"] == .bool(true), "point \(n): owner.release: \(released)")
                        points.append("\(n) \(isBefore ? "before" : "after"), retry \(retry): \(label.components(separatedBy: "reached ").last ?? label)")
                    }
                    if done { break }
                    if n == 40 { throw CheckFailure(description: "still cut off after 40 points") }
                }
                total += points.count
                print("      \(scenario.name): \(points.count) crash points")
                for p in points { print("        \(p)") }
            }
        }
        print("      crash points swept on the kernel: \(total)")
        return true
    }
}
