#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A real `iommufdd --backend sim --socket PATH` process, for the RPC figures.
final class ExternalDaemon {
    let socket: String
    private let process: Process

    init(binary: String, socket: String, extraArguments: [String] = []) throws {
        self.socket = socket
        unlink(socket)
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--backend", "sim", "--socket", socket] + extraArguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready when the socket accepts a connection.
        let deadline = now() + 10_000_000_000
        while now() < deadline {
            if (try? LineClient(path: socket)) != nil { return }
            guard process.isRunning else { throw BenchError("\(binary) exited with status \(process.terminationStatus) before listening on \(socket)") }
            usleep(20_000)
        }
        process.terminate()
        throw BenchError("\(binary) did not listen on \(socket) within 10 s")
    }

    var pid: Int32 { process.processIdentifier }

    func stop() {
        process.terminate()
        process.waitUntilExit()
        unlink(socket)
    }
}
