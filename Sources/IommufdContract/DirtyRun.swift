/// A run of dirty IOVA: `[iova, iova + length)`.
public struct DirtyRun: Hashable, Sendable, Codable {
    public var iova: UInt64
    public var length: UInt64
    public init(iova: UInt64, length: UInt64) {
        self.iova = iova
        self.length = length
    }
}
