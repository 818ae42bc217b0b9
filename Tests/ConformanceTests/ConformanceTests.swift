import Foundation
import IommufdConformance
import IommufdCore
import IommufdSim
import Testing

extension ConformanceCase: CustomTestStringConvertible {
    public var testDescription: String { id }
}

/// Records the outcome of a case as swift-testing sees it. On the simulator nothing may be
/// skipped: its default topology provides every device role, so a skip is a failure too (an
/// empty expected-skip list).
func record(_ outcome: ConformanceOutcome, of testCase: ConformanceCase) {
    switch ExpectedSkips().judge(outcome, of: testCase.id) {
    case .passed:
        break
    case .failed(let message):
        Issue.record("\(testCase.id) — \(testCase.rule)\n\(message)")
    case .skipped(let reason):
        Issue.record("\(testCase.id) was skipped on the simulator: \(reason)")
    }
}

@Suite("Conformance on the simulator")
struct SimConformanceTests {
    @Test(arguments: ConformanceSuite.all)
    func conformance(_ testCase: ConformanceCase) {
        let fixture = ConformanceFixture(backendName: "sim") { try SimBackend() }
        record(fixture.run(testCase), of: testCase)
    }

    @Test func caseIDsAreUnique() {
        let ids = ConformanceSuite.all.map(\.id)
        #expect(Set(ids).count == ids.count)
    }

    /// Every conformance case maps by file wherever the backend has IOMMU_IOAS_MAP_FILE; these
    /// keep IOMMU_IOAS_MAP (a user address) in the suite.
    @Test func userAddressMapIsCovered() {
        let ids = Set(ConformanceSuite.all.map(\.id))
        for id in [
            "ioas.map-user.fixed-iova-and-unmap", "ioas.map-user.auto-iova", "ioas.map-user.fixed-overlap-is-EEXIST",
            "ioas.map-user.unaligned-is-EINVAL", "ioas.map-user.unpinnable-with-domain-is-EFAULT",
        ] {
            #expect(ids.contains(id), "no conformance case \(id)")
        }
    }
}
