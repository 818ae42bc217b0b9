import Foundation
import CTestIdentity
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Where the built `iommufdd` is: `$IOMMUFDD_BINARY`, else beside this test bundle (SwiftPM puts
/// every product of the package in the same bin directory, and `swift test` builds them all).
enum DaemonBinary {
    static let path: String = {
        if let p = ProcessInfo.processInfo.environment["IOMMUFDD_BINARY"], !p.isEmpty { return p }
        var candidates: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append((exe as NSString).deletingLastPathComponent + "/iommufdd")
        }
        // The package root from this file: Tests/EndToEndTests/Support/DaemonProcess.swift.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        candidates.append(root + "/.build/debug/iommufdd")
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }()

    static var exists: Bool { FileManager.default.isExecutableFile(atPath: path) }
}

/// A temporary directory (mode 0755, so clients of other uids reach the socket inside).
final class TemporaryDirectory {
    let path: String
    init(_ prefix: String = "iommufdd-e2e") throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw Errno.current }
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        chmod(path, 0o755)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Test identities. Root (the tests run as root in CI) plays the admin; these uids play other
/// clients through `test_connect_as` (thread-scoped credentials).
enum TestUID {
    static let managerA: uid_t = 65501
    static let managerB: uid_t = 65502
    static let reader: uid_t = 65503
    static let unlisted: uid_t = 65504
    static let quotaManager: uid_t = 65505
}

/// The config a test daemon runs with: the simulator's default topology, test hooks on, and
/// roles for the test's own uid (admin) and the `TestUID`s.
struct TestConfig {
    var allow: [String] = ["sim-pci0", "sim-pci1", "sim-pci2", "sim-mdev0"]
    var extra = ""
    var limits = ""
    var testHooks = true
    var trustedVMM = true

    var text: String {
        let me = getuid()
        var access = """
            [[access]]
            user = \(me)
            role = "admin"
            trusted_vmm = \(trustedVMM)

            """
        if me == 0 {
            access += """
                [[access]]
                user = \(TestUID.managerA)
                role = "manager"

                [[access]]
                user = \(TestUID.managerB)
                role = "manager"

                [[access]]
                user = \(TestUID.reader)
                role = "reader"

                [[access]]
                user = \(TestUID.quotaManager)
                role = "manager"
                pinned_bytes_quota = "64KiB"

                """
        }
        return """
            [daemon]
            socket_mode = "0666"
            log_level = "info"

            [limits]
            \(limits)

            [devices]
            allow = [\(allow.map { "\"\($0)\"" }.joined(separator: ", "))]

            \(access)
            [sim]
            test_hooks = \(testHooks)

            \(extra)
            """
    }
}

/// The real `iommufdd` binary, started on a temporary socket with a temporary config, on the
/// simulator backend. Killed (SIGKILL) and reaped when released if still running.
final class DaemonProcess {
    let directory: TemporaryDirectory
    let socketPath: String
    let configPath: String
    let logPath: String
    private(set) var pid: pid_t = 0
    private var exitStatus: Int32?

    /// Starts the daemon and waits until its socket accepts connections (unless `waitReady` is
    /// false: a test that watches NOTIFY_SOCKET itself, or expects a failed start).
    /// `wrapper` goes before the binary (systemd-socket-activate ...); `socketFlag: false`
    /// leaves out `--socket` (socket activation).
    init(config: TestConfig = TestConfig(), environment: [String: String] = [:], socketFlag: Bool = true,
         wrapper: [String] = [], waitReady: Bool = true) throws {
        guard DaemonBinary.exists else {
            throw TestFailure("the iommufdd binary is not at \(DaemonBinary.path): run `swift build` first (or set IOMMUFDD_BINARY)")
        }
        directory = try TemporaryDirectory()
        socketPath = directory.path + "/control.sock"
        configPath = directory.path + "/iommufdd.toml"
        logPath = directory.path + "/stderr.log"
        try config.text.write(toFile: configPath, atomically: true, encoding: .utf8)
        let args = wrapper + [DaemonBinary.path, "--config", configPath, "--backend", "sim"]
            + (socketFlag ? ["--socket", socketPath] : [])
        pid = try Self.spawn(args, environment: environment, stderrPath: logPath)
        if waitReady { try waitUntilServing() }
    }

