#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A POSIX error number with its symbolic name, in the style of swift-system's `Errno`.
///
/// Kernel failures keep their errno unchanged all the way to the RPC boundary, where the name
/// (`"ENOENT"`) goes on the wire next to the ioctl that produced it.
public struct Errno: RawRepresentable, Hashable, Sendable, Error, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// The current thread's `errno`.
    public static var current: Errno { Errno(rawValue: errno) }

    public static let EPERM = Errno(1)
    public static let ENOENT = Errno(2)
    public static let ESRCH = Errno(3)
    public static let EINTR = Errno(4)
    public static let EIO = Errno(5)
    public static let ENXIO = Errno(6)
    public static let E2BIG = Errno(7)
    public static let EBADF = Errno(9)
    public static let EAGAIN = Errno(11)
    public static let ENOMEM = Errno(12)
    public static let EACCES = Errno(13)
    public static let EFAULT = Errno(14)
    public static let EBUSY = Errno(16)
    public static let EEXIST = Errno(17)
    public static let EXDEV = Errno(18)
    public static let ENODEV = Errno(19)
    public static let ENOTDIR = Errno(20)
    public static let EINVAL = Errno(22)
    public static let ENFILE = Errno(23)
    public static let EMFILE = Errno(24)
    public static let ENOTTY = Errno(25)
    public static let EFBIG = Errno(27)
    public static let ENOSPC = Errno(28)
    public static let ESPIPE = Errno(29)
    public static let EROFS = Errno(30)
    public static let EPIPE = Errno(32)
    public static let EDOM = Errno(33)
    public static let ERANGE = Errno(34)
    public static let EDEADLK = Errno(35)
    public static let ENAMETOOLONG = Errno(36)
    public static let ENOSYS = Errno(38)
    public static let EOVERFLOW = Errno(75)
    public static let EMSGSIZE = Errno(90)
    public static let EPROTONOSUPPORT = Errno(93)
    public static let EOPNOTSUPP = Errno(95)
    public static let EADDRINUSE = Errno(98)
    public static let ECONNRESET = Errno(104)
    public static let ENOBUFS = Errno(105)
    public static let ETIMEDOUT = Errno(110)
    public static let ECONNREFUSED = Errno(111)

    private static let names: [Int32: String] = [
        1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG",
        9: "EBADF", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY",
        17: "EEXIST", 18: "EXDEV", 19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL",
        23: "ENFILE", 24: "EMFILE", 25: "ENOTTY", 27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE",
        30: "EROFS", 32: "EPIPE", 33: "EDOM", 34: "ERANGE", 35: "EDEADLK", 36: "ENAMETOOLONG",
        38: "ENOSYS", 61: "ENODATA", 75: "EOVERFLOW", 90: "EMSGSIZE", 93: "EPROTONOSUPPORT",
        95: "EOPNOTSUPP", 98: "EADDRINUSE", 104: "ECONNRESET", 105: "ENOBUFS",
        110: "ETIMEDOUT", 111: "ECONNREFUSED",
    ]

    /// The symbolic name, e.g. `"ENOENT"`; `"errno N"` for numbers without one here.
    public var name: String { Self.names[rawValue] ?? "errno \(rawValue)" }

    /// The C library's text for this errno, e.g. "No such file or directory".
    public var message: String { String(cString: strerror(rawValue)) }

    public var description: String { "\(name) (\(message))" }

    /// Looks an errno up by its symbolic name.
    public init?(name: String) {
        guard let entry = Self.names.first(where: { $0.value == name }) else { return nil }
        self.rawValue = entry.key
    }
}

/// Calls `body` until it fails with something other than EINTR: the one place EINTR is retried.
@inlinable
public func retryOnInterrupt<T: FixedWidthInteger>(_ body: () -> T) -> Result<T, Errno> {
    while true {
        let rc = body()
        if rc >= 0 { return .success(rc) }
        let err = Errno.current
        if err != .EINTR { return .failure(err) }
    }
}
