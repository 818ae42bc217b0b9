import Synchronization
import Testing

@testable import IommufdCore

// MARK: chspin

/// The adaptive spin policy (`AdaptiveSpin`) on a fake clock, with the poll, the sleep and the
/// yield injected: which waits spin, for how long, and what they teach the policy. No real time
/// is involved, so every rule is checked exactly.
@Suite("AdaptiveSpin: the spin policy of the RPC linger and the VMM channel")
struct AdaptiveSpinTests {
    typealias Event = AdaptiveSpin.Event

    /// A clock that moves only when told.
    final class FakeClock: Sendable {
        private let t = Mutex<UInt64>(1_000_000_000)
        var now: UInt64 { t.withLock { $0 } }
        func advance(_ ns: UInt64) { t.withLock { $0 += ns } }
    }

    /// What one wait did: the polls (with the time of each), the sleep's `remaining`, yields.
    struct Trace {
        var polls: [UInt64] = []
        var slept: [UInt64?] = []
        var event: Event = .timedOut
    }

    final class Yields: Sendable {
        let count = Atomic<Int>(0)
    }

    let clock = FakeClock()
    let yields = Yields()

    func spin(_ microseconds: Int) -> AdaptiveSpin {
        let clock = clock, yields = yields
        return AdaptiveSpin(microseconds: microseconds, clock: { clock.now }, yield: { yields.count.wrappingAdd(1, ordering: .relaxed) })
    }

    /// One wait: each poll takes `pollCost` ns and finds `pollFinds(k)` at its k-th call; the
    /// sleep (if reached) takes `sleepTakes` ns and finds `sleepFinds`.
    func wait(_ s: AdaptiveSpin, _ client: inout AdaptiveSpin.Client, limit: UInt64? = nil,
              pollCost: UInt64 = 1_000, pollFinds: (Int) -> Event = { _ in .timedOut },
              sleepTakes: UInt64 = 0, sleepFinds: Event = .ready) -> Trace {
        var trace = Trace()
        let clock = clock
        trace.event = s.wait(&client, limit: limit, poll: {
            clock.advance(pollCost)
            trace.polls.append(clock.now)
            return pollFinds(trace.polls.count - 1)
        }, sleep: { remaining in
            trace.slept.append(remaining)
            clock.advance(sleepTakes)
            return sleepFinds
        })
        return trace
    }

