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
/// simulator backend (a `LaunchedDaemon`). Killed (SIGKILL) and reaped when released if still
/// running.
final class DaemonProcess {
    let daemon: LaunchedDaemon
    var directory: TemporaryDirectory { daemon.directory }
    var socketPath: String { daemon.socketPath }
    var configPath: String { daemon.configPath }
    var logPath: String { daemon.logPath }
    var pid: pid_t { daemon.pid }

    /// Starts the daemon and waits until its socket accepts connections (unless `waitReady` is
    /// false: a test that watches NOTIFY_SOCKET itself, or expects a failed start).
    /// `wrapper` goes before the binary (systemd-socket-activate ...); `socketFlag: false`
    /// leaves out `--socket` (socket activation).
    init(config: TestConfig = TestConfig(), environment: [String: String] = [:], socketFlag: Bool = true,
         wrapper: [String] = [], waitReady: Bool = true) throws {
        guard DaemonBinary.exists else {
            throw TestFailure("the iommufdd binary is not at \(DaemonBinary.path): run `swift build` first (or set IOMMUFDD_BINARY)")
        }
        do {
            daemon = try LaunchedDaemon(
                binary: DaemonBinary.path, directoryPrefix: "iommufdd-e2e", logName: "stderr.log",
                config: { _ in config.text }, environment: environment, socketFlag: socketFlag, wrapper: wrapper)
        } catch {
            throw TestFailure("\(error)")
        }
        if waitReady { try waitUntilServing() }
    }

    /// A daemon still running at the end of its test is stopped and must exit 0: a sanitizer's
    /// report at exit (a leak, a race) makes its status non-zero, and so fails the test.
    deinit {
        if isRunning { expectCleanStop() }
    }

    /// `stop()`, recording a test issue (with the daemon's log) unless it exits 0.
    func expectCleanStop(sourceLocation: SourceLocation = #_sourceLocation) {
        if let report = daemon.uncleanStopReport() {
            Issue.record("\(report)", sourceLocation: sourceLocation)
        }
    }

    /// See `LaunchedDaemon.sanitizerVariables`: what a wrapper must pass on with `-E NAME`.
    static var sanitizerVariables: [String] { LaunchedDaemon.sanitizerVariables }

    var isRunning: Bool { daemon.isRunning }

    /// The daemon's stderr so far (its log), for failure messages.
    var log: String { daemon.log }

    /// Connects until the daemon answers `daemon.ping`, or fails if it exits or takes more than
    /// `timeout` seconds (generous: a loaded CI machine).
    func waitUntilServing(timeout: Double = 120) throws {
        do {
            try daemon.waitUntilServing(timeout: timeout) { socketPath in
                guard let client = try? RPCClient(path: socketPath),
                      let pong = try? client.call("daemon.ping", timeout: .seconds(30)).result else { return false }
                return pong == "pong"
            }
        } catch {
            throw TestFailure("\(error)")
        }
    }

    func client() throws -> RPCClient { try RPCClient(path: socketPath) }

    /// A client whose SO_PEERCRED says `uid` (and gid = uid). Root only.
    func client(as uid: uid_t) throws -> RPCClient {
        let fd = test_connect_as(socketPath, uid, uid)
        guard fd >= 0 else { throw TestFailure("connecting as uid \(uid) failed: \(Errno.current)") }
        return RPCClient(adopting: fd)
    }

    func signal(_ signo: Int32) { daemon.signal(signo) }

    /// Waits for the process to exit; its exit status, or nil on timeout.
    @discardableResult
    func waitForExit(timeout: Double = 60) -> Int32? { daemon.waitForExit(timeout: timeout) }

    /// SIGTERM and wait: the exit code (nil if it did not exit normally in time).
    func stop() -> Int32? {
        daemon.stop()
        return exitCode
    }

    var exitCode: Int32? { daemon.exitCode }

    func describeExit() -> String { daemon.describeExit() }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
