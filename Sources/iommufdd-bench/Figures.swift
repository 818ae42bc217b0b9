#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC
import IommufdSim
import TestProcesses

let kib: UInt64 = 1 << 10
let mib: UInt64 = 1 << 20
let gib: UInt64 = 1 << 30
let tib: UInt64 = 1 << 40

struct Options {
    var quick = false
    var only: Set<Int> = []
    /// Path of an `iommufdd` binary for figure 1 (else the RPC server runs in this process).
    var daemonBinary: String?
    var scaleMappings = 1_000_000

    func runs(_ figure: Int) -> Bool { only.isEmpty || only.contains(figure) }
    func iterations(_ full: Int) -> Int { quick ? max(full / 10, 50) : full }
}

func temporarySocketPath(_ name: String) -> String {
    "/tmp/iommufdd-bench-\(getpid())-\(name).sock"
}

/// `{"jsonrpc":"2.0","id":1,"method":M,"params":P}` + `\n`, compact.
func requestLine(_ method: String, _ params: String? = nil) -> [UInt8] {
    var s = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\(method)\""
    if let params { s += ",\"params\":\(params)" }
    s += "}\n"
    return Array(s.utf8)
}

// MARK: Figure 1: RPC round trip and throughput

/// Runs `clients` threads, each with its own connection sending `request` in a loop for
/// `seconds`; returns requests per second.
func throughput(path: String, clients: Int, seconds: Double, request: [UInt8]) throws -> Double {
    try throughputCounted(path: path, clients: clients, seconds: seconds, request: request).rate
}

/// The same, with the number of requests answered.
func throughputCounted(path: String, clients: Int, seconds: Double, request: [UInt8]) throws -> (rate: Double, requests: Int) {
    let connections = try (0..<clients).map { _ in try LineClient(path: path) }
    let counts = Counts(clients)
    let start = DispatchSemaphore(value: 0)
    let group = DispatchGroup()
    let deadline = Atomic(0)
    for (index, connection) in connections.enumerated() {
        group.enter()
        let thread = Thread {
            start.wait()
            var n = 0
            while deadline.load() == 0 {
                guard (try? connection.roundTrip(request)) != nil else { break }
                n += 1
            }
            counts.set(index, n)
            group.leave()
        }
        thread.stackSize = 1 << 18
        thread.start()
    }
    let t0 = now()
    for _ in 0..<clients { start.signal() }
    usleep(UInt32(seconds * 1e6))
    deadline.store(1)
    group.wait()
    let elapsed = Double(now() - t0) / 1e9
    return (Double(counts.total) / elapsed, counts.total)
}

/// Per-thread request counts.
final class Counts: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int]
    init(_ n: Int) { values = Array(repeating: 0, count: n) }
    func set(_ i: Int, _ v: Int) { lock.withLock { values[i] = v } }
    var total: Int { lock.withLock { values.reduce(0, +) } }
}

/// A flag threads poll, behind a lock (the polls are far apart compared with a round trip).
final class Atomic: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int
    init(_ value: Int) { self.value = value }
    func load() -> Int { lock.withLock { value } }
    func store(_ v: Int) { lock.withLock { value = v } }
}

