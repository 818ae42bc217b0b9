import IommufdCore

// MARK: pinggap

/// What the control socket's lingering workers did since the server started (`RPCServer.
/// lingerCounters`; `daemon.metrics` shows them as `iommufdd_rpc_spins_total` and the rest).
///
/// A linger is the wait of the worker that just answered a request for the same client's next
/// one (`RPCLingerGate`); it begins with a spin (`AdaptiveSpin`) for a client that came back
/// within the spin window the time before, and otherwise (or when the spin found nothing) sleeps
/// in `ppoll` for the rest of the window. What these counters tell apart:
/// - `spin.hits`: requests served with no thread wake-up at all;
/// - `sleepHits`: requests served by the same worker, but after it was woken from `ppoll` (one
///   wake-up, no Dispatch hop);
/// - `waits - spin.hits - sleepHits`: lingers that ended without the request (the window ran out,
///   or another connection's handler started): that client's next request goes through Dispatch.
public struct RPCLingerCounters: Sendable, Equatable {
    /// Lingers begun (after a quick request, while no other connection's handler ran).
    public var waits: UInt64 = 0
    /// The linger's spin (`AdaptiveSpin`): lingers that began with a spin (`spins`), spins that
    /// found the next request (`hits`), spins that lost their CPU (`lostCPU`: each stops every
    /// linger from spinning for 100 ms), lingers of a quick client not spun because spinning was
    /// paused (`paused`).
    public var spin = AdaptiveSpin.Counters()
    /// Lingers that went to sleep in `ppoll` (no spin, or a spin that found nothing).
    public var sleeps: UInt64 = 0
    /// Sleeps that ended with the client's request (the worker was woken by it).
    public var sleepHits: UInt64 = 0
    public init() {}
}

extension RPCServer {
    /// A snapshot of the linger's counters.
    public var lingerCounters: RPCLingerCounters { linger.counters }
}
