import Dispatch
import Glibc
import IommufdCore
import Testing
@testable import IommufdRPC

/// Everything that opens sockets runs serialized, so the fd counts of the leak checks are exact.
@Suite("RPC server over a Unix socket", .serialized)
struct RPCServerTests {
    // MARK: Basics

    @Test func pingAndPeerCredentials() throws {
        let seen = Locked<RPCPeer?>(nil)
        let t = try TestServer { r in
            r.register("whoami") { call in
                seen.withLock { $0 = call.peer }
                return RPCResult(["uid": .int(Int64(call.peer.uid)), "pid": .int(Int64(call.peer.pid))])
            }
        }
        defer { t.stop() }
        let c = try t.client()
        #expect(try c.call("ping").result == "pong")
        let who = try c.call("whoami").result
        #expect(who["uid"] == JSONValue.int(Int64(getuid())))
        #expect(who["pid"] == JSONValue.int(Int64(getpid())))
        #expect(seen.withLock { $0 } == RPCPeer(uid: getuid(), gid: getgid(), pid: getpid()))
    }

    // MARK: Framing

    @Test func messageSplitAcrossWritesAndSeveralInOneWrite() throws {
        let t = try TestServer()
        defer { t.stop() }
        let c = try t.client()
        let request = line(#"{"jsonrpc":"2.0","method":"ping","id":1}"#)
        try c.sendRaw(Array(request[0..<10]))
        usleep(20_000)
        try c.sendRaw(Array(request[10..<25]))
        usleep(20_000)
        try c.sendRaw(Array(request[25...]))
        #expect(try c.next() == ["jsonrpc": "2.0", "id": 1, "result": "pong"])

        var three: [UInt8] = []
        for id in 2...4 { three += line(#"{"jsonrpc":"2.0","method":"ping","id":\#(id)}"#) }
        try c.sendRaw(three)
        for id in 2...4 { #expect(try c.next()["id"] == .int(Int64(id))) }
    }

    @Test func crlfAndBlankLinesAreTolerated() throws {
        let t = try TestServer()
        defer { t.stop() }
        let c = try t.client()
        try c.sendRaw(Array("\n\r\n   \n{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":\"a\"}\r\n".utf8))
        #expect(try c.next() == ["jsonrpc": "2.0", "id": "a", "result": "pong"])
    }

    // MARK: Errors

    @Test func everyStandardErrorCode() throws {
        struct NeedsIOVA: Decodable { var iova: UInt64 }
        let t = try TestServer { r in
            r.register("typed") { call in
                let p = try call.decodeParams(NeedsIOVA.self)
                return RPCResult(.unsigned(p.iova))
            }
            r.register("crash") { _ in throw SomeFailure() }
            r.register("busy") { _ in throw RPCError.domain("iommufdd.Busy", "device is leased", code: -32003, hint: "release it first") }
            r.register("kernel") { _ in throw IommuError(.EBUSY, "IOMMU_IOAS_MAP", detail: "iova 0x1000") }
        }
        defer { t.stop() }
        let c = try t.client()

        try c.sendRaw(line(#"{"jsonrpc":"2.0","method":"ping","id":1"#))
        var r = try c.next()
        #expect(r["error"]?["code"] == -32700)
        #expect(r["id"] == JSONValue.null)

        for bad in [#"{"method":"ping","id":2}"#, #"{"jsonrpc":"2.0","method":5,"id":2}"#,
                    #"{"jsonrpc":"2.0","method":"ping","params":"x","id":2}"#, #"42"#] {
            try c.sendRaw(line(bad))
            r = try c.next()
            #expect(r["error"]?["code"] == -32600, "\(bad)")
        }
        try c.sendRaw(line(#"{"jsonrpc":"2.0","method":"ping","id":{"no":1}}"#))
        r = try c.next()
        #expect(r["error"]?["code"] == -32600)
        #expect(r["id"] == JSONValue.null)

        let notFound = #expect(throws: RPCError.self) { try c.call("nope") }
        #expect(notFound?.code == -32601)
        #expect(notFound?.data?["method"] == "nope")

        let invalid = #expect(throws: RPCError.self) { try c.call("typed", params: ["iova": "zero"]) }
        #expect(invalid?.code == -32602)
        #expect(invalid?.message.contains("params.iova") == true)
        let missing = #expect(throws: RPCError.self) { try c.call("typed", params: [:]) }
        #expect(missing?.code == -32602)
        #expect(try c.call("typed", params: JSONValue.object(["iova": .uint(UInt64.max)])).result == .uint(UInt64.max))

        #expect((#expect(throws: RPCError.self) { try c.call("crash") })?.code == -32603)

        let busy = #expect(throws: RPCError.self) { try c.call("busy") }
        #expect(busy?.code == -32003)
        #expect(busy?.name == "iommufdd.Busy")
        #expect(busy?.data?["hint"] == "release it first")

        let kernel = #expect(throws: RPCError.self) { try c.call("kernel") }
        #expect(kernel?.code == -32006)
        #expect(kernel?.name == "iommufdd.Kernel")
        #expect(kernel?.data?["errno"] == "EBUSY")
        #expect(kernel?.data?["ioctl"] == "IOMMU_IOAS_MAP")

        // The connection survived all of it.
        #expect(try c.call("ping").result == "pong")
        let m = t.server.metrics
        #expect(m.errorsByCode[-32700] == 1)
        #expect(m.errorsByCode[-32600] == 5)
        #expect(m.errorsByCode[-32601] == 1)
        #expect(m.errorsByCode[-32602] == 2)
    }

    @Test func notificationsGetNoAnswerEvenOnError() throws {
        let hits = Locked(0)
        let t = try TestServer { r in r.register("count") { _ in hits.withLock { $0 += 1 }; return RPCResult() } }
        defer { t.stop() }
        let c = try t.client()
        try c.notify("count")
        try c.notify("no.such.method")
        try c.sendRaw(line(#"{"jsonrpc":"2.0","method":"ping","id":7}"#))
        #expect(try c.next()["id"] == 7)  // the first line back is the ping's
        #expect(hits.withLock { $0 } == 1)
    }

    // MARK: Batches

    @Test func mixedBatch() throws {
        let t = try TestServer()
        defer { t.stop() }
        let c = try t.client()
        try c.sendRaw(line(#"[{"jsonrpc":"2.0","method":"ping","id":1},{"jsonrpc":"2.0","method":"ping"},{"foo":"boo"},{"jsonrpc":"2.0","method":"nope","id":"5"},1]"#))
        guard case .array(let answers) = try c.next() else { Issue.record("not an array"); return }
        #expect(answers.count == 4)
        #expect(answers[0] == ["jsonrpc": "2.0", "id": 1, "result": "pong"])
        #expect(answers[1]["error"]?["code"] == -32600)
        #expect(answers[1]["id"] == JSONValue.null)
        #expect(answers[2]["error"]?["code"] == -32601)
        #expect(answers[2]["id"] == "5")
        #expect(answers[3]["error"]?["code"] == -32600)

        let viaClient = try c.batch([RPCRequest(method: "ping", id: 10), RPCRequest(method: "ping", id: "x")])
        #expect(viaClient[RPCID(10)] == .success(JSONValue.string("pong")))
        #expect(viaClient[RPCID("x")] == .success(JSONValue.string("pong")))
    }

    @Test func emptyBatchIsOneError() throws {
        let t = try TestServer()
        defer { t.stop() }
        let c = try t.client()
        try c.sendRaw(line("[]"))
        let r = try c.next()
        #expect(r["error"]?["code"] == -32600)
        #expect(r["id"] == JSONValue.null)
        #expect((#expect(throws: RPCError.self) { try c.batch([]) })?.code == -32600)
    }

    @Test func batchOfNotificationsGetsNoReply() throws {
        let t = try TestServer()
        defer { t.stop() }
        let c = try t.client()
        try c.sendRaw(line(#"[{"jsonrpc":"2.0","method":"ping"},{"jsonrpc":"2.0","method":"nope"}]"#))
        try c.sendRaw(line(#"{"jsonrpc":"2.0","method":"ping","id":3}"#))
        #expect(try c.next() == ["jsonrpc": "2.0", "id": 3, "result": "pong"])
    }

    // MARK: Ordering and concurrency

    @Test func repliesInOrderBehindASlowHandler() throws {
        let t = try TestServer { r in
            r.register("slow") { _ in usleep(150_000); return RPCResult("slow") }
        }
        defer { t.stop() }
        let c = try t.client()
        try c.sendRaw(line(#"{"jsonrpc":"2.0","method":"slow","id":1}"#) + line(#"{"jsonrpc":"2.0","method":"ping","id":2}"#)
                      + line(#"{"jsonrpc":"2.0","method":"slow","id":3}"#))
        #expect(try c.next()["id"] == 1)
        #expect(try c.next()["id"] == 2)
        #expect(try c.next()["id"] == 3)
    }

    @Test func connectionsAreServedConcurrently() throws {
        let gate = DispatchSemaphore(value: 0)
        let t = try TestServer { r in
            // Blocks until another connection opens the gate: deadlocks if connections were serial.
            r.register("wait") { _ in
                gate.wait(timeout: .now() + 10) == .success ? RPCResult("opened") : RPCResult("timed out")
            }
            r.register("open") { _ in gate.signal(); return RPCResult() }
        }
        defer { t.stop() }
        let waiter = try t.client()
        try waiter.sendRaw(line(#"{"jsonrpc":"2.0","method":"wait","id":1}"#))
        let opener = try t.client()
        _ = try opener.call("open")
        #expect(try waiter.next()["result"] == "opened")
    }

    @Test func manyClientsInParallel() throws {
        let t = try TestServer { r in
            r.register("echo") { call in RPCResult(call.params ?? .null) }
        }
        defer { t.stop() }
        let failures = Locked(0)
        let path = t.path
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            do {
                let c = try RPCClient(path: path)
                for j in 0..<200 {
                    let r = try c.call("echo", params: ["client": .int(Int64(i)), "n": .int(Int64(j))]).result
                    if r != ["client": .int(Int64(i)), "n": .int(Int64(j))] { failures.withLock { $0 += 1 } }
                }
            } catch {
                failures.withLock { $0 += 1 }
            }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(t.server.metrics.requests == 16 * 200)
    }

    @Test func busyConnectionsAreNeverTakenForIdle() throws {
        // The sweeper runs every 10 ms here; activity newer than its clock reading once
        // wrapped around and closed busy connections as idle.
        var limits = RPCLimits()
        limits.idleTimeout = .seconds(60)
        limits.partialMessageTimeout = .milliseconds(40)
        let t = try TestServer(limits: limits)
        defer { t.stop() }
        let failures = Locked(0)
        let path = t.path
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            do {
                let c = try RPCClient(path: path)
                for _ in 0..<1500 { _ = try c.call("ping") }
            } catch {
                failures.withLock { $0 += 1 }
            }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(t.server.metrics.disconnects["idle_timeout"] == nil)
        #expect(t.server.metrics.disconnects["partial_timeout"] == nil)
    }

    // MARK: File descriptors

    @Test func fdsTravelBothWays() throws {
        let t = try TestServer { r in
            r.register("read") { call in
                let fd = try call.fds.take(reference: call.params?["file"], field: "file")
                defer { close(fd) }
                return RPCResult(.string(readContent(fd)))
            }
            r.register("make") { call in
                RPCResult(["file": ["fd": 0]], fds: [fileWithContent(call.params?["text"]?.stringValue ?? "")])
            }
            r.register("ignore") { _ in RPCResult() }
        }
        defer { t.stop() }
        let before = openFileDescriptorCount()
        do {
            let c = try t.client()
            let mine = fileWithContent("guest memory")
            #expect(try c.call("read", params: ["file": ["fd": 0]], fds: [mine]).result == "guest memory")
            close(mine)

            let (result, fds) = try c.call("make", params: ["text": "dirty bitmap"])
            #expect(result == ["file": ["fd": 0]])
            #expect(fds.count == 1)
            if let fd = fds.first {
                #expect(readContent(fd) == "dirty bitmap")
                close(fd)
            }

            // Fds the handler does not take are closed by the server.
            let a = fileWithContent("a"), b = fileWithContent("b")
            _ = try c.call("ignore", fds: [a, b])
            close(a); close(b)

            // A wrong index is invalid params, not a crash.
            let e = #expect(throws: RPCError.self) { try c.call("read", params: ["file": ["fd": 3]]) }
            #expect(e?.code == -32602)

            // A batch member cannot hand fds out; they are closed.
            let answers = try c.batch([RPCRequest(method: "make", id: 1), RPCRequest(method: "ping", id: 2)])
            let first: Result<JSONValue, RPCError>? = answers[RPCID(1)]
            if case .failure(let err)? = first { #expect(err.name == RPCError.Name.fileDescriptorsInBatch) } else { Issue.record("expected an error") }
            #expect(answers[RPCID(2)] == .success(JSONValue.string("pong")))
        }
        #expect(eventually { openFileDescriptorCount() <= before }, "fds leaked: \(openFileDescriptorCount()) open, \(before) before")
    }

    @Test func tooManyFdsAreAllClosed() throws {
        var limits = RPCLimits()
        limits.maxFileDescriptorsPerMessage = 2
        let called = Locked(false)
        let t = try TestServer(limits: limits) { r in r.register("take") { _ in called.withLock { $0 = true }; return RPCResult() } }
        defer { t.stop() }
        let before = openFileDescriptorCount()
        do {
            let c = try t.client()
            let fds = (0..<5).map { _ in fileWithContent("x") }
            let e = #expect(throws: RPCError.self) { try c.call("take", fds: fds) }
            #expect(e?.code == -32600)
            #expect(e?.name == RPCError.Name.tooManyFileDescriptors)
            #expect(!called.withLock { $0 })
            for fd in fds { close(fd) }
            // Within the limit it works, on the same connection.
            let two = (0..<2).map { _ in fileWithContent("y") }
            _ = try c.call("take", fds: two)
            for fd in two { close(fd) }
            #expect(called.withLock { $0 })
        }
        #expect(eventually { openFileDescriptorCount() <= before }, "fds leaked: \(openFileDescriptorCount()) open, \(before) before")
    }

    // MARK: Hostile clients

    @Test func oversizedLineClosesTheConnection() throws {
        var limits = RPCLimits()
        limits.maxMessageBytes = 4096
        let t = try TestServer(limits: limits)
        defer { t.stop() }
        let c = try t.client()
        // Never ends with a newline: the server must not buffer it all.
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 64 << 10)
        _ = try? c.sendRaw(Array(#"{"jsonrpc":"2.0","method":"ping","params":[""#.utf8) + chunk)
        let r = try c.next()
        #expect(r["error"]?["code"] == -32600)
        #expect(r["error"]?["data"]?["name"] == .string(RPCError.Name.messageTooLarge))
        #expect(c.isClosedByServer())
        // Everyone else is still served.
        #expect(try t.client().call("ping").result == "pong")
        #expect(t.server.metrics.disconnects["message_too_large"] == 1)
    }

    @Test func halfSentMessageTimesOut() throws {
        var limits = RPCLimits()
        limits.partialMessageTimeout = .milliseconds(200)
        let t = try TestServer(limits: limits)
        defer { t.stop() }
        let c = try t.client()
        try c.sendRaw(Array(#"{"jsonrpc":"2.0","meth"#.utf8))
        let r = try c.next()
        #expect(r["error"]?["code"] == -32600)
        #expect(c.isClosedByServer())
        #expect(t.server.metrics.disconnects["partial_timeout"] == 1)
        #expect(try t.client().call("ping").result == "pong")
    }

    @Test func idleConnectionsAreClosedUnlessExempt() throws {
        var limits = RPCLimits()
        limits.idleTimeout = .milliseconds(200)
        let t = try TestServer(limits: limits) { r in
            r.register("subscribe") { call in call.connection.exemptFromIdleTimeout = true; return RPCResult() }
        }
        defer { t.stop() }
        let idle = try t.client()
        let subscriber = try t.client()
        _ = try idle.call("ping")
        _ = try subscriber.call("subscribe")
        #expect(idle.isClosedByServer())
        #expect(t.server.metrics.disconnects["idle_timeout"] == 1)
        // Several idle periods later the subscriber is still there.
        usleep(600_000)
        #expect(try subscriber.call("ping").result == "pong")
    }

    @Test func clientThatNeverReadsIsDisconnected() throws {
        var limits = RPCLimits()
        limits.maxOutputBytes = 256 << 10
        let big = JSONValue.string(String(repeating: "x", count: 32 << 10))
        let t = try TestServer(limits: limits) { r in r.register("big") { _ in RPCResult(big) } }
        defer { t.stop() }
        let before = openFileDescriptorCount()
        do {
            let hog = try t.client()
            let request = line(#"{"jsonrpc":"2.0","method":"big","id":1}"#)
            // Ask for far more than the socket buffers plus the output limit hold; never read.
            for _ in 0..<2000 {
                do { try hog.sendRaw(request) } catch { break }
            }
            #expect(eventually { t.server.metrics.disconnects["output_overflow"] == 1 })
            // The server stays responsive.
            #expect(try t.client().call("ping").result == "pong")
        }
        #expect(eventually { openFileDescriptorCount() <= before }, "fds leaked: \(openFileDescriptorCount()) open, \(before) before")
    }

    @Test func clientLimit() throws {
        var limits = RPCLimits()
        limits.maxClients = 2
        let t = try TestServer(limits: limits)
        defer { t.stop() }
        let a = try t.client(), b = try t.client()
        _ = try a.call("ping")
        _ = try b.call("ping")
        let third = try t.client()
        let e = #expect(throws: RPCError.self) { try third.call("ping") }
        #expect(e?.name == RPCError.Name.tooManyClients)
        #expect(t.server.metrics.connectionsRejectedLimit == 1)
        a.close()
        #expect(eventually { t.server.metrics.connectionsOpen == 1 })
        #expect(try t.client().call("ping").result == "pong")
    }

    @Test func acceptHookRefusesPeers() throws {
        let t = try TestServer(accept: { peer in
            .domain("iommufdd.PermissionDenied", "uid \(peer.uid) is not listed in the configuration")
        })
        defer { t.stop() }
        let c = try t.client()
        let e = #expect(throws: RPCError.self) { try c.call("ping") }
        #expect(e?.name == "iommufdd.PermissionDenied")
        #expect(e?.message.contains("uid \(getuid())") == true)
        #expect(t.server.metrics.connectionsRefused == 1)
        #expect(t.server.metrics.connectionsAccepted == 0)
    }

    @Test func garbageFloodKeepsTheServerAlive() throws {
        let t = try TestServer()
        defer { t.stop() }
        let c = try t.client()
        var state: UInt64 = 12345
        var sent = 0
        for _ in 0..<300 {
            var bytes: [UInt8] = []
            for _ in 0..<Int(state % 40) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let b = UInt8(truncatingIfNeeded: state >> 33)
                if b != 0x0A && b != 0x0D && b != 0x20 && b != 0x09 { bytes.append(b) }
            }
            if bytes.isEmpty { bytes = [UInt8(ascii: "}")] }
            try c.sendRaw(bytes + [0x0A])
            sent += 1
        }
        for _ in 0..<sent {
            let r = try c.next()
            let code = r["error"]?["code"]
            #expect(code == -32700 || code == -32600 || code == -32601)
        }
        #expect(try c.call("ping").result == "pong")
    }

    // MARK: Server-to-client notifications

    @Test func pushedNotificationsInterleaveWithResponses() throws {
        let subscriber = Locked<RPCConnection?>(nil)
        let closed = Locked(false)
        let t = try TestServer(configure: { r in
            r.register("events.subscribe") { call in
                subscriber.withLock { $0 = call.connection }
                return RPCResult(true)
            }
        }, onClose: { _ in closed.withLock { $0 = true } })
        defer { t.stop() }
        let c = try t.client()
        _ = try c.call("events.subscribe")
        let connection = try #require(subscriber.withLock { $0 })
        #expect(connection.peer.uid == getuid())
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            for j in 0..<50 { connection.notify(method: "ioas.created", params: ["n": .int(Int64(i * 100 + j))]) }
        }
        connection.notify(method: "dirty.bitmap", params: ["file": ["fd": 0]], fds: [fileWithContent("bits")])
        #expect(try c.call("ping").result == "pong")
        var seen = Set<Int64>()
        var bitmap: RPCNotification?
        while let n = try c.nextNotification(timeout: .seconds(5)) {
            if n.method == "dirty.bitmap" { bitmap = n; break }
            if let v = n.params?["n"]?.int64Value { seen.insert(v) }
        }
        #expect(seen.count == 200)
        let fd = try #require(bitmap?.fds.first)
        #expect(readContent(fd) == "bits")
        close(fd)
        c.close()
        #expect(eventually { closed.withLock { $0 } })
        #expect(!connection.isOpen)
        #expect(!connection.notify(method: "late"))
        subscriber.withLock { $0 = nil }  // as the daemon does in connectionClosed: no cycle left
    }

    // MARK: Lifecycle

    @Test func gracefulShutdownFinishesInFlightRequests() throws {
        let started = DispatchSemaphore(value: 0)
        let t = try TestServer { r in
            r.register("slow") { _ in started.signal(); usleep(200_000); return RPCResult("done") }
        }
        let c = try t.client()
        try c.sendRaw(line(#"{"jsonrpc":"2.0","method":"slow","id":1}"#))
        #expect(started.wait(timeout: .now() + 10) == .success)
        t.stop()
        #expect(try c.next()["result"] == "done")
        #expect(c.isClosedByServer())
        #expect(access(t.path, F_OK) != 0)
        let e = #expect(throws: RPCTransportError.self) { try RPCClient(path: t.path) }
        #expect(e?.kind == .noDaemon)
    }

    @Test func socketFileHandling() throws {
        let dir = makeTemporaryDirectory()
        defer { rmdir(dir) }
        let path = dir + "/s.sock"
        // A stale socket (bound, nobody listening) is replaced.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        _ = SocketIO.withAddress(path) { bind(stale, $0, $1) }
        close(stale)
        let refused = #expect(throws: RPCTransportError.self) { try RPCClient(path: path) }
        #expect(refused?.kind == .connectionRefused)
        let router = RPCRouter()
        let server = try RPCServer(listen: .path(path, mode: 0o600), limits: RPCLimits(), logger: quietLogger, handler: router)
        server.start()
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        // A live one is not stolen.
        let second = #expect(throws: RPCTransportError.self) {
            try RPCServer(listen: .path(path), limits: RPCLimits(), logger: quietLogger, handler: router)
        }
        #expect(second?.kind == .addressInUse)
        server.shutdown()
        // A regular file is never removed.
        let fd = open(path, O_CREAT | O_WRONLY, 0o600)
        close(fd)
        let notSocket = #expect(throws: RPCTransportError.self) {
            try RPCServer(listen: .path(path), limits: RPCLimits(), logger: quietLogger, handler: router)
        }
        #expect(notSocket?.errno == .EEXIST)
        unlink(path)
    }

    @Test func adoptedListeningSocket() throws {
        let dir = makeTemporaryDirectory()
        defer { rmdir(dir) }
        let path = dir + "/activated.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        _ = SocketIO.withAddress(path) { bind(fd, $0, $1) }
        // Not listening yet: refused.
        #expect(throws: RPCTransportError.self) {
            try RPCServer(listen: .adopted(fd), limits: RPCLimits(), logger: quietLogger, handler: RPCRouter())
        }
        #expect(listen(fd, 16) == 0)
        let router = RPCRouter()
        router.register("ping") { _ in RPCResult("pong") }
        let server = try RPCServer(listen: .adopted(fd), limits: RPCLimits(), logger: quietLogger, handler: router)
        #expect(server.path == nil)
        server.start()
        #expect(try RPCClient(path: path).call("ping").result == "pong")
        server.shutdown()
        // The server does not unlink a path it did not create.
        #expect(access(path, F_OK) == 0)
        unlink(path)
    }

    @Test func droppedServerCleansUp() throws {
        let before = openFileDescriptorCount()
        let dir = makeTemporaryDirectory()
        defer { rmdir(dir) }
        let path = dir + "/dropped.sock"
        do {
            let started = try RPCServer(listen: .path(path), limits: RPCLimits(), logger: quietLogger, handler: RPCRouter())
            started.start()
            #expect(access(path, F_OK) == 0)
        }
        #expect(access(path, F_OK) != 0)
        do {
            _ = try RPCServer(listen: .path(path), limits: RPCLimits(), logger: quietLogger, handler: RPCRouter())
        }
        #expect(access(path, F_OK) != 0)
        #expect(eventually { openFileDescriptorCount() <= before }, "fds leaked: \(openFileDescriptorCount()) open, \(before) before")
    }

    @Test func clientErrorsSayWhatToDo() {
        let e = #expect(throws: RPCTransportError.self) { try RPCClient(path: "/nonexistent-dir/iommufdd.sock") }
        #expect(e?.kind == .noDaemon)
        #expect(e?.message == "no daemon at /nonexistent-dir/iommufdd.sock: is iommufdd running? (connect: ENOENT)")
        let denied = RPCTransportError.connectFailed(.EACCES, path: "/run/iommufdd/control.sock")
        #expect(denied.kind == .permissionDenied)
        #expect(denied.message.contains("permission denied on /run/iommufdd/control.sock"))
        let tooLong = #expect(throws: RPCTransportError.self) { try RPCClient(path: "/" + String(repeating: "x", count: 200)) }
        #expect(tooLong?.errno == .ENAMETOOLONG)
    }

    @Test func noFdLeaksAcrossAWholeSession() throws {
        let before = openFileDescriptorCount()
        do {
            var limits = RPCLimits()
            limits.maxFileDescriptorsPerMessage = 1
            let t = try TestServer(limits: limits) { r in
                r.register("make") { _ in RPCResult(["fd": 0], fds: [fileWithContent("z")]) }
            }
            for _ in 0..<5 {
                let c = try t.client()
                let f = fileWithContent("q")
                _ = try? c.call("ping", fds: [f])           // fd not taken: server closes it
                _ = try? c.call("ping", fds: [f, f])        // too many
                if let (_, fds) = try? c.call("make") { fds.forEach { close($0) } }
                try? c.sendRaw(Array("{\"half".utf8), fds: [f])  // vanishes mid-message with an fd
                close(f)
                c.close()
            }
            #expect(eventually { t.server.metrics.connectionsOpen == 0 })
            t.stop()
        }
        #expect(eventually { openFileDescriptorCount() <= before }, "fds leaked: \(openFileDescriptorCount()) open, \(before) before")
    }
}
