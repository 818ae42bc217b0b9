import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A directory of its own under /tmp (`mkdtemp`), removed with everything in it when released:
/// where the tests put sockets, configs and logs.
public final class TemporaryDirectory: Sendable {
    public let path: String

    /// Makes `/tmp/PREFIX-XXXXXX` (mkdtemp: mode 0700), then `chmod`s it to `mode` when given
    /// (0755 or 0711: clients of other uids must reach a socket inside).
    public init(_ prefix: String, mode: mode_t? = nil) throws {
        path = try Self.make(prefix, mode: mode)
    }

    deinit { remove() }

    /// Removes the directory and everything in it now (released later, it does nothing more).
    public func remove() { Self.remove(path) }

    /// A new directory the caller owns: remove it with `remove(_:)`.
    public static func make(_ prefix: String, mode: mode_t? = nil) throws -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else {
            throw TestProcessError("mkdtemp /tmp/\(prefix)-XXXXXX: \(String(cString: strerror(errno))) (errno \(errno))")
        }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if let mode { chmod(path, mode) }
        return path
    }

    /// Removes `path` and everything in it; a path already gone is fine.
    public static func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A test-support operation failed: what, and why.
public struct TestProcessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
