import IommufdContract
import IommufdRPC

/// Derives a JSON Schema for a method's params by decoding the params type with a decoder that
/// records what it is asked for: required keys (`decode`), optional keys (`decodeIfPresent`) and
/// their types. `rpc.discover` is thereby generated from the very types that parse requests, so it
/// cannot drift from them.
///
/// The recorder fabricates a placeholder for every field it is asked for. A field it cannot
/// fabricate (an enum with raw values that is not `CaseIterable`, a type whose `init(from:)`
/// refuses every placeholder) would end the decoding there and silently drop every later field,
/// so `of` throws instead, naming the field; the method table then refuses to start.
enum ParamsSchema {
    static func of<T: Decodable>(_ type: T.Type) throws -> JSONValue {
        let node = SchemaNode()
        do {
            _ = try T(from: RecordingDecoder(node: node, codingPath: []))
        } catch var error as ParamsSchemaError {
            error.type = "\(T.self)"  // the params type, not the field's
            throw error
        } catch {
            throw ParamsSchemaError(type: "\(T.self)", path: [], reason: "its init(from:) threw on the recorder's placeholders: \(error)")
        }
        // A params type that reads nothing (no stored properties) takes no params: an object
        // without properties, so any key sent is unknown.
        if node.kind == .unknown && node.properties.isEmpty { node.kind = .object }
        if let path = node.firstUnknown(path: []) {
            throw ParamsSchemaError(type: "\(T.self)", path: path, reason: "the recorder could not tell its type (it asked the decoder for nothing)")
        }
        return node.schema
    }
}

/// Why a params type has no schema: which field (below `params`) the recorder could not record,
/// and why.
struct ParamsSchemaError: Error, CustomStringConvertible {
    var type: String
    var path: [String]
    var reason: String
    var description: String {
        "cannot derive the JSON Schema of \(type)\(path.isEmpty ? "" : " at params." + path.joined(separator: ".")): \(reason)"
    }
}

/// What the recorder learned about one value.
final class SchemaNode {
    enum Kind { case unknown, object, array, string, integer, number, boolean, stringOrInteger }
    var kind: Kind = .unknown
    var properties: [(name: String, node: SchemaNode, required: Bool)] = []
    var items: SchemaNode?
    var enumValues: [JSONValue]?

    var schema: JSONValue {
        var out: [String: JSONValue] = [:]
        switch kind {
        case .unknown: break
        case .object:
            out["type"] = "object"
            var props: [String: JSONValue] = [:]
            for p in properties { props[p.name] = p.node.schema }
            out["properties"] = .object(props)
            let required = properties.filter(\.required).map { JSONValue.string($0.name) }
            if !required.isEmpty { out["required"] = .array(required) }
            out["additionalProperties"] = false
        case .array:
            out["type"] = "array"
            if let items { out["items"] = items.schema }
        case .string: out["type"] = "string"
        case .integer: out["type"] = "integer"
        case .number: out["type"] = "number"
        case .boolean: out["type"] = "boolean"
        case .stringOrInteger: out["type"] = ["string", "integer"]  // hwqueue3: a name or a number
        }
        if let enumValues { out["enum"] = .array(enumValues) }
        return .object(out)
    }

    /// The path of the first value whose type was never recorded.
    func firstUnknown(path: [String]) -> [String]? {
        if kind == .unknown { return path }
        for p in properties {
            if let found = p.node.firstUnknown(path: path + [p.name]) { return found }
        }
        if kind == .array {
            guard let items else { return path + ["[]"] }
            return items.firstUnknown(path: path + ["[]"])
        }
        return nil
    }
}

/// Case-iterable enums with string or integer raw values decode as their first case, and their
/// values go in the schema as an `enum`.
private func firstCase<T>(_ type: T.Type) -> (value: T, kind: SchemaNode.Kind, values: [JSONValue])? {
    guard let iterable = T.self as? any (CaseIterable & RawRepresentable).Type else { return nil }
    return open(iterable) as? (T, SchemaNode.Kind, [JSONValue])
}

private func open<E: CaseIterable & RawRepresentable>(_ type: E.Type) -> Any? {
    guard let first = E.allCases.first else { return nil }
    if E.RawValue.self == String.self {
        return (first, SchemaNode.Kind.string, E.allCases.map { JSONValue.string($0.rawValue as! String) })
    }
    var values: [JSONValue] = []
    for c in E.allCases {
        guard let raw = c.rawValue as? any BinaryInteger, let v = Int64(exactly: raw) else { return nil }
        values.append(.int(v))
    }
    return (first, SchemaNode.Kind.integer, values)
}

private struct PathKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

private struct RecordingDecoder: Decoder {
    let node: SchemaNode
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] = [:]

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        node.kind = .object
        return KeyedDecodingContainer(KeyedRecorder<Key>(node: node, codingPath: codingPath))
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        node.kind = .array
        return UnkeyedRecorder(node: node, codingPath: codingPath)
    }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleRecorder(node: node, codingPath: codingPath) }
}

