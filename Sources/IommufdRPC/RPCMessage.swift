/// A JSON-RPC 2.0 request id: a string, a number or null, echoed back exactly as received.
public struct RPCID: Sendable, Hashable, CustomStringConvertible, ExpressibleByIntegerLiteral, ExpressibleByStringLiteral {
    public let json: JSONValue

    /// `nil` unless `json` is a string, a number or null.
    public init?(json: JSONValue) {
        switch json {
        case .string, .int, .uint, .double, .null: self.json = json
        default: return nil
        }
    }

    public init(integerLiteral value: Int64) { json = .int(value) }
    public init(stringLiteral value: String) { json = .string(value) }
    public init(_ value: Int64) { json = .int(value) }
    public init(_ value: String) { json = .string(value) }

    public static let null = RPCID(json: .null)!

    public var description: String { json.description }
}

/// A request or notification as read off the wire (already validated).
public struct RPCRequest: Sendable, Hashable {
    public var method: String
    /// The params as sent: an object, an array, or `nil` when absent.
    public var params: JSONValue?
    /// `nil` for a notification, which gets no response.
    public var id: RPCID?

    public init(method: String, params: JSONValue? = nil, id: RPCID?) {
        self.method = method
        self.params = params
        self.id = id
    }

    public var isNotification: Bool { id == nil }

    /// Validates one request object per JSON-RPC 2.0 section 4. On failure, the error comes
    /// with the id to answer with (the request's if it had a valid one, else null).
    public static func validate(_ value: JSONValue) -> Result<RPCRequest, RPCRequestFailure> {
        guard case .object(let object) = value else {
            return .failure(.init(id: .null, error: .invalidRequest("a request must be an object, got \(value.typeName)")))
        }
        var id: RPCID? = nil
        if let rawID = object["id"] {
            guard let valid = RPCID(json: rawID) else {
                return .failure(.init(id: .null, error: .invalidRequest("\"id\" must be a string, a number or null, got \(rawID.typeName)")))
            }
            id = valid
        }
        let answerID = id ?? .null
        guard object["jsonrpc"] == .string("2.0") else {
            return .failure(.init(id: answerID, error: .invalidRequest("\"jsonrpc\" must be exactly \"2.0\"")))
        }
        guard case .string(let method)? = object["method"] else {
            return .failure(.init(id: answerID, error: .invalidRequest("\"method\" must be a string")))
        }
        let params = object["params"]
        switch params {
        case nil, .array?, .object?: break
        case let other?:
            return .failure(.init(id: answerID, error: .invalidRequest("\"params\" must be an object or an array, got \(other.typeName)")))
        }
        return .success(RPCRequest(method: method, params: params, id: id))
    }

    /// The wire form, without the trailing newline.
    public var json: JSONValue {
        var o: [String: JSONValue] = ["jsonrpc": "2.0", "method": .string(method)]
        if let params { o["params"] = params }
        if let id { o["id"] = id.json }
        return .object(o)
    }
}

/// A request that failed validation, and the id its error response carries.
public struct RPCRequestFailure: Error, Sendable, Hashable {
    public var id: RPCID
    public var error: RPCError
}

/// Builds response and notification lines without an intermediate tree.
enum RPCWire {
    static let resultPrefix = Array(#"{"jsonrpc":"2.0","id":"#.utf8)
    static let resultKey = Array(#","result":"#.utf8)
    static let errorKey = Array(#","error":"#.utf8)
    static let notificationPrefix = Array(#"{"jsonrpc":"2.0","method":"#.utf8)
    static let paramsKey = Array(#","params":"#.utf8)

    /// `{"jsonrpc":"2.0","id":ID,"result":R}` or `...,"error":E}` appended to `out` (no newline).
    static func writeResponse(id: RPCID, outcome: Result<JSONValue, RPCError>, to out: inout [UInt8]) {
        out.append(contentsOf: resultPrefix)
        id.json.write(to: &out)
        switch outcome {
        case .success(let value):
            out.append(contentsOf: resultKey)
            value.write(to: &out)
        case .failure(let error):
            out.append(contentsOf: errorKey)
            error.json.write(to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    static func responseLine(id: RPCID, outcome: Result<JSONValue, RPCError>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96)
        writeResponse(id: id, outcome: outcome, to: &out)
        out.append(UInt8(ascii: "\n"))
        return out
    }

    static func notificationLine(method: String, params: JSONValue?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96)
        out.append(contentsOf: notificationPrefix)
        JSONValue.writeString(method, to: &out)
        if let params {
            out.append(contentsOf: paramsKey)
            params.write(to: &out)
        }
        out.append(UInt8(ascii: "}"))
        out.append(UInt8(ascii: "\n"))
        return out
    }
}