func figureRPC(_ report: Report, _ options: Options) throws {
    print("Figure 1: RPC round trip (daemon.ping) against an echo server")
    // Two floors: an echo served by a separate process (the target's floor: the daemon is a
    // separate process too) and the same echo on a thread of this process (the floor of earlier
    // runs, kept as its own row). Benchmarks/RESULTS.md, target 3, says why.
    let echo = try EchoServer(path: temporarySocketPath("echo"))
    defer { echo.stop() }
    let echoProcess = try ExternalEcho(path: temporarySocketPath("echo-process"))
    defer { echoProcess.stop() }
    var external: ExternalDaemon?
    var inProcess: InProcessDaemon?
    let path: String
    if let binary = options.daemonBinary {
        external = try ExternalDaemon(binary: binary, socket: temporarySocketPath("daemon"))
        path = external!.socket
    } else {
        inProcess = try InProcessDaemon(path: temporarySocketPath("rpc"))
        path = inProcess!.path
    }
    defer {
        inProcess?.stop()
        external?.stop()
    }
    let where_ = external != nil ? "iommufdd process" : "RPCServer in process"
    let ping = requestLine("daemon.ping")
    let n = options.iterations(20_000)
    let echoClient = try LineClient(path: echo.path)
    let echoProcessClient = try LineClient(path: echoProcess.path)
    let pingClient = try LineClient(path: path)
    // The daemon's side of each phase: its linger counters and its CPU (branch pinggap).
    let probe = external.map { DaemonSideProbe(metricsSocket: $0.socket, pid: $0.pid) } ?? DaemonSideProbe(server: inProcess!.server)
    let echoPID = echoProcess.pid

    // Two ways for one client to send, both measured (Benchmarks/RESULTS.md, issue 16 branch
    // pinggap, says why):
    // - The steady client (the target's row): the three servers take turns in blocks of 200
    //   back-to-back round trips, so each sees a client that sends its next request as soon as
    //   the answer arrives — what a VM manager's sequence of requests does, and what the 1-client
    //   throughput window below measures. The blocks rotate, so load elsewhere hits all three.
    // - The intermittent client: the three alternate round trip by round trip, so each server's
    //   client comes back only after two other round trips (~40 µs). A blocking echo does not
    //   care; the daemon's linger does (it spins only for a client that came back within 50 µs
    //   the time before, and otherwise sleeps and must be woken). Kept, with its ratio, because
    //   a client that sends now and then is real too.
    let block = 200
    let side0 = probe.read()
    let echoCPU0 = processCPUNanoseconds(echoPID)
    let steady = try steadyRoundTrips([echoProcessClient, pingClient, echoClient], request: ping, block: block, rounds: max(n / block, 5))
    let side1 = probe.read()
    let echoCPU1 = processCPUNanoseconds(echoPID)
    let steadyCount = steady[1].values.count
    report.latency("daemon.ping, 1 steady client (\(where_); blocks of \(block) back-to-back round trips)", steady[1], floor: steady[0].median,
                   floorName: "echo process", target: .ratioAtMost(2), p99: true)
    report.add(Row(figure: "  echo floor, 1 steady client (a separate process)", value: "median \(formatNanos(steady[0].median)), p99 \(formatNanos(steady[0].p99))", floor: "-", ratio: nil, target: .none, met: nil))
    report.latency("  daemon.ping, 1 steady client, against an echo thread of the benchmark", steady[1], floor: steady[2].median, floorName: "echo thread")
    report.add(Row(figure: "  daemon side, 1 steady client", value: (side1 - side0).words(requests: steadyCount) + echoCPUWords(echoCPU0, echoCPU1, steadyCount),
                   floor: "-", ratio: nil, target: .none, met: nil))

    // The intermittent client: the three alternate, one round trip each.
    var echoSamples = Samples()
    var echoProcessSamples = Samples()
    var pingSamples = Samples()
    var side2 = probe.read()
    for i in 0..<(n + 1000) {
        if i == 1000 { side2 = probe.read() }
        let t0 = now()
        try echoProcessClient.roundTrip(ping)
        let t1 = now()
        try pingClient.roundTrip(ping)
        let t2 = now()
        try echoClient.roundTrip(ping)
        let t3 = now()
        if i >= 1000 {
            echoProcessSamples.add(t1 - t0)
            pingSamples.add(t2 - t1)
            echoSamples.add(t3 - t2)
        }
    }
    let side3 = probe.read()
    report.latency("daemon.ping, 1 intermittent client (one round trip between two others; \(where_))", pingSamples, floor: echoProcessSamples.median,
                   floorName: "echo process", p99: true)
    report.add(Row(figure: "  echo floor, 1 intermittent client (a separate process)", value: "median \(formatNanos(echoProcessSamples.median)), p99 \(formatNanos(echoProcessSamples.p99))", floor: "-", ratio: nil, target: .none, met: nil))
    report.latency("  daemon.ping, 1 intermittent client, against an echo thread of the benchmark", pingSamples, floor: echoSamples.median, floorName: "echo thread")
    report.add(Row(figure: "  echo floor, 1 intermittent client (a thread of the benchmark)", value: "median \(formatNanos(echoSamples.median)), p99 \(formatNanos(echoSamples.p99))", floor: "-", ratio: nil, target: .none, met: nil))
    report.add(Row(figure: "  daemon side, 1 intermittent client", value: (side3 - side2).words(requests: n), floor: "-", ratio: nil, target: .none, met: nil))
    // Throughput: short windows, the echoes and the daemon in turn, so a burst of load elsewhere
    // hits all; the figure is the median window of each.
    let windows = options.quick ? 3 : 7
    let seconds = (options.quick ? 0.6 : 2.1) / Double(windows)
    for clients in [1, 4, 16, 64] {
        var echoRates: [Double] = []
        var echoProcessRates: [Double] = []
        var rates: [Double] = []
        var daemonSide = DaemonSide(counters: [:], cpu: 0)
        var daemonRequests = 0
        var echoCPU: UInt64 = 0
        var echoRequests = 0
        for _ in 0..<windows {
            let e0 = processCPUNanoseconds(echoPID)
            let echoWindow = try throughputCounted(path: echoProcess.path, clients: clients, seconds: seconds, request: ping)
            if let e0, let e1 = processCPUNanoseconds(echoPID) { echoCPU += e1 - e0; echoRequests += echoWindow.requests }
            echoProcessRates.append(echoWindow.rate)
            let s0 = probe.read()
            let window = try throughputCounted(path: path, clients: clients, seconds: seconds, request: ping)
            let d = probe.read() - s0
            for (k, v) in d.counters { daemonSide.counters[k, default: 0] += v }
            daemonSide.cpu = d.cpu.map { (daemonSide.cpu ?? 0) + $0 }
            daemonRequests += window.requests
            rates.append(window.rate)
            echoRates.append(try throughput(path: echo.path, clients: clients, seconds: seconds, request: ping))
        }
        let echoProcessRate = echoProcessRates.sorted()[windows / 2]
        let echoRate = echoRates.sorted()[windows / 2]
        let rate = rates.sorted()[windows / 2]
        // Target (issue 16): at 16 clients at least half the echo server's throughput.
        let target: Target = clients == 16 ? .ratioAtMost(2) : .none
        let met: Bool? = clients == 16 ? echoProcessRate / rate <= 2 : nil
        report.add(Row(
            figure: "daemon.ping throughput, \(clients) clients", value: "\(Int(rate)) req/s", floor: "\(Int(echoProcessRate)) req/s echo process",
            ratio: echoProcessRate / rate, target: target, met: met))
        report.add(Row(
            figure: "  against an echo thread of the benchmark, \(clients) clients", value: "\(Int(rate)) req/s", floor: "\(Int(echoRate)) req/s echo thread",
            ratio: echoRate / rate, target: .none, met: nil))
        report.add(Row(
            figure: "  daemon side, \(clients) clients (all windows)", value: daemonSide.words(requests: daemonRequests) + echoCPUWords(0, echoCPU, echoRequests),
            floor: "-", ratio: nil, target: .none, met: nil))
    }
    print("    (load \(loadAverage()))")
}

