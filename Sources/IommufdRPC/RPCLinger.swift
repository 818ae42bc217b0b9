#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CIommufd
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
    /// Lingering follows only reads handled faster than this.
    static let quickRequestNanoseconds: UInt64 = 100_000

    init(microseconds: Int) {
        window = max(0, microseconds)
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
    /// running. True: read again now. False: go back to Dispatch.
    func linger(on fd: Int32) -> Bool {
        guard window > 0, wakeFD >= 0, active.load(ordering: .acquiring) == 1 else { return false }
        lingering.wrappingAdd(1, ordering: .acquiringAndReleasing)
        defer { lingering.wrappingSubtract(1, ordering: .acquiringAndReleasing) }
        // Another handler may have started between the check and now: it saw no lingerer.
        guard active.load(ordering: .acquiring) == 1 else { return false }
        return ciommufd_linger(fd, wakeFD, window) != 0
    }
}
