import CIommufd
import Foundation
import IommufdCore

#if canImport(Glibc)
import Glibc
#endif

/// systemd's side of the service protocol, as documented in sd_notify(3), sd_listen_fds(3) and
/// systemd.service(5), for running iommufdd the way systemd does — in the restart tests on the
/// host, and in the test VM's busybox boot. It models the systemd of `systemdVersion` running the
/// units as scripts/install-units installs them for it, and was corrected against the real one
/// (systemd 252 as PID 1 of the test VM, `vm-e2e systemd`):
///
/// - a `NOTIFY_SOCKET` datagram socket receiving `READY=1`, `STATUS=`, `FDSTORE=1` (+ `FDNAME=`,
///   `FDPOLL=`) with the fds in SCM_RIGHTS, and `FDSTOREREMOVE=1` (+ `FDNAME=`);
/// - the fd store: the fds received with `FDSTORE=1`, in arrival order, under their names (systemd's default name
///   is "stored"); an fd that is the same open file as one already stored is closed and not
///   added (systemd's same_fd() in service_add_fd_store(), modelled for `systemdVersion` on the
///   kernel `kernel` says: SystemdSameFD); closed on `FDSTOREREMOVE=1`;
///   beyond `fdStoreMax` closed;
/// - the store is held while the daemon is dead and a restart is pending: after SIGKILL (a crash,
///   `systemctl kill -s KILL`, a watchdog kill: Restart=on-failure) and across `restart()`
///   (`systemctl restart`). `stop()` (`systemctl stop`) closes it, unless the units keep it:
///   FileDescriptorStorePreserve=yes, installed for systemd >= 254 only;
/// - socket activation: the listening control socket first, then the stored fds newest first
///   (as systemd 252 lists them), passed as fds
///   3, 4, ... with `LISTEN_FDS`, `LISTEN_FDNAMES` (colon-separated) and `LISTEN_PID` set to the
///   daemon's pid (set by a `/bin/sh` that execs the daemon, so the pid is the daemon's);
/// - `$FDSTORE` = FileDescriptorStoreMax=: set by systemd itself from 254 on (when non-zero);
///   before 254 systemd sets none and the unit's drop-in fdstore-variable.conf does
///   (Environment=FDSTORE=N), so the daemon sees it either way.
public final class Supervisor: @unchecked Sendable {
    public let daemonPath: String
    public let arguments: [String]
    /// Where the sockets live: a new temporary directory (removed by `shutdown`) unless given.
    public let directory: String
    public let controlPath: String
    public let notifyPath: String
    /// The daemon's stdout and stderr, appended; nil: inherited from this process.
    public let logPath: String?
    public let fdStoreMax: Int
    /// The systemd modelled (see the type's documentation).
    public let systemdVersion: Int
    /// What the modelled systemd's same_fd() can ask the kernel (kcmp, F_DUPFD_QUERY).
    public let kernel: SystemdSameFD.Kernel
    /// The fd store's duplicate test.
    public let sameFD: SystemdSameFD
    /// FileDescriptorStorePreserve=yes: the drop-in scripts/install-units installs from 254 on.
    public var preservesStoreOnStop: Bool { systemdVersion >= 254 }
    /// Extra environment for the next `start()` (e.g. a test switch); empty by default.
    public var environment: [String: String] {
        get { locked { extraEnvironment } }
        set { locked { extraEnvironment = newValue } }
    }
    private var extraEnvironment: [String: String] = [:]
    private let ownsDirectory: Bool
    private let controlFD: Int32
    private let notifyFD: Int32
    private let lock = NSCondition()
    private var store: [(name: String, fd: Int32)] = []
    private var statuses: [String] = []
    private var readyCount = 0
    private var pid: pid_t = 0
    private var receiver: Thread?
    private var stopped = false