/// "; echo process CPU X a request", or nothing.
func echoCPUWords(_ before: UInt64?, _ after: UInt64?, _ requests: Int) -> String {
    guard let before, let after, requests > 0 else { return "" }
    return "; echo process CPU \(formatNanos(Double(after - before) / Double(requests))) a request"
}

// MARK: Figure 2: control operations end to end against the backend in process

/// A fresh owner and IOAS on `daemon`, through RPC.
func makeOwnerAndIOAS(_ client: RPCClient, owner: String, hugePages: Bool = true) throws -> ObjectID {
    _ = try client.call("owner.create", params: .object(["name": .string(owner)]))
    let created = try client.call("ioas.create", params: .object(["owner": .string(owner), "huge_pages": .bool(hugePages)]))
    guard let id = created.result.objectValue?["ioas"]?.int64Value else { throw BenchError("ioas.create answered \(created.result)") }
    return ObjectID(id)
}

func rpcPing(_ client: RPCClient, iterations: Int) throws -> Samples {
    try measure(iterations: iterations, warmup: 200) { _ = try client.call("daemon.ping") }
}

func mapParams(_ ioas: ObjectID, iova: UInt64, length: UInt64, offset: UInt64 = 0) -> JSONValue {
    .object([
        "ioas": .int(Int64(ioas)), "fd": .object(["fd": .int(0)]), "offset": .unsigned(offset),
        "length": .unsigned(length), "iova": .unsigned(iova),
    ])
}

func unmapParams(_ ioas: ObjectID, iova: UInt64, length: UInt64) -> JSONValue {
    .object(["ioas": .int(Int64(ioas)), "iova": .unsigned(iova), "length": .unsigned(length)])
}

/// Times map and unmap of `length` bytes at `iova`, alternating, over RPC.
func rpcMapUnmap(_ client: RPCClient, ioas: ObjectID, memfd: Int32, iova: UInt64, length: UInt64, iterations: Int) throws -> (map: Samples, unmap: Samples) {
    var map = Samples()
    var unmap = Samples()
    let mp = mapParams(ioas, iova: iova, length: length)
    let up = unmapParams(ioas, iova: iova, length: length)
    for i in 0..<(iterations + 100) {
        let t0 = now()
        _ = try client.call("ioas.map", params: mp, fds: [memfd])
        let t1 = now()
        _ = try client.call("ioas.unmap", params: up)
        let t2 = now()
        if i >= 100 {
            map.add(t1 - t0)
            unmap.add(t2 - t1)
        }
    }
    return (map, unmap)
}

/// The same on the simulator, called directly.
func backendMapUnmap(_ sim: SimBackend, ioas: ObjectID, memfd: Int32, iova: UInt64, length: UInt64, iterations: Int) throws -> (map: Samples, unmap: Samples) {
    var map = Samples()
    var unmap = Samples()
    for i in 0..<(iterations + 100) {
        let t0 = now()
        _ = try sim.map(ioas: ioas, source: .file(fd: memfd, offset: 0), length: length, iova: iova, flags: [.fixedIOVA, .readable, .writeable])
        let t1 = now()
        _ = try sim.unmap(ioas: ioas, iova: iova, length: length)
        let t2 = now()
        if i >= 100 {
            map.add(t1 - t0)
            unmap.add(t2 - t1)
        }
    }
    return (map, unmap)
}

