import Foundation
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// scripts/install into a DESTDIR: the tree README describes, the same tree again on a second
/// run, and --uninstall removing exactly what it installed (an edited config and files that were
/// there before stay).
@Suite("scripts/install")
struct InstallTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The binaries built beside this test runner.
    static func binDirectory() throws -> String {
        let runner = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        return URL(fileURLWithPath: runner).deletingLastPathComponent().path
    }

    static func tree(_ dir: String) -> [String: Data] {
        var out: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: dir)
        while let path = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: dir + "/" + path, isDirectory: &isDirectory)
            out[path] = isDirectory.boolValue ? Data() : FileManager.default.contents(atPath: dir + "/" + path)
        }
        return out
    }

    func install(_ destdir: String, _ extra: [String] = []) throws -> (status: Int32, output: String, error: String) {
        try SpawnedProcess.run(
            Self.root + "/scripts/install", ["--bin-dir", try Self.binDirectory(), "--systemd-version", "252"] + extra,
            environment: ProcessInfo.processInfo.environment.merging(["DESTDIR": destdir]) { $1 })
    }

    @Test func installsTheDocumentedTreeTwiceAndUninstallsIt() throws {
        let dest = try TemporaryDirectory("install")
        // Something that was there before and must stay.
        try FileManager.default.createDirectory(atPath: dest.path + "/usr/local/bin", withIntermediateDirectories: true)
        try "not ours\n".write(toFile: dest.path + "/usr/local/bin/other", atomically: true, encoding: .utf8)

        let first = try install(dest.path)
        try #require(first.status == 0, "\(first.output)\(first.error)")
        let expected = [
            "usr/local/bin/iommufdd", "usr/local/bin/iommuctl",
            "usr/local/lib/systemd/system/iommufdd.service", "usr/local/lib/systemd/system/iommufdd.socket",
            "usr/local/lib/systemd/system/iommufdd.service.d/fdstore-variable.conf",
            "etc/iommufdd/iommufdd.toml",
            "usr/local/share/man/man8/iommufdd.8", "usr/local/share/man/man5/iommufdd.toml.5", "usr/local/share/man/man1/iommuctl.1",
            "usr/local/share/bash-completion/completions/iommuctl", "usr/local/share/zsh/site-functions/_iommuctl",
            "usr/local/share/fish/vendor_completions.d/iommuctl.fish",
            "usr/local/share/iommufdd/install-manifest",
        ]
        let tree = Self.tree(dest.path)
        let files = Set(tree.filter { !$0.value.isEmpty }.keys)
        #expect(files == Set(expected + ["usr/local/bin/other"]), "installed: \(files.sorted())")
        #expect(access(dest.path + "/usr/local/bin/iommufdd", X_OK) == 0)
        let unit = try String(contentsOfFile: dest.path + "/usr/local/lib/systemd/system/iommufdd.service", encoding: .utf8)
        #expect(unit.contains("\nExecStart=/usr/local/bin/iommufdd\n"))
        #expect(tree["etc/iommufdd/iommufdd.toml"] == FileManager.default.contents(atPath: Self.root + "/config/iommufdd.toml"))
        // README's install section shows this tree.
        let readme = try String(contentsOfFile: Self.root + "/README.md", encoding: .utf8)
        for path in expected { #expect(readme.contains(path.split(separator: "/").last.map(String.init) ?? path), "README does not show \(path)") }

        // Idempotent: the same tree, byte for byte.
        let second = try install(dest.path)
        try #require(second.status == 0, "\(second.output)\(second.error)")
        #expect(Self.tree(dest.path) == tree, "a second install changed the tree")

        // An edited config is kept on uninstall; nothing else of ours stays; nothing else goes.
        let config = dest.path + "/etc/iommufdd/iommufdd.toml"
        try (String(contentsOfFile: config, encoding: .utf8) + "# edited\n").write(toFile: config, atomically: true, encoding: .utf8)
        let removed = try install(dest.path, ["--uninstall"])
        #expect(removed.status == 0, "\(removed.output)\(removed.error)")
        #expect(removed.output.contains("kept \(config)"), "\(removed.output)")
        let left = Set(Self.tree(dest.path).keys)
        #expect(left == ["etc", "etc/iommufdd", "etc/iommufdd/iommufdd.toml", "usr", "usr/local", "usr/local/bin", "usr/local/bin/other"], "left: \(left.sorted())")

        let again = try install(dest.path, ["--uninstall"])
        #expect(again.status == 1 && again.error.contains("no manifest"), "\(again)")
    }

    @Test func prefixReachesTheUnit() throws {
        let dest = try TemporaryDirectory("install-prefix")
        let run = try install(dest.path, ["--prefix", "/usr", "--systemd-version", "255"])
        try #require(run.status == 0, "\(run.output)\(run.error)")
        let unit = try String(contentsOfFile: dest.path + "/usr/lib/systemd/system/iommufdd.service", encoding: .utf8)
        #expect(unit.contains("\nExecStart=/usr/bin/iommufdd\n"))
        #expect(FileManager.default.fileExists(atPath: dest.path + "/usr/lib/systemd/system/iommufdd.service.d/fdstore-preserve.conf"))
        #expect(!FileManager.default.fileExists(atPath: dest.path + "/usr/lib/systemd/system/iommufdd.service.d/fdstore-variable.conf"))
        #expect(FileManager.default.fileExists(atPath: dest.path + "/etc/iommufdd/iommufdd.toml"), "the config goes to /etc whatever the prefix")
    }
}
