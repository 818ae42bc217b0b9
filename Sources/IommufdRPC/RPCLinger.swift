#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CIommufd
import Dispatch
import Synchronization

/// Answering on the thread that read the request, and staying there for the next one.
///
/// A connection's read source runs on a libdispatch worker: an event thread wakes on epoll and
/// hands the source to a worker, which reads, handles and answers; the source is then re-armed
/// (`epoll_ctl`). For a client that sends its next request as soon as the answer arrives (a VMM
/// mapping memory, `iommuctl` scripts, the benchmark), those two thread hops and the re-arm are
/// most of a request's cost on a small machine (Benchmarks/RESULTS.md). So after answering, a
/// worker that is the only one serving requests **lingers**: it waits in `ppoll` on that one
/// socket for up to `RPCLimits.lingerMicroseconds`; a request arriving in that window is read
/// and answered at once by the same thread, as a blocking echo server would.
///
/// Only after a read whose requests were handled quickly (under `quickRequestNanoseconds`): the
/// hops are worth saving when they are a large part of a request, and measured on the 2-vCPU
/// benchmark machine, lingering after long requests (a dirty read of milliseconds) made the next
/// one slower by milliseconds instead (Benchmarks/RESULTS.md).
///
/// The first `RPCLimits.lingerSpinMicroseconds` of the window the worker **spins** (polls the
/// socket with a zero timeout) rather than sleeps, when the same client came back within that
/// time after the previous answer (`LingerState`): a sleeping worker has to be woken by the
/// client's write, and on the 2-vCPU benchmark VM, whose idle vCPUs halt, that wake-up cost
/// more than the rest of a `daemon.ping` (Benchmarks/RESULTS.md, target 3). A client that does
/// not come back that quickly costs one spin, after which the worker only sleeps until the
/// client is quick again; so the CPU burnt is bounded by the spin window per quick request of
/// a client that answered quickly the time before. And only while spinning is not a cost to
/// other threads: `sched_yield()` between polls lets a thread runnable on the same CPU (the
/// client itself, perhaps) go first, and a spin that lost the CPU anyway (it lasted more than
/// twice its window: other threads want these CPUs) pauses spinning for the whole server for
/// `spinPauseNanoseconds`. On a busy machine the other vCPU never halts, so there is nothing
/// to save, while each yield to another busy thread would cost the request a scheduler slice.
///
/// Lingering never delays another client: a worker lingers only while no other connection's
/// handler is running, and it gives up the socket the moment another handler starts (it is woken
/// through an eventfd), leaving the rest of the window to Dispatch. Per-connection ordering is
/// untouched: lingering happens inside the connection's serial queue, in its read handler.
final class RPCLingerGate: @unchecked Sendable {
    /// Read handlers running now (lingering ones included).
    private let active = Atomic<Int>(0)
    /// Handlers lingering now.
    private let lingering = Atomic<Int>(0)
    /// Readable when a handler started while one lingered: the lingerer stops waiting.
    let wakeFD: Int32
    let window: Int
    /// The spinning part of the window, µs.
    let spinWindow: Int
    /// No spinning before this time (`DispatchTime` ns): a spin lost the CPU recently.
    private let spinPausedUntil = Atomic<UInt64>(0)
    /// How long a spin that lost the CPU pauses spinning for.
    static let spinPauseNanoseconds: UInt64 = 100_000_000
    /// Lingering follows only reads handled faster than this.
    static let quickRequestNanoseconds: UInt64 = 100_000

    init(microseconds: Int, spinMicroseconds: Int = 0) {
        window = max(0, microseconds)
        spinWindow = min(max(0, spinMicroseconds), window)
        wakeFD = window > 0 ? ciommufd_eventfd() : -1
    }

    deinit { if wakeFD >= 0 { _ = Glibc.close(wakeFD) } }

    /// A read handler starts.
    func enter() {
        let before = active.wrappingAdd(1, ordering: .acquiringAndReleasing).oldValue
        if before > 0, lingering.load(ordering: .acquiring) > 0, wakeFD >= 0 {
            ciommufd_eventfd_signal(wakeFD)
        }
    }

    /// A read handler ends.
    func leave() { active.wrappingSubtract(1, ordering: .acquiringAndReleasing) }

    /// Waits up to the window for `fd` to become readable, if this handler is the only one
    /// running; spins first if `state` says the client was quick last time, and updates it.
    /// True: read again now. False: go back to Dispatch.
    func linger(on fd: Int32, _ state: inout LingerState) -> Bool {
        guard window > 0, wakeFD >= 0, active.load(ordering: .acquiring) == 1 else { return false }
        lingering.wrappingAdd(1, ordering: .acquiringAndReleasing)
        defer { lingering.wrappingSubtract(1, ordering: .acquiringAndReleasing) }
        // Another handler may have started between the check and now: it saw no lingerer.
        guard active.load(ordering: .acquiring) == 1 else { return false }
        var waited = 0
        var overran: Int32 = 0
        let now = DispatchTime.now().uptimeNanoseconds
        let spin = state.clientIsQuick && now >= spinPausedUntil.load(ordering: .relaxed) ? spinWindow : 0
        let outcome = ciommufd_linger_spin(fd, wakeFD, spin, window, &waited, &overran)
        if overran != 0 { pauseSpinning(from: now) }
        // Quick: the client's next request came within the spin window (whether this wait spun
        // or slept). Anything else (slower, no request, another handler woke us) stops spinning
        // for this client until it is quick again.
        state.clientIsQuick = spinWindow > 0 && outcome != 0 && waited < spinWindow * 1000
        state.lastWaitSpun = spin > 0
        return outcome != 0
    }

    /// No spinning, for any connection, for `spinPauseNanoseconds` from `now`.
    func pauseSpinning(from now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        spinPausedUntil.store(now + Self.spinPauseNanoseconds, ordering: .relaxed)
    }
}

/// Per connection (confined to its queue): whether the client came back within the spin
/// window after the last answer.
struct LingerState {
    var clientIsQuick = true
    /// Whether the last wait began with a spin (for tests).
    var lastWaitSpun = false
}
