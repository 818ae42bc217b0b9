import Foundation
import IommufdRPC
import Testing

/// README.md's Protocol section lists every method in one line per family
/// (`` `owner.create|list|info|release` ``); this test compares that list with what the running
/// daemon serves (`rpc.discover`, with the test-only `sim.dma` and `test.stall_main_queue`), so the
/// two cannot drift.
@Suite("README's method list is the daemon's")
struct ReadmeMethodListTests {
    static var readmePath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path + "/README.md"
    }

    @Test func readmeListsExactlyTheServedMethods() throws {
        let daemon = try DaemonProcess()
        let document = try daemon.client().call("rpc.discover")
        #expect(daemon.stop() == 0, "\(daemon.log)")
        let served = Set((document["methods"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue })
        #expect(served.count >= 30, "rpc.discover listed \(served.count) methods")

        let listed = try Self.listedMethods(String(contentsOfFile: Self.readmePath, encoding: .utf8))
        #expect(
            served.subtracting(listed).isEmpty,
            "README.md's **Methods** list lacks \(served.subtracting(listed).sorted())")
        #expect(
            listed.subtracting(served).isEmpty,
            "README.md's **Methods** list names methods the daemon does not serve: \(listed.subtracting(served).sorted())")
    }

    @Test func familiesExpandToMethodNames() throws {
        let text = """
            - **Methods**: `daemon.ping|info`, `rpc.discover` (an `OpenRPC` document),
              `viommu.create|destroy|list`, `events.subscribe` (notifications `event.*`).
            - **Next**: `not.this`
            """
        #expect(try Self.listedMethods(text) == [
            "daemon.ping", "daemon.info", "rpc.discover", "viommu.create", "viommu.destroy", "viommu.list",
            "events.subscribe",
        ])
    }

    /// The method names in the `- **Methods**:` item: every code span of the form
    /// `family.name|name|...`, up to the next item or blank line.
    static func listedMethods(_ readme: String) throws -> Set<String> {
        let lines = readme.split(separator: "\n", omittingEmptySubsequences: false)
        let start = try #require(lines.firstIndex { $0.hasPrefix("- **Methods**:") }, "README.md has no '- **Methods**:' item")
        var item = String(lines[start])
        for line in lines[(start + 1)...] {
            if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("- ") || !line.hasPrefix(" ") { break }
            item += " " + line
        }
        var names: Set<String> = []
        for (index, span) in item.split(separator: "`", omittingEmptySubsequences: false).enumerated() where index % 2 == 1 {
            let parts = span.split(separator: ".", maxSplits: 1)
            guard parts.count == 2, parts[0].allSatisfy({ $0.isLowercase }) else { continue }
            for name in parts[1].split(separator: "|") where name.allSatisfy({ $0.isLowercase || $0 == "_" }) {
                names.insert("\(parts[0]).\(name)")
            }
        }
        return names
    }
}
