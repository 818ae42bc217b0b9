/// Encodes an `Encodable` straight into a `JSONValue` tree (no bytes in between). Integers stay
/// exact (`UInt64` above `Int64.max` becomes `.uint`); non-finite floating point is an error.
public struct JSONValueEncoder: Sendable {
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]
    public init() {}

    public func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        if let v = value as? JSONValue { return v }
        let node = EncodingNode()
        try value.encode(to: _JSONValueEncoder(node: node, codingPath: [], userInfo: userInfo))
        return node.materialize()
    }
}

/// One value under construction; containers write into it through the reference.
final class EncodingNode {
    var value: JSONValue?
    var object: [String: EncodingNode]?
    var array: [EncodingNode]?

    func materialize() -> JSONValue {
        if let object { return .object(object.mapValues { $0.materialize() }) }
        if let array { return .array(array.map { $0.materialize() }) }
        return value ?? .object([:])
    }

    func makeObject() {
        if object == nil { object = [:]; array = nil; value = nil }
    }

    func makeArray() {
        if array == nil { array = []; object = nil; value = nil }
    }
}

struct _JSONValueEncoder: Encoder {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    init(node: EncodingNode, codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: Any]) {
        self.node = node
        self.codingPath = codingPath
        self.userInfo = userInfo
    }

    func storeRaw(_ value: JSONValue) {
        node.value = value
        node.object = nil
        node.array = nil
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.makeObject()
        return KeyedEncodingContainer(KeyedEncoder<Key>(node: node, codingPath: codingPath, userInfo: userInfo))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.makeArray()
        return UnkeyedEncoder(node: node, codingPath: codingPath, userInfo: userInfo)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleEncoder(node: node, codingPath: codingPath, userInfo: userInfo)
    }
}

private enum EncodeScalar {
    static func double(_ d: Double, _ path: [any CodingKey]) throws -> JSONValue {
        guard d.isFinite else {
            throw EncodingError.invalidValue(d, .init(codingPath: path, debugDescription: "JSON cannot express \(d)"))
        }
        return .double(d)
    }

    static func int<T: BinaryInteger>(_ i: T) -> JSONValue {
        if let s = Int64(exactly: i) { return .int(s) }
        return .uint(UInt64(i))
    }

    static func encode<T: Encodable>(_ value: T, into node: EncodingNode, _ path: [any CodingKey], _ userInfo: [CodingUserInfoKey: Any]) throws {
        if let v = value as? JSONValue {
            node.value = v
            return
        }
        try value.encode(to: _JSONValueEncoder(node: node, codingPath: path, userInfo: userInfo))
    }
}

