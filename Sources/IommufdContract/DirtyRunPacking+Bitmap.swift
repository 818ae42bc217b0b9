/// Packing a dirty bitmap straight into the `packed_runs` bytes (issue 16, target 4): one pass
/// over the words that writes each run's two varints into a byte buffer kept between reads, with
/// no `DirtyRun` array, no intermediate byte array and no allocation that grows with the runs
/// (the buffer grows once, to the largest answer, and is reused).
///
/// The runs are exactly those of `DirtyBitmap.runs` (the same word-at-a-time scan: clean words
/// skipped four at a time, fully dirty words extend the open run), so `base64(packed bytes)` is
/// `pack(DirtyBitmap.runs(...).runs, ...)` byte for byte; DirtyRunPackingPropertyTests checks it
/// over random bitmaps.
extension DirtyRunPacking {
    /// The varint bytes of a packed answer (before base64), in memory kept between reads.
    ///
    /// A value type over a manually managed allocation: its owner calls `deallocate()` once,
    /// when it drops it (the broker keeps one per owner, beside its scratch bitmap).
    public struct Bytes {
        public private(set) var base: UnsafeMutablePointer<UInt8>?
        public private(set) var count = 0
        public private(set) var capacity = 0

        public init() {}

        /// The bytes written so far.
        public var buffer: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

        /// Forgets the bytes, keeping the memory.
        public mutating func removeAll() { count = 0 }

        /// Gives the memory back.
        public mutating func deallocate() {
            base?.deallocate()
            base = nil
            count = 0
            capacity = 0
        }

        /// Room for at least `extra` more bytes (grows by half again, at least to 4 KiB).
        @usableFromInline
        mutating func reserve(_ extra: Int) {
            guard count + extra > capacity else { return }
            let newCapacity = max(4096, count + extra, capacity + capacity / 2)
            let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
            if let base {
                grown.update(from: base, count: count)
                base.deallocate()
            }
            base = grown
            capacity = newCapacity
        }

        @usableFromInline
        mutating func setCount(_ n: Int) { count = n }
    }

    /// What `packBitmap` found.
    public struct BitmapPacking: Hashable, Sendable {
        /// Runs written.
        public var runs: Int
        /// Dirty pages in them.
        public var dirtyPages: UInt64
        /// Set when `maxRuns` was reached: the bit (page index from the bitmap's start) of the
        /// first run not written.
        public var resumeBit: Int?
    }

    /// The most bytes one run takes: two varints of up to 10 bytes.
    static let maxRunBytes = 20

    /// Appends the runs of the first `bitCount` bits of `words` to `out` as `packed_runs`
    /// varints (gap and length in pages, the gap of the first run from bit 0), at most
    /// `maxRuns` of them. With `zeroing`, every word the scan reads that has a bit set is set to
    /// zero as it is read, so a caller's scratch bitmap comes back clean without another pass:
    /// every word of `bitCount` when the answer is whole; when it is cut short, every word before
    /// the one holding `resumeBit` (the caller zeroes from that word on), and any word read
    /// after it (the words of the run left out, when it spans several).
    public static func packBitmap(
        _ words: UnsafeMutableBufferPointer<UInt64>, bitCount: Int, maxRuns: Int = .max, zeroing: Bool,
        into out: inout Bytes
    ) -> BitmapPacking {
        var result = BitmapPacking(runs: 0, dirtyPages: 0, resumeBit: nil)
        guard bitCount > 0, words.baseAddress != nil else { return result }
        // Room for every run the bitmap can hold up to the cap, at most: then no check per run.
        // Beyond 64 Ki runs (a large cap over a dense bitmap) the buffer grows as it goes.
        let bound = min(maxRuns, (bitCount + 1) / 2)
        let upFront = min(bound, 1 << 16)
        out.reserve(upFront * maxRunBytes)
        var p = out.base! + out.count
        var limit = out.base! + out.capacity
        var previousEnd = 0
        var runs = 0
        var pages: UInt64 = 0

        @inline(__always) func varint(_ value: Int) {
            var v = UInt64(value)
            while v >= 0x80 {
                p.pointee = UInt8(truncatingIfNeeded: v) | 0x80
                p += 1
                v >>= 7
            }
            p.pointee = UInt8(v)
            p += 1
        }
        // Writes the run [start, end) in bits; false when maxRuns is reached.
        @inline(__always) func emit(_ start: Int, _ end: Int) -> Bool {
            if runs >= maxRuns {
                result.resumeBit = start
                return false
            }
            if limit - p < maxRunBytes {
                out.setCount(out.base!.distance(to: p))
                out.reserve(maxRunBytes * 4096)
                p = out.base! + out.count
                limit = out.base! + out.capacity
            }
            varint(start - previousEnd)
            varint(end - start)
            previousEnd = end
            runs += 1
            pages &+= UInt64(end - start)
            return true
        }

        DirtyBitmap.scan(words, bitCount: bitCount, zeroing: zeroing, emit)
        out.setCount(out.base!.distance(to: p))
        result.runs = runs
        result.dirtyPages = pages
        return result
    }

    /// `bytes` base64-encoded (RFC 4648, standard alphabet, `=` padding): the `packed_runs` string.
    public static func base64(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let count = (bytes.count + 2) / 3 * 4
        guard count > 0 else { return "" }
        return alphabet.withUnsafeBufferPointer { table in
            String(unsafeUninitializedCapacity: count) { out in
                var o = 0
                var i = 0
                while i + 3 <= bytes.count {
                    let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
                    out[o] = table[Int(v >> 18)]
                    out[o + 1] = table[Int(v >> 12 & 63)]
                    out[o + 2] = table[Int(v >> 6 & 63)]
                    out[o + 3] = table[Int(v & 63)]
                    o += 4
                    i += 3
                }
                let left = bytes.count - i
                if left > 0 {
                    let v = UInt32(bytes[i]) << 16 | (left == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
                    out[o] = table[Int(v >> 18)]
                    out[o + 1] = table[Int(v >> 12 & 63)]
                    out[o + 2] = left == 2 ? table[Int(v >> 6 & 63)] : UInt8(ascii: "=")
                    out[o + 3] = UInt8(ascii: "=")
                    o += 4
                }
                return o
            }
        }
    }
}
