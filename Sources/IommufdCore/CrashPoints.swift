#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation

/// TEST ONLY: the crash-point sweep (issue 17 item 3). The points where a request can be cut
/// off — before and after each state-changing backend call and each write of the object journal
/// — call `CrashPoints.hit`; when armed with `N`, the Nth point reached kills the process with
/// SIGKILL on the spot (no cleanup, no flush, no answer), as an OOM kill or a power cut of the
/// daemon alone would.
///
/// Armed only by the daemon, only when the config turns test hooks on for the backend in use
/// (`[sim] test_hooks` / `[kernel] test_hooks`, both test-only) *and* the environment sets
/// `IOMMUFDD_TEST_CRASH_POINT=N`; counting starts once the daemon is serving (after restart
/// recovery), so N counts the points of the requests sent after READY. Unarmed (production),
/// `hit` is one load of a flag written once before any request thread exists.
public enum CrashPoints {
    /// The environment variable the daemon reads (with test hooks on only).
    public static let environmentVariable = "IOMMUFDD_TEST_CRASH_POINT"

    // Written once, before the server starts any thread (the thread's creation orders it
    // before every read); never written again.
    nonisolated(unsafe) private static var target = 0
    private static let lock = NSLock()
    nonisolated(unsafe) private static var count = 0

    /// Arms the sweep: the `n`th point from now on kills the process. Call before serving.
    public static func arm(at n: Int) {
        precondition(n > 0, "crash point numbers start at 1")
        target = n
    }

    public static var isArmed: Bool { target > 0 }

    /// A point where a request can be cut off. `label` says where ("before IOMMU_IOAS_MAP",
    /// "after journal write"); it is printed to stderr just before the kill, for the sweep's log.
    @inline(__always)
    public static func hit(_ label: @autoclosure () -> String) {
        guard target > 0 else { return }
        reached(label(), beforeKill: {})
    }

    /// A point where the process dies half-way through something: `beforeKill` does the first
    /// half (e.g. writes half a journal record) when this is the point that kills.
    public static func hit(_ label: @autoclosure () -> String, beforeKill: () -> Void) {
        guard target > 0 else { return }
        reached(label(), beforeKill: beforeKill)
    }

    private static func reached(_ label: String, beforeKill: () -> Void) {
        let n = lock.withLock {
            count += 1
            return count
        }
        guard n == target else { return }
        beforeKill()
        let line = "iommufdd: TEST crash point \(n) reached (\(label)): SIGKILL\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        kill(getpid(), SIGKILL)
        // SIGKILL cannot be caught; nothing of this process runs past it.
        while true { pause() }
    }
}
