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
        guard bitCount > 0 else { return result }
        let wordCount = min(words.count, (bitCount + 63) / 64)
        var openStart: Int? = nil  // bit index where the current run began

        // Emits [start, end) in bits; false when maxRuns is reached.
        func emit(_ start: Int, _ end: Int) -> Bool {
            if result.runs.count >= maxRuns {
                result.resumeIOVA = base &+ UInt64(start) &* pageSize
                return false
            }
            result.runs.append(DirtyRun(iova: base &+ UInt64(start) &* pageSize, length: UInt64(end - start) &* pageSize))
            result.dirtyPages &+= UInt64(end - start)
            return true
        }

        // Words wholly inside `bitCount`: clean ones are skipped four at a time.
        let wholeWords = min(wordCount, bitCount / 64)
        guard let word0 = words.baseAddress else { return result }
        var w = 0
        while w < wordCount {
            if openStart == nil {
                while w + 4 <= wholeWords, (word0[w] | word0[w + 1] | word0[w + 2] | word0[w + 3]) == 0 { w += 4 }
                while w < wholeWords, word0[w] == 0 { w += 1 }
                if w == wordCount { break }
            }
            defer { w += 1 }
            var word = word0[w]
            let tail = bitCount - w * 64
            if tail < 64 { word &= (UInt64(1) << UInt64(tail)) &- 1 }
            let bit0 = w * 64

            if let start = openStart {
                if word == ~UInt64(0) { continue }  // the run goes on through this word
                let end = (~word).trailingZeroBitCount
                openStart = nil
                if !emit(start, bit0 + end) { return result }
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
                if !emit(bit0 + s, bit0 + e) { return result }
                word &= ~((UInt64(1) << UInt64(e)) &- 1)
            }
        }
        if let start = openStart { _ = emit(start, min(bitCount, wordCount * 64)) }
        return result
    }

    /// Number of UInt64 words a bitmap of `length` bytes at `pageSize` needs.
    public static func wordCount(length: UInt64, pageSize: UInt64) -> Int {
        guard pageSize > 0 else { return 0 }
        let bits = length / pageSize
        return Int(clamping: bits / 64 + (bits % 64 == 0 ? 0 : 1))
    }
}
