#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Figure 1's floor in a process of its own: this benchmark binary run again as
/// `iommufdd-bench --echo-server PATH`, serving `EchoServer` (one blocking thread per connection,
/// no JSON) until it is killed. The daemon is a separate process, so its floor is too: each
/// round trip then crosses between two processes for both, and the scheduler places (and wakes)
/// a process's thread as it does the daemon's (Benchmarks/RESULTS.md, target 3).
final class ExternalEcho {
    let path: String
    private let process: Process

    init(path: String) throws {
        self.path = path
        unlink(path)
        process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["--echo-server", path]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = now() + 10_000_000_000
        while now() < deadline {
            if (try? LineClient(path: path)) != nil { return }
            guard process.isRunning else { throw BenchError("the echo server process exited with status \(process.terminationStatus) before listening on \(path)") }
            usleep(10_000)
        }
        process.terminate()
        throw BenchError("the echo server process did not listen on \(path) within 10 s")
    }

    var pid: Int32 { process.processIdentifier }

    func stop() {
        process.terminate()
        process.waitUntilExit()
        unlink(path)
    }

    /// The child's side: serve until killed (SIGTERM from `stop()`, or the parent's death).
    static func serve(path: String) -> Never {
        let parent = getppid()
        do { _ = try EchoServer(path: path) } catch {
            FileHandle.standardError.write("iommufdd-bench --echo-server: \(error)\n".data(using: .utf8)!)
            exit(1)
        }
        // Die with the benchmark, should it be killed first (re-parented: another parent pid).
        while getppid() == parent { sleep(1) }
        unlink(path)
        exit(0)
    }
}
