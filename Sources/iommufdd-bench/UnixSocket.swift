#if canImport(Glibc)
import Glibc
#endif
import Foundation

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
    static func errno(_ what: String) -> BenchError { BenchError("\(what): \(String(cString: strerror(Glibc.errno)))") }
}

/// Fills a `sockaddr_un` for `path` and calls `body` with it.
func withUnixAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> T) throws -> T {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw BenchError("socket path too long: \(path)") }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return try withUnsafePointer(to: &address) {
        try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

/// A blocking client connection that writes request bytes and reads one `\n`-terminated line:
/// the same client for the daemon and for the echo floor.
final class LineClient: @unchecked Sendable {
    let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var buffered = 0

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError.errno("socket") }
        let rc = try withUnixAddress(path) { connect(fd, $0, $1) }
        guard rc == 0 else {
            let error = BenchError.errno("connect \(path)")
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Sends `request` and returns the length of the reply line (newline included).
    @discardableResult
    func roundTrip(_ request: [UInt8]) throws -> Int {
        try request.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = write(fd, raw.baseAddress! + sent, raw.count - sent)
                if n < 0 { if errno == EINTR { continue }; throw BenchError.errno("write") }
                sent += n
            }
        }
        return try readLine()
    }

    private func readLine() throws -> Int {
        while true {
            if let newline = buffer[0..<buffered].firstIndex(of: 0x0A) {
                let length = newline + 1
                buffer.withUnsafeMutableBytes { raw in
                    memmove(raw.baseAddress!, raw.baseAddress! + length, buffered - length)
                }
                buffered -= length
                return length
            }
            if buffered == buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count)) }
            let n = buffer.withUnsafeMutableBytes { raw in read(fd, raw.baseAddress! + buffered, raw.count - buffered) }
            if n < 0 { if errno == EINTR { continue }; throw BenchError.errno("read") }
            if n == 0 { throw BenchError("server closed the connection") }
            buffered += n
        }
    }
}

/// The floor of figure 1: a server that writes back every byte it reads, one thread per
/// connection, no parsing and no JSON.
final class EchoServer: @unchecked Sendable {
    let path: String
    private let listenFD: Int32

    init(path: String) throws {
        self.path = path
        unlink(path)
        listenFD = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listenFD >= 0 else { throw BenchError.errno("socket") }
        let fd = listenFD
        guard try withUnixAddress(path, { bind(fd, $0, $1) }) == 0 else { throw BenchError.errno("bind \(path)") }
        guard listen(listenFD, 128) == 0 else { throw BenchError.errno("listen") }
        let thread = Thread { [listenFD] in
            while true {
                let client = accept(listenFD, nil, nil)
                if client < 0 { if errno == EINTR { continue }; return }
                let worker = Thread { EchoServer.echo(client) }
                worker.stackSize = 1 << 18
                worker.start()
            }
        }
        thread.start()
    }

    private static func echo(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        buffer.withUnsafeMutableBytes { raw in
            while true {
                let n = read(fd, raw.baseAddress!, raw.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                var sent = 0
                while sent < n {
                    let w = write(fd, raw.baseAddress! + sent, n - sent)
                    if w < 0 { if errno == EINTR { continue }; close(fd); return }
                    sent += w
                }
            }
        }
        close(fd)
    }

    func stop() {
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
        unlink(path)
    }
}