    @Test func aNewClientIsSpunForAndARequestFoundWhileSpinningKeepsItQuick() {
        let s = spin(50)
        var c = AdaptiveSpin.Client()
        let t = wait(s, &c, pollFinds: { $0 == 9 ? .ready : .timedOut })
        #expect(t.event == .ready)
        #expect(t.polls.count == 10)
        #expect(t.slept.isEmpty, "a request found while spinning needs no sleep")
        #expect(c.clientIsQuick && c.lastWaitSpun)
        #expect(yields.count.load(ordering: .relaxed) == 9, "one yield between two polls")
        #expect(s.counters == {
            var k = AdaptiveSpin.Counters()
            k.spins = 1
            k.hits = 1
            return k
        }())
    }

    @Test func spinsOnlyAfterAQuickReturn() {
        let s = spin(50)
        var c = AdaptiveSpin.Client()
        // Nothing within the window: the spin ends, the sleep finds the request 1 ms later.
        var t = wait(s, &c, sleepTakes: 1_000_000)
        #expect(t.event == .ready && c.lastWaitSpun)
        #expect(t.slept.count == 1 && t.slept[0] == nil, "no limit given: the sleep has none")
        #expect(!c.clientIsQuick, "the request came 1 ms after the wait began, beyond the 50 µs window")
        // Not quick: the next waits do not poll at all, only sleep.
        for _ in 0..<5 {
            t = wait(s, &c, sleepTakes: 1_000_000)
            #expect(t.polls.isEmpty && t.slept.count == 1)
            #expect(!c.lastWaitSpun && !c.clientIsQuick)
        }
        // A request 20 µs after the wait began (found by the sleep): quick again...
        t = wait(s, &c, sleepTakes: 20_000)
        #expect(t.polls.isEmpty && c.clientIsQuick)
        // ... so the next wait spins again.
        t = wait(s, &c, pollFinds: { _ in .ready })
        #expect(t.polls.count == 1 && c.lastWaitSpun && c.clientIsQuick)
        #expect(s.counters.spins == 2)
    }

    /// Quickness measured from the answer: a thread that began waiting 1 ms after it answered
    /// (it was descheduled) and found the request at once does not count the client as quick.
    @Test func quicknessIsMeasuredFromTheAnswer() {
        let s = spin(50)
        var c = AdaptiveSpin.Client()
        c.clientIsQuick = false
        let answered = clock.now
        clock.advance(1_000_000)
        var t = Trace()
        t.event = s.wait(&c, answeredAt: answered, poll: { .ready }, sleep: { _ in .ready })
        #expect(t.event == .ready && !c.clientIsQuick)
        // The same request found 20 µs after the answer: quick.
        let again = clock.now
        clock.advance(20_000)
        _ = s.wait(&c, answeredAt: again, poll: { .ready }, sleep: { _ in .ready })
        #expect(c.clientIsQuick)
    }

    @Test func aWakeUpOrATimeoutIsNotAQuickReturn() {
        let s = spin(50)
        var c = AdaptiveSpin.Client()
        var t = wait(s, &c, pollFinds: { $0 == 2 ? .woken : .timedOut })
        #expect(t.event == .woken && t.slept.isEmpty && !c.clientIsQuick)
        c = AdaptiveSpin.Client()
        t = wait(s, &c, limit: 200_000, sleepTakes: 150_000, sleepFinds: .timedOut)
        #expect(t.event == .timedOut && !c.clientIsQuick)
    }

    @Test func neverSpinsLongerThanTheWindow() {
        let s = spin(50)
        var c = AdaptiveSpin.Client()
        let start = clock.now
        let t = wait(s, &c, limit: 200_000, pollCost: 3_000)
        // Polls at 3, 6, ... µs; the busy phase ends at the first poll at or after 50 µs.
        #expect(t.polls.count == 17)
        #expect(t.polls.dropLast().allSatisfy { $0 - start < 50_000 })
        #expect(t.polls.last! - start >= 50_000 && t.polls.last! - start < 53_000)
        #expect(t.slept == [200_000 - 51_000], "the rest of the caller's limit is slept")
        // A limit shorter than the window bounds the busy phase too, and leaves nothing to sleep.
        var d = AdaptiveSpin.Client()
        let t2 = wait(s, &d, limit: 10_000, pollCost: 1_000)
        #expect(t2.polls.count == 10 && t2.slept.isEmpty && t2.event == .timedOut)
    }

    @Test func stopsSpinningForEveryClientAfterASpinLostTheCPU() {
        let s = spin(50)
        var a = AdaptiveSpin.Client()
        // The first poll returns 150 µs later: the thread was descheduled (more than twice the window).
        let t = wait(s, &a, pollCost: 150_000, pollFinds: { _ in .ready })
        #expect(t.event == .ready && a.lastWaitSpun)
        #expect(s.counters.lostCPU == 1)
        // Another client, quick, does not spin for the next 100 ms...
        var b = AdaptiveSpin.Client()
        var u = wait(s, &b, sleepTakes: 10_000)
        #expect(u.polls.isEmpty && !b.lastWaitSpun)
        #expect(b.clientIsQuick, "a request the sleep found within the window still counts as quick")
        #expect(s.counters.paused == 1)
        clock.advance(AdaptiveSpin.pauseNanoseconds - 200_000)
        var c = AdaptiveSpin.Client()
        u = wait(s, &c, sleepTakes: 10_000)
        #expect(u.polls.isEmpty && !c.lastWaitSpun)
        // ... and spins again once the pause is over.
        clock.advance(200_000)
        var d = AdaptiveSpin.Client()
        u = wait(s, &d, pollFinds: { _ in .ready })
        #expect(u.polls.count == 1 && d.lastWaitSpun)
        #expect(s.counters.spins == 2 && s.counters.lostCPU == 1 && s.counters.paused == 2)
    }

    @Test func aSpinWithinTwiceTheWindowIsNotALostCPU() {
        let s = spin(50)
        var c = AdaptiveSpin.Client()
        _ = wait(s, &c, pollCost: 99_000)
        #expect(s.counters.lostCPU == 0)
        var d = AdaptiveSpin.Client()
        let t = wait(s, &d, pollFinds: { _ in .ready })
        #expect(t.polls.count == 1, "not paused")
    }

    @Test func zeroDisables() {
        let s = spin(0)
        var c = AdaptiveSpin.Client()
        for _ in 0..<3 {
            let t = wait(s, &c, sleepTakes: 1_000)
            #expect(t.polls.isEmpty && t.slept.count == 1 && t.event == .ready)
            #expect(!c.clientIsQuick && !c.lastWaitSpun)
        }
        #expect(s.counters == AdaptiveSpin.Counters())
        #expect(yields.count.load(ordering: .relaxed) == 0)
    }

    @Test func aNewWindowAppliesFromTheNextWait() {
        let s = spin(50)
        var c = AdaptiveSpin.Client()
        s.microseconds = 0
        var t = wait(s, &c, sleepTakes: 1_000)
        #expect(t.polls.isEmpty)
        s.microseconds = 10
        c = AdaptiveSpin.Client()
        t = wait(s, &c, pollCost: 1_000)
        #expect(t.polls.count == 10, "a 10 µs window: polls until 10 µs")
        s.microseconds = -5
        #expect(s.microseconds == 0)
    }
}
