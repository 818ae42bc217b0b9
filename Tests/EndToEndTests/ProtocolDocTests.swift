import Foundation
import IommufdRPC
import Testing

/// docs/PROTOCOL.md's method reference is generated from the running daemon's `rpc.discover`;
/// this test fails when the two differ. To regenerate:
///   IOMMUFDD_UPDATE_DOCS=1 swift test --filter ProtocolDocTests
@Suite("docs/PROTOCOL.md is current")
struct ProtocolDocTests {
    static let begin = "<!-- BEGIN GENERATED FROM rpc.discover: do not edit; see Tests/EndToEndTests/ProtocolDocTests.swift -->"
    static let end = "<!-- END GENERATED -->"

    static var docPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path + "/docs/PROTOCOL.md"
    }

    @Test func methodReferenceMatchesRPCDiscover() throws {
        let daemon = try DaemonProcess()
        let document = try daemon.client().call("rpc.discover")
        #expect(daemon.stop() == 0, "\(daemon.log)")
        let generated = try Self.render(document)

        let text = try String(contentsOfFile: Self.docPath, encoding: .utf8)
        let begin = try #require(text.range(of: Self.begin), "docs/PROTOCOL.md lacks the generated-section marker")
        let end = try #require(text.range(of: Self.end, range: begin.upperBound..<text.endIndex))
        let current = String(text[begin.upperBound..<end.lowerBound])
        if ProcessInfo.processInfo.environment["IOMMUFDD_UPDATE_DOCS"] == "1" {
            let updated = String(text[..<begin.upperBound]) + generated + String(text[end.lowerBound...])
            try updated.write(toFile: Self.docPath, atomically: true, encoding: .utf8)
            return
        }
        #expect(current == generated, "docs/PROTOCOL.md is stale: run IOMMUFDD_UPDATE_DOCS=1 swift test --filter ProtocolDocTests")
    }

    /// Markdown for every method: summary, who may call it, fds, and a params table.
    static func render(_ document: JSONValue) throws -> String {
        let methods = try #require(document["methods"]?.arrayValue)
        var out = "\n"
        var byFamily: [(String, [JSONValue])] = []
        for m in methods {
            let name = m["name"]?.stringValue ?? "?"
            let family = String(name.split(separator: ".").first ?? "")
            if let i = byFamily.firstIndex(where: { $0.0 == family }) { byFamily[i].1.append(m) } else { byFamily.append((family, [m])) }
        }
        out += "| Method | What it does |\n|---|---|\n"
        for (_, ms) in byFamily {
            for m in ms { out += "| [`\(m["name"]?.stringValue ?? "")`](#\(anchor(m))) | \(m["summary"]?.stringValue ?? "") |\n" }
        }
        for (family, ms) in byFamily {
            out += "\n### \(family).*\n"
            for m in ms {
                let name = m["name"]?.stringValue ?? ""
                out += "\n#### `\(name)`\n\n\(m["summary"]?.stringValue ?? "").\n\n\(m["description"]?.stringValue ?? "")\n\n"
                let params = m["params"]?.arrayValue ?? []
                if params.isEmpty {
                    out += "Params: none (omit `params`, or send `{}`).\n"
                    continue
                }
                out += "| Param | Type | Required |\n|---|---|---|\n"
                for p in params {
                    out += "| `\(p["name"]?.stringValue ?? "")` | \(typeName(p["schema"])) | \(p["required"] == true ? "yes" : "no") |\n"
                }
            }
        }
        return out + "\n"
    }

    static func anchor(_ m: JSONValue) -> String {
        (m["name"]?.stringValue ?? "").lowercased().filter { $0.isLetter || $0.isNumber || $0 == "_" }
    }

    static func typeName(_ schema: JSONValue?) -> String {
        guard let schema else { return "any" }
        if let values = schema["enum"]?.arrayValue {
            return values.compactMap(\.stringValue).map { "`\"\($0)\"`" }.joined(separator: " \\| ")
        }
        // A param that takes a name or a number (hwqueue3): `"type": ["string", "integer"]`.
        if let types = schema["type"]?.arrayValue?.compactMap(\.stringValue), !types.isEmpty { return types.joined(separator: " or ") }
        switch schema["type"]?.stringValue {
        case "integer": return "integer"
        case "string": return "string"
        case "boolean": return "boolean"
        case "number": return "number"
        case "array": return "array of \(typeName(schema["items"]))"
        case "object":
            let props = schema["properties"]?.objectValue ?? [:]
            if props.keys.sorted() == ["fd"] { return "`{\"fd\": N}` (index of an SCM_RIGHTS fd)" }
            return "object {" + props.keys.sorted().map { "`\($0)`: \(typeName(props[$0]))" }.joined(separator: ", ") + "}"
        default: return "any"
        }
    }
}