/// Produces a placeholder of `T` while recording its schema into `node`; throws
/// `ParamsSchemaError` naming the field when it cannot.
private func record<T: Decodable>(_ type: T.Type, into node: SchemaNode, path: [any CodingKey]) throws -> T {
    if let (value, kind, values) = firstCase(T.self) {
        node.kind = kind
        node.enumValues = values
        return value
    }
    // hwqueue3: a param that takes a name or a number (`HWQueueTypeParam`).
    if let either = T.self as? any StringOrIntegerParam.Type {
        node.kind = .stringOrInteger
        return either.schemaPlaceholder as! T
    }
    switch T.self {
    case is String.Type: node.kind = .string; return "" as! T
    case is Bool.Type: node.kind = .boolean; return false as! T
    case is Double.Type: node.kind = .number; return 0.0 as! T
    case is Float.Type: node.kind = .number; return Float(0) as! T
    case is Int.Type: node.kind = .integer; return 0 as! T
    case is Int8.Type: node.kind = .integer; return Int8(0) as! T
    case is Int16.Type: node.kind = .integer; return Int16(0) as! T
    case is Int32.Type: node.kind = .integer; return Int32(0) as! T
    case is Int64.Type: node.kind = .integer; return Int64(0) as! T
    case is UInt.Type: node.kind = .integer; return UInt(0) as! T
    case is UInt8.Type: node.kind = .integer; return UInt8(0) as! T
    case is UInt16.Type: node.kind = .integer; return UInt16(0) as! T
    case is UInt32.Type: node.kind = .integer; return UInt32(0) as! T
    case is UInt64.Type: node.kind = .integer; return UInt64(0) as! T
    default: break
    }
    let names = path.map(\.stringValue)
    if T.self is any RawRepresentable.Type {
        throw ParamsSchemaError(
            type: "\(T.self)", path: names,
            reason: "\(T.self) has raw values but is not CaseIterable with String or integer raw values, so the recorder cannot pick a valid value nor list them as an enum: make it CaseIterable")
    }
    do {
        return try T(from: RecordingDecoder(node: node, codingPath: path))
    } catch let error as ParamsSchemaError {
        throw error
    } catch {
        throw ParamsSchemaError(type: "\(T.self)", path: names, reason: "\(T.self).init(from:) threw on the recorder's placeholders: \(error)")
    }
}

private struct KeyedRecorder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let node: SchemaNode
    var codingPath: [any CodingKey]
    var allKeys: [Key] { [] }

    func contains(_ key: Key) -> Bool { true }
    private func child(_ key: Key, required: Bool) -> SchemaNode {
        let n = SchemaNode()
        node.properties.append((key.stringValue, n, required))
        return n
    }
    private func path(_ key: Key) -> [any CodingKey] { codingPath + [key] }
    func decodeNil(forKey key: Key) throws -> Bool { false }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try record(T.self, into: child(key, required: true), path: path(key))
    }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        try record(T.self, into: child(key, required: false), path: path(key))
    }
    // Synthesized `init(from:)` calls these concrete overloads for optional primitives; their
    // default implementations would call `decode` and record the key as required.
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try optional(type, key) }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try optional(type, key) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try optional(type, key) }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try optional(type, key) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try optional(type, key) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try optional(type, key) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try optional(type, key) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try optional(type, key) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try optional(type, key) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try optional(type, key) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try optional(type, key) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try optional(type, key) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try optional(type, key) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try optional(type, key) }
    private func optional<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        try record(T.self, into: child(key, required: false), path: path(key))
    }
    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let n = child(key, required: true)
        n.kind = .object
        return KeyedDecodingContainer(KeyedRecorder<NestedKey>(node: n, codingPath: path(key)))
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let n = child(key, required: true)
        n.kind = .array
        return UnkeyedRecorder(node: n, codingPath: path(key))
    }
    func superDecoder() throws -> any Decoder { RecordingDecoder(node: node, codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> any Decoder { RecordingDecoder(node: child(key, required: true), codingPath: path(key)) }
}

/// Reports one element, so the element type is recorded once as `items`.
private struct UnkeyedRecorder: UnkeyedDecodingContainer {
    let node: SchemaNode
    var codingPath: [any CodingKey]
    var count: Int? { 1 }
    var currentIndex = 0
    var isAtEnd: Bool { currentIndex >= 1 }

    init(node: SchemaNode, codingPath: [any CodingKey]) {
        self.node = node
        self.codingPath = codingPath
    }

    private var itemPath: [any CodingKey] { codingPath + [PathKey("[]")] }

    mutating func decodeNil() throws -> Bool { false }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        currentIndex += 1
        let n = SchemaNode()
        node.items = n
        return try record(T.self, into: n, path: itemPath)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        currentIndex += 1
        let n = SchemaNode()
        n.kind = .object
        node.items = n
        return KeyedDecodingContainer(KeyedRecorder<NestedKey>(node: n, codingPath: itemPath))
    }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        currentIndex += 1
        let n = SchemaNode()
        n.kind = .array
        node.items = n
        return UnkeyedRecorder(node: n, codingPath: itemPath)
    }
    mutating func superDecoder() throws -> any Decoder { RecordingDecoder(node: node, codingPath: codingPath) }
}

