import Dispatch
import Foundation
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

// Hostile clients against the real iommufdd binary. After each attack the daemon must still
// answer a well-behaved client (within a generous 5 s: liveness, not speed), hold exactly the
// fds it held before (/proc/PID/fd, without a file its libraries open by path for a moment:
// DaemonUnderTest.isTransientLookup), and have lost no object (daemon.info counts, ioas.list).

/// The state a daemon must come back to after an attack.
private struct Baseline {
    var fds: Int
    var fdTable: [Int: String]
    var counts: JSONValue
    var ioas: JSONValue
}

/// A daemon with one owner holding an IOAS, an attached device and a mapping, and a
/// well-behaved admin connection opened before any attack.
private final class Victim {
    let daemon: DaemonUnderTest
    let client: RPCClient

    init(limits: String = "") throws {
        daemon = try DaemonUnderTest(config: DaemonUnderTest.config(limits: limits))
        client = try daemon.connect()
        try client.value("owner.create", ["name": "victim"])
        let ioas = try client.value("ioas.create", ["owner": "victim"]).id("ioas")
        try client.value("device.attach", ["owner": "victim", "device": "a0", "ioas": .id(ioas)])
        let memfd = try makeMemfd(bytes: 1 << 16)
        defer { close(memfd) }
        try client.value("ioas.map", ["ioas": .id(ioas), "fd": ["fd": 0], "offset": 0, "length": .int(1 << 16)], fds: [memfd])
    }

    func baseline() throws -> Baseline {
        // The daemon closes a connection when it reads the peer's EOF, asynchronously: the
        // readiness probe's connection (DaemonUnderTest's daemon.ping) may still be open here
        // under load, and an fd count taken now would then be one too high. Wait until the
        // victim's own connection is the only one.
        let deadline = Date().addingTimeInterval(10)
        while (try metric("iommufdd_connections_open") ?? 0) > 1 && Date() < deadline { usleep(20_000) }
        let info = try client.value("daemon.info")
        let table = daemon.countedFDs()
        return Baseline(fds: table.count, fdTable: table, counts: info["counts"] ?? .null, ioas: try client.value("ioas.list"))
    }

    /// The well-behaved client is answered, and so is a new connection.
    func expectLive(_ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let old = Outcome.of { _ = try client.call("daemon.ping", timeout: .seconds(5)) }
        #expect(old == .ok, "\(context): the connection opened before did not get an answer: \(old)", sourceLocation: sourceLocation)
        let fresh = Outcome.of { _ = try daemon.connect().call("daemon.ping", timeout: .seconds(5)) }
        #expect(fresh == .ok, "\(context): a new connection did not get an answer: \(fresh)", sourceLocation: sourceLocation)
    }

    /// Waits (at most 10 s) for the daemon to close what the attack left, then compares.
    func expectRecovered(to base: Baseline, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let deadline = Date().addingTimeInterval(10)
        // Counted without what the daemon's libraries open by path for a moment
        // (DaemonUnderTest.isTransientLookup): a leak is a socket, pipe, anonymous inode or memfd.
        var table = daemon.countedFDs()
        while table.count != base.fds && Date() < deadline {
            usleep(20_000)
            table = daemon.countedFDs()
        }
        #expect(table.count == base.fds, "\(context): the daemon holds \(table.count) fds, \(base.fds) before: \(DaemonUnderTest.fdDifference(base.fdTable, table))", sourceLocation: sourceLocation)
        let info = try client.value("daemon.info")
        var counts = info["counts"] ?? .null
        var before = base.counts
        // Subscriptions come and go with connections; objects must not.
        if case .object(var o) = counts { o["subscribers"] = nil; counts = .object(o) }
        if case .object(var o) = before { o["subscribers"] = nil; before = .object(o) }
        #expect(counts == before, "\(context): object counts changed", sourceLocation: sourceLocation)
        #expect(try client.value("ioas.list") == base.ioas, "\(context): the IOAS list changed", sourceLocation: sourceLocation)
    }

    func metric(_ line: String) throws -> Int? {
        let text = try client.value("daemon.metrics")["text"]?.stringValue ?? ""
        for l in text.split(separator: "\n") where l.hasPrefix(line + " ") {
            return Int(l.dropFirst(line.count + 1))
        }
        return nil
    }

