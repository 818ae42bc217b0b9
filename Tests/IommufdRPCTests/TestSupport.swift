import Dispatch
import Glibc
import IommufdCore
import Logging
import TestProcesses
import Testing
@testable import IommufdRPC

/// A server on a socket in a fresh temporary directory, with a router the test fills.
final class TestServer {
    let directory: String
    let path: String
    let router: RPCRouter
    let server: RPCServer
    private var stopped = false

    init(limits: RPCLimits = RPCLimits(), configure: (RPCRouter) -> Void = { _ in },
         accept: (@Sendable (RPCPeer) -> RPCError?)? = nil, onClose: (@Sendable (RPCConnection) -> Void)? = nil) throws {
        directory = makeTemporaryDirectory()
        path = directory + "/control.sock"
        router = RPCRouter(accept: accept, onClose: onClose)
        router.register("ping") { _ in RPCResult("pong") }
        configure(router)
        server = try RPCServer(listen: .path(path, mode: 0o660), limits: limits, logger: quietLogger, handler: router)
        server.start()
    }

    func client() throws -> RPCClient { try RPCClient(path: path) }

    func stop() {
        guard !stopped else { return }
        stopped = true
        server.shutdown(gracePeriod: .seconds(5))
        _ = unlink(path)
        _ = rmdir(directory)
    }

    deinit { stop() }
}

let quietLogger: Logger = {
    var logger = Logger(label: "iommufdd.rpc.test", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()

/// A new /tmp/iommufdd-rpc-XXXXXX the caller removes (/tmp if mkdtemp fails).
func makeTemporaryDirectory() -> String {
    (try? TemporaryDirectory.make("iommufdd-rpc")) ?? "/tmp"
}

/// Open fds of this process (the server and the clients live here both).
func openFileDescriptorCount() -> Int {
    guard let dir = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while let entry = readdir(dir) {
        // Read the name in place: copying the whole 256-byte d_name reads past a short record.
        let name = String(cString: (UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \dirent.d_name)!).assumingMemoryBound(to: CChar.self))
        if name != "." && name != ".." { count += 1 }
    }
    return count - 1  // the directory stream itself
}

/// An unlinked temporary file holding `content`, as a stand-in for a memfd.
func fileWithContent(_ content: String) -> Int32 {
    let dir = makeTemporaryDirectory()
    let path = dir + "/data"
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    _ = unlink(path)
    _ = rmdir(dir)
    let bytes = Array(content.utf8)
    _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    return fd
}

func readContent(_ fd: Int32) -> String {
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
    return String(decoding: buffer.prefix(max(0, n)), as: UTF8.self)
}

/// Waits (up to 10 s) for `condition`; a bound for failing, not a timing assertion.
/// Waits up to 30 s (a loaded CI machine runs Dispatch's asynchronous source cancellation
/// late). The fd checks ask `<= before`: a leak is more fds than before, while fds of an earlier
/// test that close asynchronously during this one may lower the count.
func eventually(_ condition: () -> Bool) -> Bool {
    for _ in 0..<3000 {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

func line(_ text: String) -> [UInt8] { Array((text + "\n").utf8) }

extension RPCClient {
    /// The next message, or a failed expectation.
    func next(timeout: Duration = .seconds(10)) throws -> JSONValue {
        try #require(try receiveMessage(timeout: timeout)).json
    }

    /// True once the server closed this connection (EOF or reset).
    func isClosedByServer(timeout: Duration = .seconds(10)) -> Bool {
        do {
            while try receiveLine(timeout: timeout) != nil {}
            return false
        } catch {
            return error.kind == .disconnected
        }
    }
}

struct SomeFailure: Error {}
