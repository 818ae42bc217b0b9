import CIommufd
import IommufdCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The raw system calls the kernel backend makes, as replaceable function values.
///
/// `.live` calls the C library (ioctl through the shim's fixed-argument `ifd_ioctl`, since Swift
/// cannot call the variadic one). Tests substitute fakes that fail with a chosen errno (by
/// setting `errno` and returning -1, exactly as libc does) to exercise error paths that no real
/// kernel can be made to produce on demand. The values are closures rather than
/// `@convention(c)` pointers so a fake can keep per-test state without globals.
public struct Syscalls: Sendable {
    /// `open(2)` without O_CREAT. Returns the fd, or -1 with `errno` set.
    public var open: @Sendable (_ path: String, _ flags: Int32) -> Int32
    /// `close(2)`.
    public var close: @Sendable (_ fd: Int32) -> Int32
    /// `ioctl(2)` with one pointer argument. Returns >= 0, or -1 with `errno` set.
    public var ioctl: @Sendable (_ fd: Int32, _ request: UInt, _ arg: UnsafeMutableRawPointer?) -> Int32

    public init(
        open: @escaping @Sendable (_ path: String, _ flags: Int32) -> Int32,
        close: @escaping @Sendable (_ fd: Int32) -> Int32,
        ioctl: @escaping @Sendable (_ fd: Int32, _ request: UInt, _ arg: UnsafeMutableRawPointer?) -> Int32
    ) {
        self.open = open
        self.close = close
        self.ioctl = ioctl
    }

    /// The real system calls.
    public static let live = Syscalls(
        open: { path, flags in path.withCString { ifd_open($0, flags) } },
        close: { fd in Glibc.close(fd) },
        ioctl: { fd, request, arg in ifd_ioctl(fd, request, arg) }
    )

    /// `open(2)`, EINTR retried.
    func openFile(_ path: String, flags: Int32) -> Result<Int32, Errno> {
        retryOnInterrupt { open(path, flags) }
    }

    /// `ioctl(2)` on a typed argument struct, EINTR retried. Every ioctl of the backend goes
    /// through here: this is the one place interrupted calls are restarted.
    func ioctl<Argument>(_ fd: Int32, _ request: UInt, _ argument: inout Argument) -> Result<Void, Errno> {
        withUnsafeMutablePointer(to: &argument) { pointer in
            retryOnInterrupt { ioctl(fd, request, UnsafeMutableRawPointer(pointer)) }.map { _ in () }
        }
    }

    /// `close(2)`. Not retried on EINTR: Linux releases the descriptor even then, and a retry
    /// could close a descriptor another thread has just been given.
    func closeFile(_ fd: Int32) {
        _ = close(fd)
    }
}

extension Result where Failure == Errno {
    /// The success value, or an `IommuError` naming `operation`.
    func orThrow(_ operation: String, detail: @autoclosure () -> String? = nil) throws -> Success {
        switch self {
        case .success(let value): return value
        case .failure(let errno): throw IommuError(errno, operation, detail: detail())
        }
    }
}
