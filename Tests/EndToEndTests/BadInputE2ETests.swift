import Dispatch
import Foundation
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Hostile and broken clients against the real daemon: each gets a clear error or a closed
/// connection, and a bystander connected before (with an owner and a mapping) is still served
/// afterwards, its state intact.
@Suite("End to end: bad input")
final class BadInputE2ETests {
    let daemon: DaemonProcess
    let bystander: RPCClient
    let bystanderIOAS: Int64

    init() throws {
        daemon = try DaemonProcess(config: TestConfig(limits: "partial_message_timeout_sec = 1\nmax_clients = 600"))
        bystander = try daemon.client()
        try bystander.call("owner.create", ["name": "bystander"])
        bystanderIOAS = try #require(try bystander.call("ioas.create", ["owner": "bystander"])["ioas"]?.int)
        let ram = try makeMemfd(bytes: 64 << 10)
        defer { close(ram) }
        try bystander.call("ioas.map", ["ioas": .int(bystanderIOAS), "fd": ["fd": 0], "offset": 0, "length": 0x10000], fds: [ram])
    }

    deinit { daemon.expectCleanStop() }

    /// The daemon still serves the bystander, with its mapping, and new clients.
    func expectOthersServed(sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(daemon.isRunning, "iommufdd died: \(daemon.log)", sourceLocation: sourceLocation)
        let info = try bystander.call("ioas.info", ["ioas": .int(bystanderIOAS)])
        #expect(info["mapping_count"] == 1 && info["pinned_bytes"] == 0x10000, sourceLocation: sourceLocation)
        #expect(try daemon.client().call("daemon.ping") == "pong", sourceLocation: sourceLocation)
    }

    @Test func garbage() throws {
        let c = try daemon.client()
        var bytes: [UInt8] = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        bytes.removeAll { $0 == 10 }
        bytes.append(10)
        try c.sendRaw(bytes)
        let reply = try c.nextResponse()
        #expect(reply.errorCode == -32700 && reply["id"] == .null, "\(reply)")
        #expect(try c.call("daemon.ping") == "pong", "a parse error does not end the connection")
        try expectOthersServed()
    }

