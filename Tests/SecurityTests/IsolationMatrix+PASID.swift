import IommufdRPC

// Fixtures of the PASID rows (branch `pasid`).
extension Clients {
    /// A PASID-capable HWPT of owner A's for p0 (20-bit PASIDs behind the mock IOMMU), with p0's
    /// RID attached to it; with `attach`, that PASID of p0 attached to it too.
    func pasidSetUp(_ f: Fixture, attach pasid: Int64? = nil) throws -> Int64 {
        let hwpt = try newPASIDHWPT(f)
        try a.value("device.attach", ["owner": .string(f.owner), "device": "p0", "hwpt": .id(hwpt)])
        if let pasid { try a.value("device.attach_pasid", ["device": "p0", "pasid": .int(pasid), "hwpt": .id(hwpt)]) }
        return hwpt
    }

    /// Another HWPT of owner A's allocated with `pasid` for p0 (leasing p0 to A if needed).
    func newPASIDHWPT(_ f: Fixture) throws -> Int64 {
        try a.value("hwpt.alloc", ["ioas": .id(f.ioas), "device": "p0", "pasid": true]).id("hwpt")
    }
}