    /// Stops the daemon: it must exit cleanly (status 0; a sanitizer report makes it non-zero).
    /// The victim's owner is released first: objects still live at SIGTERM are freed by the
    /// process exit, and LeakSanitizer (in an ASan build of the daemon) would list them.
    func expectCleanStop(sourceLocation: SourceLocation = #_sourceLocation) {
        let released = Outcome.of { try client.value("owner.release", ["name": "victim"]) }
        #expect(released == .ok, "releasing the victim's owner: \(released)", sourceLocation: sourceLocation)
        let status = daemon.stop()
        #expect(status == 0, "iommufdd did not stop cleanly (status \(status)):\n\(daemon.finalLog)", sourceLocation: sourceLocation)
    }

    deinit { daemon.stop() }
}

/// A raw connection as root: bytes in, nothing read unless asked.
private func rawConnection(_ daemon: DaemonUnderTest, receiveBuffer: Int32? = nil) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw Errno.current }
    if var size = receiveBuffer {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { buffer in
        for (i, byte) in daemon.socketPath.utf8.prefix(buffer.count - 1).enumerated() { buffer[i] = byte }
    }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else {
        let e = Errno.current
        close(fd)
        throw e
    }
    return fd
}

/// Sends without blocking and without SIGPIPE. Returns the errno on failure.
private func sendNow(_ fd: Int32, _ bytes: [UInt8]) -> Errno? {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        if n < 0 {
            if errno == EINTR { continue }
            return Errno.current
        }
        offset += n
    }
    return nil
}

private func line(_ text: String) -> [UInt8] { Array((text + "\n").utf8) }

