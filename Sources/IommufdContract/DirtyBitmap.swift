/// Turning a dirty bitmap (bit `(addr - base) / pageSize` of an array of UInt64, the layout of
/// `IOMMU_HWPT_GET_DIRTY_BITMAP`) into runs, a word at a time: clean words cost one compare,
/// fully dirty words extend the open run without looking at bits, and within a word the run
/// edges are found with `trailingZeroBitCount`.
public enum DirtyBitmap {
    public struct Coalesced: Hashable, Sendable {
        public var runs: [DirtyRun]
        /// Dirty pages counted (up to `resumeIOVA` when truncated).
        public var dirtyPages: UInt64
        /// Set when `maxRuns` was reached: the IOVA of the first run not reported.
        public var resumeIOVA: UInt64?
    }

    /// Coalesces the first `bitCount` bits of `words`.
    public static func runs(
        _ words: UnsafeBufferPointer<UInt64>, bitCount: Int, base: UInt64, pageSize: UInt64,
        maxRuns: Int = .max
    ) -> Coalesced {
        var result = Coalesced(runs: [], dirtyPages: 0, resumeIOVA: nil)
        // Never written: `zeroing` is off.
        scan(UnsafeMutableBufferPointer(mutating: words), bitCount: bitCount, zeroing: false) { start, end in
            if result.runs.count >= maxRuns {
                result.resumeIOVA = base &+ UInt64(start) &* pageSize
                return false
            }
            result.runs.append(DirtyRun(iova: base &+ UInt64(start) &* pageSize, length: UInt64(end - start) &* pageSize))
            result.dirtyPages &+= UInt64(end - start)
            return true
        }
        return result
    }

    /// The scan behind `runs` and `DirtyRunPacking.packBitmap`: calls `emit(start, end)` for
    /// each run of set bits among the first `bitCount` bits of `words` (`[start, end)` in bits
    /// from bit 0), in order, and stops at the first `emit` that answers false. A run that
    /// reaches the last word read ends at `min(bitCount, words read x 64)`.
    ///
    /// Clean words are skipped four at a time while no run is open, a fully dirty word extends
    /// the open run without looking at its bits, and within a word the run edges are found with
    /// `trailingZeroBitCount`. With `zeroing`, every word read that has a bit set is set to zero
    /// as it is read (bits past `bitCount` in the last word included); without it `words` is
    /// only read. Inlined into each caller, so `emit` and `zeroing` cost nothing per word.
    @inline(__always)
    static func scan(
        _ words: UnsafeMutableBufferPointer<UInt64>, bitCount: Int, zeroing: Bool,
        _ emit: (_ start: Int, _ end: Int) -> Bool
    ) {
        guard bitCount > 0, let word0 = words.baseAddress else { return }
        let wordCount = min(words.count, (bitCount + 63) / 64)
        // Words wholly inside `bitCount`: clean ones are skipped four at a time.
        let wholeWords = min(wordCount, bitCount / 64)
        var openStart = -1  // bit index where the current run began, or -1
        var w = 0
        while w < wordCount {
            if openStart < 0 {
                while w + 4 <= wholeWords, (word0[w] | word0[w + 1] | word0[w + 2] | word0[w + 3]) == 0 { w += 4 }
                while w < wholeWords, word0[w] == 0 { w += 1 }
                if w == wordCount { return }
            }
            var word = word0[w]
            if zeroing && word != 0 { word0[w] = 0 }
            let tail = bitCount - w * 64
            if tail < 64 { word &= (UInt64(1) << UInt64(tail)) &- 1 }
            let bit0 = w * 64
            w += 1
            if openStart >= 0 {
                if word == ~UInt64(0) { continue }  // the run goes on through this word
                let end = (~word).trailingZeroBitCount
                let start = openStart
                openStart = -1
                if !emit(start, bit0 + end) { return }
                word &= ~((UInt64(1) << UInt64(end)) &- 1)
            }
            while word != 0 {
                let s = word.trailingZeroBitCount
                let zerosAbove = ~word & ~((UInt64(1) << UInt64(s)) &- 1)
                if zerosAbove == 0 {  // dirty up to the end of the word: leave the run open
                    openStart = bit0 + s
                    break
                }
                let e = zerosAbove.trailingZeroBitCount
                if !emit(bit0 + s, bit0 + e) { return }
                word &= ~((UInt64(1) << UInt64(e)) &- 1)
            }
        }
        if openStart >= 0 { _ = emit(openStart, min(bitCount, wordCount * 64)) }
    }

    /// Number of UInt64 words a bitmap of `length` bytes at `pageSize` needs.
    public static func wordCount(length: UInt64, pageSize: UInt64) -> Int {
        guard pageSize > 0 else { return 0 }
        let bits = length / pageSize
        return Int(clamping: bits / 64 + (bits % 64 == 0 ? 0 : 1))
    }
}
