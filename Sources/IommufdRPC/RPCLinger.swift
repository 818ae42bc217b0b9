#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CIommufd
import Dispatch
import IommufdCore
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
/// socket and the gate's eventfd without sleeping) rather than sleeps, by the adaptive policy
/// the VMM channels use too (IommufdCore's `AdaptiveSpin`, one instance per server): only for a
/// client that came back within the spin window the time before (`LingerState`, per
/// connection), yielding between polls, and not at all for 100 ms after a spin lost its CPU. A
/// sleeping worker has to be woken by the client's write, and on the 2-vCPU benchmark VM, whose
/// idle vCPUs halt, that wake-up cost more than the rest of a `daemon.ping` (Benchmarks/
/// RESULTS.md, target 3).
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
    /// The spin policy (its window is `spinWindow`), shared by every connection of the server.
    let spin: AdaptiveSpin
    /// Lingering follows only reads handled faster than this.
    static let quickRequestNanoseconds: UInt64 = 100_000
    // `RPCLingerCounters` (the spin's own are `spin.counters`).
    private let waits = Atomic<UInt64>(0)
    private let sleeps = Atomic<UInt64>(0)
    private let sleepHits = Atomic<UInt64>(0)

    init(microseconds: Int, spinMicroseconds: Int = 0) {
        window = max(0, microseconds)
        spinWindow = min(max(0, spinMicroseconds), window)
        spin = AdaptiveSpin(microseconds: spinWindow)
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
    /// running; spins first if the policy (`AdaptiveSpin`) allows for this client, and updates
    /// `state`. True: read again now. False: go back to Dispatch.
    func linger(on fd: Int32, _ state: inout LingerState) -> Bool {
        guard window > 0, wakeFD >= 0, active.load(ordering: .acquiring) == 1 else { return false }
        lingering.wrappingAdd(1, ordering: .acquiringAndReleasing)
        defer { lingering.wrappingSubtract(1, ordering: .acquiringAndReleasing) }
        // Another handler may have started between the check and now: it saw no lingerer.
        guard active.load(ordering: .acquiring) == 1 else { return false }
        let wake = wakeFD
        waits.wrappingAdd(1, ordering: .relaxed)
        // Anything but the client's request (a timeout, another handler waking us, an error)
        // goes back to Dispatch, and stops spinning for this client until it is quick again.
        let event = spin.wait(&state, limit: UInt64(window) * 1000,
                              poll: { Self.event(ciommufd_wait_readable(fd, wake, 0)) },
                              sleep: { remaining in
                                  sleeps.wrappingAdd(1, ordering: .relaxed)
                                  let event = Self.event(ciommufd_wait_readable(fd, wake, remaining.map { Int64($0) } ?? -1))
                                  if event == .ready { sleepHits.wrappingAdd(1, ordering: .relaxed) }
                                  return event
                              })
        return event == .ready
    }

    var counters: RPCLingerCounters {
        var c = RPCLingerCounters()
        c.waits = waits.load(ordering: .relaxed)
        c.spin = spin.counters
        c.sleeps = sleeps.load(ordering: .relaxed)
        c.sleepHits = sleepHits.load(ordering: .relaxed)
        return c
    }

    private static func event(_ rc: Int32) -> AdaptiveSpin.Event {
        switch rc {
        case 2: .ready
        case 1: .woken
        case 0: .timedOut
        default: .woken  // an error (EINTR included): back to Dispatch, which reads or fails
        }
    }

    /// No spinning, for any connection, for `AdaptiveSpin.pauseNanoseconds` from now.
    func pauseSpinning() { spin.pause() }
}

/// Per connection (confined to its queue): whether the client came back within the spin
/// window after the last answer (`AdaptiveSpin`'s rules).
typealias LingerState = AdaptiveSpin.Client
