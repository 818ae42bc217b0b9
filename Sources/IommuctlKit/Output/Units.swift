/// How iommuctl writes numbers for people: byte counts in binary units, addresses in hex.
public enum Units {
    /// `0 B`, `512 B`, `4 KiB`, `1.5 MiB`, `2 GiB`: exact multiples without a fraction, others
    /// with one decimal (rounded down, so a size is never shown larger than it is).
    public static func bytes(_ value: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var unit = 0
        while unit + 1 < units.count, value >> (10 * UInt64(unit + 1)) > 0 { unit += 1 }
        if unit == 0 { return "\(value) B" }
        let shift = UInt64(10 * unit)
        let whole = value >> shift
        let remainder = value & ((UInt64(1) << shift) - 1)
        if remainder == 0 { return "\(whole) \(units[unit])" }
        return "\(whole).\(firstDecimal(remainder, shift: shift)) \(units[unit])"
    }

    /// The first decimal of `remainder / 2^shift` (`remainder < 2^shift`), without overflow.
    private static func firstDecimal(_ remainder: UInt64, shift: UInt64) -> UInt64 {
        let (high, low) = remainder.multipliedFullWidth(by: 10)
        if shift >= 64 { return high >> (shift - 64) }
        return (high << (64 - shift)) | (low >> shift)
    }

    /// `0x1000` (lowercase, no padding).
    public static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

    /// `0x100000-0x1fffff`: an inclusive range, as the uAPI's `iova_range` describes them.
    public static func hexRange(start: UInt64, last: UInt64) -> String { "\(hex(start))-\(hex(last))" }

    /// `0x100000-0x1fffff` for `[iova, iova + length)`; an empty range is just `iova`.
    public static func hexRange(iova: UInt64, length: UInt64) -> String {
        length == 0 ? hex(iova) : hexRange(start: iova, last: iova &+ (length - 1))
    }

    /// `12.5%` with up to `digits` decimals, trailing zeros dropped (`0%`, `100%`, `0.003%`);
    /// a non-zero share too small to show is `<0.001%`, never `0%`.
    public static func percent(_ part: UInt64, of whole: UInt64, digits: Int = 3) -> String {
        guard whole > 0, part > 0 else { return "0%" }
        let digits = min(max(digits, 1), 9)
        var scale: UInt64 = 1
        for _ in 0..<digits { scale *= 10 }
        let scaled = UInt64((Double(part) / Double(whole) * 100 * Double(scale)).rounded())
        if scaled == 0 { return "<0." + String(repeating: "0", count: max(0, digits - 1)) + "1%" }
        var fraction = String(scaled % scale)
        fraction = String(repeating: "0", count: digits - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(scaled / scale)" + (fraction.isEmpty ? "" : "." + fraction) + "%"
    }

    /// `1d 02h 03m 04s`, `5m 00s`, `12s`.
    public static func duration(seconds: UInt64) -> String {
        let d = seconds / 86_400, h = seconds / 3600 % 24, m = seconds / 60 % 60, s = seconds % 60
        func two(_ v: UInt64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        if d > 0 { return "\(d)d \(two(h))h \(two(m))m \(two(s))s" }
        if h > 0 { return "\(h)h \(two(m))m \(two(s))s" }
        if m > 0 { return "\(m)m \(two(s))s" }
        return "\(s)s"
    }

    /// Parses a byte count as people write it: `4096`, `0x1000`, `4k`, `4K`, `4KiB`, `2M`,
    /// `1G`, `1T` (binary multiples). Nil when malformed or out of range.
    public static func parseBytes(_ text: String) -> UInt64? {
        var digits = Substring(text.trimmingWhitespace())
        guard !digits.isEmpty else { return nil }
        if digits.lowercased().hasPrefix("0x") { return UInt64(digits.dropFirst(2), radix: 16) }
        var shift: UInt64 = 0
        let lower = digits.lowercased()
        for (suffixes, s) in [(["kib", "kb", "k"], 10), (["mib", "mb", "m"], 20), (["gib", "gb", "g"], 30),
                              (["tib", "tb", "t"], 40), (["b"], 0)] as [([String], UInt64)] {
            if let suffix = suffixes.first(where: { lower.hasSuffix($0) }) {
                digits = digits.dropLast(suffix.count)
                shift = s
                break
            }
        }
        guard let number = UInt64(digits.trimmingWhitespace()) else { return nil }
        guard shift == 0 || number <= UInt64.max >> shift else { return nil }
        return number << shift
    }

    /// Parses an address: hex with `0x`, else decimal (size suffixes allowed: `1G` is 0x40000000).
    public static func parseAddress(_ text: String) -> UInt64? { parseBytes(text) }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
