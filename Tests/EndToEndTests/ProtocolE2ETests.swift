import Foundation
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// JSON-RPC 2.0 as the real daemon speaks it: each error code, batches, notifications, and fds
/// in both directions. Each test gets its own daemon (swift-testing makes one suite instance
/// per test), stopped with SIGTERM at the end.
@Suite("End to end: the JSON-RPC protocol")
final class ProtocolE2ETests {
    let daemon: DaemonProcess

    init() throws { daemon = try DaemonProcess() }

    @Test func parseErrorIsMinus32700WithNullIDAndTheConnectionGoesOn() throws {
        let c = try daemon.client()
        let reply = try c.raw("{\"jsonrpc\": \"2.0\", \"method\": \n")
        #expect(reply.errorCode == -32700 && reply["id"] == .null)
        #expect(try c.call("daemon.ping") == "pong", "the same connection still serves")
    }

    @Test(arguments: [
        #"{"jsonrpc":"1.0","method":"daemon.ping","id":1}"#,
        #"{"method":"daemon.ping","id":1}"#,
        #"{"jsonrpc":"2.0","method":42,"id":1}"#,
        #"{"jsonrpc":"2.0","method":"daemon.ping","id":{"a":1}}"#,
        #"{"jsonrpc":"2.0","method":"daemon.ping","params":"x","id":1}"#,
        #"42"#,
        #"[]"#,
    ])
    func invalidRequestIsMinus32600(line: String) throws {
        let c = try daemon.client()
        let reply = try c.raw(line + "\n")
        #expect(reply.errorCode == -32600, "\(line) → \(reply)")
        #expect(try c.call("daemon.ping") == "pong")
    }

    @Test func unknownMethodIsMinus32601() throws {
        let c = try daemon.client()
        let e = try c.error("ioas.frobnicate", [:])
        #expect(e.code == -32601 && e.data?["method"] == "ioas.frobnicate")
    }

    @Test func wrongParamsAreMinus32602WithThePath() throws {
        let c = try daemon.client()
        let missing = try c.error("ioas.create", [:])
        #expect(missing.code == -32602 && missing.message.contains("owner"), "\(missing)")
        let wrongType = try c.error("ioas.info", ["ioas": "one"])
        #expect(wrongType.code == -32602 && wrongType.message.contains("ioas"), "\(wrongType)")
        let negative = try c.error("ioas.info", ["ioas": -1])
        #expect(negative.code == -32602, "\(negative)")
        let badEnum = try c.error("owner.create", ["name": "p-enum", "dirty": "sometimes"])
        #expect(badEnum.code == -32602, "\(badEnum)")
        let badName = try c.error("owner.create", ["name": "../etc"])
        #expect(badName.code == -32602 && badName.name == ErrorName.invalidParams, "\(badName)")
        let notObject = try c.error("ioas.info", [1, 2])
        #expect(notObject.code == -32602, "\(notObject)")
    }

    @Test func domainErrorsCarryStableNamesAndKernelDetail() throws {
        let c = try daemon.client()
        let notFound = try c.error("ioas.info", ["ioas": 999_999])
        #expect(notFound.code == -32001 && notFound.name == ErrorName.notFound)
        let noOwner = try c.error("ioas.create", ["owner": "nobody-here"])
        #expect(noOwner.name == ErrorName.notFound)

        try c.call("owner.create", ["name": "p-dom"])
        let dup = try c.error("owner.create", ["name": "p-dom"])
        #expect(dup.code == -32007 && dup.name == ErrorName.conflict)
        let ioas = try #require(try c.call("ioas.create", ["owner": "p-dom"])["ioas"]?.int)
        let hole = try c.error("ioas.unmap", ["ioas": .int(ioas), "iova": 0x10_0000, "length": 0x1000])
        #expect(hole.code == -32001 && hole.name == ErrorName.notFound, "\(hole)")
        try c.call("device.attach", ["owner": "p-dom", "device": "sim-pci0", "ioas": .int(ioas), "dirty": "required"])
        let busy = try c.error("ioas.destroy", ["ioas": .int(ioas)])
        #expect(busy.code == -32003 && busy.name == ErrorName.busy && busy.message.contains("detach"), "\(busy)")
        let notTracking = try c.error("dirty.read", ["ioas": .int(ioas), "iova": 0, "length": 4096])
        #expect(notTracking.code == -32007 && notTracking.message.contains("dirty.start"), "\(notTracking)")
        try c.call("dirty.start", ["ioas": .int(ioas)])
        // A bitmap over 256 MiB (2^31 pages of 4 KiB = 8 TiB of IOVA) is refused before any
        // memory is allocated for it.
        let huge = try c.error("dirty.read", ["ioas": .int(ioas), "iova": 0, "length": .unsigned(1 << 44)])
        #expect(huge.code == -32009 && huge.name == "iommufdd.LimitExceeded", "\(huge)")
        try c.call("dirty.stop", ["ioas": .int(ioas)])
        // The simulator's devices have no fd to hand out, even to a trusted_vmm identity.
        let noFD = try c.error("device.fd", ["device": "sim-pci0"])
        #expect(noFD.code == -32005 && noFD.name == ErrorName.unsupported, "\(noFD)")
        try c.call("owner.release", ["name": "p-dom"])
    }