func figureControl(_ report: Report, _ options: Options) throws {
    print("Figure 2: control operations over RPC against the backend in process (+ one ping)")
    let daemon = try InProcessDaemon(path: temporarySocketPath("control"))
    defer { daemon.stop() }
    let floorSim = try SimBackend()
    let client = try RPCClient(path: daemon.path)
    defer { client.close() }
    let memfd = try makeMemfd(size: 64 * mib)
    defer { close(memfd) }
    let n = options.iterations(5_000)
    let ping = try rpcPing(client, iterations: n)
    report.add(Row(figure: "daemon.ping via RPCClient", value: "median \(formatNanos(ping.median))", floor: "-", ratio: nil, target: .none, met: nil))

    let ioas = try makeOwnerAndIOAS(client, owner: "vm-control")
    let floorIOAS = try floorSim.allocIOAS()
    for (name, length) in [("4 KiB", 4 * kib), ("2 MiB", 2 * mib)] {
        let rpc = try rpcMapUnmap(client, ioas: ioas, memfd: memfd, iova: 1 << 32, length: length, iterations: n)
        let direct = try backendMapUnmap(floorSim, ioas: floorIOAS, memfd: memfd, iova: 1 << 32, length: length, iterations: n)
        report.latency("ioas.map \(name)", rpc.map, floor: direct.map.median + ping.median,
                       floorName: "(sim \(formatNanos(direct.map.median)) + ping)", target: .ratioAtMost(2))
        report.latency("ioas.unmap \(name)", rpc.unmap, floor: direct.unmap.median + ping.median,
                       floorName: "(sim \(formatNanos(direct.unmap.median)) + ping)", target: .ratioAtMost(2))
    }

    // device.attach of sim0 to an IOAS that already holds `existing` HWPTs (allocated for sim1).
    var attachMedians: [Int: Double] = [:]
    for existing in [1, 256] {
        let owner = "vm-attach-\(existing)"
        let attachIOAS = try makeOwnerAndIOAS(client, owner: owner)
        _ = try client.call("device.attach", params: .object(["owner": .string(owner), "device": .string("sim1"), "ioas": .int(Int64(attachIOAS))]))
        for _ in 1..<existing {
            _ = try client.call("hwpt.alloc", params: .object(["ioas": .int(Int64(attachIOAS)), "device": .string("sim1")]))
        }
        let attach = ["owner": JSONValue.string(owner), "device": .string("sim0"), "ioas": .int(Int64(attachIOAS))]
        let detach = ["device": JSONValue.string("sim0")]
        var rpc = Samples()
        for i in 0..<(n / 2 + 50) {
            let t0 = now()
            _ = try client.call("device.attach", params: .object(attach))
            let t1 = now()
            _ = try client.call("device.detach", params: .object(detach))
            if i >= 50 { rpc.add(t1 - t0) }
        }
        for device in ["sim0", "sim1"] {
            _ = try client.call("device.release", params: .object(["device": .string(device)]))
        }

        // The floor: the same attach on a simulator of its own.
        let sim = try SimBackend()
        let devices = try sim.discoverDevices()
        let sim0 = try sim.bind(devices.first { $0.name == "sim0" }!).id
        let sim1 = try sim.bind(devices.first { $0.name == "sim1" }!).id
        let simIOAS = try sim.allocIOAS()
        try sim.attach(deviceID: sim1, to: simIOAS)
        for _ in 1..<existing { _ = try sim.allocHWPT(deviceID: sim1, ptID: simIOAS, flags: []) }
        var direct = Samples()
        for i in 0..<(n / 2 + 50) {
            let t0 = now()
            try sim.attach(deviceID: sim0, to: simIOAS)
            let t1 = now()
            try sim.detach(deviceID: sim0)
            if i >= 50 { direct.add(t1 - t0) }
        }
        report.latency("device.attach, \(existing) HWPT(s) in the IOAS", rpc, floor: direct.median + ping.median,
                       floorName: "(sim \(formatNanos(direct.median)) + ping)", target: .ratioAtMost(2))
        attachMedians[existing] = rpc.median
    }
    // Issue 16 target 5: with 256 HWPTs in the IOAS within 1.2x of attach with one.
    if let one = attachMedians[1], let many = attachMedians[256] {
        report.add(Row(
            figure: "device.attach with 256 HWPTs against attach with 1", value: "median \(formatNanos(many))", floor: "\(formatNanos(one)) with 1 HWPT",
            ratio: many / one, target: .ratioAtMost(1.2), met: many / one <= 1.2))
    }
}

// MARK: Figure 3: dirty bitmap harvest

/// SplitMix64 (TestProcesses, shared with the tests): the same "random" dirty pattern on every run.
typealias SplitMix = SplitMix64

