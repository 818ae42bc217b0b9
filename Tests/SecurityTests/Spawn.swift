import Foundation
import IommufdCore

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn, its stdout and stderr in a file.
///
/// Not Foundation's `Process`: its `run()` scans /proc/self/fd with a read ASan reports as a
/// heap-buffer-overflow (swift-corelibs-foundation `findMaximumOpenFromProcSelfFD`), which
/// would stop the suite under `--sanitize=address`.
struct SpawnedProcess {
    let pid: pid_t

    /// Starts `path` with `arguments`; stdin is /dev/null, stdout and stderr go to `output`
    /// (appended). `environment` replaces the current one when given.
    static func start(_ path: String, _ arguments: [String], output: String, environment: [String: String]? = nil) throws -> SpawnedProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let argv = [path] + arguments
        var pid: pid_t = 0
        let rc = withCStrings(argv) { cArgv in
            withCStrings(env) { cEnv in posix_spawn(&pid, path, &actions, nil, cArgv, cEnv) }
        }
        guard rc == 0 else { throw Errno(rc) }
        return SpawnedProcess(pid: pid)
    }

    /// Runs to completion; returns the exit status (or 128 + signal) and the output.
    static func run(_ path: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, output: String) {
        let output = "/tmp/iommufdd-sec-spawn-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer { unlink(output) }
        let child = try start(path, arguments, output: output, environment: environment)
        let status = child.wait()
        return (status, readTextFile(output))
    }

    /// Whether it has not exited yet (does not reap it).
    var isRunning: Bool {
        var info = siginfo_t()
        return waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info._sifields._sigchld.si_pid == 0
    }

    /// Waits for the exit: the status, or 128 + the signal number.
    @discardableResult
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// A whole file as text ("" when unreadable), with plain read(2): FoundationEssentials'
/// `String(contentsOfFile:)` leaks its buffer (LeakSanitizer reports it).
func readTextFile(_ path: String) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}