    @Test func batchesAnswerEachMemberByID() throws {
        let c = try daemon.client()
        let answers = try c.batch([
            RPCRequest(method: "daemon.ping", id: 1),
            RPCRequest(method: "no.such", id: "two"),
            RPCRequest(method: "owner.create", params: ["name": "p-batch"], id: 3),
            RPCRequest(method: "daemon.ping", id: nil),  // a notification: no answer
            RPCRequest(method: "ioas.create", params: ["owner": "p-batch"], id: 4),
            RPCRequest(method: "ioas.info", params: ["ioas": "x"], id: 5),
        ], timeout: .seconds(60))
        #expect(answers.count == 5)
        #expect(try answers[1]?.get() == "pong")
        #expect(answers["two"].map { if case .failure(let e) = $0 { e.code == -32601 } else { false } } == true)
        #expect((try? answers[3]?.get())?["name"] == "p-batch")
        #expect((try? answers[4]?.get())?["ioas"]?.int != nil, "members run in order: the owner exists")
        #expect(answers[5].map { if case .failure(let e) = $0 { e.code == -32602 } else { false } } == true)
        try c.call("owner.release", ["name": "p-batch"])
    }

    @Test func batchEdgeCases() throws {
        let c = try daemon.client()
        // Empty batch: one -32600. Invalid members: one -32600 each, in an array.
        #expect(try c.raw("[]\n").errorCode == -32600)
        let invalid = try c.raw("[1, {\"jsonrpc\":\"2.0\"}]\n")
        #expect(invalid.arrayValue?.count == 2 && invalid.arrayValue?.allSatisfy { $0.errorCode == -32600 } == true, "\(invalid)")
        // All notifications: nothing comes back; the next call is answered normally.
        // Answers come in order, so the very next line must be the ping's answer.
        try c.sendRaw(Array(#"[{"jsonrpc":"2.0","method":"daemon.ping"},{"jsonrpc":"2.0","method":"no.such"}]"#.utf8) + [10])
        let next = try c.raw(#"{"jsonrpc":"2.0","method":"daemon.ping","id":77}"# + "\n")
        #expect(next["id"] == 77 && next["result"] == "pong", "no answer was sent for the notifications: \(next)")
        // A method that returns fds cannot be a batch member (the fd would have no line to ride).
        try c.call("owner.create", ["name": "p-batch-fd"])
        let ioas = try #require(try c.call("ioas.create", ["owner": "p-batch-fd"])["ioas"]?.int)
        let ram = try makeMemfd(bytes: 0x10000)
        defer { close(ram) }
        let iova = try #require(try c.call("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 0], "offset": 0, "length": 0x10000], fds: [ram])["iova"])
        try c.call("device.attach", ["owner": "p-batch-fd", "device": "sim-pci0", "ioas": .int(ioas), "dirty": "required"])
        try c.call("dirty.start", ["ioas": .int(ioas)])
        try c.call("sim.dma", ["device": "sim-pci0", "iova": iova, "length": 0x1000])
        let inBatch = try c.batch([
            RPCRequest(method: "dirty.read", params: ["ioas": .int(ioas), "iova": iova, "length": 0x10000, "format": "bitmap"], id: 1),
            RPCRequest(method: "dirty.read", params: ["ioas": .int(ioas), "iova": iova, "length": 0x10000], id: 2),
        ], timeout: .seconds(60))
        #expect(inBatch[1].map { if case .failure(let e) = $0 { e.code == -32600 && e.name == "iommufdd.FileDescriptorsInBatch" } else { false } } == true)
        #expect((try? inBatch[2]?.get())?["format"] == "runs", "the runs form works in a batch")
        #expect((try? inBatch[2]?.get())?["dirty_pages"] == 1, "the refused bitmap read did not run (it would have cleared the page)")
        try c.call("owner.release", ["name": "p-batch-fd"])
    }

    @Test func notificationsGetNoAnswerEvenWhenWrong() throws {
        let c = try daemon.client()
        try c.notify("owner.create", params: ["name": "p-notified"])
        try c.notify("no.such.method")
        try c.notify("ioas.info", params: ["ioas": "wrong"])
        // Answers come in order, so the very next line must be the ping's answer.
        let next = try c.raw(#"{"jsonrpc":"2.0","method":"daemon.ping","id":"after"}"# + "\n")
        #expect(next["id"] == "after" && next["result"] == "pong", "no answer was sent for the notifications: \(next)")
        // The notification did run.
        #expect(try c.call("owner.info", ["name": "p-notified"])["name"] == "p-notified")
        try c.call("owner.release", ["name": "p-notified"])
    }

    @Test func responsesComeInRequestOrderOnOneConnection() throws {
        let c = try daemon.client()
        var text = ""
        for i in 1...50 { text += #"{"jsonrpc":"2.0","method":"daemon.ping","id":\#(i)}"# + "\n" }
        try c.sendRaw(Array(text.utf8))
        var ids: [Int64] = []
        for _ in 1...50 { ids.append(try c.nextResponse()["id"]?.int ?? -1) }
        #expect(ids == Array(1...50))
    }

    @Test func fileDescriptorsBothWays() throws {
        let c = try daemon.client()
        try c.call("owner.create", ["name": "p-fds"])
        let ioas = try #require(try c.call("ioas.create", ["owner": "p-fds"])["ioas"]?.int)
        // In: the second of two fds, by index.
        let a = try makeMemfd(bytes: 64 << 10)
        let b = try makeMemfd(bytes: 64 << 10)
        defer { close(a); close(b) }
        let map = try c.call("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 1], "offset": 0, "length": 0x8000], fds: [a, b])
        #expect(map["length"] == 0x8000)
        // An index beyond what came: -32602 naming the index.
        let unknown = try c.error("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 3], "offset": 0, "length": 0x1000], fds: [a])
        #expect(unknown.code == -32602 && unknown.data?["fd"] == 3 && unknown.data?["received"] == 1, "\(unknown)")
        let none = try c.error("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 0], "offset": 0, "length": 0x1000])
        #expect(none.code == -32602, "\(none)")
        // Not a memfd-like file: a socket.
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        let notFile = try c.error("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 0], "offset": 0, "length": 0x1000], fds: [pair[0]])
        close(pair[0]); close(pair[1])
        #expect(notFile.code == -32602 && notFile.name == ErrorName.invalidParams && notFile.message.contains("not a regular file"), "\(notFile)")

        // Out: the dirty bitmap memfd (the device on a dirty-capable IOMMU).
        try c.call("device.attach", ["owner": "p-fds", "device": "sim-pci1", "ioas": .int(ioas), "dirty": "required"])
        try c.call("dirty.start", ["ioas": .int(ioas)])
        let iova = try #require(map["iova"]?.uint)
        try c.call("sim.dma", ["device": "sim-pci1", "iova": .unsigned(iova), "length": 0x1000])
        let (reply, fds) = try c.call("dirty.read", params: ["ioas": .int(ioas), "iova": .unsigned(iova), "length": 0x8000, "format": "bitmap"], timeout: .seconds(60))
        #expect(fds.count == 1 && reply["bitmap"]?["fd"] == 0)
        var word: UInt64 = 0
        if let fd = fds.first {
            #expect(pread(fd, &word, 8, 0) == 8)
            #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0, "received with MSG_CMSG_CLOEXEC")
            close(fd)
        }
        #expect(word == 1)
        try c.call("owner.release", ["name": "p-fds"])
    }

    @Test func tooManyFileDescriptorsWithOneMessage() throws {
        let c = try daemon.client()
        let fds = try (0..<17).map { _ in try makeMemfd(bytes: 4096) }
        defer { fds.forEach { close($0) } }
        let e = try c.error("daemon.ping", fds: fds)
        #expect(e.code == -32600 && e.name == "iommufdd.TooManyFileDescriptors", "\(e)")
    }

    @Test func discoverListsEveryMethodWithParams() throws {
        let c = try daemon.client()
        let doc = try c.call("rpc.discover")
        #expect(doc["openrpc"] != nil)
        let methods = try #require(doc["methods"]?.arrayValue)
        let names = Set(methods.compactMap { $0["name"]?.stringValue })
        for m in ["daemon.ping", "daemon.info", "daemon.metrics", "rpc.discover", "owner.create", "owner.release", "ioas.map",
                  "device.attach", "dirty.read", "viommu.create", "vdevice.create", "events.subscribe", "sim.dma"] {
            #expect(names.contains(m), "rpc.discover lacks \(m)")
        }
        let map = try #require(methods.first { $0["name"] == "ioas.map" })
        let params = map["params"]?.arrayValue ?? []
        #expect(params.contains { $0["name"] == "fd" && $0["required"] == true })
        // Optional params are optional (the schema recorder once marked every one required).
        let required = Dictionary(uniqueKeysWithValues: params.compactMap { p in p["name"]?.stringValue.map { ($0, p["required"]) } })
        #expect(required == ["ioas": true, "fd": true, "offset": true, "length": true, "iova": false, "readable": false, "writeable": false])
        let create = try #require(methods.first { $0["name"] == "owner.create" })
        let createRequired = (create["params"]?.arrayValue ?? []).filter { $0["required"] == true }.compactMap { $0["name"]?.stringValue }
        #expect(createRequired == ["name"])
    }

    @Test func metricsAreProm() throws {
        let c = try daemon.client()
        let m = try c.call("daemon.metrics")
        let text = try #require(m["text"]?.stringValue)
        #expect(text.contains("# TYPE") && text.contains("iommufdd_"))
    }

    /// After N calls of a method its latency histogram counts N (and method_calls_total agrees),
    /// and every histogram in the text is a valid Prometheus histogram.
    @Test func latencyHistogramsCountEveryCallAndAreValidPrometheus() throws {
        let c = try daemon.client()
        let n = 7
        let pingKey = "iommufdd_request_duration_seconds{method=\"daemon.ping\"}"
        // The harness pinged the daemon to see it up: count from what is there.
        let first = try PromHistograms(try #require(try c.call("daemon.metrics")["text"]?.stringValue))
        let already = first.series[pingKey]?.count ?? 0
        for _ in 0..<n { #expect(try c.call("daemon.ping") == "pong") }
        _ = try? c.call("owner.info", ["name": "no-such-owner"])  // an error is timed too
        let text = try #require(try c.call("daemon.metrics")["text"]?.stringValue)
        let histograms = try PromHistograms(text)
        #expect(histograms.families.contains("iommufdd_request_duration_seconds"))
        #expect(histograms.families.contains("iommufdd_broker_lock_wait_seconds"))
        let ping = try #require(histograms.series[pingKey])
        #expect(ping.count == already + Double(n))
        #expect(ping.sum > 0)
        let info = try #require(histograms.series["iommufdd_request_duration_seconds{method=\"owner.info\"}"])
        #expect(info.count == 1)
        #expect(text.contains("iommufdd_method_calls_total{method=\"daemon.ping\"} \(Int(already) + n)\n"))
        #expect(histograms.series["iommufdd_request_duration_seconds{method=\"daemon.metrics\"}"]?.count == 1,
                "the first daemon.metrics call; the one answering is timed after its text is made")
        let lock = try #require(histograms.series["iommufdd_broker_lock_wait_seconds"])
        #expect(lock.count >= 1, "owner.info took the broker lock")
    }

    deinit { daemon.expectCleanStop() }
}
