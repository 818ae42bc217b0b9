import IommufdRPC

// MARK: hwqueue3

// Fixtures of the HW queue rows.
extension Clients {
    /// Owner A's mock vIOMMU (n0's, with vDevice 7) and the page at `Fixture.iova` mapped in its
    /// IOAS, for a HW queue over it: the vIOMMU's ID.
    func hwQueueSetUp(_ f: Fixture) throws -> Int64 {
        guard let v = try nestedSetUp(f, viommu: true).viommu else { throw DaemonTestError("nestedSetUp made no vIOMMU") }
        try map(a, ioas: f.ioas)
        return v
    }

    /// `hwqueue.alloc` params: one page at `Fixture.iova`.
    static func hwQueueParams(_ viommu: Int64, type: JSONValue = "selftest", index: Int64 = 0) -> JSONValue {
        ["viommu": .id(viommu), "type": type, "index": .int(index), "base_address": .int(Fixture.iova), "length": 4096]
    }

    /// A HW queue (index 0) of owner A's.
    func newHWQueue(_ f: Fixture) throws -> Int64 {
        try a.value("hwqueue.alloc", Self.hwQueueParams(try hwQueueSetUp(f))).id("hw_queue")
    }
}
