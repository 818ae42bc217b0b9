import Testing
@testable import IommufdRPC

@Suite("JSONValue parse and encode")
struct JSONValueTests {
    @Test func parsesEveryKindOfValue() throws {
        let v = try JSONValue.parse(#" {"a": [1, -2, 3.5, true, false, null, "x"], "b": {}} "#)
        #expect(v == .object(["a": [1, -2, 3.5, true, false, nil, "x"], "b": .object([:])]))
    }

    @Test func integersStayExact() throws {
        #expect(try JSONValue.parse("18446744073709551615") == .uint(UInt64.max))
        #expect(try JSONValue.parse("9223372036854775808") == .uint(1 << 63))
        #expect(try JSONValue.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSONValue.parse("-9223372036854775808") == .int(Int64.min))
        #expect(try JSONValue.parse("0") == .int(0))
        #expect(try JSONValue.parse("-0") == .int(0))
        // Beyond 64 bits only a double can hold it.
        #expect(try JSONValue.parse("18446744073709551616") == .double(18446744073709551616.0))
        #expect(try JSONValue.parse("1e3") == .double(1000))
        #expect(JSONValue.uint(UInt64.max).description == "18446744073709551615")
        #expect(JSONValue.int(Int64.min).description == "-9223372036854775808")
        #expect(JSONValue.unsigned(5) == .int(5))
        #expect(JSONValue.unsigned(UInt64.max).uint64Value == UInt64.max)
    }

    @Test func encodesCompactSortedAndEscaped() throws {
        let v: JSONValue = ["b": "line\nbreak \"q\" \\ \u{01} é", "a": [1.5, nil, true]]
        let text = v.description
        #expect(text == #"{"a":[1.5,null,true],"b":"line\nbreak \"q\" \\ \u0001 é"}"#)
        #expect(!text.utf8.contains(UInt8(ascii: "\n")))
        #expect(try JSONValue.parse(text) == v)
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        #expect(try JSONValue.parse(#""\u00e9\ud83d\ude00\/\t""#) == .string("é😀/\t"))
    }

    @Test(arguments: [
        "", " ", "{", "[1,", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", "-", "+1", ".5", "1e", "tru", "nul",
        "\"abc", "\"\\x\"", "\"\\ud800\"", "\"\\udc00x\"", "\"a\u{01}b\"", "[1] 2", "{1:2}", "NaN", "Infinity", "1e400",
    ])
    func refusesMalformedInput(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse([0x22, 0xFF, 0xFE, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse([0x22, 0xC3, 0x22]) }
    }

    @Test func limitsNestingDepth() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let error = #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
        #expect(error?.message.contains("nesting") == true)
        let ok = String(repeating: "[", count: 10) + String(repeating: "]", count: 10)
        #expect(throws: Never.self) { try JSONValue.parse(ok, maxDepth: 10) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(ok, maxDepth: 9) }
    }

    @Test func survivesGarbage() {
        // A deterministic generator: the same bytes every run.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state
        }
        let alphabet = Array(#"{}[]":,.-+0123456789eEtrufalsn\ "#.utf8) + [0x00, 0x80, 0xFF, 0x0A]
        var parsed = 0
        for _ in 0..<20_000 {
            let count = Int(next() % 24)
            let bytes = (0..<count).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }
            if (try? JSONValue.parse(bytes)) != nil { parsed += 1 }
        }
        // Most random strings are not JSON; some short ones ("1", "[]") are.
        #expect(parsed < 20_000)
    }
}

@Suite("JSONValue Codable bridge")
struct JSONValueCodableTests {
    struct MapParams: Codable, Equatable {
        var ioas: UInt32
        var iova: UInt64?
        var length: UInt64
        var writeable: Bool
        var name: String
        var tags: [String]
        var nested: Nested

        struct Nested: Codable, Equatable { var fd: Int }
    }

    @Test func roundTripsThroughTheTree() throws {
        let p = MapParams(ioas: 3, iova: UInt64.max - 4095, length: 1 << 21, writeable: true, name: "vm-1",
                          tags: ["a", "b"], nested: .init(fd: 0))
        let tree = try JSONValueEncoder().encode(p)
        #expect(tree["iova"] == .uint(UInt64.max - 4095))
        #expect(tree["nested"] == ["fd": 0])
        #expect(try JSONValueDecoder().decode(MapParams.self, from: tree) == p)
        #expect(try JSONValueDecoder().decode(MapParams.self, from: JSONValue.parse(tree.description)) == p)
    }

    @Test func missingOptionalDecodesAsNil() throws {
        let v: JSONValue = ["ioas": 1, "length": 4096, "writeable": false, "name": "x", "tags": [], "nested": ["fd": 1]]
        #expect(try JSONValueDecoder().decode(MapParams.self, from: v).iova == nil)
    }

    @Test func typeMismatchesNameThePath() throws {
        let v: JSONValue = ["ioas": "one", "length": 4096, "writeable": false, "name": "x", "tags": [], "nested": ["fd": 1]]
        let error = #expect(throws: DecodingError.self) { try JSONValueDecoder().decode(MapParams.self, from: v) }
        let text = error.map(RPCError.describe) ?? ""
        #expect(text.contains("params.ioas"))
        #expect(text.contains("got a string"))
    }

    @Test func outOfRangeIntegersAreRefusedNotTruncated() {
        let v: JSONValue = ["ioas": .int(1 << 40), "length": 1, "writeable": false, "name": "x", "tags": [], "nested": ["fd": 1]]
        #expect(throws: DecodingError.self) { try JSONValueDecoder().decode(MapParams.self, from: v) }
        let negative: JSONValue = ["ioas": -1, "length": 1, "writeable": false, "name": "x", "tags": [], "nested": ["fd": 1]]
        #expect(throws: DecodingError.self) { try JSONValueDecoder().decode(MapParams.self, from: negative) }
    }

    @Test func jsonValueFieldsPassThrough() throws {
        struct Wrapper: Codable, Equatable { var any: JSONValue; var list: [JSONValue] }
        let w = Wrapper(any: ["deep": [1, "two", nil]], list: [.uint(UInt64.max), 2.5])
        let tree = try JSONValueEncoder().encode(w)
        #expect(try JSONValueDecoder().decode(Wrapper.self, from: tree) == w)
    }

    @Test func nonFiniteDoublesAreAnEncodingError() {
        struct D: Encodable { var x: Double }
        #expect(throws: EncodingError.self) { try JSONValueEncoder().encode(D(x: .nan)) }
    }
}