private struct SingleRecorder: SingleValueDecodingContainer {
    let node: SchemaNode
    var codingPath: [any CodingKey]
    func decodeNil() -> Bool { false }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try record(T.self, into: node, path: codingPath) }
}

// MARK: Unknown params

extension ParamsSchema {
    /// A member of the params that the schema does not have.
    struct UnknownParam: Hashable, Sendable {
        /// Dotted path below `params` (`tolerate-missing`, `fd.index`).
        var path: String
        /// The member's name.
        var name: String
        /// Every known member of the same object, sorted.
        var known: [String]
        /// The object it was found in: empty for the params themselves.
        var parent: String
    }

    /// How many unknown params an answer names (a 1 MiB request can hold 100,000 of them).
    static let listedUnknownParams = 16
    /// Longer names are shortened in answers and matched by this many leading characters.
    static let nameEcho = 64

    /// The members of `params` (recursively, through objects and arrays) that `schema` does not
    /// describe, in sorted order: the first `limit`, and how many there are in all. The schemas
    /// say `additionalProperties: false`; this is what enforces it.
    static func unknownParams(in params: JSONValue?, schema: JSONValue, limit: Int = listedUnknownParams) -> (listed: [UnknownParam], total: Int) {
        var listed: [UnknownParam] = []
        var total = 0
        func walk(_ value: JSONValue, _ schema: JSONValue, _ path: String) {
            switch (value, schema["type"]?.stringValue) {
            case (.object(let object), "object"):
                let props = schema["properties"]?.objectValue ?? [:]
                for key in object.keys.sorted() {
                    let childPath = path.isEmpty ? key : path + "." + key
                    if let child = props[key] {
                        walk(object[key] ?? .null, child, childPath)
                    } else {
                        total += 1
                        if listed.count < limit {
                            listed.append(UnknownParam(path: childPath, name: key, known: props.keys.sorted(), parent: path))
                        }
                    }
                }
            case (.array(let array), "array"):
                guard let items = schema["items"] else { return }
                for (i, element) in array.enumerated() { walk(element, items, "\(path)[\(i)]") }
            default:
                break  // a type mismatch is the decoder's to report
            }
        }
        if let params { walk(params, schema, "") }
        return (listed, total)
    }

    /// The known name nearest to `name`: smallest edit distance after treating `-` as `_` and
    /// ignoring case (so `tolerate-missing` finds `tolerate_missing`), over the first `nameEcho`
    /// characters; ties go to the first in sorted order.
    static func nearest(to name: String, among known: [String]) -> String? {
        func normal(_ s: Substring) -> String { String(s.lowercased().map { $0 == "-" ? "_" : $0 }) }
        let n = normal(name.prefix(nameEcho))
        return known.sorted().min { editDistance(normal($0[...]), n) < editDistance(normal($1[...]), n) }
    }

    /// A client's name as an answer shows it: at most `nameEcho` characters.
    static func echo(_ name: String) -> String {
        name.count <= nameEcho ? name : name.prefix(nameEcho) + "… (\(name.count) characters)"
    }

    /// Refuses params the method does not take with -32602, naming each unknown param (the
    /// first `listedUnknownParams`) and the nearest known one, before anything is decoded or
    /// run. Params by position (a non-empty array) are refused too: every method takes its
    /// params by name.
    static func refuseUnknownParams(_ params: JSONValue?, schema: JSONValue, method: String) throws(RPCError) {
        if case .array(let array)? = params, !array.isEmpty {
            throw RPCError.invalidParams(
                "params: \(method) takes its params by name, as a JSON object (see rpc.discover), not by position as an array")
        }
        let (unknown, total) = unknownParams(in: params, schema: schema)
        guard total > 0 else { return }
        var entries: [JSONValue] = []
        var clauses: [String] = []
        for u in unknown {
            let path = u.parent.isEmpty ? echo(u.path) : u.parent + "." + echo(u.name)
            let name = echo(u.name)
            var entry: [String: JSONValue] = ["param": .string(path)]
            guard let nearest = nearest(to: u.name, among: u.known) else {
                clauses.append(u.parent.isEmpty
                    ? "params.\(path): \(method) takes no params; omit \"\(name)\" (send {} or no params at all)"
                    : "params.\(path): params.\(u.parent) of \(method) has no members; omit \"\(name)\"")
                entries.append(.object(entry))
                continue
            }
            entry["nearest"] = .string(u.parent.isEmpty ? nearest : u.parent + "." + nearest)
            entries.append(.object(entry))
            let owner = u.parent.isEmpty ? method : "params.\(u.parent) of \(method)"
            clauses.append("params.\(path): \(owner) has no param \"\(name)\"; did you mean \"\(nearest)\"? (known: \(u.known.joined(separator: ", ")))")
        }
        if total > unknown.count { clauses.append("and \(total - unknown.count) more unknown params") }
        var fields: [String: JSONValue] = ["unknown_params": .array(entries)]
        if total > unknown.count { fields["unknown_params_total"] = .int(Int64(total)) }
        throw RPCError.invalidParams(clauses.joined(separator: "; "), fields: fields)
    }
}
