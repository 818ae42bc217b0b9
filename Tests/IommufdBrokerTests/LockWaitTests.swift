import Foundation
import IommufdCore
import Testing

@testable import IommufdBroker
import IommufdContract

/// The broker lock's wait histogram (`daemon.metrics`' `iommufdd_broker_lock_wait_seconds`).
@Suite("Broker lock wait")
struct LockWaitTests {
    final class Times: @unchecked Sendable {
        private let lock = NSLock()
        private var _seen: UInt64 = 0
        private var _release: UInt64 = 0
        func set(seen: UInt64, release: UInt64) { lock.withLock { _seen = seen; _release = release } }
        var interval: UInt64 { lock.withLock { _release - _seen } }
    }

    @Test func everyAcquisitionIsCounted() throws {
        let f = try Fixture()
        let before = f.broker.lockWaitHistogram()
        for _ in 0..<5 { _ = try f.broker.ownerList(f.a) }
        let after = f.broker.lockWaitHistogram()
        #expect(after.count == before.count + 6, "five requests and the read itself")
        #expect(after.cumulative.last == after.count)
    }

    /// One request holds the lock (a test-only `locked` block) until another has started to
    /// wait for it (the `lockWaitWillBlock` hook), then a while longer. The waiter's start time
    /// is read before the hook and its end after the holder released the lock, so its recorded
    /// wait is at least the span the holder measured between seeing it wait and releasing; no
    /// timing bound is asserted.
    @Test func aRequestThatWaitedForTheLockShowsTheWait() throws {
        let f = try Fixture()
        let broker = f.broker
        let caller = f.a
        let before = broker.lockWaitHistogram()
        let holding = DispatchSemaphore(value: 0)
        let waiting = DispatchSemaphore(value: 0)
        let holderDone = DispatchSemaphore(value: 0)
        let waiterDone = DispatchSemaphore(value: 0)
        let times = Times()

        Thread {
            try? broker.locked {
                holding.signal()
                waiting.wait()
                let seen = monotonicNanoseconds()
                usleep(2_000)  // makes the wait worth measuring; nothing asserts its length
                times.set(seen: seen, release: monotonicNanoseconds())
            }
            holderDone.signal()
        }.start()
        holding.wait()
        broker.lockWaitWillBlock = { waiting.signal() }
        Thread {
            _ = try? broker.ownerList(caller)
            waiterDone.signal()
        }.start()
        holderDone.wait()
        waiterDone.wait()
        broker.lockWaitWillBlock = nil

        let after = broker.lockWaitHistogram()
        #expect(after.count == before.count + 3, "the holder, the waiter and this read")
        let waited = after.sumNanoseconds - before.sumNanoseconds
        #expect(waited > 0)
        #expect(waited >= times.interval, "the waiter's wait covers the time the holder kept the lock after it began waiting")
        // The wait lands in a bucket above the first empty one before: some bucket grew.
        #expect(after.cumulative.last == after.count)
    }
}
