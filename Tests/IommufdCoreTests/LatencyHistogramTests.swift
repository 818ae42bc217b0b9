import Testing
@testable import IommufdCore

@Suite struct LatencyHistogramTests {
    @Test func boundsAndLabelsAgreeAndAscend() {
        let bounds = LatencyHistogram.boundsNanoseconds
        #expect(bounds.count == LatencyHistogram.boundLabels.count)
        #expect(bounds.first == 10_000 && bounds.last == 10_000_000_000, "10 µs … 10 s")
        #expect(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 })
        for (ns, label) in zip(bounds, LatencyHistogram.boundLabels) {
            #expect(Double(label) == Double(ns) / 1e9, "le=\(label) is \(ns) ns")
        }
    }

    @Test func anObservationLandsInTheFirstBucketWhoseBoundIsNotBelowIt() {
        var h = LatencyHistogram()
        h.record(0)               // ≤ 10 µs
        h.record(10_000)          // = 10 µs: bounds are inclusive (le)
        h.record(10_001)          // ≤ 25 µs
        h.record(3_000_000)       // ≤ 5 ms
        h.record(20_000_000_000)  // 20 s: +Inf only
        #expect(h.count == 5)
        #expect(h.sumNanoseconds == 0 + 10_000 + 10_001 + 3_000_000 + 20_000_000_000)
        #expect(h.buckets[0] == 2 && h.buckets[1] == 1 && h.buckets[8] == 1 && h.buckets[19] == 1)
        #expect(h.buckets.reduce(0, +) == 5)
        let cum = h.cumulative
        #expect(cum.count == LatencyHistogram.boundsNanoseconds.count + 1)
        #expect(zip(cum, cum.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(cum[0] == 2 && cum[1] == 3 && cum[7] == 3 && cum[8] == 4 && cum[18] == 4 && cum.last == 5)
    }

    @Test func expositionIsAPrometheusHistogram() {
        var h = LatencyHistogram()
        h.record(1_500_000)
        h.record(500_000_000)
        let text = h.exposition(name: "x_seconds", labels: #"method="a.b""#)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == LatencyHistogram.boundsNanoseconds.count + 3)
        #expect(lines[0] == #"x_seconds_bucket{method="a.b",le="1e-05"} 0"#)
        #expect(lines.contains(#"x_seconds_bucket{method="a.b",le="0.001"} 0"#))
        #expect(lines.contains(#"x_seconds_bucket{method="a.b",le="0.0025"} 1"#))
        #expect(lines.contains(#"x_seconds_bucket{method="a.b",le="0.25"} 1"#))
        #expect(lines.contains(#"x_seconds_bucket{method="a.b",le="0.5"} 2"#))
        #expect(lines[lines.count - 3] == #"x_seconds_bucket{method="a.b",le="+Inf"} 2"#)
        #expect(lines[lines.count - 2] == #"x_seconds_sum{method="a.b"} 0.5015"#)
        #expect(lines[lines.count - 1] == #"x_seconds_count{method="a.b"} 2"#)

        let bare = LatencyHistogram().exposition(name: "y", labels: "")
        #expect(bare.hasPrefix(#"y_bucket{le="1e-05"} 0"#))
        #expect(bare.hasSuffix("y_sum 0.0\ny_count 0\n"))
    }
}
