import CIommufd
import Foundation
import IommufdCore

#if canImport(Glibc)
import Glibc
#endif

/// systemd's side of the service protocol, as documented in sd_notify(3), sd_listen_fds(3) and
/// systemd.service(5), for running iommufdd the way systemd does:
///
/// - a `NOTIFY_SOCKET` datagram socket receiving `READY=1`, `STATUS=`, `FDSTORE=1` (+ `FDNAME=`,
///   `FDPOLL=`) with the fds in SCM_RIGHTS, and `FDSTOREREMOVE=1` (+ `FDNAME=`);
/// - the fd store: the fds received with `FDSTORE=1`, kept in arrival order under their names
///   (systemd's default name is "stored"), closed on `FDSTOREREMOVE=1`, held while the
///   daemon is dead (FileDescriptorStorePreserve=yes);
/// - socket activation: the listening control socket first, then the stored fds, passed as fds
///   3, 4, ... with `LISTEN_FDS`, `LISTEN_FDNAMES` (colon-separated) and `LISTEN_PID` set to the
///   daemon's pid (set by a `/bin/sh` that execs the daemon, so the pid is the daemon's), and
///   `$FDSTORE` = FileDescriptorStoreMax= (systemd >= 254).
final class Supervisor: @unchecked Sendable {
    let daemonPath: String
    let arguments: [String]
    let directory: String
    let controlPath: String
    let notifyPath: String
    let fdStoreMax: Int
    private let controlFD: Int32
    private let notifyFD: Int32
    private let lock = NSCondition()
    private var store: [(name: String, fd: Int32)] = []
    private var readyCount = 0
    private var statuses: [String] = []
    private(set) var pid: pid_t = 0
    private var receiver: Thread?
    private var stopped = false

    init(daemonPath: String, arguments: [String], fdStoreMax: Int = 4096) throws {
        self.daemonPath = daemonPath
        self.arguments = arguments
        self.fdStoreMax = fdStoreMax
        var template = Array("/tmp/iommufdd-supervisor-XXXXXX".utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw Errno.current }
        directory = String(cString: dir)
        controlPath = directory + "/control.sock"
        notifyPath = directory + "/notify.sock"
        controlFD = try Self.unixSocket(type: Int32(SOCK_STREAM.rawValue), path: controlPath, listen: true)
        notifyFD = try Self.unixSocket(type: Int32(SOCK_DGRAM.rawValue), path: notifyPath, listen: false)
        let thread = Thread { [self] in receiveLoop() }
        thread.start()
        receiver = thread
    }

    deinit {
        close(controlFD)
        close(notifyFD)
        for entry in store { close(entry.fd) }
    }

    // MARK: The daemon's lifecycle

    /// Starts the daemon with the control socket and every stored fd.
    func start() throws {
        let passed: [(name: String, fd: Int32)] = lock.withLock { [("control", controlFD)] + store }
        // Copies out of the way of the 3, 4, ... targets, so no dup2 overwrites a source: at the
        // top of the fd table, away from the numbers other tests in this process pick.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let top = Int32(clamping: min(limit.rlim_cur, 1 << 20)) - Int32(passed.count) - 16
        var sources: [Int32] = []
        defer { for fd in sources { close(fd) } }
        for entry in passed {
            let high = fcntl(entry.fd, F_DUPFD_CLOEXEC, max(top, 1000))
            guard high >= 0 else { throw Errno.current }
            sources.append(high)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (i, fd) in sources.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, 3 + Int32(i)) }

        var env = ProcessInfo.processInfo.environment
        for key in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "FDSTORE", "WATCHDOG_USEC", "WATCHDOG_PID"] { env[key] = nil }
        env["NOTIFY_SOCKET"] = notifyPath
        env["FDSTORE"] = String(fdStoreMax)
        env["LISTEN_FDS"] = String(passed.count)
        env["LISTEN_FDNAMES"] = passed.map(\.name).joined(separator: ":")
        // LISTEN_PID must be the daemon's pid: the shell sets it to its own and execs the daemon.
        let argv = ["/bin/sh", "-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", daemonPath] + arguments
        let envp = env.map { "\($0.key)=\($0.value)" }
        var child: pid_t = 0
        let rc = withCStrings(argv) { cargv in
            withCStrings(envp) { cenv in posix_spawn(&child, "/bin/sh", &actions, nil, cargv, cenv) }
        }
        guard rc == 0 else { throw Errno(rc) }
        lock.withLock { pid = child }
    }

    /// Waits until the daemon has sent `READY=1` `count` times in all.
    func waitReady(count: Int, timeout: TimeInterval = 120) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        while readyCount < count {
            if !lock.wait(until: deadline) { return false }
        }
        return true
    }

    /// SIGKILL, then reaps the daemon.
    func kill9() {
        let child = lock.withLock { pid }
        guard child > 0 else { return }
        kill(child, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(child, &status, 0)
        lock.withLock { pid = 0 }
    }

    /// SIGTERM and reap (a clean stop); returns the wait status.
    @discardableResult
    func stop() -> Int32 {
        let child = lock.withLock { pid }
        guard child > 0 else { return 0 }
        kill(child, SIGTERM)
        var status: Int32 = 0
        _ = waitpid(child, &status, 0)
        lock.withLock { pid = 0 }
        return status
    }

    func shutdown() {
        kill9()
        lock.withLock { stopped = true }
        // Wakes the receiver: a datagram to itself.
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd >= 0 {
            _ = withSockaddr(notifyPath) { addr, len in sendto(fd, "X", 1, 0, addr, len) }
            close(fd)
        }
        while receiver?.isFinished == false { usleep(1000) }
        // The thread's closure holds self: drop the thread, or the two keep each other alive.
        receiver = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The names of the fds in the store now, in order.
    var storedNames: [String] { lock.withLock { store.map(\.name) } }
    var lastStatus: String? { lock.withLock { statuses.last } }

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
            if lock.withLock({ stopped }) {
                for fd in fds.prefix(Int(count)) { close(fd) }
                return
            }
            if n < 0 { continue }
            let text = String(decoding: buffer[0..<n], as: UTF8.self)
            handle(text, fds: Array(fds.prefix(Int(count))))
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
        var kept = false
        if fields["FDSTORE"] == "1" {
            let name = fields["FDNAME"] ?? "stored"
            for fd in fds {
                if store.count >= fdStoreMax {
                    close(fd)  // systemd: "Too many stored file descriptors, refusing"
                } else {
                    store.append((name, fd))
                }
            }
            kept = true
        }
        if !kept { for fd in fds { close(fd) } }  // fds without FDSTORE=1 are closed
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
        guard fd >= 0 else { throw Errno.current }
        let rc = withSockaddr(path) { addr, len in bind(fd, addr, len) }
        guard rc == 0, !doListen || listen(fd, 128) == 0 else {
            let e = Errno.current
            close(fd)
            throw e
        }
        return fd
    }
}

func withSockaddr<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
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

func withCStrings<T>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> T) -> T {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

extension NSCondition {
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