    @Test func truncatedJSON() throws {
        let c = try daemon.client()
        let reply = try c.raw(#"{"jsonrpc":"2.0","method":"ioas.create","params":{"owner":"x""# + "\n")
        #expect(reply.errorCode == -32700, "\(reply)")
        // Truncated and then the client hangs up: nothing happens to anyone else.
        let d = try daemon.client()
        try d.sendRaw(Array(#"{"jsonrpc":"2.0","method":"owner.release","params":{"name":"bystan"#.utf8))
        d.close()
        try expectOthersServed()
    }

    @Test func hundredMegabyteLine() throws {
        let c = try daemon.client()
        // Sent from another thread: the daemon stops reading at its limit and closes, so the
        // writer sees EPIPE/ECONNRESET part way, which is the point.
        let fd = c.fileDescriptor
        let sender = DispatchQueue(label: "big-line")
        let sent = DispatchSemaphore(value: 0)
        sender.async {
            let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 20)
            var prefix = Array(#"{"jsonrpc":"2.0","method":"daemon.ping","params":{"x":""#.utf8)
            _ = prefix.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            for _ in 0..<100 {
                let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n < 0 { break }
            }
            prefix = Array(#""}}"#.utf8) + [10]
            _ = prefix.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            sent.signal()
        }
        let reply = try c.nextResponse(timeout: 120)
        #expect(reply.errorCode == -32600 && reply.errorName == "iommufdd.MessageTooLarge", "\(reply)")
        #expect(c.isClosedByDaemon())
        #expect(sent.wait(timeout: .now() + 120) == .success)
        try expectOthersServed()
    }

    @Test(arguments: [
        #"{"jsonrpc":"2.0","method":"ioas.map","params":{"ioas":"1","fd":{"fd":0},"offset":0,"length":4096},"id":1}"#,
        #"{"jsonrpc":"2.0","method":"ioas.map","params":{"ioas":1,"fd":0,"offset":0,"length":4096},"id":1}"#,
        #"{"jsonrpc":"2.0","method":"ioas.map","params":{"ioas":1,"fd":{"fd":0},"offset":-1,"length":4096},"id":1}"#,
        #"{"jsonrpc":"2.0","method":"ioas.map","params":{"ioas":1.5,"fd":{"fd":0},"offset":0,"length":4096},"id":1}"#,
        #"{"jsonrpc":"2.0","method":"ioas.map","params":{"ioas":1,"fd":{"fd":0},"offset":0,"length":18446744073709551616},"id":1}"#,
        #"{"jsonrpc":"2.0","method":"owner.create","params":{"name":["vm"]},"id":1}"#,
        #"{"jsonrpc":"2.0","method":"owner.create","params":{"name":null},"id":1}"#,
        #"{"jsonrpc":"2.0","method":"device.attach","params":{"owner":"o","device":7,"ioas":1},"id":1}"#,
        #"{"jsonrpc":"2.0","method":"dirty.read","params":{"ioas":1,"iova":true,"length":4096},"id":1}"#,
    ])
    func wrongTypes(line: String) throws {
        let c = try daemon.client()
        let reply = try c.raw(line + "\n")
        #expect(reply.errorCode == -32602 && reply["id"] == 1, "\(line) → \(reply)")
        try expectOthersServed()
    }

    @Test func unknownFDIndex() throws {
        let c = try daemon.client()
        let ram = try makeMemfd(bytes: 4096)
        defer { close(ram) }
        for index: Int64 in [1, -1, 1 << 40] {
            let e = try c.error("ioas.map", ["ioas": .int(bystanderIOAS), "fd": ["fd": .int(index)], "offset": 0, "length": 4096], fds: [ram])
            #expect(e.code == -32602, "fd index \(index): \(e)")
        }
        try expectOthersServed()
    }

    @Test func halfAMessageThenStall() throws {
        let c = try daemon.client()
        try c.sendRaw(Array(#"{"jsonrpc":"2.0","method":"daemon.ping","#.utf8))
        // partial_message_timeout_sec = 1: the daemon closes the stalled connection. Meanwhile
        // everyone else is served.
        try expectOthersServed()
        #expect(c.isClosedByDaemon(timeout: 60))
        try expectOthersServed()
    }

    @Test func fiveHundredClientsAtOnce() throws {
        let count = 500
        let errors = Locked<[String]>([])
        let group = DispatchGroup()
        let queue = DispatchQueue(label: "clients", attributes: .concurrent)
        let start = DispatchSemaphore(value: 0)
        // Connect all 500 first (each stays open), then each calls at once.
        var clients: [RPCClient] = []
        for _ in 0..<count { clients.append(try daemon.client()) }
        let shared = Locked(clients)
        for i in 0..<count {
            group.enter()
            queue.async {
                defer { group.leave() }
                start.wait()
                let c = shared.withLock { $0[i] }
                do {
                    let pong = try c.call("daemon.ping")
                    let me = try c.call("owner.list")
                    if pong != "pong" || me["owners"] == nil { errors.withLock { $0.append("client \(i): \(pong) \(me)") } }
                } catch {
                    errors.withLock { $0.append("client \(i): \(error)") }
                }
            }
        }
        for _ in 0..<count { start.signal() }
        #expect(group.wait(timeout: .now() + 180) == .success, "500 clients did not finish within 3 minutes")
        #expect(errors.withLock { $0 } == [])
        let info = try bystander.call("daemon.info")
        #expect((info["connections"]?.int ?? 0) >= Int64(count), "all were open at once: \(info["connections"] ?? .null)")
        shared.withLock { $0.forEach { $0.close() } }
        try expectOthersServed()
    }

    @Test func clientLimitRefusesTheExtraOneClearly() throws {
        let small = try DaemonProcess(config: TestConfig(limits: "max_clients = 3"))
        // The start-up probe's connection may still count until the daemon sees it closed:
        // take the three slots as they come free.
        var held: [RPCClient] = []
        let deadline = Date().addingTimeInterval(60)
        while held.count < 3, Date() < deadline {
            let c = try small.client()
            if (try? c.call("daemon.ping")) == "pong" { held.append(c) } else { usleep(50_000) }
        }
        #expect(held.count == 3)
        let extra = try small.client()
        let e = try extra.error("daemon.ping")
        #expect(e.name == "iommufdd.TooManyClients", "\(e)")
        held[0].close()
        // A slot is free again once the daemon has seen the close.
        var served = false
        for _ in 0..<200 where !served {
            if let c = try? small.client(), (try? c.call("daemon.ping")) == "pong" { served = true } else { usleep(50_000) }
        }
        #expect(served)
        #expect(small.stop() == 0, "\(small.log)")
    }
}

/// A value behind a lock, for the concurrent test above.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
