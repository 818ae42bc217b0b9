import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The real `iommufdd` on the simulator backend, started by a test in a temporary directory of
/// its own: DIR/iommufdd.toml (the caller's config), DIR/control.sock, its stdout and stderr in
/// DIR/LOGNAME. How every test that needs a running daemon starts one; the test-target types
/// (`DaemonProcess`, `DaemonUnderTest`, `LiveDaemon`) add their own config and clients on top.
///
/// The daemon inherits the test's environment minus systemd's variables, so a sanitized build
/// gets ASAN_OPTIONS, LSAN_OPTIONS and TSAN_OPTIONS (suppressions, exit codes) like the test.
/// A sanitizer's report at exit makes its status non-zero: callers stop it with `stop()` and
/// fail the test unless that is 0 (`uncleanStopReport()`). Killed and reaped when released if
/// still running; the directory is removed then.
public final class LaunchedDaemon {
    public let directory: TemporaryDirectory
    public let socketPath: String
    public let configPath: String
    public let logPath: String
    public let process: SpawnedProcess
    public var pid: pid_t { process.pid }
    /// The wait status once reaped.
    private var waitStatus: Int32?

    /// Variables a daemon started by a test must not see: they would make it talk to the
    /// test's own supervisor (or adopt its fds).
    public static let systemdVariables = [
        "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
    ]

    /// The sanitizer options set in the test's environment (suppressions, exit codes), by name.
    /// The daemon inherits them with the rest of the environment, but `systemd-socket-activate`
    /// gives the program it execs only TERM, PATH, USER, HOME, LISTEN_* and what `-E NAME`
    /// names: a wrapper must be told to pass these on, or a sanitized daemon runs without them.
    public static var sanitizerVariables: [String] {
        let environment = ProcessInfo.processInfo.environment
        return ["ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS", "SWIFT_BACKTRACE"]
            .filter { environment[$0] != nil }
    }

    /// Writes `config(socketPath)` to DIR/iommufdd.toml and starts
    /// `WRAPPER... BINARY --config DIR/iommufdd.toml --backend sim [--socket DIR/control.sock]`
    /// (`--socket` unless `socketFlag` is false: socket activation). `environment` is added to
    /// the test's. Does not wait: see `waitUntilServing`.
    public init(
        binary: String, directoryPrefix: String, directoryMode: mode_t = 0o755, logName: String = "daemon.log",
        config: (_ socketPath: String) -> String, environment: [String: String] = [:],
        socketFlag: Bool = true, wrapper: [String] = []
    ) throws {
        directory = try TemporaryDirectory(directoryPrefix, mode: directoryMode)
        socketPath = directory.path + "/control.sock"
        configPath = directory.path + "/iommufdd.toml"
        logPath = directory.path + "/" + logName
        try config(socketPath).write(toFile: configPath, atomically: true, encoding: .utf8)

        var env = ProcessInfo.processInfo.environment
        for key in Self.systemdVariables { env[key] = nil }
        for (key, value) in environment { env[key] = value }
        let arguments = wrapper + [binary, "--config", configPath, "--backend", "sim"]
            + (socketFlag ? ["--socket", socketPath] : [])
        process = try SpawnedProcess.start(arguments[0], Array(arguments.dropFirst()), output: logPath, environment: env)
    }

    /// Polls `isServing(socketPath)` (a connection and a `daemon.ping`, in the caller's client)
    /// until it is true; throws with the log if the daemon exits first or `timeout` seconds pass.
    public func waitUntilServing(timeout: Double, isServing: (String) -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard isRunning else {
                throw TestProcessError("iommufdd exited during start-up (\(describeExit())). Its log:\n\(log)")
            }
            if isServing(socketPath) { return }
            usleep(20_000)
        }
        throw TestProcessError("iommufdd did not answer on \(socketPath) within \(timeout) s. Its log:\n\(log)")
    }

    /// Its stdout and stderr so far (its log, and a sanitizer's report).
    public var log: String { readTextFile(logPath) }

    /// Whether it has not exited yet (reaps it if it has).
    public var isRunning: Bool {
        if waitStatus != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid {
            waitStatus = status
            return false
        }
        return r == 0
    }

    public func signal(_ signo: Int32) { Glibc.kill(pid, signo) }

    /// Waits up to `timeout` seconds for the exit: `exitStatus`, or nil if still running.
    @discardableResult
    public func waitForExit(timeout: Double = 60) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !isRunning { return exitStatus }
            usleep(20_000)
        }
        return nil
    }

    /// SIGTERM (a graceful stop), then SIGKILL if it is still there after `timeout` seconds.
    /// `exitStatus` (0 for a clean stop), nil when it had to be killed.
    @discardableResult
    public func stop(timeout: Double = 60) -> Int32? {
        guard isRunning else { return exitStatus }
        signal(SIGTERM)
        if let status = waitForExit(timeout: timeout) { return status }
        killAndReap()
        return nil
    }

    /// nil if it stops with status 0 (see `stop`), else why not and its log: the message of
    /// the test failure that a sanitizer's report in the daemon becomes.
    public func uncleanStopReport() -> String? {
        if stop() == 0 { return nil }
        return "iommufdd did not stop cleanly (\(describeExit())). Its log:\n\(log)"
    }

    /// The exit code, or 128 + the signal that ended it; nil while running.
    public var exitStatus: Int32? {
        guard let s = waitStatus else { return nil }
        return s & 0x7f == 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f)
    }

    /// The exit code; nil while running or when a signal ended it.
    public var exitCode: Int32? {
        guard let s = waitStatus, s & 0x7f == 0 else { return nil }
        return (s >> 8) & 0xff
    }

    public func describeExit() -> String {
        _ = isRunning
        guard let s = waitStatus else { return "still running" }
        if s & 0x7f == 0 { return "exit code \((s >> 8) & 0xff)" }
        return "signal \(s & 0x7f)"
    }

    private func killAndReap() {
        guard isRunning else { return }
        signal(SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        waitStatus = status
    }

    deinit { killAndReap() }
}
