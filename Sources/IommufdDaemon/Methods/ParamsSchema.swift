import IommufdRPC

/// Derives a JSON Schema for a method's params by decoding the params type with a decoder that
/// records what it is asked for: required keys (`decode`), optional keys (`decodeIfPresent`) and
/// their types. `rpc.discover` is thereby generated from the very types that parse requests, so it
/// cannot drift from them.
enum ParamsSchema {
    static func of<T: Decodable>(_ type: T.Type) -> JSONValue {
        let node = SchemaNode()
        _ = try? T(from: RecordingDecoder(node: node))
        return node.schema
    }
}

/// What the recorder learned about one value.
final class SchemaNode {
    enum Kind { case unknown, object, array, string, integer, number, boolean }
    var kind: Kind = .unknown
    var properties: [(name: String, node: SchemaNode, required: Bool)] = []
    var items: SchemaNode?
    var enumValues: [String]?

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
        }
        if let enumValues { out["enum"] = .array(enumValues.map { .string($0) }) }
        return .object(out)
    }
}

/// Case-iterable string enums decode as their first case, and their values go in the schema.
private func firstCase<T>(_ type: T.Type) -> (T, [String])? {
    guard let iterable = T.self as? any (CaseIterable & RawRepresentable).Type else { return nil }
    return open(iterable) as? (T, [String])
}

private func open<E: CaseIterable & RawRepresentable>(_ type: E.Type) -> Any? {
    guard let first = E.allCases.first else { return nil }
    let values = E.allCases.compactMap { $0.rawValue as? String }
    return (first, values)
}

private struct RecordingDecoder: Decoder {
    let node: SchemaNode
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] = [:]

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        node.kind = .object
        return KeyedDecodingContainer(KeyedRecorder<Key>(node: node))
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        node.kind = .array
        return UnkeyedRecorder(node: node)
    }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleRecorder(node: node) }
}

/// Produces a placeholder of `T` while recording its schema into `node`.
private func record<T: Decodable>(_ type: T.Type, into node: SchemaNode) throws -> T {
    if let (value, values) = firstCase(T.self) {
        node.kind = .string
        node.enumValues = values
        return value
    }
    switch T.self {
    case is String.Type: node.kind = .string; return "" as! T
    case is Bool.Type: node.kind = .boolean; return false as! T
    case is Double.Type: node.kind = .number; return 0.0 as! T
    case is Float.Type: node.kind = .number; return Float(0) as! T
    case is Int.Type: node.kind = .integer; return 0 as! T
    case is Int32.Type: node.kind = .integer; return Int32(0) as! T
    case is Int64.Type: node.kind = .integer; return Int64(0) as! T
    case is UInt.Type: node.kind = .integer; return UInt(0) as! T
    case is UInt8.Type: node.kind = .integer; return UInt8(0) as! T
    case is UInt16.Type: node.kind = .integer; return UInt16(0) as! T
    case is UInt32.Type: node.kind = .integer; return UInt32(0) as! T
    case is UInt64.Type: node.kind = .integer; return UInt64(0) as! T
    default: return try T(from: RecordingDecoder(node: node))
    }
}

private struct KeyedRecorder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let node: SchemaNode
    var codingPath: [any CodingKey] = []
    var allKeys: [Key] { [] }

    func contains(_ key: Key) -> Bool { true }
    private func child(_ key: Key, required: Bool) -> SchemaNode {
        let n = SchemaNode()
        node.properties.append((key.stringValue, n, required))
        return n
    }
    func decodeNil(forKey key: Key) throws -> Bool { false }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try record(T.self, into: child(key, required: true))
    }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        try record(T.self, into: child(key, required: false))
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
        try record(T.self, into: child(key, required: false))
    }
    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let n = child(key, required: true)
        n.kind = .object
        return KeyedDecodingContainer(KeyedRecorder<NestedKey>(node: n))
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let n = child(key, required: true)
        n.kind = .array
        return UnkeyedRecorder(node: n)
    }
    func superDecoder() throws -> any Decoder { RecordingDecoder(node: node) }
    func superDecoder(forKey key: Key) throws -> any Decoder { RecordingDecoder(node: child(key, required: true)) }
}

/// Reports one element, so the element type is recorded once as `items`.
private struct UnkeyedRecorder: UnkeyedDecodingContainer {
    let node: SchemaNode
    var codingPath: [any CodingKey] = []
    var count: Int? { 1 }
    var currentIndex = 0
    var isAtEnd: Bool { currentIndex >= 1 }

    init(node: SchemaNode) { self.node = node }

    mutating func decodeNil() throws -> Bool { false }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        currentIndex += 1
        let n = SchemaNode()
        node.items = n
        return try record(T.self, into: n)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        currentIndex += 1
        let n = SchemaNode()
        n.kind = .object
        node.items = n
        return KeyedDecodingContainer(KeyedRecorder<NestedKey>(node: n))
    }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        currentIndex += 1
        let n = SchemaNode()
        n.kind = .array
        node.items = n
        return UnkeyedRecorder(node: n)
    }
    mutating func superDecoder() throws -> any Decoder { RecordingDecoder(node: node) }
}

private struct SingleRecorder: SingleValueDecodingContainer {
    let node: SchemaNode
    var codingPath: [any CodingKey] = []
    func decodeNil() -> Bool { false }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try record(T.self, into: node) }
}
