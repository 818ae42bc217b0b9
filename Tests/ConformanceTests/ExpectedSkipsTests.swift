import Foundation
import IommufdConformance
import IommufdCore
import IommufdSim
import Testing

/// A run's skips: only the cases an expected-skip list names may be skipped.
@Suite("Expected skips")
struct ExpectedSkipsTests {
    /// The default simulator's IOMMUs without a single device: what a backend that lost its
    /// devices (the kernel without its mock devices) looks like to the suite.
    static func devicelessFixture() -> ConformanceFixture {
        ConformanceFixture(backendName: "sim without devices") {
            try SimBackend(topology: SimTopology(iommus: SimTopology.default.iommus, devices: []))
        }
    }

    /// The cases that need a device, which the device-less backend skips.
    static let deviceCases = ConformanceSuite.all.filter { !$0.requirements.subtracting([.mapFile]).isEmpty }

    @Test func unexpectedSkipFailsTheRun() {
        var lines: [String] = []
        let summary = ConformanceRunner(fixture: Self.devicelessFixture()).run(Self.deviceCases) { lines.append($0) }
        #expect(!summary.succeeded, "a run whose cases were all skipped for want of devices succeeded: \(summary.line)")
        #expect(summary.failed == Self.deviceCases.count)
        #expect(summary.skipped == 0)
        let mdev = lines.first { $0.hasPrefix("FAIL mdev.hwpt-alloc-is-ENOENT:") }
        #expect(mdev?.contains("no expected-skip list names this case") == true, "\(mdev ?? "no line for mdev.hwpt-alloc-is-ENOENT")")
        #expect(lines.last == "0 passed, \(Self.deviceCases.count) failed, 0 skipped")
        // Each skip names what is missing (a nesting-only case once said "needs ; ...").
        #expect(!lines.contains { $0.contains("needs ;") }, "\(lines.filter { $0.contains("needs ;") })")
    }

    @Test func expectedSkipDoesNotFailTheRun() {
        let listed = Dictionary(uniqueKeysWithValues: Self.deviceCases.map { ($0.id, "this backend has no devices") })
        var lines: [String] = []
        let summary = ConformanceRunner(fixture: Self.devicelessFixture(), expectedSkips: ExpectedSkips(listed))
            .run(Self.deviceCases) { lines.append($0) }
        #expect(summary.succeeded, "\(lines.filter { $0.hasPrefix("FAIL") })")
        #expect(summary.skipped == Self.deviceCases.count)
        #expect(lines.contains { $0.hasPrefix("SKIP mdev.hwpt-alloc-is-ENOENT:") && $0.hasSuffix("(expected: this backend has no devices)") })
    }

    /// Only the listed case may skip: one listed, the others not, fails on the others alone.
    @Test func aListCoversOnlyTheCasesItNames() throws {
        let mdevCases = Self.deviceCases.filter { $0.id.hasPrefix("mdev.") }
        try #require(mdevCases.count >= 2)
        let skips = ExpectedSkips([mdevCases[0].id: "no mdev sample driver"])
        let summary = ConformanceRunner(fixture: Self.devicelessFixture(), expectedSkips: skips).run(mdevCases) { _ in }
        #expect(summary.skipped == 1 && summary.failed == mdevCases.count - 1)
        #expect(!summary.succeeded)
    }

    /// A listed case that runs after all is a stale entry: the run fails and says to remove it.
    @Test func listedCaseThatPassesFailsTheRun() throws {
        let testCase = try #require(ConformanceSuite.all.first { $0.id == "ioas.map-user.fixed-iova-and-unmap" })
        let skips = ExpectedSkips([testCase.id: "pretend it cannot run"])
        var lines: [String] = []
        let summary = ConformanceRunner(fixture: ConformanceFixture(backendName: "sim") { try SimBackend() }, expectedSkips: skips)
            .run([testCase]) { lines.append($0) }
        #expect(!summary.succeeded)
        #expect(lines.first?.contains("remove it from the list") == true, "\(lines)")
    }

    // MARK: The text form

    static let ids: Set<String> = Set(ConformanceSuite.all.map(\.id))

    @Test func parsesIDsReasonsCommentsAndBlankLines() throws {
        let text = """
            # header comment

            mdev.hwpt-alloc-is-ENOENT   no mdev sample driver in the test kernel   # trailing comment
            \tmdev.attach-to-ioas-uses-ioas\tsame reason, tab-separated\t
            """
        let skips = try ExpectedSkips(parsing: text, source: "list", knownIDs: Self.ids)
        #expect(skips.reasons == [
            "mdev.hwpt-alloc-is-ENOENT": "no mdev sample driver in the test kernel",
            "mdev.attach-to-ioas-uses-ioas": "same reason, tab-separated",
        ])
    }

    @Test(arguments: [
        ("mdev.hwpt-alloc-is-ENOENT\n", "list:1: mdev.hwpt-alloc-is-ENOENT has no reason"),
        ("# c\nmdev.no-such-case  a reason\n", "list:2: no conformance case has the ID \"mdev.no-such-case\""),
        ("mdev.hwpt-alloc-is-ENOENT a\nmdev.hwpt-alloc-is-ENOENT b\n", "list:2: mdev.hwpt-alloc-is-ENOENT is listed twice"),
    ])
    func rejectsBadLines(_ text: String, _ expected: String) {
        #expect {
            try ExpectedSkips(parsing: text, source: "list", knownIDs: Self.ids)
        } throws: { error in
            "\(error)".hasPrefix(expected)
        }
    }

    /// The list the test VM's conformance-kernel run uses names only cases that exist, each with
    /// a reason (a renamed case fails here, not only in the VM).
    @Test func testVMListIsValid() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = repository.appendingPathComponent("scripts/vm/conformance-kernel.skips").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let skips = try ExpectedSkips(parsing: text, source: path, knownIDs: Self.ids)
        #expect(!skips.reasons.isEmpty)
    }
}
