import Foundation
import Testing

@testable import IommuctlKit

/// docs/walkthrough.md is a shell session: every `$ iommuctl ...` line in its ```console blocks
/// is run, in order, against a fresh iommufdd (simulator), and what it prints (stdout, then
/// stderr) must be the lines that follow it in the file. So the walkthrough the README shows is
/// what the tool prints. README.md's walkthrough is checked the same way. After changing output
/// on purpose, regenerate both with
/// IOMMUCTL_UPDATE_WALKTHROUGH=1 swift test --filter WalkthroughTests, and read the diff.
/// A line ending in ` &` runs in the background and `$ wait` waits for it
/// (WalkthroughBackgroundJob says what each of them shows).
@Suite("docs/walkthrough.md and README.md show what iommuctl prints")
struct WalkthroughTests {
    static let files = ["docs/walkthrough.md", "README.md"]

    struct Step {
        var command: String
        var expected: [String]
    }

    /// Splits the file into text and steps, keeping everything needed to write it back.
    static func parse(_ text: String) -> (lines: [String], steps: [(index: Int, step: Step)]) {
        let lines = text.components(separatedBy: "\n")
        var steps: [(Int, Step)] = []
        var inConsole = false
        var current: (Int, Step)?
        for (i, line) in lines.enumerated() {
            if line.hasPrefix("```") {
                if let c = current { steps.append(c); current = nil }
                inConsole = line == "```console"
                continue
            }
            guard inConsole else { continue }
            if line.hasPrefix("$ ") {
                if let c = current { steps.append(c) }
                current = (i, Step(command: String(line.dropFirst(2)), expected: []))
            } else {
                current?.1.expected.append(line)
            }
        }
        return (lines, steps)
    }

    /// `iommuctl a b 'c d'` → ["a", "b", "c d"] (single quotes only: that is all the file uses).
    static func words(_ command: String) -> [String] {
        var words: [String] = [], word = "", quoted = false, started = false
        for c in command {
            if c == "'" { quoted.toggle(); started = true; continue }
            if c == " " && !quoted {
                if started { words.append(word) }
                word = ""; started = false
                continue
            }
            word.append(c); started = true
        }
        if started { words.append(word) }
        return words
    }

    @Test("every command prints what the walkthrough shows", arguments: WalkthroughTests.files)
    func walkthrough(_ name: String) throws {
        let file = DocsTests.root.appendingPathComponent(name)
        let text = try String(contentsOf: file, encoding: .utf8)
        let (lines, steps) = Self.parse(text)
        #expect(steps.count >= 10)
        let daemon = try LiveDaemon(quota: "4GiB")
        var updated = lines
        var replacements: [(Int, Int, [String])] = []
        var jobs: [WalkthroughBackgroundJob] = []  // i14audit: `$ iommuctl ... &` and `$ wait`
        for (index, step) in steps {
            var printed: [String]
            if step.command == "wait" {
                try #require(!jobs.isEmpty, "`wait` with no background job before it")
                printed = jobs.flatMap { $0.finish() }
                jobs.removeAll()
            } else if step.command.hasSuffix(" &") {
                let argv = Self.words(String(step.command.dropLast(2)))
                try #require(argv.first == "iommuctl", "walkthrough lines run iommuctl only: \(step.command)")
                let job = try WalkthroughBackgroundJob(command: step.command, arguments: Array(argv.dropFirst()), socketPath: daemon.socketPath)
                printed = try #require(job.firstLine(), "'\(step.command)' printed no line on stderr within 30 s")
                jobs.append(job)
            } else {
                let argv = Self.words(step.command)
                try #require(argv.first == "iommuctl", "walkthrough lines run iommuctl only: \(step.command)")
                let run = try daemon.ctl(Array(argv.dropFirst()))
                printed = run.output.isEmpty ? [] : run.output.components(separatedBy: "\n")
                if !run.error.isEmpty { printed += run.error.components(separatedBy: "\n") }
                if run.code != 0 { printed.append("[exit status \(run.code)]") }
            }
            #expect(printed == step.expected, "\(step.command)")
            replacements.append((index + 1, step.expected.count, printed))
        }
        #expect(jobs.isEmpty, "background jobs never waited for: \(jobs.map(\.command))")
        if ProcessInfo.processInfo.environment["IOMMUCTL_UPDATE_WALKTHROUGH"] == "1" {
            for (start, count, printed) in replacements.reversed() {
                updated.replaceSubrange(start..<(start + count), with: printed)
            }
            try updated.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        }
    }

    @Test("the command-line splitter")
    func splitter() {
        #expect(Self.words("iommuctl call ioas.info '{\"ioas\": 1}' --compact") == ["iommuctl", "call", "ioas.info", "{\"ioas\": 1}", "--compact"])
        #expect(Self.words("iommuctl  devices ''") == ["iommuctl", "devices", ""])
    }
}
