/// The cases a run may skip, each with the reason it cannot run there. A skip of any other
/// case fails the run, and so does a listed case that ran after all (the list is stale): a
/// backend that lost its devices turns cases into skips, and a run must not pass on them.
///
/// The text form (`--expected-skips FILE`) is one case per line, `CASE-ID REASON…`: the ID, then
/// blanks, then why this environment cannot run it. `#` starts a comment; blank lines are ignored.
public struct ExpectedSkips: Sendable, Equatable {
    /// Reason by case ID.
    public private(set) var reasons: [String: String]

    public init(_ reasons: [String: String] = [:]) {
        self.reasons = reasons
    }

    /// Parses the text form; every ID must name a case of `knownIDs` and appear once, and every
    /// line must give a reason. `source` names the text in errors (a file path).
    public init(parsing text: String, source: String, knownIDs: Set<String>) throws(ExpectedSkipsError) {
        var reasons: [String: String] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let location = "\(source):\(index + 1)"
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            line = line.drop { $0 == " " || $0 == "\t" || $0 == "\r" }
            while let last = line.last, last == " " || last == "\t" || last == "\r" { line = line.dropLast() }
            if line.isEmpty { continue }
            let id = String(line.prefix { $0 != " " && $0 != "\t" })
            let reason = String(line.dropFirst(id.count).drop { $0 == " " || $0 == "\t" })
            guard knownIDs.contains(id) else {
                throw ExpectedSkipsError("\(location): no conformance case has the ID \"\(id)\"; `iommufd-conformance --list` shows them")
            }
            guard !reason.isEmpty else {
                throw ExpectedSkipsError("\(location): \(id) has no reason; write why this environment cannot run it after the ID")
            }
            guard reasons[id] == nil else {
                throw ExpectedSkipsError("\(location): \(id) is listed twice; keep one line for it")
            }
            reasons[id] = reason
        }
        self.reasons = reasons
    }

    /// The reason `id` may be skipped, or nil when it must run.
    public func reason(for id: String) -> String? { reasons[id] }

    /// How `outcome` of case `id` counts under this list: an expected skip stays a skip, an
    /// unexpected skip and a listed case that did not skip become failures saying what to do.
    public func judge(_ outcome: ConformanceOutcome, of id: String) -> ConformanceOutcome {
        switch (outcome, reasons[id]) {
        case (.skipped(let reason), nil):
            return .failed(
                "skipped (\(reason)), and no expected-skip list names this case: fix what the backend lacks, or list the case with the reason it cannot run here (--expected-skips)")
        case (.skipped(let reason), let listed?):
            return .skipped("\(reason) (expected: \(listed))")
        case (.passed, let listed?):
            return .failed("passed, but the expected-skip list says it is skipped (\(listed)); remove it from the list")
        case (.failed(let message), let listed?):
            return .failed("\(message) (the expected-skip list says it is skipped: \(listed); remove it from the list)")
        case (.passed, nil), (.failed, nil):
            return outcome
        }
    }
}

/// An expected-skip list that cannot be used: where and why.
public struct ExpectedSkipsError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
