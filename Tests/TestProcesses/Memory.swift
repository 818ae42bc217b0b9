import Glibc
import IommufdCore

/// A close-on-exec memfd of `bytes` bytes (guest memory a VM manager would pass), closed by
/// the caller.
public func makeMemfd<Size: BinaryInteger>(bytes: Size, name: String = "test-guest-ram") throws -> Int32 {
    let fd = try Memfd.create(name: name)
    guard ftruncate(fd, off_t(bytes)) == 0 else {
        let err = Errno.current
        close(fd)
        throw err
    }
    return fd
}

/// Hands a value that is not `Sendable` (a client, a harness) to another thread, which alone uses
/// it from then on.
public struct Unchecked<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}
