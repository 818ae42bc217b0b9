/// Runs cases through a fixture and reports one line per case and a summary line.
public struct ConformanceRunner: Sendable {
    public let fixture: ConformanceFixture

    public init(fixture: ConformanceFixture) {
        self.fixture = fixture
    }

    /// Runs `cases` in order, calling `output` with one line per case and, last, exactly
    /// `"N passed, N failed, N skipped"`.
    public func run(_ cases: [ConformanceCase], output: (String) -> Void) -> ConformanceSummary {
        var summary = ConformanceSummary()
        for testCase in cases {
            let outcome = fixture.run(testCase)
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
    /// No case failed.
    public var succeeded: Bool { failed == 0 }
    public var line: String { "\(passed) passed, \(failed) failed, \(skipped) skipped" }
}