    public init(
        daemonPath: String, arguments: [String], directory: String? = nil, logPath: String? = nil, fdStoreMax: Int = 4096,
        systemdVersion: Int = 252, kernel: SystemdSameFD.Kernel = .host
    ) throws {
        self.kernel = kernel
        sameFD = SystemdSameFD(systemdVersion: systemdVersion, kernel: kernel)
        self.daemonPath = daemonPath
        self.arguments = arguments
        self.fdStoreMax = fdStoreMax
        self.systemdVersion = systemdVersion
        self.logPath = logPath
        if let directory {
            self.directory = directory
            ownsDirectory = false
        } else {
            var template = Array("/tmp/iommufdd-supervisor-XXXXXX".utf8CString)
            guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw IommuError(.current, "mkdtemp", detail: "/tmp/iommufdd-supervisor-XXXXXX")
            }
            self.directory = String(cString: dir)
            ownsDirectory = true
        }
        controlPath = self.directory + "/control.sock"
        notifyPath = self.directory + "/notify.sock"
        unlink(controlPath)
        unlink(notifyPath)
        controlFD = try Self.unixSocket(type: Int32(SOCK_STREAM.rawValue), path: controlPath, listen: true)
        do {
            notifyFD = try Self.unixSocket(type: Int32(SOCK_DGRAM.rawValue), path: notifyPath, listen: false)
        } catch {
            close(controlFD)
            throw error
        }
        let thread = Thread { [self] in receiveLoop() }
        thread.start()
        receiver = thread
    }

    deinit {
        close(controlFD)
        close(notifyFD)
        for entry in store { close(entry.fd) }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    // MARK: The daemon's lifecycle

    /// Starts the daemon with the control socket and every stored fd. Returns its pid and the
    /// `LISTEN_FDNAMES` it got.
    @discardableResult
    public func start() throws -> (pid: pid_t, fdNames: [String]) {
        // systemd 252 passes the stored fds newest first (its list is built by prepending; seen
        // in the test VM as LISTEN_FDNAMES=control:mem.1.1025:device.2:mem.1.1024:iommufd:journal.1).
        let passed: [(name: String, fd: Int32)] = locked { [("control", controlFD)] + store.reversed() }
        // Copies out of the way of the 3, 4, ... targets, so no dup2 overwrites a source: at the
        // top of the fd table, away from the numbers other tests in this process pick.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let top = Int32(clamping: min(limit.rlim_cur, 1 << 20)) - Int32(passed.count) - 16
        var sources: [Int32] = []
        defer { for fd in sources { close(fd) } }
        for entry in passed {
            let high = fcntl(entry.fd, F_DUPFD_CLOEXEC, max(top, 1000))
            guard high >= 0 else { throw IommuError(.current, "fcntl(F_DUPFD_CLOEXEC)", detail: "fd \(entry.fd) (\(entry.name))") }
            sources.append(high)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let logPath {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        for (i, fd) in sources.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, 3 + Int32(i)) }

        var env = ProcessInfo.processInfo.environment
        for key in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "FDSTORE", "WATCHDOG_USEC", "WATCHDOG_PID"] { env[key] = nil }
        env["NOTIFY_SOCKET"] = notifyPath
        for (key, value) in locked({ extraEnvironment }) { env[key] = value }
        if systemdVersion >= 254 {
            if fdStoreMax > 0 { env["FDSTORE"] = String(fdStoreMax) }  // systemd's own
        } else {
            env["FDSTORE"] = String(fdStoreMax)  // the unit's fdstore-variable.conf
        }
        env["LISTEN_FDS"] = String(passed.count)
        env["LISTEN_FDNAMES"] = passed.map(\.name).joined(separator: ":")
        // LISTEN_PID must be the daemon's pid: the shell sets it to its own and execs the daemon.
        let argv = ["/bin/sh", "-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", daemonPath] + arguments
        let envp = env.map { "\($0.key)=\($0.value)" }
        var child: pid_t = 0
        let rc = withCStringArray(argv) { cargv in
            withCStringArray(envp) { cenv in posix_spawn(&child, "/bin/sh", &actions, nil, cargv, cenv) }
        }
        guard rc == 0 else { throw IommuError(Errno(rc), "posix_spawn", detail: "/bin/sh for \(daemonPath)") }
        locked { pid = child }
        return (child, passed.map(\.name))
    }

    /// The running daemon's pid, 0 when none.
    public var daemonPID: pid_t { locked { pid } }

    /// Why `waitReady` gave up.
    public struct NotReady: Error, CustomStringConvertible {
        public var description: String
    }

    /// Waits until the daemon has sent `READY=1` `count` times in all; throws `NotReady` when it
    /// exits first or `timeout` passes (with the log's tail when there is a log).
    public func waitReady(count: Int, timeout: TimeInterval = 120) throws {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        while readyCount < count {
            if pid > 0 {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    pid = 0
                    throw NotReady(description: "iommufdd exited (wait status \(status)) before READY=1\(logForError())")
                }
            }
            if Date() > deadline { throw NotReady(description: "no READY=1 within \(Int(timeout)) s\(logForError())") }
            _ = lock.wait(until: min(deadline, Date().addingTimeInterval(0.2)))
        }
    }

    private func logForError() -> String {
        logPath == nil ? "" : "; its log:\n\(logTail())"
    }

    /// SIGKILL, then reaps the daemon.
    public func kill9() {
        let child = daemonPID
        guard child > 0 else { return }
        kill(child, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(child, &status, 0)
        locked { pid = 0 }
    }

    /// `systemctl stop`: SIGTERM and reap (SIGKILL after 30 s); the exit code, nil if it did not
    /// exit by itself. The fd store is closed, and with it every object, unless the units keep it
    /// (`preservesStoreOnStop`, systemd >= 254).
    public func stop() -> Int32? {
        let status = terminate()
        if !preservesStoreOnStop {
            locked {
                for entry in store { close(entry.fd) }
                store.removeAll()
            }
        }
        return status
    }

    /// `systemctl restart`: SIGTERM, reap, start again with the store kept (systemd keeps it
    /// while the restart job is pending, on every version). The exit code of the old daemon.
    @discardableResult
    public func restart() throws -> (status: Int32?, pid: pid_t, fdNames: [String]) {
        let status = terminate()
        let (pid, names) = try start()
        return (status, pid, names)
    }

    private func terminate() -> Int32? {
        let child = daemonPID
        guard child > 0 else { return nil }
        kill(child, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<600 {
            if waitpid(child, &status, WNOHANG) == child {
                locked { pid = 0 }
                return (status & 0x7f) == 0 ? (status >> 8) & 0xff : nil
            }
            usleep(50_000)
        }
        kill9()
        return nil
    }

    /// Kills the daemon and stops the receiver; the store's fds close with the supervisor.
    public func shutdown() {
        kill9()
        locked { stopped = true }
        // Wakes the receiver: a datagram to itself.
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd >= 0 {
            _ = withUnixAddress(notifyPath) { addr, len in sendto(fd, "X", 1, 0, addr, len) }
            close(fd)
        }
        while receiver?.isFinished == false { usleep(1000) }
        // The thread's closure holds self: drop the thread, or the two keep each other alive.
        receiver = nil
        if ownsDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Runs `body` on the stored fd named `name` (the store's own; `body` must not close it),
    /// nil when there is none: a test that changes what a restarted daemon will find.
    public func withStoredFD<T>(named name: String, _ body: (Int32) throws -> T) rethrows -> T? {
        guard let fd = locked({ store.first { $0.name == name }?.fd }) else { return nil }
        return try body(fd)
    }

    /// Whether every fd in the store is still open (the daemon cannot close the store's own
    /// copies, but a test checks that the names it removed are not gone).
    public var storedFDsOpen: Bool { locked { store.allSatisfy { fcntl($0.fd, F_GETFD) >= 0 } } }

    /// The names of the fds in the store now, in order.
    public var storedNames: [String] { locked { store.map(\.name) } }

    /// Waits until the store's names satisfy `condition` (FDSTORE/FDSTOREREMOVE datagrams are
    /// handled by the receiver thread, after the daemon may already have answered the request
    /// that sent them); false after `timeout` seconds.
    public func waitForStore(timeout: TimeInterval = 30, _ condition: ([String]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        while !condition(store.map(\.name)) {
            if Date() > deadline { return false }
            _ = lock.wait(until: min(deadline, Date().addingTimeInterval(0.05)))
        }
        return true
    }
    /// The last `STATUS=` the daemon sent.
    public var lastStatus: String? { locked { statuses.last } }

    /// The last `lines` lines of the daemon's log, each prefixed "  iommufdd| ".
    public func logTail(lines: Int = 200) -> String {
        guard let logPath else { return "(the daemon's output is not in a log file)" }
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "(no log)"
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).map { "  iommufdd| " + $0 }.joined(separator: "\n")
    }

    // MARK: The notify socket

    private func receiveLoop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var fds = [Int32](repeating: -1, count: Int(CIOMMUFD_SCM_MAX_FDS))
        while true {
            var count: UInt32 = 0
            var truncated: Int32 = 0
            let n = buffer.withUnsafeMutableBytes { b in
                fds.withUnsafeMutableBufferPointer { f in
                    ciommufd_recv_with_fds(notifyFD, b.baseAddress, b.count, f.baseAddress, UInt32(f.count), &count, &truncated, 0)
                }
            }
            if locked({ stopped }) {
                for fd in fds.prefix(Int(count)) { close(fd) }
                return
            }
            if n < 0 { continue }
            handle(String(decoding: buffer[0..<n], as: UTF8.self), fds: Array(fds.prefix(Int(count))))
        }
    }

    /// One notification, as systemd's service_notify_message() reads it.
    private func handle(_ message: String, fds: [Int32]) {
        var fields: [String: String] = [:]
        for line in message.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        lock.lock()
        defer { lock.unlock() }
        if fields["FDSTORE"] == "1" {
            let name = fields["FDNAME"] ?? "stored"
            storing: for fd in fds {
                if store.count >= fdStoreMax {
                    close(fd)  // systemd: "Cannot store more fds than FileDescriptorStoreMax="
                    continue
                }
                var answer = SystemdSameFD.Answer.different
                for entry in store {
                    answer = sameFD.compare(entry.fd, fd)
                    if answer != .different { break }
                }
                switch answer {
                case .different: store.append((name, fd))
                case .same: close(fd)  // systemd: "fd already included", kept under its first name
                case .failed:
                    // systemd: "Failed to add fd to store", and the rest of the message's fds
                    // are closed with it.
                    for rest in fds.drop(while: { $0 != fd }) { close(rest) }
                    break storing
                }
            }
        } else {
            for fd in fds { close(fd) }  // fds without FDSTORE=1 are closed
        }
        if fields["FDSTOREREMOVE"] == "1", let name = fields["FDNAME"] {
            for entry in store where entry.name == name { close(entry.fd) }
            store.removeAll { $0.name == name }
        }
        if let status = fields["STATUS"] { statuses.append(status) }
        if fields["READY"] == "1" {
            readyCount += 1
            lock.broadcast()
        }
    }

    // MARK: Sockets

    private static func unixSocket(type: Int32, path: String, listen doListen: Bool) throws -> Int32 {
        let fd = socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IommuError(.current, "socket", detail: path) }
        let rc = withUnixAddress(path) { addr, len in bind(fd, addr, len) }
        guard rc == 0, !doListen || listen(fd, 128) == 0 else {
            let error = IommuError(.current, doListen ? "bind/listen" : "bind", detail: path)
            close(fd)
            throw error
        }
        return fd
    }
}

private func withUnixAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        for (i, b) in bytes.prefix(raw.count - 1).enumerated() { raw[i] = b }
    }
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

private func withCStringArray<T>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> T) -> T {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
