#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdRPC
import TestProcesses
import Testing

@testable import IommuctlKit

/// The built `iommuctl` executable, run as a process: `$IOMMUCTL_BIN`, else next to the test
/// bundle in the build directory.
enum Binary {
    static var directory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path
    }

    static func path(_ name: String) -> String {
        if name == "iommuctl", let explicit = ProcessInfo.processInfo.environment["IOMMUCTL_BIN"] { return explicit }
        return directory + "/" + name
    }

    struct Result {
        var code: Int32
        var output: String
        var error: String
    }

    /// Runs `executable` with `arguments`, optionally as another user through setpriv(1).
    static func run(_ arguments: [String], asUID uid: UInt32? = nil, environment: [String: String] = [:], executable: String = path("iommuctl")) throws -> Result {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "IOMMUFDD_SOCKET")
        env.merge(environment) { _, new in new }
        let run = if let uid {
            try SpawnedProcess.run(
                "/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--", executable] + arguments,
                environment: env)
        } else {
            try SpawnedProcess.run(executable, arguments, environment: env)
        }
        func text(_ s: String) -> String {
            var s = s
            while s.hasSuffix("\n") { s.removeLast() }
            return s
        }
        return Result(code: run.status, output: text(run.output), error: text(run.error))
    }
}

@Suite("The iommuctl executable: exit statuses as a shell sees them")
struct BinaryTests {
    @Test("the binary is built next to the tests")
    func exists() {
        #expect(access(Binary.path("iommuctl"), X_OK) == 0, "build it: swift build --product iommuctl")
    }

    @Test("usage errors exit 2, help exits 0")
    func usage() throws {
        #expect(try Binary.run(["ioas", "map", "1"]).code == 2)
        #expect(try Binary.run(["frobnicate"]).code == 2)
        let help = try Binary.run(["dirty", "read", "--help"])
        #expect(help.code == 0)
        #expect(help.output.contains("--bitmap <file>"))
    }

    @Test("no daemon: exit 3 and a hint, the socket taken from IOMMUFDD_SOCKET")
    func noDaemon() throws {
        let run = try Binary.run(["status"], environment: ["IOMMUFDD_SOCKET": "/tmp/iommuctl-nobody-home.sock"])
        #expect(run.code == 3)
        #expect(run.error.hasPrefix("iommuctl: error: no daemon at /tmp/iommuctl-nobody-home.sock: is iommufdd running?"))
        #expect(run.output.isEmpty)
    }

    @Test("a daemon answer through the real process, table and JSON")
    func answered() throws {
        let daemon = try FakeDaemon()
        daemon.answer("daemon.info", Fixtures.daemonInfo)
        let human = try Binary.run(["status", "--socket", daemon.socketPath])
        #expect(human.code == 0, "\(human.error)")
        #expect(human.output.hasPrefix("iommufdd 0.1.0, backend sim, up 5m 02s, pid 42\nsocket    \(daemon.socketPath)"))
        let json = try Binary.run(["status", "--json"], environment: ["IOMMUFDD_SOCKET": daemon.socketPath])
        #expect(try JSONValue.parse(json.output) == Fixtures.daemonInfo)
        // Global options before the subcommand, as with git -C or virsh -c.
        let before = try Binary.run(["--socket", daemon.socketPath, "status"])
        #expect(before.code == 0, "\(before.error)")
        #expect(before.output == human.output)
        let beforeJSON = try Binary.run(["--json", "--socket", daemon.socketPath, "status"])
        #expect(beforeJSON.code == 0, "\(beforeJSON.error)")
        #expect(try JSONValue.parse(beforeJSON.output) == Fixtures.daemonInfo)
    }

    @Test("daemon errors become exit statuses in the real process")
    func errors() throws {
        let daemon = try FakeDaemon()
        daemon.fail("owner.info", .domain("iommufdd.NotFound", "no owner vm9"))
        daemon.fail("owner.release", .domain("iommufdd.PermissionDenied", "owner.release changes state, and identity 'monitor' has the reader role"))
        let missing = try Binary.run(["owner", "info", "vm9", "--socket", daemon.socketPath])
        #expect(missing.code == 5)
        #expect(missing.error == "iommuctl: error: no owner vm9 [iommufdd.NotFound]")
        #expect(try Binary.run(["owner", "release", "vm1", "--socket", daemon.socketPath]).code == 4)
    }

    @Test("a socket the user may not open: exit 4 with what to do", .enabled(if: geteuid() == 0, "needs root to run iommuctl as another user"))
    func socketPermission() throws {
        let daemon = try FakeDaemon()
        daemon.answer("daemon.info", Fixtures.daemonInfo)
        try #require(chmod(daemon.directory, 0o700) == 0)
        let run = try Binary.run(["status", "--socket", daemon.socketPath], asUID: 65534)
        #expect(run.code == 4, "\(run.error)")
        #expect(run.error.contains("permission denied on \(daemon.socketPath)"))
        #expect(run.error.contains("hint: run as root, or as a member of the group that owns the socket"))
        #expect(daemon.methodsCalled.isEmpty)
    }
}
