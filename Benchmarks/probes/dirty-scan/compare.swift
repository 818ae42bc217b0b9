import DirtyKitBase
import DirtyKitNew
#if canImport(Glibc)
import Glibc
#endif

// Scanner-only micro benchmark (run.sh builds it): a revision's scan (DirtyKitBase) and the tree's (DirtyKitNew)
// alternated call by call in one process: DirtyBitmap.runs and DirtyRunPacking.packBitmap over a
// 32 MiB bitmap (1 TiB at 4 KiB pages).
func now() -> UInt64 { var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts); return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec) }
struct SplitMix { var state: UInt64; mutating func next() -> UInt64 { state &+= 0x9E3779B97F4A7C15; var z = state; z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) &* 0x94D049BB133111EB; return z ^ (z >> 31) } }
let words = (32 << 20) >> 3
func make(_ percent: Double, unitBits: Int) -> [UInt64] {
    var b = [UInt64](repeating: 0, count: words)
    var rng = SplitMix(state: 7)
    let units = words * 64 / unitBits
    let want = Int(Double(units) * percent / 100)
    var set = 0
    while set < want {
        let u = Int(rng.next() % UInt64(units))
        let bit = u * unitBits
        if b[bit / 64] >> UInt64(bit % 64) & 1 == 1 { continue }
        for k in bit..<(bit + unitBits) { b[k / 64] |= 1 << UInt64(k % 64) }
        set += 1
    }
    return b
}
func ms(_ x: UInt64) -> String { let v = Double(x) / 1e6; return "\(Double(Int(v * 100)) / 100)" }
func stats(_ xs: [UInt64]) -> String { let s = xs.sorted(); return "min " + ms(s[0]) + " med " + ms(s[s.count / 2]) }
let n = Int(CommandLine.arguments.dropFirst().first ?? "30")!
var outA = DirtyKitBase.DirtyRunPacking.Bytes()
var outB = DirtyKitNew.DirtyRunPacking.Bytes()
for (name, pct, unit) in [("5% in 2MiB", 5.0, 512), ("50% in 2MiB", 50.0, 512), ("0.5% single bits", 0.5, 1), ("clean", 0.0, 512)] {
    let bitmap = make(pct, unitBits: unit)
    var scratch = bitmap
    var t: [String: [UInt64]] = [:]
    var r = 0
    func time(_ key: String, _ body: () -> Int) {
        let t0 = now(); let x = body(); let t1 = now()
        if r == 0 { r = x } else { precondition(r == x, key) }
        t[key, default: []].append(t1 - t0)
    }
    func refill() { scratch.withUnsafeMutableBufferPointer { s in bitmap.withUnsafeBufferPointer { s.baseAddress!.update(from: $0.baseAddress!, count: words) } } }
    var b = bitmap
    for _ in 0..<n {
        time("runs base") { bitmap.withUnsafeBufferPointer { DirtyKitBase.DirtyBitmap.runs($0, bitCount: words * 64, base: 0, pageSize: 4096).runs.count } }
        time("runs new") { bitmap.withUnsafeBufferPointer { DirtyKitNew.DirtyBitmap.runs($0, bitCount: words * 64, base: 0, pageSize: 4096).runs.count } }
        outA.removeAll(); outB.removeAll()
        time("pack base") { b.withUnsafeMutableBufferPointer { DirtyKitBase.DirtyRunPacking.packBitmap($0, bitCount: words * 64, zeroing: false, into: &outA).runs } }
        time("pack new") { b.withUnsafeMutableBufferPointer { DirtyKitNew.DirtyRunPacking.packBitmap($0, bitCount: words * 64, zeroing: false, into: &outB).runs } }
        precondition(outA.count == outB.count && memcmp(outA.base!, outB.base!, outA.count) == 0)
        outA.removeAll(); outB.removeAll()
        refill()
        time("pack+zero base") { scratch.withUnsafeMutableBufferPointer { DirtyKitBase.DirtyRunPacking.packBitmap($0, bitCount: words * 64, zeroing: true, into: &outA).runs } }
        refill()
        time("pack+zero new") { scratch.withUnsafeMutableBufferPointer { DirtyKitNew.DirtyRunPacking.packBitmap($0, bitCount: words * 64, zeroing: true, into: &outB).runs } }
    }
    print("\(name) (\(r) runs), ms:")
    for k in ["runs base", "runs new", "pack base", "pack new", "pack+zero base", "pack+zero new"] { print("   \(k): \(stats(t[k]!))") }
}
