import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC

#if canImport(Glibc)
import Glibc
#endif

/// `iommufdd --backend kernel` run as a child of the checks, with its own config and socket in
/// the working directory, its log in a file that the checks print at the end.
final class DaemonProcess {
    let process = Process()
    let socketPath: String
    let logPath: String

    /// The config of the daemon suite: root is an admin and a trusted VMM; uid 1000 a plain
    /// manager (to check what a manager without trusted_vmm cannot do); the allow-list names
    /// the first edu device by PCI address, the second by cdev name, and three of the four mock
    /// devices; the test hooks drive IOMMU_TEST_OP_DIRTY.
    static func config(socketPath: String) -> String {
        """
        [daemon]
        backend = "kernel"
        socket_path = "\(socketPath)"
        socket_mode = "0666"
        log_level = "info"

        [[access]]
        user = 0
        role = "admin"
        trusted_vmm = true

        [[access]]
        user = 1000
        role = "manager"

        [devices]
        allow = ["0000:00:02.0", "vfio1", "mock0", "mock1", "mock-nodirty", "mock-pasid"]

        [kernel]
        allow_mock_devices = true
        mock_devices = [{ name = "mock0" }, { name = "mock1" }, { name = "mock-nodirty", no_dirty = true }, { name = "mock-unlisted" }, { name = "mock-pasid", pasid = true }]
        test_hooks = true

        """
    }

