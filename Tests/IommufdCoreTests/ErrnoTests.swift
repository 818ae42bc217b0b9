import Testing
@testable import IommufdCore

@Suite struct ErrnoTests {
    @Test func namesRoundTrip() {
        for e in [Errno.ENOENT, .EEXIST, .EBUSY, .EINVAL, .EMSGSIZE, .EOPNOTSUPP, .ENOTTY] {
            #expect(Errno(name: e.name) == e)
        }
        #expect(Errno.ENOENT.name == "ENOENT")
        #expect(Errno.EOPNOTSUPP.rawValue == 95)
    }

    @Test func iommuErrorNamesTheIoctl() {
        let e = IommuError(.ENOENT, "IOMMU_IOAS_UNMAP", detail: "iova 0x1000")
        #expect(e.description.hasPrefix("IOMMU_IOAS_UNMAP failed: ENOENT"))
        #expect(e.description.contains("iova 0x1000"))
    }

    @Test func rangeFromLength() {
        let r = IOVARange(start: 0x1000, length: 0x2000)
        #expect(r.last == 0x2fff)
    }
}
