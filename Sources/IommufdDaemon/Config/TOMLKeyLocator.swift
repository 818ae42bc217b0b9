/// Finds the line and column where each key of a TOML document is written.
///
/// TOMLKit reports positions for syntax errors only, so semantic errors (an unknown key, a bad
/// value) would have no line. This scanner walks the source text once — after TOMLKit has
/// accepted it, so it only needs to follow valid TOML — and records, for every key path, where
/// its key starts. Paths use the form the error messages show: `daemon.socket_mode`,
/// `access[1].role`, `kernel.mock_devices[0].name`.
struct TOMLKeyLocator {
    struct Position: Equatable {
        var line: Int
        var column: Int
    }

    private(set) var positions: [String: Position] = [:]

    init(source: String) {
        var scanner = Scanner(bytes: Array(source.utf8))
        scanner.scanDocument()
        positions = scanner.positions
    }

    /// Where `path` is written; for a path the text does not spell out (an element of an
    /// inline array, a table made implicitly), the closest ancestor that it does.
    func position(of path: String) -> Position? {
        var p = path
        while true {
            if let found = positions[p] { return found }
            guard let cut = p.lastIndex(where: { $0 == "." || $0 == "[" }) else { return nil }
            p = String(p[..<cut])
        }
    }

    static func join(_ components: [String]) -> String {
        var s = ""
        for c in components {
            if c.hasPrefix("[") { s += c } else { s += s.isEmpty ? c : "." + c }
        }
        return s
    }

    private struct Scanner {
        let bytes: [UInt8]
        var i = 0
        var line = 1
        var lineStart = 0
        var positions: [String: Position] = [:]
        /// How many `[[x]]` headers have been seen for each array-of-tables path `x`.
        var arrayTableCounts: [String: Int] = [:]

        init(bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { i >= bytes.count }
        var current: UInt8? { i < bytes.count ? bytes[i] : nil }
        func peek(_ offset: Int) -> UInt8? { i + offset < bytes.count ? bytes[i + offset] : nil }
        var here: Position { Position(line: line, column: i - lineStart + 1) }

        mutating func advance() {
            if bytes[i] == UInt8(ascii: "\n") {
                line += 1
                lineStart = i + 1
            }
            i += 1
        }

        mutating func skipSpaces() {
            while let c = current, c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") { advance() }
        }

        /// Spaces, newlines and comments.
        mutating func skipTrivia() {
            while let c = current {
                if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r")
                    || c == UInt8(ascii: "\n")
                {
                    advance()
                } else if c == UInt8(ascii: "#") {
                    while let d = current, d != UInt8(ascii: "\n") { advance() }
                } else {
                    return
                }
            }
        }

        mutating func scanDocument() {
            var table: [String] = []
            while true {
                skipTrivia()
                guard let c = current else { return }
                if c == UInt8(ascii: "[") {
                    let isArray = peek(1) == UInt8(ascii: "[")
                    let start = here
                    advance()
                    if isArray { advance() }
                    let key = scanKey().map(\.name)
                    while let d = current, d != UInt8(ascii: "\n") { advance() }
                    table = resolveHeader(key, isArray: isArray)
                    record(table, start)
                } else {
                    scanKeyValue(in: table)
                }
                guard !atEnd else { return }
            }
        }

        /// `[a.b]` inside the latest element of an array of tables `a` refers to that element.
        mutating func resolveHeader(_ key: [String], isArray: Bool) -> [String] {
            var path: [String] = []
            for (n, component) in key.enumerated() {
                path.append(component)
                let joined = TOMLKeyLocator.join(path)
                if isArray && n == key.count - 1 {
                    let index = arrayTableCounts[joined, default: 0]
                    arrayTableCounts[joined] = index + 1
                    path.append("[\(index)]")
                } else if let count = arrayTableCounts[joined] {
                    path.append("[\(count - 1)]")
                }
            }
            return path
        }

        mutating func record(_ path: [String], _ position: Position) {
            let key = TOMLKeyLocator.join(path)
            if positions[key] == nil { positions[key] = position }
        }

        /// A dotted key: bare or quoted components separated by dots.
        mutating func scanKey() -> [(name: String, position: Position)] {
            var components: [(String, Position)] = []
            while true {
                skipSpaces()
                let start = here
                guard let c = current else { return components }
                var name: [UInt8] = []
                if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                    advance()
                    while let d = current, d != c, d != UInt8(ascii: "\n") {
                        if c == UInt8(ascii: "\""), d == UInt8(ascii: "\\") {
                            advance()
                        }
                        if let e = current { name.append(e); advance() }
                    }
                    if current == c { advance() }
                } else {
                    while let d = current, isBareKeyByte(d) {
                        name.append(d)
                        advance()
                    }
                }
                components.append((String(decoding: name, as: UTF8.self), start))
                skipSpaces()
                if current == UInt8(ascii: ".") { advance() } else { return components }
            }
        }

        func isBareKeyByte(_ c: UInt8) -> Bool {
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_")
                || c == UInt8(ascii: "-")
        }

        mutating func scanKeyValue(in table: [String]) {
            let key = scanKey()
            guard !key.isEmpty else {
                advance()  // not a key: step over it so the scan always progresses
                return
            }
            var path = table
            for component in key {
                path.append(component.name)
                record(path, component.position)
            }
            skipSpaces()
            guard current == UInt8(ascii: "=") else { return }
            advance()
            skipSpaces()
            scanValue(path)
        }

        mutating func scanValue(_ path: [String]) {
            guard let c = current else { return }
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                scanString(quote: c)
            case UInt8(ascii: "["):
                advance()
                var index = 0
                while true {
                    skipTrivia()
                    guard let d = current else { return }
                    if d == UInt8(ascii: "]") { advance(); return }
                    if d == UInt8(ascii: ",") { advance(); continue }
                    let element = path + ["[\(index)]"]
                    record(element, here)
                    scanValue(element)
                    index += 1
                }
            case UInt8(ascii: "{"):
                advance()
                while true {
                    skipSpaces()
                    guard let d = current else { return }
                    if d == UInt8(ascii: "}") { advance(); return }
                    if d == UInt8(ascii: ",") { advance(); continue }
                    if d == UInt8(ascii: "\n") { return }  // invalid TOML; TOMLKit refused it
                    scanKeyValue(in: path)
                }
            default:
                // Number, boolean, date: runs to a delimiter.
                while let d = current, d != UInt8(ascii: ","), d != UInt8(ascii: "]"), d != UInt8(ascii: "}"),
                    d != UInt8(ascii: "\n"), d != UInt8(ascii: "#")
                {
                    advance()
                }
            }
        }

        mutating func scanString(quote: UInt8) {
            let triple = peek(1) == quote && peek(2) == quote
            if triple {
                advance(); advance(); advance()
                while let c = current {
                    if quote == UInt8(ascii: "\""), c == UInt8(ascii: "\\") {
                        advance()
                        if !atEnd { advance() }
                        continue
                    }
                    if c == quote, peek(1) == quote, peek(2) == quote {
                        advance(); advance(); advance()
                        // Up to two more quotes may close the string ("""a"""" is a" + closing).
                        while current == quote { advance() }
                        return
                    }
                    advance()
                }
            } else {
                advance()
                while let c = current, c != quote, c != UInt8(ascii: "\n") {
                    if quote == UInt8(ascii: "\""), c == UInt8(ascii: "\\") { advance() }
                    if !atEnd { advance() }
                }
                if current == quote { advance() }
            }
        }
    }
}