    /// Writes the config next to the socket (`extraConfig`, tables the base config does not
    /// have, appended) and starts `executable` on it.
    init(executable: String, directory: String, extraConfig: String = "") throws {
        socketPath = directory + "/control.sock"
        logPath = directory + "/iommufdd.log"
        let configPath = directory + "/iommufdd.toml"
        try (Self.config(socketPath: socketPath) + extraConfig).write(toFile: configPath, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let arguments = ["--config", configPath, "--socket", socketPath, "--backend", "kernel"]
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        print("      starting: \(executable) \(arguments.joined(separator: " "))")
        try process.run()
    }

    /// Connects once the daemon listens (it probes the kernel and creates the mock devices
    /// first). Fails at once if the daemon exits.
    func connect(timeoutSeconds: Int = 60) throws -> DaemonClient {
        let start = Date()
        while true {
            if !process.isRunning {
                throw CheckFailure(description: "iommufdd exited with status \(process.terminationStatus) before listening; its log:\n\(logTail())")
            }
            if let client = try? DaemonClient(path: socketPath) {
                print("      listening after \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
                return client
            }
            if Date().timeIntervalSince(start) > Double(timeoutSeconds) {
                throw CheckFailure(description: "iommufdd did not listen on \(socketPath) within \(timeoutSeconds) s; its log:\n\(logTail())")
            }
            usleep(50_000)
        }
    }

    /// SIGTERM, then the exit status (SIGKILL after 30 s: a daemon that does not stop fails).
    func stop() -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<600 where process.isRunning { usleep(50_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    func logTail(lines: Int = 200) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "(no log)"
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).map { "  iommufdd| " + $0 }.joined(separator: "\n")
    }

    /// The iommufdd next to this binary (the guest installs both in /usr/bin).
    static func executablePath() -> String {
        if let env = ProcessInfo.processInfo.environment["IOMMUFDD"], !env.isEmpty { return env }
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return ((me as NSString).deletingLastPathComponent as NSString).appendingPathComponent("iommufdd")
    }
}

/// An error the daemon answered with, as the checks look at it.
struct DaemonError: CustomStringConvertible {
    let name: String?
    let errno: String?
    let message: String
    var description: String { "\(name ?? "-")\(errno.map { " (\($0))" } ?? ""): \(message)" }
}

/// Typed calls to the daemon over `RPCClient`, with the params and result types of the
/// broker's API: what a VMM or manager would send.
final class DaemonClient {
    let rpc: RPCClient
    static let timeout: Duration = .seconds(120)

    init(path: String) throws {
        rpc = try RPCClient(path: path)
    }

    /// Connects as `uid` (SO_PEERCRED records the effective uid at connect): this process
    /// drops its effective uid for the connect and takes root back at once.
    static func connect(path: String, asUID uid: uid_t) throws -> DaemonClient {
        guard seteuid(uid) == 0 else { throw IommuError(.current, "seteuid", detail: "to \(uid)") }
        defer { _ = seteuid(0) }
        return try DaemonClient(path: path)
    }

    func call<P: Encodable, R: Decodable>(_ method: String, _ params: P, as type: R.Type = R.self) throws -> R {
        try rpc.call(method, params: params, as: R.self, timeout: Self.timeout)
    }

    func json(_ method: String, _ params: JSONValue? = nil, fds: [Int32] = []) throws -> (result: JSONValue, fds: [Int32]) {
        try rpc.call(method, params: params, fds: fds, timeout: Self.timeout)
    }

    func decode<R: Decodable>(_ value: JSONValue, as type: R.Type = R.self) throws -> R {
        try JSONValueDecoder().decode(R.self, from: value)
    }

    /// `ioas.map` of `memory` (its memfd travels with the request).
    func map(ioas: ObjectID, memory: GuestMemory, length: UInt64? = nil, iova: UInt64?) throws -> IOASMapResult {
        let params = IOASMapParams(ioas: ioas, fd: FDRef(fd: 0), offset: 0, length: length ?? memory.size, iova: iova)
        let (result, fds) = try json("ioas.map", try JSONValueEncoder().encode(params), fds: [memory.fd])
        for fd in fds { close(fd) }
        return try decode(result)
    }

    /// `device.fd`: the bound device fd (the caller owns it).
    func deviceFD(_ device: String) throws -> (DeviceFDResult, Int32) {
        let (result, fds) = try json("device.fd", try JSONValueEncoder().encode(DeviceFDParams(device: device)))
        let decoded: DeviceFDResult = try decode(result)
        guard decoded.fd.fd < fds.count else {
            for fd in fds { close(fd) }
            throw CheckFailure(description: "device.fd names fd \(decoded.fd.fd) but \(fds.count) came with the reply")
        }
        for (i, fd) in fds.enumerated() where i != decoded.fd.fd { close(fd) }
        return (decoded, fds[decoded.fd.fd])
    }

    /// Runs `body`, which the daemon must refuse with the error named `name` (and, for kernel
    /// failures, `errno`). Prints the daemon's message: what a client would see.
    func expectError(_ name: String, errno: String? = nil, _ what: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as RPCError {
            let got = DaemonError(name: error.name, errno: error.data?["errno"]?.stringValue, message: error.message)
            print("      \(what): \(got)")
            try expect(got.name == name, "\(what): expected \(name)\(errno.map { " (\($0))" } ?? ""), got \(got)")
            if let errno { try expect(got.errno == errno, "\(what): expected errno \(errno), got \(got)") }
            return
        }
        throw CheckFailure(description: "\(what): expected \(name), but the daemon accepted it")
    }

    /// `owner.release`, which must leave nothing behind.
    @discardableResult
    func release(_ owner: String) throws -> OwnerReleaseResult {
        let result: OwnerReleaseResult = try call("owner.release", OwnerReleaseParams(name: owner))
        try expect(result.released && result.failures.isEmpty, "owner.release \(owner): \(result)")
        return result
    }
}

extension DaemonProcess {
    /// A suite against one `iommufdd --backend kernel` started in the current directory: runs
    /// `checks`, then the `stop-on-sigterm` check (exit 0 on SIGTERM), and prints the daemon's log.
    /// False when the daemon did not start.
    /// `directory` (default: the current one) and `extraConfig` as `init` takes them.
    static func withDaemon(run: CheckRunner, directory: String? = nil, extraConfig: String = "",
                           _ checks: (DaemonProcess, DaemonClient, String) -> Void) -> Bool {
        let directory = directory ?? FileManager.default.currentDirectoryPath
        let daemon: DaemonProcess
        let client: DaemonClient
        do {
            daemon = try DaemonProcess(executable: DaemonProcess.executablePath(), directory: directory, extraConfig: extraConfig)
            client = try daemon.connect()
        } catch {
            print("FAIL  \(run.suite): the daemon did not start: \(error)")
            return false
        }
        checks(daemon, client, directory)
        run.check("stop-on-sigterm") {
            client.rpc.close()
            let status = daemon.stop()
            try expect(status == 0, "iommufdd exited with \(status.map(String.init) ?? "SIGKILL after 30 s") on SIGTERM, not 0")
        }
        print("--- iommufdd log")
        print(daemon.logTail())
        print("---")
        return true
    }
}