func figureDirty(_ report: Report, _ options: Options) throws {
    print("Figure 3: dirty bitmap of a 1 TiB IOAS at 4 KiB pages (32 MiB bitmap)")
    // dmar0 with 4 KiB and 2 MiB IOPTEs: a guest write dirties one 2 MiB IOPTE (512 bits).
    let topology = SimTopology(
        iommus: [SimTopology.IOMMU(name: "dmar0", dirtyTracking: true, nesting: false, pageSizes: [4096, 2 * mib])],
        devices: [SimTopology.Device(name: "sim0", iommu: "dmar0", pciAddress: "0000:00:02.0")])
    let daemon = try InProcessDaemon(path: temporarySocketPath("dirty"), topology: topology, maxDirtyRuns: 1 << 20)
    defer { daemon.stop() }
    let client = try RPCClient(path: daemon.path)
    client.maxMessageBytes = 256 << 20
    defer { client.close() }
    let size = tib
    let base = tib
    let memfd = try makeMemfd(size: size)
    defer { close(memfd) }
    let ioas = try makeOwnerAndIOAS(client, owner: "vm-dirty")
    _ = try client.call("ioas.map", params: mapParams(ioas, iova: base, length: size), fds: [memfd])
    let attached = try client.call("device.attach", params: .object(["owner": .string("vm-dirty"), "device": .string("sim0"), "ioas": .int(Int64(ioas)), "dirty": .string("required")]))
    guard let hwpt = attached.result.objectValue?["pt"]?.int64Value else { throw BenchError("device.attach answered \(attached.result)") }
    _ = try client.call("dirty.start", params: .object(["ioas": .int(Int64(ioas))]))

    let bitmapBytes = Int(size / 4096 / 8)
    // The floor: memcpy of 32 MiB between two buffers already in memory.
    let source = UnsafeMutableRawPointer.allocate(byteCount: bitmapBytes, alignment: 4096)
    let destination = UnsafeMutableRawPointer.allocate(byteCount: bitmapBytes, alignment: 4096)
    defer { source.deallocate(); destination.deallocate() }
    memset(source, 0, bitmapBytes)
    memset(destination, 0, bitmapBytes)
    let n = options.iterations(60)
    let copy = measure(iterations: n, warmup: 3) { memcpy(destination, source, bitmapBytes) }

    var rng = SplitMix(seed: 7)
    let units = size / (2 * mib)
    var dirtyUnits = Set<UInt64>()
    for percent in [0.1, 5, 50] {
        let want = Int(Double(units) * percent / 100)
        while dirtyUnits.count < want {
            let unit = rng.next() % units
            if dirtyUnits.insert(unit).inserted {
                try daemon.sim.simulateDeviceWrite(hwpt: ObjectID(hwpt), iova: base + unit * 2 * mib, length: 4096, pageSize: 4096)
            }
        }
        let read: JSONValue = .object([
            "ioas": .int(Int64(ioas)), "iova": .unsigned(base), "length": .unsigned(size), "page_size": .int(4096),
            "clear": .bool(false), "format": .string("runs"),
        ])
        var runs = 0
        let samples = try measure(iterations: options.iterations(percent >= 50 ? 20 : 40), warmup: 2) {
            let answer = try client.call("dirty.read", params: read)
            runs = answer.result.objectValue?["runs"]?.arrayValue?.count ?? 0
        }
        let rate = Double(bitmapBytes) / samples.median  // bytes per ns = GB/s
        // Where the time goes: the simulator's bitmap read alone, and the broker called in process.
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: bitmapBytes, alignment: 8)
        defer { scratch.deallocate() }
        let simRead = try measure(iterations: options.iterations(40), warmup: 2) {
            try daemon.sim.readDirtyBitmap(hwpt: ObjectID(hwpt), iova: base, length: size, pageSize: 4096, clear: false, into: scratch)
        }
        guard let caller = daemon.broker.resolve(uid: getuid(), gid: getgid(), pid: getpid()) else { throw BenchError("no caller") }
        let brokerRead = try measure(iterations: options.iterations(40), warmup: 2) {
            _ = try daemon.broker.dirtyRead(caller, DirtyReadParams(ioas: ioas, iova: base, length: size, pageSize: 4096, clear: false, format: .runs))
        }
        let scan = measure(iterations: options.iterations(40), warmup: 2) {
            _ = DirtyBitmap.runs(UnsafeBufferPointer(start: source.assumingMemoryBound(to: UInt64.self), count: bitmapBytes / 8), bitCount: bitmapBytes * 8, base: 0, pageSize: 4096, maxRuns: 1)
        }
        let clear = measure(iterations: options.iterations(40), warmup: 2) { memset(destination, 0, bitmapBytes) }
        print("    (\(format(percent)) %: sim bitmap read \(formatNanos(simRead.median)), broker dirty.read in process \(formatNanos(brokerRead.median)), scan of a clean 32 MiB \(formatNanos(scan.median)), memset 32 MiB \(formatNanos(clear.median)))")
        // The packed answer (issue 16 target 4): within 2x of the broker in process, and the
        // encoding + sending + parsing beyond it at >= 10,000,000 runs/s. The broker's own read
        // and the read over RPC alternate, so a burst of load elsewhere hits both; the time
        // beyond the broker is the median of the per-pair differences.
        var packed: JSONValue = read
        if case .object(var o) = packed { o["format"] = .string("packed_runs"); packed = .object(o) }
        var packedRuns = 0
        var overRPC = Samples()
        var inProcess = Samples()
        var beyondSamples = Samples()
        let runsParams = DirtyReadParams(ioas: ioas, iova: base, length: size, pageSize: 4096, clear: false, format: .runs)
        for i in 0..<(options.iterations(percent >= 50 ? 20 : 40) + 2) {
            let t0 = now()
            _ = try daemon.broker.dirtyRead(caller, runsParams)
            let t1 = now()
            let answer = try client.call("dirty.read", params: packed)
            guard let string = answer.result.objectValue?["packed_runs"]?.stringValue,
                  let runs = DirtyRunPacking.unpack(string, base: base, pageSize: 4096) else { throw BenchError("no packed_runs in \(answer.result)") }
            let t2 = now()
            packedRuns = runs.count
            if i >= 2 {
                inProcess.add(t1 - t0)
                overRPC.add(t2 - t1)
                beyondSamples.add(t2 - t1 > t1 - t0 ? (t2 - t1) - (t1 - t0) : 0)
            }
        }
        // The daemon's side of the packed answer alone, in process: the broker's packed read
        // and the JSON it is sent as, alternated with the same floor. What "beyond" adds to it
        // is the socket, the thread wake-ups and the client's parse and unpack.
        let packedParams = DirtyReadParams(ioas: ioas, iova: base, length: size, pageSize: 4096, clear: false, format: .packedRuns)
        var daemonSide = Samples()
        var daemonFloor = Samples()
        var lineBytes = 0
        for i in 0..<(options.iterations(percent >= 50 ? 20 : 40) + 2) {
            let t0 = now()
            _ = try daemon.broker.dirtyRead(caller, runsParams)
            let t1 = now()
            let answer = try daemon.broker.dirtyRead(caller, packedParams)
            lineBytes = try JSONValueEncoder().encode(answer.result).encoded().count
            let t2 = now()
            if i >= 2 {
                daemonFloor.add(t1 - t0)
                daemonSide.add(t2 - t1)
            }
        }
        report.latency("daemon side of dirty.read packed_runs in process (broker read + packing + JSON, \(lineBytes) B), \(format(percent)) % dirty", daemonSide,
                       floor: daemonFloor.median, floorName: "broker dirty.read runs in process", target: .none)
        report.latency("dirty.read packed_runs, \(format(percent)) % dirty (\(packedRuns) runs, client unpacks)", overRPC,
                       floor: inProcess.median, floorName: "broker dirty.read runs in process", target: percent == 5 ? .ratioAtMost(2) : .none)
        let beyond = beyondSamples.median
        let runsPerSecond = beyond > 0 ? Double(packedRuns) / beyond * 1e9 : .infinity
        report.add(Row(
            figure: "packed runs encoded, sent and parsed, \(format(percent)) % dirty",
            value: beyond > 0 ? "\(Int(runsPerSecond)) runs/s (\(formatNanos(beyond)) beyond the broker, median of pairs)" : "not measurable: no slower than the broker alone",
            floor: "-", ratio: nil, target: percent == 5 ? .atLeast(10_000_000, "runs/s") : .none, met: percent == 5 ? runsPerSecond >= 10_000_000 : nil))
        let target: Target = percent == 0.1 ? .atLeast(1, "GB/s") : .none
        report.add(Row(
            figure: "dirty.read runs, \(format(percent)) % dirty (\(runs) runs)",
            value: "median \(formatNanos(samples.median)) = \(format(rate)) GB/s scanned", floor: "-", ratio: nil,
            target: target, met: percent == 0.1 ? rate >= 1 : nil))
        if percent == 5 {
            var bitmap: JSONValue = read
            if case .object(var o) = bitmap { o["format"] = .string("bitmap"); bitmap = .object(o) }
            var memfdPath = Samples()
            for i in 0..<(n + 3) {
                let t0 = now()
                let answer = try client.call("dirty.read", params: bitmap)
                let t1 = now()
                for fd in answer.fds { close(fd) }  // the client's business, not timed
                if i >= 3 { memfdPath.add(t1 - t0) }
            }
            report.latency("dirty.read bitmap memfd (32 MiB), 5 % dirty", memfdPath, floor: copy.median, floorName: "memcpy 32 MiB", target: .none)
            // The client's own memfd, sent with every read (`into`): no new shmem pages per read.
            // One that takes seals (MFD_ALLOW_SEALING) the daemon keeps mapped and reads the
            // bits straight into; one that does not is written with pwrite from the scratch.
            var intoParams: JSONValue = bitmap
            if case .object(var o) = intoParams { o["into"] = .object(["fd": .int(0)]); intoParams = .object(o) }
            // The memcpy floor is measured again between the reads (alternating, as the packed
            // answer does with the broker's read), so a burst of load elsewhere hits both.
            for sealable in [false, true] {
                let into = try makeMemfd(size: UInt64(bitmapBytes), sealable: sealable)
                defer { close(into) }
                var intoPath = Samples()
                var copies = Samples()
                for i in 0..<(n + 3) {
                    let c0 = now()
                    memcpy(destination, source, bitmapBytes)
                    let t0 = now()
                    let answer = try client.call("dirty.read", params: intoParams, fds: [into])
                    let t1 = now()
                    for fd in answer.fds { close(fd) }
                    if i >= 3 {
                        intoPath.add(t1 - t0)
                        copies.add(t0 - c0)
                    }
                }
                if sealable {
                    report.latency("dirty.read bitmap into the client's memfd (32 MiB, MFD_ALLOW_SEALING: kept mapped), 5 % dirty", intoPath, floor: copies.median, floorName: "memcpy 32 MiB (alternated)", target: .ratioAtMost(2))
                } else {
                    report.latency("dirty.read bitmap into the client's memfd (32 MiB, no sealing: pwrite), 5 % dirty", intoPath, floor: copies.median, floorName: "memcpy 32 MiB (alternated)", target: .none)
                }
            }
            // What the kernel charges for a new 32 MiB memfd (shmem pages), written whole.
            let shmem = try measure(iterations: n, warmup: 2) {
                let fd = try makeMemfd(size: 0)
                var done = 0
                while done < bitmapBytes {
                    let rc = pwrite(fd, source + done, bitmapBytes - done, off_t(done))
                    if rc <= 0 { break }
                    done += rc
                }
                close(fd)
            }
            report.latency("new 32 MiB memfd written whole (kernel shmem cost)", shmem, floor: copy.median, floorName: "memcpy 32 MiB", target: .none)
        }
    }
}

