import Testing

/// Parses the histograms of a Prometheus text exposition (format 0.0.4) and checks each one:
/// every family declared `# TYPE name histogram` has, per label set, `_bucket` lines with
/// ascending `le` ending in `+Inf`, cumulative (non-decreasing) counts, the `+Inf` bucket equal
/// to `_count`, and a `_sum` within what the buckets allow (at least each bucket's count times
/// the bound below it; at most each finite bucket's count times its bound when nothing is
/// above the last bound). Other lines must be comments or `name{labels} value` samples.
struct PromHistograms {
    struct Series { var buckets: [(le: Double, count: Double)] = []; var sum = Double.nan; var count = Double.nan }
    struct Invalid: Error, CustomStringConvertible { let description: String }

    var families: Set<String> = []
    /// Keyed by `name{labels without le}` (just `name` without labels).
    var series: [String: Series] = [:]

    init(_ text: String) throws {
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            if parts.count == 4, parts[3] == "histogram" { families.insert(String(parts[2])) }
        }
        for raw in text.split(separator: "\n") {
            let line = String(raw)
            if line.hasPrefix("#") { continue }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw Invalid(description: "not a sample: \(line)")
            }
            let head = String(line[..<space])
            let name = String(head.prefix { $0 != "{" })
            var labels: [String] = []
            if let open = head.firstIndex(of: "{") {
                guard head.hasSuffix("}") else { throw Invalid(description: "unclosed labels: \(line)") }
                let inner = head[head.index(after: open)..<head.index(before: head.endIndex)]
                labels = inner.isEmpty ? [] : inner.split(separator: ",").map(String.init)
                guard labels.allSatisfy({ $0.contains("=\"") && $0.hasSuffix("\"") }) else { throw Invalid(description: "bad labels: \(line)") }
            }
            for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
                let family = String(name.dropLast(suffix.count))
                guard families.contains(family) else { continue }
                let le = labels.first { $0.hasPrefix("le=") }
                let key = Self.key(family, labels.filter { !$0.hasPrefix("le=") })
                var s = series[key] ?? Series()
                switch suffix {
                case "_bucket":
                    guard let le, let bound = Double(le.dropFirst(4).dropLast()) else { throw Invalid(description: "bucket without le: \(line)") }
                    s.buckets.append((bound, value))
                case "_sum": s.sum = value
                default: s.count = value
                }
                series[key] = s
            }
        }
        for (key, s) in series {
            guard !s.buckets.isEmpty, !s.sum.isNaN, !s.count.isNaN else { throw Invalid(description: "\(key): missing _bucket, _sum or _count") }
            guard zip(s.buckets, s.buckets.dropFirst()).allSatisfy({ $0.le < $1.le && $0.count <= $1.count }) else {
                throw Invalid(description: "\(key): buckets not ascending and cumulative")
            }
            guard s.buckets.last!.le == .infinity, s.buckets.last!.count == s.count else {
                throw Invalid(description: "\(key): +Inf bucket is not the last or differs from _count")
            }
            var low = 0.0, high = 0.0, previous = (le: 0.0, count: 0.0)
            for b in s.buckets {
                let inBucket = b.count - previous.count
                low += inBucket * previous.le
                if inBucket > 0 { high += inBucket * b.le }  // +Inf: no upper limit
                previous = b
            }
            guard s.sum >= low * (1 - 1e-9), s.sum <= high * (1 + 1e-9) else {
                throw Invalid(description: "\(key): _sum \(s.sum) outside [\(low), \(high)] the buckets allow")
            }
        }
    }

    private static func key(_ family: String, _ labels: [String]) -> String {
        labels.isEmpty ? family : "\(family){\(labels.joined(separator: ","))}"
    }
}

/// The checker itself: it accepts a good histogram and refuses each kind of broken one.
@Suite("Prometheus histogram checker")
struct PromHistogramsTests {
    static let head = "# TYPE h histogram\n"
    static func text(_ b1: Int, _ inf: Int, sum: String, count: Int) -> String {
        head + "h_bucket{m=\"x\",le=\"0.1\"} \(b1)\nh_bucket{m=\"x\",le=\"+Inf\"} \(inf)\nh_sum{m=\"x\"} \(sum)\nh_count{m=\"x\"} \(count)\n"
    }

    @Test func acceptsAValidHistogram() throws {
        let h = try PromHistograms(Self.text(1, 2, sum: "5.05", count: 2))
        #expect(h.series["h{m=\"x\"}"]?.count == 2)
    }

    @Test(arguments: [
        text(2, 1, sum: "0.1", count: 1),     // not cumulative
        text(1, 2, sum: "0.1", count: 3),     // +Inf differs from _count
        text(2, 2, sum: "0.5", count: 2),     // _sum above what two observations ≤ 0.1 allow
        text(1, 2, sum: "0.05", count: 2),    // _sum below the one observation above 0.1
        head + "h_bucket{le=\"+Inf\"} 1\nh_count 1\n",  // no _sum
        head + "h_bucket{le=\"1\"} 1\nh_sum 0.5\nh_count 1\n",  // no +Inf bucket
        "garbage line\n",
    ])
    func refusesABrokenOne(_ text: String) {
        #expect(throws: PromHistograms.Invalid.self) { try PromHistograms(text) }
    }
}
