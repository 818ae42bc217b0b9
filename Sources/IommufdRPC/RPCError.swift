import IommufdContract
import IommufdCore

/// A JSON-RPC 2.0 error object: what a handler throws and what a client receives.
///
/// Domain errors use codes -32000...-32099 and carry in `data` an object whose `"name"` is a
/// stable identifier (`"iommufdd.NotFound"`) that clients match on, plus optional detail
/// (`"errno"`, `"ioctl"`, `"hint"`, ...). Messages are for people, names are for programs.
public struct RPCError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    /// The standard codes of the JSON-RPC 2.0 specification, and the domain range.
    public enum Code {
        public static let parseError = -32700
        public static let invalidRequest = -32600
        public static let methodNotFound = -32601
        public static let invalidParams = -32602
        public static let internalError = -32603
        /// Domain (server) errors: -32099...-32000.
        public static let domainRange = -32099...(-32000)
    }

    /// `data.name` when the error carries one.
    public var name: String? { data?["name"]?.stringValue }

    public var description: String {
        var s = "\(message) (\(code)"
        if let name { s += ", \(name)" }
        return s + ")"
    }

    // MARK: Standard errors

    public static func parseError(_ detail: String) -> RPCError {
        RPCError(code: Code.parseError, message: "Parse error: \(detail)")
    }

    public static func invalidRequest(_ detail: String, name: String? = nil, fields: [String: JSONValue] = [:]) -> RPCError {
        RPCError(code: Code.invalidRequest, message: "Invalid Request: \(detail)", data: dataObject(name: name, fields: fields))
    }

    public static func methodNotFound(_ method: String) -> RPCError {
        RPCError(code: Code.methodNotFound, message: "Method not found: \(method)", data: ["method": .string(method)])
    }

    public static func invalidParams(_ detail: String, fields: [String: JSONValue] = [:]) -> RPCError {
        RPCError(code: Code.invalidParams, message: "Invalid params: \(detail)", data: dataObject(name: nil, fields: fields))
    }

    public static func internalError(_ detail: String) -> RPCError {
        RPCError(code: Code.internalError, message: "Internal error: \(detail)")
    }

    /// A domain error: `code` in -32099...-32000 (clamped to -32000 otherwise), `data.name` = `name`.
    public static func domain(
        _ name: String, _ message: String, code: Int = -32000,
        errno: Errno? = nil, ioctl: String? = nil, hint: String? = nil, fields: [String: JSONValue] = [:]
    ) -> RPCError {
        var data = fields
        if let errno {
            data["errno"] = .string(errno.name)
            data["errno_value"] = .int(Int64(errno.rawValue))
        }
        if let ioctl { data["ioctl"] = .string(ioctl) }
        if let hint { data["hint"] = .string(hint) }
        let code = Code.domainRange.contains(code) ? code : -32000
        return RPCError(code: code, message: message, data: dataObject(name: name, fields: data))
    }

    private static func dataObject(name: String?, fields: [String: JSONValue]) -> JSONValue? {
        var data = fields
        if let name { data["name"] = .string(name) }
        return data.isEmpty ? nil : .object(data)
    }

    /// The wire form: `{"code":..., "message":..., "data":...}`.
    public var json: JSONValue {
        var o: [String: JSONValue] = ["code": .int(Int64(code)), "message": .string(message)]
        if let data { o["data"] = data }
        return .object(o)
    }

    /// Reads an error object from the wire; `nil` if `json` is not one.
    public init?(json: JSONValue) {
        guard let code = json["code"]?.int64Value, let message = json["message"]?.stringValue else { return nil }
        self.init(code: Int(code), message: message, data: json["data"])
    }
}

extension RPCError {
    /// Names the transport itself uses in `data.name` (IommufdContract's catalogue).
    public enum Name {
        public static let messageTooLarge = ErrorName.messageTooLarge.wireName
        public static let tooManyFileDescriptors = ErrorName.tooManyFileDescriptors.wireName
        public static let fileDescriptorsLost = ErrorName.fileDescriptorsLost.wireName
        public static let tooManyClients = ErrorName.tooManyClients.wireName
        public static let fileDescriptorsInBatch = ErrorName.fileDescriptorsInBatch.wireName
        public static let kernel = ErrorName.kernel.wireName
        public static let shuttingDown = ErrorName.shuttingDown.wireName
    }

    /// A kernel (or simulator) failure: name `iommufdd.Kernel` with the contract's code for it
    /// (-32006, as when the broker wraps one), errno and ioctl in `data`.
    public init(_ error: IommuError, code: Int = ErrorName.kernel.rpcCode ?? -32000) {
        var fields: [String: JSONValue] = [:]
        if let detail = error.detail { fields["detail"] = .string(detail) }
        if let required = error.requiredCount { fields["required_count"] = .int(Int64(required)) }
        self = .domain(Name.kernel, error.description, code: code, errno: error.errno, ioctl: error.operation, fields: fields)
    }

    /// Turns whatever a handler threw into an RPC error: `RPCError` as is, `IommuError` as a
    /// kernel error, `DecodingError` as invalid params, anything else as an internal error.
    public init(converting error: any Error) {
        switch error {
        case let e as RPCError: self = e
        case let e as IommuError: self.init(e)
        case let e as Errno:
            self = .domain(Name.kernel, "\(e.name): \(e.message)", code: ErrorName.kernel.rpcCode ?? -32000, errno: e)
        case let e as DecodingError: self = .invalidParams(RPCError.describe(e))
        default: self = .internalError(String(describing: error))
        }
    }

    /// "missing \"iova\"" / "at ioas: expected an integer ..., got a string".
    static func describe(_ error: DecodingError) -> String {
        func path(_ p: [any CodingKey]) -> String {
            p.isEmpty ? "params" : "params." + p.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            return "\(path(ctx.codingPath)) is missing \"\(key.stringValue)\""
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx), .dataCorrupted(let ctx):
            return "\(path(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default:
            return String(describing: error)
        }
    }
}