@Suite("Hostile clients against the real daemon", .serialized, .enabled(if: getuid() == 0, "needs root, like CI: the daemon's fds are read from /proc and its fd limit lowered"))
struct HostileClientTests {
    /// Asks for large answers and never reads them: the daemon queues at most
    /// max_output_buffer_bytes for it, then disconnects it.
    @Test func clientThatNeverReads() throws {
        let v = try Victim(limits: "max_output_buffer_bytes = 262144")
        defer { v.expectCleanStop() }
        let base = try v.baseline()
        let fd = try rawConnection(v.daemon, receiveBuffer: 4096)
        let request = line(#"{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}"#)
        var sent = 0
        var stoppedBy: Errno?
        // rpc.discover answers tens of KiB: 2,000 of them are far past the 256 KiB limit.
        for _ in 0..<2000 {
            if let e = sendNow(fd, request) {
                if e == .EAGAIN { usleep(1000); continue }
                stoppedBy = e
                break
            }
            sent += 1
        }
        // Either the sends already failed (EPIPE/ECONNRESET) or the daemon closes it shortly.
        var closed = stoppedBy == .EPIPE || stoppedBy == .ECONNRESET
        let deadline = Date().addingTimeInterval(10)
        while !closed && Date() < deadline {
            closed = (try v.metric(#"iommufdd_disconnects_total{reason="output_overflow"}"#) ?? 0) >= 1
            if !closed { usleep(20_000) }
        }
        #expect(closed, "the daemon kept a connection that reads nothing (sent \(sent) requests, last error \(String(describing: stoppedBy)))")
        #expect(try v.metric(#"iommufdd_disconnects_total{reason="output_overflow"}"#) == 1)
        v.expectLive("after a client that never reads")
        close(fd)
        try v.expectRecovered(to: base, "client that never reads")
    }

    /// Sends fds with complete requests, with half a request, and with too many per message,
    /// then vanishes without reading: every received fd is closed.
    @Test func clientThatSendsFDsAndVanishes() throws {
        let v = try Victim(limits: "max_fds_per_message = 4")
        defer { v.expectCleanStop() }
        let base = try v.baseline()
        let memfds = try (0..<8).map { _ in try makeMemfd(bytes: 4096) }
        defer { for fd in memfds { close(fd) } }
        for round in 0..<30 {
            let client = try v.daemon.connect()
            switch round % 3 {
            case 0:  // a whole request that takes an fd, answer never read
                try client.sendRaw(line(#"{"jsonrpc":"2.0","id":1,"method":"ioas.map","params":{"ioas":999,"fd":{"fd":0},"offset":0,"length":4096}}"#), fds: Array(memfds.prefix(3)))
            case 1:  // half a request with fds, then gone
                try client.sendRaw(Array(#"{"jsonrpc":"2.0","id":1,"method":"daemon.pi"#.utf8), fds: Array(memfds.prefix(4)))
            default:  // more fds than one message may carry
                try client.sendRaw(line(#"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"#), fds: memfds)
            }
            client.close()
        }
        v.expectLive("after clients that sent fds and vanished")
        try v.expectRecovered(to: base, "clients that sent fds and vanished")
        #expect((try v.metric("iommufdd_fds_received_total") ?? 0) >= 10 * 3 + 10 * 4)
    }

    /// Opens connections until the client limit: the ones past it are told TooManyClients and
    /// closed; the connections already open keep being served; closing them frees the slots.
    @Test func connectionsUntilTheLimit() throws {
        let limit = 16
        let v = try Victim(limits: "max_clients = \(limit)")
        defer { v.expectCleanStop() }
        let base = try v.baseline()
        var hogs: [RPCClient] = []
        var refusals = 0
        for _ in 0..<(limit + 10) {
            let c = try v.daemon.connect()
            switch Outcome.of({ _ = try c.call("daemon.ping", timeout: .seconds(5)) }) {
            case .ok: hogs.append(c)
            case .other(let text) where text.contains("TooManyClients"): refusals += 1
            case let other: Issue.record("unexpected answer at the client limit: \(other)")
            }
        }
        // The victim's own connection holds one slot.
        #expect(hogs.count == limit - 1)
        #expect(refusals == 11)
        let old = Outcome.of { _ = try v.client.call("daemon.ping", timeout: .seconds(5)) }
        #expect(old == .ok, "the connection opened before the flood was not served: \(old)")
        #expect(try v.metric("iommufdd_connections_rejected_total") == 11)
        for c in hogs { c.close() }
        hogs = []
        let deadline = Date().addingTimeInterval(10)
        while (try v.metric("iommufdd_connections_open") ?? 0) > 1 && Date() < deadline { usleep(20_000) }
        v.expectLive("after the client limit was reached")
        try v.expectRecovered(to: base, "connections until the limit")
    }

    /// 1,000 clients connected at once, each sending a mix of valid and invalid requests from
    /// 32 threads; every request gets its own right answer, and then they all leave.
    @Test func floodOfAThousandClients() throws {
        var limit = rlimit()
        getrlimit(RLIMIT_NOFILE_VALUE, &limit)
        if limit.rlim_cur < 4096 && limit.rlim_max > limit.rlim_cur {
            limit.rlim_cur = min(limit.rlim_max, 4096)
            setrlimit(RLIMIT_NOFILE_VALUE, &limit)
        }
        let v = try Victim(limits: "max_clients = 1100")
        defer { v.expectCleanStop() }
        let base = try v.baseline()
        let count = 1000
        let clients = Unchecked(try (0..<count).map { _ in try v.daemon.connect() })
        let failures = FailureLog()
        let group = DispatchGroup()
        let threads = 32
        for t in 0..<threads {
            DispatchQueue.global().async(group: group) {
                var i = t
                while i < count {
                    Self.mixedRequests(clients.value[i], index: i, failures: failures)
                    i += threads
                }
            }
        }
        // Bounded: every client does a fixed amount of work; a wedged daemon fails the wait.
        let finished = group.wait(timeout: .now() + 300) == .success
        #expect(finished, "the flood did not finish within 300 s")
        #expect(failures.all.isEmpty, "wrong answers during the flood: \(failures.all.prefix(10))")
        let old = Outcome.of { _ = try v.client.call("daemon.ping", timeout: .seconds(5)) }
        #expect(old == .ok)
        for c in clients.value { c.close() }
        v.expectLive("after the flood")
        try v.expectRecovered(to: base, "flood of 1,000 clients")
    }

    /// One client's share of the flood: valid and invalid requests, each answer checked.
    private static func mixedRequests(_ c: RPCClient, index: Int, failures: FailureLog) {
        func check(_ what: String, _ expected: Outcome, _ body: () throws -> Void) {
            let got = Outcome.of(body)
            if got != expected { failures.add("client \(index) \(what): expected \(expected), got \(got)") }
        }
        check("daemon.ping", .ok) { _ = try c.call("daemon.ping", timeout: .seconds(60)) }
        check("ioas.list", .ok) { _ = try c.call("ioas.list", timeout: .seconds(60)) }
        check("unknown method", .ok) {
            do {
                _ = try c.call("no.such.method", timeout: .seconds(60))
                throw DaemonTestError("an unknown method succeeded")
            } catch let e as RPCError where e.code == RPCError.Code.methodNotFound {}
        }
        check("bad params", .invalidParams) { _ = try c.call("ioas.info", params: ["ioas": "x"], timeout: .seconds(60)) }
        check("unknown IOAS", .notFound) { _ = try c.call("ioas.info", params: ["ioas": 4_000_000], timeout: .seconds(60)) }
        check("parse error", .ok) {
            try c.sendRaw(line(#"{"jsonrpc":"2.0","id":5,"method":"#))
            guard let m = try c.receiveMessage(timeout: .seconds(60)), m.json["error"]?["code"]?.int64Value == -32700 else {
                throw DaemonTestError("no -32700 for a broken line")
            }
        }
        check("batch", .ok) {
            try c.sendRaw(line(#"[{"jsonrpc":"2.0","id":1,"method":"daemon.ping"},{"jsonrpc":"2.0","method":"daemon.ping"},{"id":2},{"jsonrpc":"2.0","id":3,"method":"device.list"}]"#))
            guard let m = try c.receiveMessage(timeout: .seconds(60)), let answers = m.json.arrayValue, answers.count == 3 else {
                throw DaemonTestError("a batch of 3 requests and a notification did not get 3 answers")
            }
        }
    }

    /// The daemon's RLIMIT_NOFILE is lowered under its feet to just above what it holds: new
    /// connections and fds sent with requests fail to arrive; the daemon pauses accepting,
    /// refuses the request whose fds were lost, and keeps serving what it has. When the limit
    /// is back and the clients gone, it holds what it held before.
    @Test func fileDescriptorLimitHitMidRun() throws {
        let v = try Victim()
        defer { v.expectCleanStop() }
        let base = try v.baseline()
        let normal = try fileLimit(of: v.daemon.pid)
        try setFileLimit(of: v.daemon.pid, soft: base.fds + 4)
        defer { try? setFileLimit(of: v.daemon.pid, soft: normal) }

        // Connections until accept(2) fails with EMFILE (every fd number below the limit is in
        // use); the clients past it wait in the listen backlog.
        var extra: [Int32] = []
        for _ in 0..<20 { extra.append(try rawConnection(v.daemon)) }
        let deadline = Date().addingTimeInterval(10)
        while !v.daemon.log.contains("accept failed") && Date() < deadline { usleep(20_000) }
        #expect(v.daemon.log.contains("accept failed"), "the daemon never hit its fd limit:\n\(v.daemon.log)")

        // fds sent with a request on the old connection cannot be received either.
        let memfd = try makeMemfd(bytes: 4096)
        let lost = Outcome.of {
            _ = try v.client.call("ioas.map", params: ["ioas": 1, "fd": ["fd": 0], "offset": 0, "length": 4096], fds: [memfd], timeout: .seconds(5))
        }
        close(memfd)
        // Refused either way: the kernel could not install the fd (no slot free), or a slot freed
        // since (an fd of an earlier connection closing late) took the fd and keeping a
        // reference to it (dup) then hit the limit.
        let refused = lost.description.hasPrefix("iommufdd.FileDescriptorsLost:")
            || (lost.description.hasPrefix("iommufdd.IO:") && lost.description.contains("EMFILE"))
        #expect(refused, "a request whose fds could not be received or kept: \(lost)")
        let ping = Outcome.of { _ = try v.client.call("daemon.ping", timeout: .seconds(5)) }
        #expect(ping == .ok, "the daemon stopped serving an open connection at its fd limit: \(ping)")

        for fd in extra { close(fd) }
        try setFileLimit(of: v.daemon.pid, soft: normal)
        v.expectLive("after the fd limit was hit")
        try v.expectRecovered(to: base, "fd limit hit mid-run")
    }
}

/// Failures collected from many threads.
private final class FailureLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String] = []
    func add(_ s: String) { lock.withLock { entries.append(s) } }
    var all: [String] { lock.withLock { entries } }
}

private let RLIMIT_NOFILE_VALUE = Int32(RLIMIT_NOFILE.rawValue)

/// Sets another process's soft RLIMIT_NOFILE with util-linux `prlimit` (Swift's Glibc does not
/// export prlimit(2)); the hard limit stays, so the soft one can be raised back without
/// CAP_SYS_RESOURCE.
private func setFileLimit(of pid: Int32, soft n: Int) throws {
    _ = try prlimitCommand(["--pid", "\(pid)", "--nofile=\(n):"])
}

private func fileLimit(of pid: Int32) throws -> Int {
    let out = try prlimitCommand(["--pid", "\(pid)", "--nofile", "--raw", "--noheadings", "--output=SOFT"])
    guard let n = Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw DaemonTestError("prlimit printed \(out)") }
    return n
}

private func prlimitCommand(_ arguments: [String]) throws -> String {
    let (status, output, error) = try SpawnedProcess.run("/usr/bin/prlimit", arguments)
    guard status == 0 else { throw DaemonTestError("prlimit \(arguments.joined(separator: " ")) failed: \(output)\(error)") }
    return output
}

