import Foundation
import TestProcesses
import Testing

@testable import IommufdDaemon

#if canImport(Glibc)
import Glibc
#endif

/// docs/man/iommufdd.8 and docs/man/iommufdd.toml.5 are generated (ManPages) from the command
/// line's definitions, the signal and exit-code tables and the config schema; these tests fail
/// when a page is stale or lacks an option, a config key, a signal or an exit code, and when the
/// schema and the config decoder disagree. To regenerate:
///   IOMMUFDD_UPDATE_DOCS=1 swift test --filter ManPageTests
@Suite("Man pages iommufdd(8) and iommufdd.toml(5)")
struct ManPageTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static let pages: [(path: String, render: @Sendable (String) -> String)] = [
        ("docs/man/iommufdd.8", ManPages.daemon(date:)),
        ("docs/man/iommufdd.toml.5", ManPages.config(date:)),
    ]

    static func read(_ relative: String) throws -> String {
        try String(contentsOfFile: root + "/" + relative, encoding: .utf8)
    }

    @Test("the pages in docs/man are what the definitions generate", arguments: [0, 1])
    func pagesAreCurrent(index: Int) throws {
        let (path, render) = Self.pages[index]
        let committed = (try? Self.read(path)) ?? ""
        let date = ManPages.date(of: committed) ?? ""
        if ProcessInfo.processInfo.environment["IOMMUFDD_UPDATE_DOCS"] == "1", render(date) != committed {
            let formatter = DateFormatter()
            formatter.dateFormat = "MMMM d, yyyy"
            formatter.locale = Locale(identifier: "en_US_POSIX")
            try render(formatter.string(from: Date())).write(toFile: Self.root + "/" + path, atomically: true, encoding: .utf8)
            return
        }
        #expect(!committed.isEmpty, "\(path) is missing: run IOMMUFDD_UPDATE_DOCS=1 swift test --filter ManPageTests")
        #expect(render(date) == committed, "\(path) is stale: run IOMMUFDD_UPDATE_DOCS=1 swift test --filter ManPageTests")
    }

    /// Every option `iommufdd --help` prints is in iommufdd(8) — read from the help text itself,
    /// not from the list the generator uses.
    @Test func daemonPageHasEveryOption() throws {
        let page = try Self.read("docs/man/iommufdd.8")
        let help = IommufddCommand.helpMessage()
        let flags = Set(help.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," || $0 == "[" || $0 == "]" })
            .filter { $0.hasPrefix("--") && $0.count > 2 }.map(String.init))
        #expect(flags.isSuperset(of: ["--config", "--socket", "--backend", "--log-level", "--help"]), "\(help)")
        for flag in flags {
            #expect(page.contains("Fl \(flag.dropFirst())"), "iommufdd(8) lacks \(flag), which --help shows")
        }
        #expect(ManPages.options().count == flags.count, "the generator sees \(ManPages.options().map(\.flags)), --help shows \(flags)")
    }

    @Test func daemonPageHasEverySignalExitCodeAndSection() throws {
        let page = try Self.read("docs/man/iommufdd.8")
        for code in DaemonExitCode.allCases {
            #expect(page.contains(".It \(code.rawValue)\n"), "iommufdd(8) lacks exit status \(code.rawValue)")
            #expect(IommufddCommand.configuration.discussion.contains("\(code.rawValue) \(code.shortMeaning)"), "--help lacks exit status \(code.rawValue)")
        }
        // The signals the daemon handles (SignalWatcher.daemonSignals and ignoreSIGPIPE).
        #expect(Set(DaemonSignal.allCases.map(\.rawValue)) == ["SIGTERM", "SIGINT", "SIGHUP", "SIGPIPE"])
        for signal in DaemonSignal.allCases {
            #expect(page.contains(".It Dv \(signal.rawValue)\n"), "iommufdd(8) lacks \(signal.rawValue)")
        }
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS", "RESTARTS", "FILES", "EXIT STATUS"] {
            #expect(page.contains(".Sh \(section)\n"), "iommufdd(8) lacks \(section)")
        }
    }

    /// The schema lists exactly the keys the decoder reads: a file with every table and one
    /// entry in each array of tables makes the decoder look up every key it knows.
    @Test func schemaIsWhatTheDecoderReads() throws {
        let document = """
            [daemon]
            [limits]
            [policy]
            [devices]
            [[access]]
            user = 0
            role = "admin"
            [kernel]
            [[kernel.mock_devices]]
            name = "m"
            [sim]
            [[sim.iommu]]
            name = "i"
            [[sim.device]]
            name = "d"
            iommu = "i"
            """
        let consulted = try ConfigSchema.keysConsulted(reading: document)
        let topLevel = Set(ConfigSchema.tables.map(\.name).filter { !$0.contains(".") })
        let schema = Set(ConfigSchema.keys.map { "\($0.table).\($0.key)" })
        let decoderKeys = consulted.subtracting(topLevel)
        #expect(decoderKeys.subtracting(schema).isEmpty, "keys the decoder reads but the schema (and so iommufdd.toml(5)) lacks: \(decoderKeys.subtracting(schema).sorted())")
        #expect(schema.subtracting(decoderKeys).isEmpty, "keys in the schema the decoder does not read: \(schema.subtracting(decoderKeys).sorted())")
        #expect(topLevel.isSubset(of: consulted), "tables the decoder does not read: \(topLevel.subtracting(consulted).sorted())")
    }

    /// The defaults the page shows are the defaults in force: a file setting every key to its
    /// schema default is the built-in configuration.
    @Test func schemaDefaultsAreTheDefaults() throws {
        var text = ""
        for table in ConfigSchema.tables where !ConfigSchema.arraysOfTables.contains(table.name) {
            text += "[\(table.name)]\n"
            for key in ConfigSchema.keys where key.table == table.name {
                if let value = key.defaultTOML { text += "\(key.key) = \(value)\n" }
            }
        }
        let names = NameResolver(uid: { $0 == "root" ? 0 : nil }, gid: { $0 == "root" ? 0 : nil })
        let config = try DaemonConfig.parse(text, file: "schema-defaults.toml", names: names).get()
        #expect(config == DaemonConfig.defaults, "\(text)")
    }

    @Test func configPageHasEveryKeyAndTable() throws {
        let page = try Self.read("docs/man/iommufdd.toml.5")
        for table in ConfigSchema.tables {
            let heading = ConfigSchema.arraysOfTables.contains(table.name) ? "[[\(table.name)]]" : "[\(table.name)]"
            #expect(page.contains(".Ss \(heading)\n"), "iommufdd.toml(5) lacks the table \(heading)")
        }
        // Each key under its own table's heading.
        let sections = page.components(separatedBy: ".Ss ")
        for key in ConfigSchema.keys {
            let heading = key.inArrayOfTables ? "[[\(key.table)]]" : "[\(key.table)]"
            let section = sections.first { $0.hasPrefix(heading + "\n") } ?? ""
            #expect(section.contains(".It Sy \(key.key) No = "), "iommufdd.toml(5) lacks \(key.key) under \(heading)")
        }
    }

    /// man -l renders both pages, and groff finds nothing to warn about in them.
    @Test("man -l renders the page", arguments: ["docs/man/iommufdd.8", "docs/man/iommufdd.toml.5"])
    func manRenders(path: String) throws {
        let full = Self.root + "/" + path
        let lint = try SpawnedProcess.run("/usr/bin/env", ["groff", "-mandoc", "-ww", "-z", full])
        #expect(lint.status == 0 && lint.error.isEmpty, "groff -mandoc -ww: \(lint.error)")
        let man = try SpawnedProcess.run("/usr/bin/env", ["MANWIDTH=100", "man", "-l", "-P", "cat", full])
        #expect(man.status == 0, "man -l \(path): \(man.error)")
        #expect(man.output.contains("NAME") && man.output.contains("iommufdd"), "\(man.output.prefix(500))")
    }
}
