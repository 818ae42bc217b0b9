import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn, its output in files: how every test that runs one
/// of the project's binaries (iommufdd, iommuctl, fuzz-rpc) or a tool starts it.
///
/// Not Foundation's `Process`: under `--sanitize=address` its `run()` reads past a buffer while
/// scanning /proc/self/fd (swift-corelibs-foundation `findMaximumOpenFromProcSelfFD`, reported
/// as a heap-buffer-overflow) and leaves weak-reference side tables that LeakSanitizer reports
/// as leaks of the test process (`Process.run` → `swift_weakAssign`).
public struct SpawnedProcess: Sendable {
    public let pid: pid_t

    /// Starts `path` with `arguments`; stdin is /dev/null, stdout goes to `output` and stderr
    /// to `errorOutput`, or to `output` too when nil (both appended, created 0644).
    /// `environment` replaces the current one when given. `inherit` maps fds of this process to
    /// the fd numbers the child gets them under (open in the child, close-on-exec cleared).
    public static func start(
        _ path: String, _ arguments: [String], output: String, errorOutput: String? = nil,
        environment: [String: String]? = nil, inherit: [(from: Int32, to: Int32)] = []
    ) throws -> SpawnedProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let errorOutput {
            posix_spawn_file_actions_addopen(&actions, 2, errorOutput, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        for fd in inherit { posix_spawn_file_actions_adddup2(&actions, fd.from, fd.to) }

        // The child starts with no signal blocked and default dispositions, as from a shell: the
        // test runner's threads may block or ignore signals (SIGTERM, SIGINT, SIGPIPE), which a
        // spawned process would otherwise inherit (and a shell cannot trap a signal ignored on entry).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let argv = [path] + arguments
        var pid: pid_t = 0
        let rc = withCStrings(argv) { cArgv in
            withCStrings(env) { cEnv in posix_spawn(&pid, path, &actions, &attributes, cArgv, cEnv) }
        }
        guard rc == 0 else { throw SpawnError(path: path, code: rc) }
        return SpawnedProcess(pid: pid)
    }

    /// Runs to completion; returns the exit status (or 128 + signal), stdout and stderr.
    public static func run(
        _ path: String, _ arguments: [String], environment: [String: String]? = nil, inherit: [(from: Int32, to: Int32)] = []
    ) throws -> (status: Int32, output: String, error: String) {
        let base = "/tmp/spawned-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer {
            unlink(base + ".out")
            unlink(base + ".err")
        }
        let child = try start(path, arguments, output: base + ".out", errorOutput: base + ".err", environment: environment, inherit: inherit)
        let status = child.wait()
        return (status, readTextFile(base + ".out"), readTextFile(base + ".err"))
    }

    /// Whether it has not exited yet (does not reap it).
    public var isRunning: Bool {
        var info = siginfo_t()
        return waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info._sifields._sigchld.si_pid == 0
    }

    public func signal(_ signo: Int32) { kill(pid, signo) }

    /// Waits for the exit and reaps the process: the status, or 128 + the signal number
    /// (-1 if it was already reaped).
    @discardableResult
    public func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// `wait()` if it exits within `seconds`; nil (still running, not reaped) otherwise.
    public func wait(timeout seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning {
            if Date() >= deadline { return nil }
            usleep(10_000)
        }
        return wait()
    }
}

/// posix_spawn failed: `code` is its errno.
public struct SpawnError: Error, CustomStringConvertible {
    public var path: String
    public var code: Int32
    public var description: String { "cannot start \(path): \(String(cString: strerror(code))) (errno \(code))" }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// A whole file as text ("" when unreadable), with plain read(2): FoundationEssentials'
/// `String(contentsOfFile:)` leaks its buffer (LeakSanitizer reports it).
public func readTextFile(_ path: String) -> String {
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