// MARK: Figure 4: scale

func figureScale(_ report: Report, _ options: Options) throws {
    let owners = 1_000
    let ioasPerOwner = 10
    let mappingsPerIOAS = max(1, options.scaleMappings / (owners * ioasPerOwner))
    let total = owners * ioasPerOwner * mappingsPerIOAS
    print("Figure 4: \(owners) owners, \(owners * ioasPerOwner) IOAS, \(total) mappings")
    let daemon = try InProcessDaemon(path: temporarySocketPath("scale"))
    defer { daemon.stop() }
    let client = try RPCClient(path: daemon.path)
    defer { client.close() }
    let memfd = try makeMemfd(size: 1 * gib)
    defer { close(memfd) }
    let n = options.iterations(5_000)

    // The empty daemon: one owner, one IOAS.
    let probe = try makeOwnerAndIOAS(client, owner: "probe")
    _ = try rpcMapUnmap(client, ioas: probe, memfd: memfd, iova: 1 << 40, length: 4 * kib, iterations: n)  // warm up
    let emptyMap = try rpcMapUnmap(client, ioas: probe, memfd: memfd, iova: 1 << 40, length: 4 * kib, iterations: n)
    let info: JSONValue = .object(["ioas": .int(Int64(probe)), "max_mappings": .int(0)])
    let emptyInfo = try measure(iterations: n, warmup: 100) { _ = try client.call("ioas.info", params: info) }
    let rssEmpty = residentBytes()

    // Populate through the broker directly (the same state as over RPC, a minute sooner).
    guard let caller = daemon.broker.resolve(uid: getuid(), gid: getgid(), pid: getpid()) else { throw BenchError("no caller") }
    let t0 = now()
    var ioasIDs: [ObjectID] = []
    for o in 0..<owners {
        let name = "vm-\(o)"
        _ = try daemon.broker.ownerCreate(caller, OwnerCreateParams(name: name))
        for _ in 0..<ioasPerOwner {
            let id = try daemon.broker.ioasCreate(caller, IOASCreateParams(owner: name)).ioas
            ioasIDs.append(id)
            for m in 0..<mappingsPerIOAS {
                let offset = UInt64((ioasIDs.count * mappingsPerIOAS + m) % Int(gib / (4 * kib))) * 4 * kib
                _ = try daemon.broker.ioasMap(
                    caller, IOASMapParams(ioas: id, offset: offset, length: 4 * kib, iova: (1 << 32) + UInt64(m) * 4 * kib), fd: memfd)
            }
        }
    }
    let populate = Double(now() - t0) / 1e9
    let rssFull = residentBytes()
    let perMapping = Double(Int64(rssFull) - Int64(rssEmpty)) / Double(total)
    report.add(Row(
        figure: "RSS at \(total) mappings (populated in \(format(populate)) s)",
        value: "\(formatBytes(Double(rssFull))) (+\(formatBytes(Double(rssFull) - Double(rssEmpty))))",
        floor: "\(formatBytes(Double(rssEmpty))) empty", ratio: nil, target: .atMost(64, "B/mapping"), met: perMapping <= 64))
    report.add(Row(
        figure: "RSS per mapping beyond empty (broker + simulator, with 10000 IOAS and 1000 owners)", value: "\(format(perMapping)) B",
        floor: "-", ratio: nil, target: .atMost(64, "B"), met: perMapping <= 64))
    // The simulator stands in for the kernel, whose page tables are not the daemon's memory: its
    // share, the same layout filled alone in a fresh process (this one's heap holds memory the
    // populate freed, which a second fill here would reuse unseen), and the rest: the broker's,
    // what the daemon keeps per mapping on a real host.
    let simPerMapping = try simulatorShare(ioas: owners * ioasPerOwner, mappingsPerIOAS: mappingsPerIOAS)
    report.add(Row(figure: "  of which the simulator (the same IOAS filled alone, in a fresh process)", value: "\(format(simPerMapping)) B", floor: "-", ratio: nil, target: .none, met: nil))
    report.add(Row(figure: "  of which the broker (the daemon's own, as with the kernel backend)", value: "\(format(perMapping - simPerMapping)) B", floor: "-", ratio: nil, target: .none, met: nil))

    // Latency in the middle of it: an IOAS holding its share, and the probe IOAS again.
    let busy = ioasIDs[ioasIDs.count / 2]
    let fullMap = try rpcMapUnmap(client, ioas: busy, memfd: memfd, iova: 1 << 40, length: 4 * kib, iterations: n)
    let probeMap = try rpcMapUnmap(client, ioas: probe, memfd: memfd, iova: 1 << 40, length: 4 * kib, iterations: n)
    let busyInfo: JSONValue = .object(["ioas": .int(Int64(busy)), "max_mappings": .int(0)])
    let fullInfo = try measure(iterations: n, warmup: 100) { _ = try client.call("ioas.info", params: busyInfo) }
    report.latency("ioas.map 4 KiB at \(total) mappings", fullMap.map, floor: emptyMap.map.median, floorName: "empty", target: .ratioAtMost(2))
    report.latency("ioas.unmap 4 KiB at \(total) mappings", fullMap.unmap, floor: emptyMap.unmap.median, floorName: "empty", target: .ratioAtMost(2))
    report.latency("ioas.map 4 KiB, empty IOAS, daemon at \(total)", probeMap.map, floor: emptyMap.map.median, floorName: "empty", target: .ratioAtMost(2))
    report.latency("ioas.info at \(total) mappings", fullInfo, floor: emptyInfo.median, floorName: "empty", target: .none)

    // One IOAS holding a million mappings: the per-IOAS index itself, on the backend in process.
    let sim = try SimBackend()
    let big = try sim.allocIOAS()
    let small = try sim.allocIOAS()
    let emptySim = try backendMapUnmap(sim, ioas: small, memfd: memfd, iova: 1 << 40, length: 4 * kib, iterations: n)
    let fill0 = now()
    for m in 0..<UInt64(total) {
        _ = try sim.map(ioas: big, source: .file(fd: memfd, offset: (m % (gib / (4 * kib))) * 4 * kib), length: 4 * kib, iova: (1 << 32) + m * 4 * kib, flags: [.fixedIOVA, .readable, .writeable])
    }
    let fill = Double(now() - fill0) / 1e9
    let fullSim = try backendMapUnmap(sim, ioas: big, memfd: memfd, iova: (1 << 32) + UInt64(total / 2) * 4 * kib + (1 << 39), length: 4 * kib, iterations: n)
    report.latency("sim map 4 KiB, one IOAS of \(total) (filled in \(format(fill)) s)", fullSim.map, floor: emptySim.map.median, floorName: "empty IOAS", target: .ratioAtMost(2))
    report.latency("sim unmap 4 KiB, one IOAS of \(total)", fullSim.unmap, floor: emptySim.unmap.median, floorName: "empty IOAS", target: .ratioAtMost(2))
    var autoIOVA = Samples()
    for i in 0..<(n + 100) {
        let t0 = now()
        let iova = try sim.map(ioas: big, source: .file(fd: memfd, offset: 0), length: 4 * kib, iova: 0, flags: [.readable, .writeable])
        let t1 = now()
        _ = try sim.unmap(ioas: big, iova: iova, length: 4 * kib)
        if i >= 100 { autoIOVA.add(t1 - t0) }
    }
    report.latency("sim map 4 KiB, kernel-chosen IOVA, one IOAS of \(total)", autoIOVA, floor: emptySim.map.median, floorName: "empty IOAS", target: .none)
}

