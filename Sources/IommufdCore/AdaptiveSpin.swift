#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

// MARK: chspin

/// The adaptive spin policy of a thread waiting for a client's next request right after it
/// answered the last one: the control socket's lingering worker (IommufdRPC's `RPCLingerGate`,
/// `[limits] rpc_spin_us`) and each VMM channel's thread (IommufdChannel, `[limits]
/// channel_busy_poll_us`) both use it, one instance per server.
///
/// A thread that sleeps must be woken by the client's write, and on a VM whose idle vCPUs halt
/// that wake-up (an IPI to a halted vCPU, 33–60 µs on the benchmark machine: Benchmarks/probes/
/// wakeprobe.c) costs more than a small request; a thread still polling sees the request at
/// once. The rules:
/// - **Spin only for a client that came back within the window the time before** (`Client`,
///   one per connection or channel, `clientIsQuick`; a new client counts as quick). A client
///   that is slower, or sends nothing, costs one spin, after which the thread only sleeps until
///   a request of that client comes within the window again (found by the sleeping wait).
/// - **Yield between polls** (`sched_yield`): a thread runnable on the same CPU — the client
///   itself, perhaps — goes first.
/// - **Back off when a spin loses its CPU:** a busy phase that lasted more than twice its window
///   was descheduled (other threads want these CPUs; none is halted, so there is nothing to
///   save, and each yield to a busy thread costs a scheduler slice). Then no wait of this
///   instance spins for `pauseNanoseconds`.
/// - **Never longer than the window** (and never past the caller's own limit): the busy phase
///   ends at the first poll at or after `start + window`; the rest of the wait sleeps.
/// - **0 disables it:** no poll without sleeping, and no client is ever quick.
///
/// So the CPU burnt is at most one window per request of a client that was quick the time
/// before (and one per client that stops being quick). The clock, the poll and the yield are
/// injectable for tests; `counters` counts what happened.
public final class AdaptiveSpin: Sendable {
    /// What a poll or a sleep found.
    public enum Event: Equatable, Sendable {
        /// The client's socket is readable (a request, or end of file).
        case ready
        /// The waiter was woken by something else (an eventfd: another handler, a close).
        case woken
        /// Nothing, within the time given.
        case timedOut
    }

    /// Per client, confined to the thread serving it: whether it came back within the window
    /// after the last answer.
    public struct Client: Sendable, Equatable {
        public var clientIsQuick = true
        /// Whether the last wait began with a spin.
        public var lastWaitSpun = false
        public init() {}
    }

    /// What the instance did since it was made.
    public struct Counters: Sendable, Equatable {
        /// Waits that began with a busy phase.
        public var spins: UInt64 = 0
        /// Busy phases that found the request (no sleep, no wake-up).
        public var hits: UInt64 = 0
        /// Busy phases that lost the CPU (each paused spinning for `pauseNanoseconds`).
        public var lostCPU: UInt64 = 0
        /// Waits that did not spin although the client was quick: spinning was paused.
        public var paused: UInt64 = 0
        public init() {}
    }

    /// How long a spin that lost the CPU stops every wait of this instance from spinning.
    public static let pauseNanoseconds: UInt64 = 100_000_000

    private let windowNanoseconds: Atomic<UInt64>
    /// No spinning before this time (the clock's ns).
    private let pausedUntil = Atomic<UInt64>(0)
    private let spins = Atomic<UInt64>(0)
    private let hits = Atomic<UInt64>(0)
    private let lostCPU = Atomic<UInt64>(0)
    private let pausedWaits = Atomic<UInt64>(0)
    private let clock: @Sendable () -> UInt64
    private let yield: @Sendable () -> Void

    /// `microseconds`: the window (negative counts as 0). `clock`: monotonic nanoseconds;
    /// `yield`: what runs between two polls.
    public init(microseconds: Int,
                clock: @escaping @Sendable () -> UInt64 = { monotonicNanoseconds() },
                yield: @escaping @Sendable () -> Void = { _ = sched_yield() }) {
        windowNanoseconds = Atomic(UInt64(max(0, microseconds)) * 1000)
        self.clock = clock
        self.yield = yield
    }

    /// The window, µs; setting it applies from the next wait (a reload).
    public var microseconds: Int {
        get { Int(windowNanoseconds.load(ordering: .relaxed) / 1000) }
        set { windowNanoseconds.store(UInt64(max(0, newValue)) * 1000, ordering: .relaxed) }
    }

    public var counters: Counters {
        var c = Counters()
        c.spins = spins.load(ordering: .relaxed)
        c.hits = hits.load(ordering: .relaxed)
        c.lostCPU = lostCPU.load(ordering: .relaxed)
        c.paused = pausedWaits.load(ordering: .relaxed)
        return c
    }

    /// No wait of this instance spins for `pauseNanoseconds` from `now` (default: the clock).
    public func pause(from now: UInt64? = nil) {
        pausedUntil.store((now ?? clock()) + Self.pauseNanoseconds, ordering: .relaxed)
    }

    /// Waits for `client`'s next request: first, if the rules allow, a busy phase of `poll()`
    /// calls (a check that does not sleep) with `yield` between them, for up to the window (and
    /// at most `limit` ns); then, unless the busy phase found something, `sleep(remaining)`,
    /// which waits up to `remaining` ns of `limit` (nil: no limit; not called when the limit is
    /// used up). Updates `client`: quick when the request came (`.ready`) within the window of
    /// `answeredAt` (the clock's time the last answer went out; nil: the wait's start), whether
    /// the busy phase or the sleep found it. Measuring from the answer, a thread that was itself
    /// descheduled between answering and waiting does not take a slow client for a quick one.
    public func wait(_ client: inout Client, limit: UInt64? = nil, answeredAt: UInt64? = nil,
                     poll: () -> Event, sleep: (_ remaining: UInt64?) -> Event) -> Event {
        let window = windowNanoseconds.load(ordering: .relaxed)
        let start = clock()
        var spinFor: UInt64 = 0
        if window > 0 && client.clientIsQuick {
            if start >= pausedUntil.load(ordering: .relaxed) {
                spinFor = min(window, limit ?? window)
            } else {
                pausedWaits.wrappingAdd(1, ordering: .relaxed)
            }
        }
        var event = Event.timedOut
        var now = start
        if spinFor > 0 {
            spins.wrappingAdd(1, ordering: .relaxed)
            let end = start + spinFor
            var overran = false
            while true {
                event = poll()
                now = clock()
                if now - start > 2 * spinFor { overran = true }
                if event != .timedOut || now >= end { break }
                yield()
            }
            if overran {
                lostCPU.wrappingAdd(1, ordering: .relaxed)
                pause(from: now)
            }
            if event == .ready { hits.wrappingAdd(1, ordering: .relaxed) }
        }
        if event == .timedOut {
            if let limit {
                let used = now - start
                if used < limit { event = sleep(limit - used) }
            } else {
                event = sleep(nil)
            }
            now = clock()
        }
        let since = min(answeredAt ?? start, start)
        client.clientIsQuick = window > 0 && event == .ready && now - since < window
        client.lastWaitSpun = spinFor > 0
        return event
    }
}
