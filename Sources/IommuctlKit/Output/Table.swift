/// An aligned text table: a header row in capitals, columns separated by two spaces, number
/// columns (header included) right-aligned. Cells are plain strings; an empty cell prints `-`.
public struct Table: Sendable {
    public enum Alignment: Sendable { case left, right }

    public struct Column: Sendable {
        public var title: String
        public var alignment: Alignment
        public init(_ title: String, _ alignment: Alignment = .left) {
            self.title = title
            self.alignment = alignment
        }
    }

    public var columns: [Column]
    public private(set) var rows: [[String]] = []

    public init(_ columns: [Column]) { self.columns = columns }

    public init(_ titles: String...) { self.columns = titles.map { Column($0) } }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    public mutating func add(_ cells: [String]) {
        var row = Array(cells.prefix(columns.count))
        while row.count < columns.count { row.append("") }
        rows.append(row.map { $0.isEmpty ? "-" : $0 })
    }

    public mutating func add(_ cells: String...) { add(cells) }

    /// The table as lines, without trailing spaces. With no rows, just `empty` (if given).
    public func render(empty: String? = nil) -> String {
        if rows.isEmpty, let empty { return empty }
        let widths = columns.indices.map { i in
            rows.reduce(columns[i].title.count) { max($0, $1[i].count) }
        }
        func line(_ cells: [String]) -> String {
            var out = ""
            for (i, cell) in cells.enumerated() {
                let last = i == cells.count - 1
                let aligned: String
                if columns[i].alignment == .right {
                    aligned = cell.leftPadded(to: widths[i])
                } else {
                    aligned = last ? cell : cell.rightPadded(to: widths[i])
                }
                out += aligned
                if !last { out += "  " }
            }
            while out.hasSuffix(" ") { out.removeLast() }
            return out
        }
        var lines = [line(columns.map { $0.title.uppercased() })]
        for row in rows { lines.append(line(row)) }
        return lines.joined(separator: "\n")
    }
}

/// A block of `key  value` lines with the keys aligned, for `info` commands.
public struct Fields: Sendable {
    public private(set) var pairs: [(String, String)] = []

    public init() {}

    public mutating func add(_ key: String, _ value: String) { pairs.append((key, value.isEmpty ? "-" : value)) }

    /// Adds the line only when `value` is non-nil.
    public mutating func addIfPresent(_ key: String, _ value: String?) {
        if let value { add(key, value) }
    }

    public func render() -> String {
        let width = pairs.reduce(0) { max($0, $1.0.count) }
        return pairs.map { key, value in
            // Continuation lines of a multi-line value are indented under the first.
            let indent = String(repeating: " ", count: width + 2)
            let body = value.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\n" + indent)
            return key.rightPadded(to: width) + "  " + body
        }.joined(separator: "\n")
    }
}
