import ArgumentParser
import Foundation
import Testing

@testable import IommuctlKit

/// The man page and completions in docs/ are generated (scripts/install-cli-docs --generate-only
/// docs); these tests fail when the commands changed and they were not regenerated.
@Suite("Generated docs in the tree are current")
struct DocsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func read(_ relative: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
    }

    static func trimmed(_ s: String) -> String {
        var s = s
        while s.hasSuffix("\n") { s.removeLast() }
        return s
    }

    @Test("completion scripts match what iommuctl generates", arguments: [
        (CompletionShell.bash, "docs/completions/iommuctl.bash"),
        (.zsh, "docs/completions/_iommuctl"),
        (.fish, "docs/completions/iommuctl.fish"),
    ])
    func completions(shell: CompletionShell, path: String) throws {
        let committed = try Self.read(path)
        #expect(Self.trimmed(committed) == Self.trimmed(IommuCtl.completionScript(for: shell)),
                "regenerate with scripts/install-cli-docs --generate-only docs")
    }

    /// Every command, depth first.
    static func allCommands(_ command: any ParsableCommand.Type = IommuCtl.self) -> [any ParsableCommand.Type] {
        [command] + command.configuration.subcommands.flatMap { allCommands($0) }
    }

    @Test("the man page documents every command with its current abstract and discussion")
    func manPage() throws {
        let page = try Self.read("docs/man/iommuctl.1")
        let commands = Self.allCommands()
        #expect(commands.count >= 40)
        for command in commands {
            let c = command.configuration
            #expect(page.contains(c.abstract), "\(command): abstract missing from the man page")
            if let firstLine = c.discussion.split(separator: "\n").first, firstLine.count > 20 {
                #expect(page.contains(String(firstLine).trimmingWhitespace()), "\(command): discussion missing from the man page")
            }
        }
        #expect(page.contains("11  a local file could not be opened, read or written"))
    }
}
