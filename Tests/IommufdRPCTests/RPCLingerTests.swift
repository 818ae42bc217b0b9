import Dispatch
import Glibc
import IommufdCore
import Testing
@testable import IommufdRPC

/// The linger's spin (`RPCLingerGate`, `LingerState`): which clients it spins for, that
/// another handler still takes the thread back while it spins, and that requests are served
/// with it on and off. In RPCServerTests' serialized suite: these open sockets too, and that
/// suite counts the process's fds.
extension RPCServerTests {
    /// A connected stream socket pair (closed by the caller).
    private func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        try #require(rc == 0, "socketpair failed: errno \(errno)")
        return (fds[0], fds[1])
    }

    private static func send(_ fd: Int32) {
        var byte: UInt8 = 0x78
        _ = write(fd, &byte, 1)
    }

    private func send(_ fd: Int32) { Self.send(fd) }

    @Test func lingerSpinsOnlyForAClientThatCameBackWithinTheSpinWindow() throws {
        let (server, client) = try socketPair()
        defer { _ = close(server); _ = close(client) }
        // A 1 s spin in a 2 s window: a request already waiting is found while spinning.
        let gate = RPCLingerGate(microseconds: 2_000_000, spinMicroseconds: 1_000_000)
        gate.enter()
        defer { gate.leave() }
        var state = LingerState()
        send(client)
        #expect(gate.linger(on: server, &state))
        #expect(state.lastWaitSpun)
        #expect(state.clientIsQuick)
        var byte: UInt8 = 0
        _ = read(server, &byte, 1)

        // Nothing comes within a short window: back to Dispatch, and no spinning next time.
        let short = RPCLingerGate(microseconds: 20_000, spinMicroseconds: 10_000)
        short.enter()
        defer { short.leave() }
        #expect(!short.linger(on: server, &state))
        #expect(!state.clientIsQuick)

        // A slow client (its request 50 ms after the wait began, beyond a 10 ms spin window) is
        // still served by the sleeping part of the window, and stays "not quick".
        let slow = RPCLingerGate(microseconds: 5_000_000, spinMicroseconds: 10_000)
        slow.enter()
        defer { slow.leave() }
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) { Self.send(client) }
        #expect(slow.linger(on: server, &state))
        #expect(!state.lastWaitSpun)
        #expect(!state.clientIsQuick)
        _ = read(server, &byte, 1)

        // Quick again (the request is already there, found by the sleeping wait at once): the
        // next wait spins again.
        send(client)
        #expect(slow.linger(on: server, &state))
        #expect(!state.lastWaitSpun)
        #expect(state.clientIsQuick)
        _ = read(server, &byte, 1)
        send(client)
        #expect(slow.linger(on: server, &state))
        #expect(state.lastWaitSpun)
        _ = read(server, &byte, 1)
    }

    /// A spin that lost the CPU pauses spinning for the whole server (`pauseSpinning`): a quick
    /// client's next wait sleeps, and is still served.
    @Test func aPausedGateSleepsInsteadOfSpinning() throws {
        let (server, client) = try socketPair()
        defer { _ = close(server); _ = close(client) }
        let gate = RPCLingerGate(microseconds: 2_000_000, spinMicroseconds: 1_000_000)
        gate.enter()
        defer { gate.leave() }
        var state = LingerState()
        gate.pauseSpinning()
        send(client)
        #expect(gate.linger(on: server, &state))
        #expect(!state.lastWaitSpun)
        #expect(state.clientIsQuick)
    }

    @Test func aSpinOfZeroNeverMarksAClientQuick() throws {
        let (server, client) = try socketPair()
        defer { _ = close(server); _ = close(client) }
        let gate = RPCLingerGate(microseconds: 1_000_000, spinMicroseconds: 0)
        gate.enter()
        defer { gate.leave() }
        var state = LingerState()
        send(client)
        #expect(gate.linger(on: server, &state))
        #expect(!state.clientIsQuick)
    }

    /// Another connection's handler starting takes the thread back from a lingerer, whether it
    /// is spinning or sleeping; without that wake-up it would wait out the whole 30 s window.
    @Test(arguments: [0, 30_000_000])
    func anotherHandlerEndsTheLingerWhileSpinningOrSleeping(spinMicroseconds: Int) throws {
        let (server, client) = try socketPair()
        defer { _ = close(server); _ = close(client) }
        let gate = RPCLingerGate(microseconds: 30_000_000, spinMicroseconds: spinMicroseconds)
        gate.enter()  // the lingering handler
        defer { gate.leave() }
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) {
            gate.enter()  // another connection's handler starts
            gate.leave()
        }
        var state = LingerState()
        let start = DispatchTime.now().uptimeNanoseconds
        #expect(!gate.linger(on: server, &state))
        let waited = DispatchTime.now().uptimeNanoseconds - start
        #expect(waited < 15_000_000_000, "the lingerer was not woken: it waited \(waited / 1_000_000) ms")
        #expect(!state.clientIsQuick)
    }

    /// Back-to-back requests on one connection and, at the same time, on others: every answer
    /// arrives, in order, with the spin on (the default) and off.
    @Test(arguments: [0, 50, 200])
    func requestsAreServedInOrderWithTheSpin(spinMicroseconds: Int) throws {
        var limits = RPCLimits()
        limits.lingerSpinMicroseconds = spinMicroseconds
        let t = try TestServer(limits: limits) { r in
            r.register("echo") { call in RPCResult(call.params ?? .null) }
        }
        defer { t.stop() }
        let path = t.path
        let failures = Locked<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { k in
            let client: RPCClient
            do { client = try RPCClient(path: path) } catch {
                failures.withLock { $0.append("client \(k): \(error)") }
                return
            }
            defer { client.close() }
            for i in 0..<300 {
                do {
                    let answer = try client.call("echo", params: .object(["n": .int(Int64(i))])).result
                    if answer["n"] != .int(Int64(i)) { failures.withLock { $0.append("client \(k) request \(i) answered \(answer)") } }
                } catch {
                    failures.withLock { $0.append("client \(k) request \(i): \(error)") }
                    return
                }
            }
        }
        #expect(failures.withLock { $0 } == [])
    }
}
