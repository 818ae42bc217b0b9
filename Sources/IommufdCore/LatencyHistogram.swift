#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The monotonic clock in nanoseconds (`CLOCK_MONOTONIC`): one `clock_gettime`, no allocation.
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// A latency histogram with fixed bucket bounds, the shape of a Prometheus histogram: one
/// count per bucket (not cumulative here; the exposition sums them), the total in nanoseconds,
/// and the number of observations. A value type without a lock of its own: its holder keeps it
/// under the lock it already takes. `record` does not allocate (the bucket storage is made once,
/// in `init`, and mutated in place).
///
/// Bounds (upper, inclusive, in seconds), a 1-2.5-5 series from 10 µs to 10 s:
/// 0.00001 0.000025 0.00005 0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25
/// 0.5 1 2.5 5 10, then +Inf.
public struct LatencyHistogram: Sendable, Equatable {
    /// The finite upper bounds in nanoseconds, ascending.
    public static let boundsNanoseconds: [UInt64] = [
        10_000, 25_000, 50_000,
        100_000, 250_000, 500_000,
        1_000_000, 2_500_000, 5_000_000,
        10_000_000, 25_000_000, 50_000_000,
        100_000_000, 250_000_000, 500_000_000,
        1_000_000_000, 2_500_000_000, 5_000_000_000,
        10_000_000_000,
    ]
    /// The same bounds as Prometheus `le` label values (seconds).
    public static let boundLabels: [String] = [
        "1e-05", "2.5e-05", "5e-05",
        "0.0001", "0.00025", "0.0005",
        "0.001", "0.0025", "0.005",
        "0.01", "0.025", "0.05",
        "0.1", "0.25", "0.5",
        "1", "2.5", "5",
        "10",
    ]

    /// Observations per bucket; the last one is above the largest bound (+Inf).
    public private(set) var buckets: [UInt64]
    public private(set) var count: UInt64 = 0
    public private(set) var sumNanoseconds: UInt64 = 0

    public init() {
        buckets = [UInt64](repeating: 0, count: Self.boundsNanoseconds.count + 1)
    }

    /// Counts one observation of `nanoseconds`.
    public mutating func record(_ nanoseconds: UInt64) {
        var i = 0
        let bounds = Self.boundsNanoseconds
        while i < bounds.count && nanoseconds > bounds[i] { i += 1 }
        buckets[i] &+= 1
        count &+= 1
        sumNanoseconds &+= nanoseconds
    }

    /// The cumulative counts, one per finite bound then +Inf (which equals `count`).
    public var cumulative: [UInt64] {
        var running: UInt64 = 0
        return buckets.map { running &+= $0; return running }
    }

    /// The total in seconds.
    public var sumSeconds: Double { Double(sumNanoseconds) / 1e9 }

    /// Prometheus text lines for this histogram (no HELP/TYPE): `name_bucket{labels,le=...}`,
    /// `name_sum{labels}`, `name_count{labels}`. `labels` is `key="value"` pairs joined by
    /// commas, or empty.
    public func exposition(name: String, labels: String) -> String {
        var out = ""
        let sep = labels.isEmpty ? "" : ","
        let cum = cumulative
        for (i, le) in Self.boundLabels.enumerated() {
            out += "\(name)_bucket{\(labels)\(sep)le=\"\(le)\"} \(cum[i])\n"
        }
        out += "\(name)_bucket{\(labels)\(sep)le=\"+Inf\"} \(cum[cum.count - 1])\n"
        let braces = labels.isEmpty ? "" : "{\(labels)}"
        out += "\(name)_sum\(braces) \(sumSeconds)\n"
        out += "\(name)_count\(braces) \(count)\n"
        return out
    }
}
