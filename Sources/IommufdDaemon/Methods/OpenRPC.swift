import IommufdContract
import IommufdRPC

/// `rpc.discover`: an OpenRPC 1.2 document generated from the method table.
enum OpenRPC {
    static func document(_ table: MethodTable) -> JSONValue {
        let methods: [JSONValue] = table.specs.map { spec in
            var params: [JSONValue] = []
            if case .object(let schema) = spec.paramsSchema, case .object(let props)? = schema["properties"] {
                let required = Set((schema["required"]?.arrayValue ?? []).compactMap(\.stringValue))
                for name in props.keys.sorted() {
                    params.append([
                        "name": .string(name), "required": .bool(required.contains(name)), "schema": props[name] ?? [:],
                    ])
                }
            }
            var description = "Access: \(spec.access == .write ? "manager or admin (own owners only)" : "any admitted identity")."
            if spec.takesFD { description += " Send the file descriptor named by {\"fd\": N} with SCM_RIGHTS on the request line." }
            if spec.returnsFDs { description += " The reply carries file descriptors (SCM_RIGHTS); results name them by index." }
            return [
                "name": .string(spec.name),
                "summary": .string(spec.summary),
                "description": .string(description),
                "paramStructure": "by-name",
                "params": .array(params),
                "result": ["name": "result", "schema": ["type": "object"]],
                "errors": errorObjects,
            ]
        }
        return [
            "openrpc": "1.2.6",
            "info": [
                "title": "iommufdd",
                "version": .string(IommufddVersion.string),
                "description": "Owns the host's shared iommufd and hands out IOAS, HWPTs, device attachments, vIOMMUs and dirty tracking to VM managers. Newline-delimited JSON-RPC 2.0 on a Unix socket; file descriptors travel with SCM_RIGHTS.",
            ],
            "methods": .array(methods),
        ]
    }

    /// The domain errors any method can answer (the broker's names of the contract's catalogue),
    /// with their stable names.
    static let errorObjects: JSONValue = .array(ErrorName.allCases.filter { $0.origin == .broker }.compactMap { name in
        name.rpcCode.map { ["code": .int(Int64($0)), "message": .string(name.wireName), "data": ["name": .string(name.wireName)]] }
    })
}
