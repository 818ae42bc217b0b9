#if canImport(Glibc)
import Glibc
#endif

/// Monotonic nanoseconds.
@inline(__always)
func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Durations of repeated runs of one operation, in nanoseconds.
struct Samples {
    private(set) var values: [Double] = []

    mutating func add(_ nanoseconds: UInt64) { values.append(Double(nanoseconds)) }

    func percentile(_ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count - 1)).rounded())
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }
    var median: Double { percentile(50) }
    var p99: Double { percentile(99) }
}

/// Times `body` `iterations` times after `warmup` untimed runs.
func measure(iterations: Int, warmup: Int = 0, _ body: () throws -> Void) rethrows -> Samples {
    for _ in 0..<warmup { try body() }
    var samples = Samples()
    for _ in 0..<iterations {
        let start = now()
        try body()
        samples.add(now() - start)
    }
    return samples
}

/// How a figure compares with its target.
enum Target {
    /// ratio = figure / floor must be at most this.
    case ratioAtMost(Double)
    /// the figure (a rate, larger is better) must be at least this.
    case atLeast(Double, String)
    /// the figure must be at most this.
    case atMost(Double, String)
    /// Reported, no target.
    case none

    var text: String {
        switch self {
        case .ratioAtMost(let r): "ratio <= \(format(r))"
        case .atLeast(let v, let unit): ">= \(format(v)) \(unit)"
        case .atMost(let v, let unit): "<= \(format(v)) \(unit)"
        case .none: "-"
        }
    }
}

/// One line of the results table.
struct Row {
    var figure: String
    var value: String
    var floor: String
    var ratio: Double?
    var target: Target
    var met: Bool?
}

final class Report {
    private(set) var rows: [Row] = []

    /// A latency figure against a latency floor.
    func latency(_ figure: String, _ samples: Samples, floor: Double, floorName: String, target: Target = .none, p99: Bool = false) {
        let ratio = samples.median / floor
        let met: Bool? = if case .ratioAtMost(let r) = target { ratio <= r } else { nil }
        var value = "median \(formatNanos(samples.median))"
        if p99 { value += ", p99 \(formatNanos(samples.p99))" }
        add(Row(figure: figure, value: value, floor: "\(formatNanos(floor)) \(floorName)", ratio: ratio, target: target, met: met))
    }

    func add(_ row: Row) {
        rows.append(row)
        let met = row.met.map { $0 ? "yes" : "NO" } ?? "-"
        let ratio = row.ratio.map { format($0) + "x" } ?? "-"
        print("  \(row.figure): \(row.value) | floor \(row.floor) | ratio \(ratio) | target \(row.target.text) | met \(met)")
    }

    /// The whole table, as GitHub markdown.
    func table() -> String {
        var lines = ["| figure | median / value | floor | ratio | target | met? |", "|---|---|---|---|---|---|"]
        for row in rows {
            let met = row.met.map { $0 ? "yes" : "**no**" } ?? "-"
            let ratio = row.ratio.map { format($0) + "x" } ?? "-"
            lines.append("| \(row.figure) | \(row.value) | \(row.floor) | \(ratio) | \(row.target.text) | \(met) |")
        }
        return lines.joined(separator: "\n")
    }
}

func format(_ value: Double) -> String {
    if value.isNaN { return "n/a" }
    if value >= 100 { return String(Int(value.rounded())) }
    if value >= 10 { return String(Double(Int((value * 10).rounded())) / 10) }
    return String(Double(Int((value * 100).rounded())) / 100)
}

func formatNanos(_ ns: Double) -> String {
    if ns >= 1e9 { return format(ns / 1e9) + " s" }
    if ns >= 1e6 { return format(ns / 1e6) + " ms" }
    if ns >= 1e3 { return format(ns / 1e3) + " µs" }
    return format(ns) + " ns"
}

func formatBytes(_ bytes: Double) -> String {
    if bytes >= 1_073_741_824 { return format(bytes / 1_073_741_824) + " GiB" }
    if bytes >= 1_048_576 { return format(bytes / 1_048_576) + " MiB" }
    if bytes >= 1024 { return format(bytes / 1024) + " KiB" }
    return format(bytes) + " B"
}

/// Resident set size of this process, from /proc/self/statm.
func residentBytes(pid: Int32? = nil) -> UInt64 {
    let path = pid.map { "/proc/\($0)/statm" } ?? "/proc/self/statm"
    guard let file = fopen(path, "r") else { return 0 }
    defer { fclose(file) }
    var size: UInt = 0
    var resident: UInt = 0
    guard fscanf_statm(file, &size, &resident) else { return 0 }
    return UInt64(resident) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
}

private func fscanf_statm(_ file: UnsafeMutablePointer<FILE>, _ size: inout UInt, _ resident: inout UInt) -> Bool {
    var buffer = [CChar](repeating: 0, count: 256)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { return false }
    let fields = String(cString: buffer).split(separator: " ")
    guard fields.count >= 2, let s = UInt(fields[0]), let r = UInt(fields[1]) else { return false }
    size = s
    resident = r
    return true
}

/// The machine and its load, for the report.
func machineDescription() -> String {
    var parts: [String] = []
    if let cpu = firstLine(of: "/proc/cpuinfo", containing: "model name") {
        parts.append(cpu.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters() } ?? cpu)
    }
    parts.append("\(sysconf(Int32(_SC_NPROCESSORS_ONLN))) CPUs")
    var info = utsname()
    uname(&info)
    let release = withUnsafeBytes(of: &info.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    parts.append("Linux \(release)")
    if let load = firstLine(of: "/proc/loadavg", containing: "") {
        parts.append("load average " + load.split(separator: " ").prefix(3).joined(separator: " "))
    }
    return parts.joined(separator: ", ")
}

func firstLine(of path: String, containing needle: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 1024)
    while fgets(&buffer, Int32(buffer.count), file) != nil {
        let line = String(cString: buffer)
        if needle.isEmpty || line.hasPrefix(needle) { return line.trimmingCharacters() }
    }
    return nil
}

extension StringProtocol {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\n" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\n" { s.removeLast() }
        return String(s)
    }
}