/// RSS per mapping of a simulator alone with `ioas` IOAS of `mappingsPerIOAS` 4 KiB mappings,
/// measured by this benchmark run again in a child process (`--simulator-share`).
func simulatorShare(ioas: Int, mappingsPerIOAS: Int) throws -> Double {
    let child = Process()
    child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    child.arguments = ["--simulator-share", "\(ioas)", "\(mappingsPerIOAS)"]
    let pipe = Pipe()
    child.standardOutput = pipe
    try child.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    child.waitUntilExit()
    guard child.terminationStatus == 0, let value = Double(output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw BenchError("the simulator-share child failed (status \(child.terminationStatus)): \(output)")
    }
    return value
}

/// The child's side of `simulatorShare`: prints the RSS growth per mapping.
func runSimulatorShare(ioas: Int, mappingsPerIOAS: Int) throws {
    let memfd = try makeMemfd(size: 1 * gib)
    let sim = try SimBackend()
    let before = residentBytes()
    for _ in 0..<ioas {
        let id = try sim.allocIOAS()
        for m in 0..<mappingsPerIOAS {
            let offset = UInt64(m % Int(gib / (4 * kib))) * 4 * kib
            _ = try sim.map(ioas: id, source: .file(fd: memfd, offset: offset), length: 4 * kib, iova: (1 << 32) + UInt64(m) * 4 * kib, flags: [.fixedIOVA, .readable, .writeable])
        }
    }
    print(Double(Int64(residentBytes()) - Int64(before)) / Double(ioas * mappingsPerIOAS))
    withExtendedLifetime(sim) {}
}
