import IommufdRPC

/// JSON as iommuctl prints it for `--json`: keys sorted so output is stable across runs,
/// either indented two spaces per level (default) or compact on one line (`--compact`).
public enum JSONText {
    public static func render(_ value: JSONValue, compact: Bool) -> String {
        if compact { return value.description }
        var out = ""
        write(value, indent: 0, to: &out)
        return out
    }

    private static func write(_ value: JSONValue, indent: Int, to out: inout String) {
        let pad = String(repeating: "  ", count: indent + 1)
        let closePad = String(repeating: "  ", count: indent)
        switch value {
        case .array(let elements) where !elements.isEmpty:
            out += "[\n"
            for (i, element) in elements.enumerated() {
                out += pad
                write(element, indent: indent + 1, to: &out)
                out += i == elements.count - 1 ? "\n" : ",\n"
            }
            out += closePad + "]"
        case .object(let members) where !members.isEmpty:
            out += "{\n"
            let keys = members.keys.sorted()
            for (i, key) in keys.enumerated() {
                out += pad + JSONValue.string(key).description + ": "
                write(members[key] ?? .null, indent: indent + 1, to: &out)
                out += i == keys.count - 1 ? "\n" : ",\n"
            }
            out += closePad + "}"
        default:
            out += value.description
        }
    }
}
