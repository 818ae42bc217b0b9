import Foundation
import IommufdConformance
import IommufdCore
import IommufdSim
import Testing

extension ConformanceCase: CustomTestStringConvertible {
    public var testDescription: String { id }
}

/// Records the outcome of a case as swift-testing sees it. On the simulator nothing may be
/// skipped: its default topology provides every device role, so a skip is a failure too.
func record(_ outcome: ConformanceOutcome, of testCase: ConformanceCase, skipIsFailure: Bool) {
    switch outcome {
    case .passed:
        break
    case .failed(let message):
        Issue.record("\(testCase.id) — \(testCase.rule)\n\(message)")
    case .skipped(let reason):
        if skipIsFailure { Issue.record("\(testCase.id) was skipped on the simulator: \(reason)") }
    }
}

@Suite("Conformance on the simulator")
struct SimConformanceTests {
    @Test(arguments: ConformanceSuite.all)
    func conformance(_ testCase: ConformanceCase) {
        let fixture = ConformanceFixture(backendName: "sim") { try SimBackend() }
        record(fixture.run(testCase), of: testCase, skipIsFailure: true)
    }

    @Test func caseIDsAreUnique() {
        let ids = ConformanceSuite.all.map(\.id)
        #expect(Set(ids).count == ids.count)
    }
}

/// The same cases on the real kernel: only where /dev/iommu exists and
/// IOMMUFDD_CONFORMANCE_KERNEL=1 asks for it (the test VM).
enum KernelConformance {
    static var requested: Bool {
        ProcessInfo.processInfo.environment["IOMMUFDD_CONFORMANCE_KERNEL"] == "1"
            && FileManager.default.fileExists(atPath: "/dev/iommu")
    }

    /// Where the kernel backend is constructed. `KernelBackend` lives on another branch; until
    /// the lead wires it here, a requested kernel run fails with this message.
    static func fixture() throws -> ConformanceFixture {
        throw KernelBackendNotWired()
    }

    struct KernelBackendNotWired: Error, CustomStringConvertible {
        var description: String {
            "the kernel backend is not wired into ConformanceTests yet (KernelConformance.fixture)"
        }
    }
}

@Suite("Conformance on the kernel")
struct KernelConformanceTests {
    @Test(.enabled(if: KernelConformance.requested), arguments: ConformanceSuite.all)
    func conformance(_ testCase: ConformanceCase) throws {
        let fixture = try KernelConformance.fixture()
        record(fixture.run(testCase), of: testCase, skipIsFailure: false)
    }
}
