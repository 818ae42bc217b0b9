import Foundation
import IommufdCore
import IommufdRPC
import IommufdSim

// MARK: Figure 5: batched cache invalidation (branch nested)

/// Entries per second of `IOMMU_HWPT_INVALIDATE` on a simulated selftest nested HWPT: 64 entries
/// a call against one entry a call (QEMU's pattern), on the simulator itself and through
/// `hwpt.invalidate` over JSON-RPC. (Issue 16's 2,000,000 entries/s target is for the VMM
/// channel, whose invalidation op is not built yet; these are the floors and the control plane.)
func figureInvalidation(_ report: Report, _ options: Options) throws {
    print("Figure 5: batched cache invalidation (selftest nested HWPT on the simulator)")
    let batch = 64
    let calls = options.iterations(20_000)

    // The floor: the simulator alone.
    let sim = try SimBackend()
    let device = try sim.bind(try sim.discoverDevices().first { $0.name == "sim0" }!).id
    let ioas = try sim.allocIOAS()
    let parent = try sim.allocHWPT(deviceID: device, ptID: ioas, flags: .nestParent)
    let nested = try sim.allocNestedHWPT(
        deviceID: device, parentID: parent, flags: [], data: NestedHWPTData.selftest(iotlb: 1, pagetableType: 0).userData)
    let entries = (0..<batch).map { InvalidationEntry.selftestHWPT(flags: 0, iotlbID: UInt32($0 % 4)) }
    let batched = InvalidationRequest(entries)
    let single = InvalidationRequest([entries[0]])
    func rate(_ request: InvalidationRequest, _ n: Int, _ body: (InvalidationRequest) throws -> Void) rethrows -> Double {
        let t0 = now()
        for _ in 0..<n { try body(request) }
        return Double(n) * Double(request.entryCount) / (Double(now() - t0) / 1e9)
    }
    func check(_ r: InvalidationResult) throws { if let e = r.error { throw e } }
    let simBatched = try rate(batched, calls) { try check(sim.invalidate(nested, $0)) }
    let simSingle = try rate(single, calls * 8) { try check(sim.invalidate(nested, $0)) }
    report.add(Row(figure: "sim invalidate, 64 entries a call", value: "\(format(simBatched / 1e6)) M entries/s", floor: "-", ratio: nil, target: .none, met: nil))
    report.add(Row(figure: "sim invalidate, 1 entry a call", value: "\(format(simSingle / 1e6)) M entries/s", floor: "-", ratio: nil, target: .none, met: nil))

    // Through the daemon: hwpt.invalidate over JSON-RPC.
    let daemon = try InProcessDaemon(path: temporarySocketPath("invalidate"))
    defer { daemon.stop() }
    let client = try RPCClient(path: daemon.path)
    defer { client.close() }
    let rpcIOAS = try makeOwnerAndIOAS(client, owner: "vm-invalidate")
    _ = try client.call("device.attach", params: .object(["owner": "vm-invalidate", "device": "sim0", "ioas": .int(Int64(rpcIOAS))]))
    let rpcParent = try client.call("hwpt.alloc", params: .object(["ioas": .int(Int64(rpcIOAS)), "device": "sim0", "nest_parent": true]))
    guard let parentID = rpcParent.result.objectValue?["hwpt"]?.int64Value else { throw BenchError("hwpt.alloc answered \(rpcParent.result)") }
    let rpcNested = try client.call("hwpt.alloc", params: .object(["device": "sim0", "parent": .int(parentID), "data": ["type": "selftest", "iotlb": 1]]))
    guard let nestedID = rpcNested.result.objectValue?["hwpt"]?.int64Value else { throw BenchError("nested hwpt.alloc answered \(rpcNested.result)") }
    func params(_ n: Int) -> JSONValue {
        .object(["hwpt": .int(nestedID), "entries": .array((0..<n).map { .object(["iotlb_id": .int(Int64($0 % 4))]) })])
    }
    let rpcCalls = options.iterations(2_000)
    let batchedParams = params(batch), singleParams = params(1)
    var t0 = now()
    for _ in 0..<rpcCalls { _ = try client.call("hwpt.invalidate", params: batchedParams) }
    let rpcBatched = Double(rpcCalls * batch) / (Double(now() - t0) / 1e9)
    t0 = now()
    for _ in 0..<rpcCalls { _ = try client.call("hwpt.invalidate", params: singleParams) }
    let rpcSingle = Double(rpcCalls) / (Double(now() - t0) / 1e9)
    report.add(Row(
        figure: "hwpt.invalidate over JSON-RPC, 64 entries a request", value: "\(format(rpcBatched / 1e3)) k entries/s",
        floor: "\(format(simBatched / 1e6)) M/s sim", ratio: simBatched / rpcBatched, target: .none, met: nil))
    report.add(Row(
        figure: "hwpt.invalidate over JSON-RPC, 1 entry a request", value: "\(format(rpcSingle / 1e3)) k entries/s",
        floor: "\(format(simSingle / 1e6)) M/s sim", ratio: simSingle / rpcSingle, target: .none, met: nil))
}