private struct KeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    func set(_ value: JSONValue, _ key: Key) {
        let child = EncodingNode()
        child.value = value
        node.object![key.stringValue] = child
    }

    func child(_ key: Key) -> EncodingNode {
        let child = EncodingNode()
        node.object![key.stringValue] = child
        return child
    }

    mutating func encodeNil(forKey key: Key) throws { set(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { set(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { set(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { set(try EncodeScalar.double(value, codingPath + [key]), key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { set(try EncodeScalar.double(Double(value), codingPath + [key]), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { set(EncodeScalar.int(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { set(EncodeScalar.int(value), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { set(EncodeScalar.int(value), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { set(EncodeScalar.int(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { set(EncodeScalar.int(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { set(EncodeScalar.int(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { set(EncodeScalar.int(value), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { set(EncodeScalar.int(value), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { set(EncodeScalar.int(value), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { set(EncodeScalar.int(value), key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try EncodeScalar.encode(value, into: child(key), codingPath + [key], userInfo)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        _JSONValueEncoder(node: child(key), codingPath: codingPath + [key], userInfo: userInfo).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        _JSONValueEncoder(node: child(key), codingPath: codingPath + [key], userInfo: userInfo).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let child = EncodingNode()
        node.object!["super"] = child
        return _JSONValueEncoder(node: child, codingPath: codingPath, userInfo: userInfo)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        _JSONValueEncoder(node: child(key), codingPath: codingPath + [key], userInfo: userInfo)
    }
}

private struct ArrayIndexKey: CodingKey {
    let intValue: Int?
    let stringValue: String
    init(_ index: Int) { intValue = index; stringValue = "\(index)" }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.init(intValue) }
}

private struct UnkeyedEncoder: UnkeyedEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    var count: Int { node.array!.count }

    func append(_ value: JSONValue) {
        let child = EncodingNode()
        child.value = value
        node.array!.append(child)
    }

    func nextChild() -> (EncodingNode, [any CodingKey]) {
        let child = EncodingNode()
        let path = codingPath + [ArrayIndexKey(node.array!.count)]
        node.array!.append(child)
        return (child, path)
    }

    mutating func encodeNil() throws { append(.null) }
    mutating func encode(_ value: Bool) throws { append(.bool(value)) }
    mutating func encode(_ value: String) throws { append(.string(value)) }
    mutating func encode(_ value: Double) throws { append(try EncodeScalar.double(value, codingPath)) }
    mutating func encode(_ value: Float) throws { append(try EncodeScalar.double(Double(value), codingPath)) }
    mutating func encode(_ value: Int) throws { append(EncodeScalar.int(value)) }
    mutating func encode(_ value: Int8) throws { append(EncodeScalar.int(value)) }
    mutating func encode(_ value: Int16) throws { append(EncodeScalar.int(value)) }
    mutating func encode(_ value: Int32) throws { append(EncodeScalar.int(value)) }
    mutating func encode(_ value: Int64) throws { append(EncodeScalar.int(value)) }
    mutating func encode(_ value: UInt) throws { append(EncodeScalar.int(value)) }
    mutating func encode(_ value: UInt8) throws { append(EncodeScalar.int(value)) }
    mutating func encode(_ value: UInt16) throws { append(EncodeScalar.int(value)) }
    mutating func encode(_ value: UInt32) throws { append(EncodeScalar.int(value)) }
    mutating func encode(_ value: UInt64) throws { append(EncodeScalar.int(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        let (child, path) = nextChild()
        try EncodeScalar.encode(value, into: child, path, userInfo)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let (child, path) = nextChild()
        return _JSONValueEncoder(node: child, codingPath: path, userInfo: userInfo).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let (child, path) = nextChild()
        return _JSONValueEncoder(node: child, codingPath: path, userInfo: userInfo).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let (child, path) = nextChild()
        return _JSONValueEncoder(node: child, codingPath: path, userInfo: userInfo)
    }
}

private struct SingleEncoder: SingleValueEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    func set(_ value: JSONValue) {
        node.value = value
        node.object = nil
        node.array = nil
    }

    mutating func encodeNil() throws { set(.null) }
    mutating func encode(_ value: Bool) throws { set(.bool(value)) }
    mutating func encode(_ value: String) throws { set(.string(value)) }
    mutating func encode(_ value: Double) throws { set(try EncodeScalar.double(value, codingPath)) }
    mutating func encode(_ value: Float) throws { set(try EncodeScalar.double(Double(value), codingPath)) }
    mutating func encode(_ value: Int) throws { set(EncodeScalar.int(value)) }
    mutating func encode(_ value: Int8) throws { set(EncodeScalar.int(value)) }
    mutating func encode(_ value: Int16) throws { set(EncodeScalar.int(value)) }
    mutating func encode(_ value: Int32) throws { set(EncodeScalar.int(value)) }
    mutating func encode(_ value: Int64) throws { set(EncodeScalar.int(value)) }
    mutating func encode(_ value: UInt) throws { set(EncodeScalar.int(value)) }
    mutating func encode(_ value: UInt8) throws { set(EncodeScalar.int(value)) }
    mutating func encode(_ value: UInt16) throws { set(EncodeScalar.int(value)) }
    mutating func encode(_ value: UInt32) throws { set(EncodeScalar.int(value)) }
    mutating func encode(_ value: UInt64) throws { set(EncodeScalar.int(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try EncodeScalar.encode(value, into: node, codingPath, userInfo)
    }
}
