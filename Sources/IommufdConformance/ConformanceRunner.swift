/// Runs cases through a fixture and reports one line per case and a summary line.
public struct ConformanceRunner: Sendable {
    public let fixture: ConformanceFixture
    /// The cases that may be skipped here; any other skip is a failure (see `ExpectedSkips`).
    public let expectedSkips: ExpectedSkips

    public init(fixture: ConformanceFixture, expectedSkips: ExpectedSkips = ExpectedSkips()) {
        self.fixture = fixture
        self.expectedSkips = expectedSkips
    }

    /// Runs `cases` in order, calling `output` with one line per case and, last, exactly
    /// `"N passed, N failed, N skipped"`. A skip counts as skipped only when `expectedSkips`
    /// lists the case; otherwise it is a failure, as is a listed case that did not skip.
    public func run(_ cases: [ConformanceCase], output: (String) -> Void) -> ConformanceSummary {
        var summary = ConformanceSummary()
        for testCase in cases {
            let outcome = expectedSkips.judge(fixture.run(testCase), of: testCase.id)
            summary.results.append((testCase.id, outcome))
            switch outcome {
            case .passed: output("PASS \(testCase.id)")
            case .failed(let message): output("FAIL \(testCase.id): \(message)")
            case .skipped(let reason): output("SKIP \(testCase.id): \(reason)")
            }
        }
        output(summary.line)
        return summary
    }
}

/// The outcome of a run.
public struct ConformanceSummary: Sendable {
    public var results: [(id: String, outcome: ConformanceOutcome)] = []

    public var passed: Int { results.filter { $0.outcome == .passed }.count }
    public var failed: Int { results.filter { if case .failed = $0.outcome { true } else { false } }.count }
    public var skipped: Int { results.filter { if case .skipped = $0.outcome { true } else { false } }.count }
    /// No case failed (an unexpected skip is a failure).
    public var succeeded: Bool { failed == 0 }
    public var line: String { "\(passed) passed, \(failed) failed, \(skipped) skipped" }
}
