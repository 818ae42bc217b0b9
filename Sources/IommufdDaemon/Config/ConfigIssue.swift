/// One thing wrong with a configuration: where (file, line, column, key) and why.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    /// The file's path, or `"<command line>"` for an override.
    public var file: String
    /// 1-based; nil when the problem has no place in the file (a missing file).
    public var line: Int?
    public var column: Int?
    /// The key in dotted form with array indexes (`access[1].role`), when there is one.
    public var key: String?
    public var reason: String

    public init(file: String, line: Int? = nil, column: Int? = nil, key: String? = nil, reason: String) {
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.reason = reason
    }

    /// `file:line:column: key: reason`, the form editors and compilers use.
    public var description: String {
        var s = file
        if let line {
            s += ":\(line)"
            if let column { s += ":\(column)" }
        }
        s += ": "
        if let key { s += "\(key): " }
        return s + reason
    }
}

/// A configuration that was refused, with every problem found in it.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var issues: [ConfigIssue]
    public init(_ issues: [ConfigIssue]) { self.issues = issues }
    public var description: String {
        issues.map(\.description).joined(separator: "\n")
    }
}