    /// A daemon still running at the end of its test is stopped and must exit 0: a sanitizer's
    /// report at exit (a leak, a race) makes its status non-zero, and so fails the test.
    deinit {
        if isRunning { expectCleanStop() }
        if isRunning {
            kill(pid, SIGKILL)
            _ = waitForExit(timeout: 30)
        }
    }

    /// `stop()`, recording a test issue (with the daemon's log) unless it exits 0.
    func expectCleanStop(sourceLocation: SourceLocation = #_sourceLocation) {
        let code = stop()
        if code != 0 {
            Issue.record("iommufdd did not stop cleanly (\(describeExit())). Its log:\n\(log)", sourceLocation: sourceLocation)
        }
    }

    /// posix_spawn with stdin from /dev/null, stdout and stderr into `stderrPath`, and the
    /// test's environment minus any systemd variables, plus `environment`.
    static func spawn(_ args: [String], environment: [String: String], stderrPath: String) throws -> pid_t {
        var env = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
            env[key] = nil
        }
        for (k, v) in environment { env[k] = v }
        do {
            return try SpawnedProcess.start(args[0], Array(args.dropFirst()), output: stderrPath, environment: env).pid
        } catch {
            throw TestFailure("\(error)")
        }
    }

    /// The sanitizer options set in the test's environment (suppressions, exit codes), by name.
    /// `spawn` passes them on with the rest of the environment, but `systemd-socket-activate`
    /// gives the program it execs only TERM, PATH, USER, HOME, LISTEN_* and what `-E NAME`
    /// names: a wrapper must be told to pass these on, or a sanitized daemon runs without them.
    static var sanitizerVariables: [String] {
        let environment = ProcessInfo.processInfo.environment
        return ["ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS", "SWIFT_BACKTRACE"]
            .filter { environment[$0] != nil }
    }

    var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid {
            exitStatus = status
            return false
        }
        return r == 0
    }

    /// The daemon's stderr so far (its log), for failure messages.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Connects until the daemon answers `daemon.ping`, or fails if it exits or takes more than
    /// `timeout` seconds (generous: a loaded CI machine).
    func waitUntilServing(timeout: Double = 120) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard isRunning else {
                throw TestFailure("iommufdd exited during start-up (\(describeExit())). Its log:\n\(log)")
            }
            if let client = try? RPCClient(path: socketPath),
               let pong = try? client.call("daemon.ping", timeout: .seconds(30)).result, pong == "pong" {
                return
            }
            usleep(50_000)
        }
        throw TestFailure("iommufdd did not answer on \(socketPath) within \(timeout) s. Its log:\n\(log)")
    }

    func client() throws -> RPCClient { try RPCClient(path: socketPath) }

    /// A client whose SO_PEERCRED says `uid` (and gid = uid). Root only.
    func client(as uid: uid_t) throws -> RPCClient {
        let fd = test_connect_as(socketPath, uid, uid)
        guard fd >= 0 else { throw TestFailure("connecting as uid \(uid) failed: \(Errno.current)") }
        return RPCClient(adopting: fd)
    }

    func signal(_ signo: Int32) { kill(pid, signo) }

    /// Waits for the process to exit; its wait status, or nil on timeout.
    @discardableResult
    func waitForExit(timeout: Double = 60) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !isRunning { return exitStatus }
            usleep(20_000)
        }
        return nil
    }

    /// SIGTERM and wait: the exit code (nil if it did not exit normally in time).
    func stop() -> Int32? {
        guard isRunning else { return exitCode }
        kill(pid, SIGTERM)
        guard waitForExit() != nil else { return nil }
        return exitCode
    }

    var exitCode: Int32? {
        guard let s = exitStatus, s & 0x7f == 0 else { return nil }
        return (s >> 8) & 0xff
    }

    func describeExit() -> String {
        guard let s = exitStatus else { return "still running" }
        if s & 0x7f == 0 { return "exit code \((s >> 8) & 0xff)" }
        return "signal \(s & 0x7f)"
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
