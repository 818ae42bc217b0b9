import Dispatch
import Foundation
import IommufdCore
import TestProcesses
import Testing

@testable import IommufdDaemon

#if canImport(Glibc)
import Glibc
#endif

// MARK: - test plumbing

/// A `NOTIFY_SOCKET` of our own: an AF_UNIX datagram socket bound in a temporary directory,
/// playing systemd's part. Receives block for at most 10 s so a missing message fails the test
/// instead of hanging it.
final class NotifySocketFixture {
    let fd: Int32
    let path: String
    private let directory: TemporaryDirectory

    init() throws {
        directory = try TemporaryDirectory("iommufdd-notify")
        path = directory.path + "/notify.sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Errno.current }
        try bindUnix(fd, path)
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The next datagram this process sent, with the fds that came with it. Datagrams from
    /// other processes (a child that inherited NOTIFY_SOCKET while a test had it set) are
    /// skipped: the kernel's SCM_CREDENTIALS say who sent each one.
    func receive() throws -> (text: String, fds: [Int32]) {
        while true {
            let (text, fds, sender) = try receiveAny()
            if sender == getpid() { return (text, fds) }
            for fd in fds { close(fd) }
        }
    }

    /// The next datagram `pid` sent, waiting up to `timeout` seconds (nil on timeout). Used
    /// with the real daemon as a child process; fds that came with it are closed.
    func receive(from pid: pid_t, timeout: Double) throws -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text: String, fds: [Int32], sender: pid_t?
            do {
                (text, fds, sender) = try receiveAny()
            } catch let e as Errno where e == .EAGAIN || e == .EINTR {
                continue  // SO_RCVTIMEO passed: look at the deadline again
            }
            for fd in fds { close(fd) }
            if sender == pid { return text }
        }
        return nil
    }

    private func receiveAny() throws -> (String, [Int32], pid_t?) {
        var data = [UInt8](repeating: 0, count: 4096)
        var control = [UInt64](repeating: 0, count: 64)  // 8-byte aligned cmsg space
        var fds: [Int32] = []
        var sender: pid_t?
        let n: Int = data.withUnsafeMutableBytes { dataBuffer in
            control.withUnsafeMutableBytes { controlBuffer in
                var iov = iovec(iov_base: dataBuffer.baseAddress, iov_len: dataBuffer.count)
                return withUnsafeMutablePointer(to: &iov) { iovPointer in
                    var header = msghdr()
                    header.msg_iov = iovPointer
                    header.msg_iovlen = 1
                    header.msg_control = controlBuffer.baseAddress
                    header.msg_controllen = controlBuffer.count
                    let n = recvmsg(fd, &header, Int32(MSG_CMSG_CLOEXEC))
                    guard n >= 0 else { return n }
                    // Control messages: { size_t len; int level; int type; data }, 8-byte aligned.
                    let headerSize = MemoryLayout<cmsghdr>.size
                    var offset = 0
                    while offset + headerSize <= Int(header.msg_controllen) {
                        let cmsg = controlBuffer.load(fromByteOffset: offset, as: cmsghdr.self)
                        let length = Int(cmsg.cmsg_len)
                        guard length >= headerSize else { break }
                        let dataOffset = offset + headerSize
                        if cmsg.cmsg_level == SOL_SOCKET, cmsg.cmsg_type == Int32(SCM_RIGHTS) {
                            for i in 0..<(length - headerSize) / MemoryLayout<Int32>.size {
                                fds.append(
                                    controlBuffer.load(fromByteOffset: dataOffset + i * MemoryLayout<Int32>.size, as: Int32.self))
                            }
                        } else if cmsg.cmsg_level == SOL_SOCKET, cmsg.cmsg_type == 2 /* SCM_CREDENTIALS, hidden by Glibc without _GNU_SOURCE */ {
                            sender = controlBuffer.load(fromByteOffset: dataOffset, as: pid_t.self)
                        }
                        offset += (length + 7) & ~7
                    }
                    return n
                }
            }
        }
        guard n >= 0 else { throw Errno.current }
        return (String(decoding: data[0..<n], as: UTF8.self), fds, sender)
    }

    /// Whether a datagram is waiting (without blocking).
    func hasPending() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) >= 0
    }

    deinit {
        close(fd)
    }
}

private func bindUnix(_ fd: Int32, _ path: String) throws {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { buffer in
        for (i, byte) in path.utf8.prefix(buffer.count - 1).enumerated() { buffer[i] = byte }
    }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    guard rc == 0 else { throw Errno.current }
}

/// Runs `body` with `variables` set in this process's environment, then removes them.
/// libsystemd reads `NOTIFY_SOCKET` / `WATCHDOG_*` from the real environment; the suites using
/// this are serialized so no two tests change it at once.
private func withEnvironment<T>(_ variables: [String: String], _ body: () throws -> T) rethrows -> T {
    for (key, value) in variables { setenv(key, value, 1) }
    defer { for key in variables.keys { unsetenv(key) } }
    return try body()
}

/// An open, already unlinked regular file: an fd that is not a socket (as a memfd would be).
private func temporaryFileFD() -> Int32 {
    let path = "/tmp/iommufdd-fd-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    if fd >= 0 { unlink(path) }
    return fd
}

func monotonicMicroseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
}

// MARK: - sd_notify

@Suite("sd_notify against a real NOTIFY_SOCKET", .serialized)
struct SystemdNotifierTests {
    let notifier = SystemdNotifier()

    @Test func readyWithStatus() throws {
        let socket = try NotifySocketFixture()
        let sent = try withEnvironment(["NOTIFY_SOCKET": socket.path]) {
            try notifier.ready(status: "serving 3 clients, 2 owners")
        }
        #expect(sent)
        let message = try socket.receive()
        #expect(message.text == "READY=1\nSTATUS=serving 3 clients, 2 owners")
        #expect(message.fds.isEmpty)
    }

    @Test func statusIsOneLine() throws {
        let socket = try NotifySocketFixture()
        _ = try withEnvironment(["NOTIFY_SOCKET": socket.path]) {
            try notifier.status("restoring\nREADY=1")
        }
        // A newline must not smuggle a READY=1 field into the message.
        #expect(try socket.receive().text == "STATUS=restoring READY=1")
    }

    @Test func stopping() throws {
        let socket = try NotifySocketFixture()
        _ = try withEnvironment(["NOTIFY_SOCKET": socket.path]) {
            try notifier.stopping(status: "finishing 2 requests")
        }
        #expect(try socket.receive().text == "STOPPING=1\nSTATUS=finishing 2 requests")
    }

    @Test func reloadingCarriesMonotonicTime() throws {
        let socket = try NotifySocketFixture()
        let before = monotonicMicroseconds()
        _ = try withEnvironment(["NOTIFY_SOCKET": socket.path]) {
            try notifier.reloading()
        }
        let after = monotonicMicroseconds()
        let lines = try socket.receive().text.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first == "RELOADING=1")
        let stamp = try #require(lines.last?.split(separator: "=", maxSplits: 1))
        #expect(stamp.first == "MONOTONIC_USEC")
        let usec = try #require(UInt64(stamp.last ?? ""))
        #expect(usec >= before && usec <= after)
    }

    @Test func watchdogPing() throws {
        let socket = try NotifySocketFixture()
        _ = try withEnvironment(["NOTIFY_SOCKET": socket.path]) {
            try notifier.watchdog()
        }
        #expect(try socket.receive().text == "WATCHDOG=1")
    }

    @Test func extendTimeout() throws {
        let socket = try NotifySocketFixture()
        _ = try withEnvironment(["NOTIFY_SOCKET": socket.path]) {
            try notifier.extendTimeout(by: .seconds(90))
        }
        #expect(try socket.receive().text == "EXTEND_TIMEOUT_USEC=90000000")
    }

    @Test func fdStorePassesTheFileDescriptor() throws {
        let socket = try NotifySocketFixture()
        let memfd = temporaryFileFD()
        try #require(memfd >= 0)
        defer { close(memfd) }
        _ = try withEnvironment(["NOTIFY_SOCKET": socket.path]) {
            try notifier.storeFileDescriptor(memfd, name: "journal")
        }
        let message = try socket.receive()
        #expect(message.text == "FDSTORE=1\nFDNAME=journal\nFDPOLL=0")
        try #require(message.fds.count == 1)
        defer { for fd in message.fds { close(fd) } }
        // The received fd is the same open file, not just any fd.
        var ours = stat(), theirs = stat()
        #expect(fstat(memfd, &ours) == 0 && fstat(message.fds[0], &theirs) == 0)
        #expect(ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev)
    }

    @Test func fdStoreWithPolling() throws {
        let socket = try NotifySocketFixture()
        let memfd = temporaryFileFD()
        try #require(memfd >= 0)
        defer { close(memfd) }
        _ = try withEnvironment(["NOTIFY_SOCKET": socket.path]) {
            try notifier.storeFileDescriptor(memfd, name: "client-7", poll: true)
        }
        let message = try socket.receive()
        defer { for fd in message.fds { close(fd) } }
        #expect(message.text == "FDSTORE=1\nFDNAME=client-7")
        #expect(message.fds.count == 1)
    }

    @Test func fdStoreRemove() throws {
        let socket = try NotifySocketFixture()
        _ = try withEnvironment(["NOTIFY_SOCKET": socket.path]) {
            try notifier.removeStoredFileDescriptors(name: "memfd-3")
        }
        #expect(try socket.receive().text == "FDSTOREREMOVE=1\nFDNAME=memfd-3")
    }

    @Test(arguments: ["", "a:b", "tab\there", String(repeating: "x", count: 256)])
    func invalidFDNameIsRefusedBeforeSending(name: String) throws {
        let socket = try NotifySocketFixture()
        #expect(!SystemdNotifier.isValidFDName(name))
        let error = withEnvironment(["NOTIFY_SOCKET": socket.path]) {
            #expect(throws: SystemdNotifyError.self) { try notifier.removeStoredFileDescriptors(name: name) }
        }
        #expect(error?.errno == .EINVAL)
        #expect(!socket.hasPending())
    }

    @Test func withoutNotifySocketNothingIsSent() throws {
        unsetenv("NOTIFY_SOCKET")
        #expect(!notifier.isEnabled)
        #expect(try notifier.ready(status: "x") == false)
        #expect(try notifier.watchdog() == false)
    }

    @Test func unreachableNotifySocketThrowsWithErrno() throws {
        let error = withEnvironment(["NOTIFY_SOCKET": "/nonexistent-iommufdd-dir/notify.sock"]) {
            #expect(throws: SystemdNotifyError.self) { try notifier.ready() }
        }
        #expect(error?.errno == .ENOENT)
        #expect(error?.description.contains("READY=1") == true)
    }

    @Test func watchdogTimerPingsAtHalfTheTimeout() throws {
        let socket = try NotifySocketFixture()
        let queue = DispatchQueue(label: "watchdog-test")
        let timer = try withEnvironment([
            "NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "\(getpid())",
        ]) { () throws -> WatchdogTimer? in
            #expect(WatchdogTimer.configuredTimeout() == .milliseconds(200))
            let timer = WatchdogTimer.startIfEnabled(notifier: notifier, queue: queue)
            // Two pings while NOTIFY_SOCKET is still set (the timer reads it at each ping).
            #expect(try socket.receive().text == "WATCHDOG=1")
            #expect(try socket.receive().text == "WATCHDOG=1")
            return timer
        }
        let running = try #require(timer)
        running.cancel()
        #expect(running.interval == .milliseconds(100))
    }

    @Test func watchdogOffWhenForAnotherProcessOrUnset() {
        withEnvironment(["WATCHDOG_USEC": "200000", "WATCHDOG_PID": "\(getpid() + 1)"]) {
            #expect(WatchdogTimer.configuredTimeout() == nil)
            #expect(WatchdogTimer.startIfEnabled(notifier: notifier, queue: .main) == nil)
        }
        #expect(WatchdogTimer.configuredTimeout() == nil)
    }
}

// MARK: - socket activation

/// fds placed at consecutive numbers from a free high base, as systemd places them from 3.
private final class PassedFDs {
    let base: Int32
    private(set) var count: Int32 = 0

    /// Ranges handed out so far: tests run in parallel and must not share numbers.
    nonisolated(unsafe) private static var nextBase: Int32 = 900
    private static let lock = NSLock()

    init(count: Int) throws {
        // `count` consecutive unused fd numbers well above what the process uses, in a range
        // no other test holds.
        base = try Self.lock.withLock {
            var candidate = Self.nextBase
            search: while candidate < 4000 {
                for i in 0..<Int32(count) where fcntl(candidate + i, F_GETFD) >= 0 {
                    candidate += i + 1
                    continue search
                }
                Self.nextBase = candidate + Int32(count)
                return candidate
            }
            throw Errno.EMFILE
        }
    }

    /// Puts `fd` at the next number (closing the original).
    func add(_ fd: Int32) throws {
        guard fd >= 0 else { throw Errno.current }
        guard dup2(fd, base + count) == base + count else { throw Errno.current }
        _ = fcntl(base + count, F_SETFD, FD_CLOEXEC)
        close(fd)
        count += 1
    }

    /// Leaves a gap: the number is passed but nothing is open there.
    func addClosed() { count += 1 }

    deinit {
        for i in 0..<count { close(base + i) }
    }
}

private func listeningUnixSocket(type: Int32 = Int32(SOCK_STREAM.rawValue), listen doListen: Bool = true) throws -> (Int32, String) {
    let fd = socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw Errno.current }
    let path = "/tmp/iommufdd-activation-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
    try bindUnix(fd, path)
    if doListen { guard listen(fd, 16) == 0 else { throw Errno.current } }
    return (fd, path)
}

@Suite("Socket activation (LISTEN_FDS / LISTEN_FDNAMES)")
struct SocketActivationTests {
    let pid: pid_t = 4242

    @Test func notForUsWithoutOrWithAnotherListenPID() throws {
        #expect(try SocketActivation.parse(environment: [:], pid: pid) == nil)
        #expect(try SocketActivation.parse(environment: ["LISTEN_FDS": "1"], pid: pid) == nil)
        #expect(try SocketActivation.parse(environment: ["LISTEN_PID": "4243", "LISTEN_FDS": "1"], pid: pid) == nil)
        #expect(try SocketActivation.parse(environment: ["LISTEN_PID": "4242", "LISTEN_FDS": "0"], pid: pid) == nil)
    }

    @Test func namesAndNumbering() throws {
        let activation = try #require(
            try SocketActivation.parse(
                environment: ["LISTEN_PID": "4242", "LISTEN_FDS": "3", "LISTEN_FDNAMES": "iommufd:control:memfd-1"],
                pid: pid))
        #expect(activation.fds.map(\.fd) == [3, 4, 5])
        #expect(activation.fds.map(\.name) == ["iommufd", "control", "memfd-1"])
        #expect(activation.storedFDs.map(\.name) == ["iommufd", "memfd-1"])
        #expect(activation.fds(named: "memfd-1") == [5])
    }

    @Test func unnamedFDsAreUnknown() throws {
        let activation = try #require(
            try SocketActivation.parse(environment: ["LISTEN_PID": "4242", "LISTEN_FDS": "2"], pid: pid, firstFD: 10))
        #expect(activation.fds == [.init(fd: 10, name: "unknown"), .init(fd: 11, name: "unknown")])
        #expect(!activation.namesGiven)
    }

    @Test func malformedVariablesAreErrors() {
        #expect(throws: SocketActivationError.malformed(variable: "LISTEN_PID", value: "abc")) {
            try SocketActivation.parse(environment: ["LISTEN_PID": "abc", "LISTEN_FDS": "1"], pid: pid)
        }
        #expect(throws: SocketActivationError.malformed(variable: "LISTEN_FDS", value: "-1")) {
            try SocketActivation.parse(environment: ["LISTEN_PID": "4242", "LISTEN_FDS": "-1"], pid: pid)
        }
        #expect(throws: SocketActivationError.nameCountMismatch(fds: 2, names: 1, value: "control")) {
            try SocketActivation.parse(
                environment: ["LISTEN_PID": "4242", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "control"], pid: pid)
        }
    }

    @Test func controlSocketIsTheListeningUnixStreamNamedControl() throws {
        let passed = try PassedFDs(count: 2)
        let memfd = temporaryFileFD()
        try passed.add(memfd)
        let (listener, path) = try listeningUnixSocket()
        defer { unlink(path) }
        try passed.add(listener)
        let activation = try #require(
            try SocketActivation.parse(
                environment: ["LISTEN_PID": "4242", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "journal:control"],
                pid: pid, firstFD: passed.base))
        #expect(try activation.controlSocket() == passed.base + 1)
        #expect(activation.storedFDs.map(\.fd) == [passed.base])
    }

    @Test func singleUnnamedSocketIsTheControlSocket() throws {
        let passed = try PassedFDs(count: 1)
        let (listener, path) = try listeningUnixSocket()
        defer { unlink(path) }
        try passed.add(listener)
        let activation = try #require(
            try SocketActivation.parse(environment: ["LISTEN_PID": "4242", "LISTEN_FDS": "1"], pid: pid, firstFD: passed.base))
        #expect(try activation.controlSocket() == passed.base)
        #expect(activation.storedFDs.isEmpty)
    }

    @Test func noControlSocketWhenOnlyStoredFDs() throws {
        let passed = try PassedFDs(count: 1)
        try passed.add(temporaryFileFD())
        let activation = try #require(
            try SocketActivation.parse(
                environment: ["LISTEN_PID": "4242", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "iommufd"], pid: pid,
                firstFD: passed.base))
        #expect(try activation.controlSocket() == nil)
    }

    @Test func listeningSocketUnderAnotherNameIsAnError() throws {
        let passed = try PassedFDs(count: 1)
        let (listener, path) = try listeningUnixSocket()
        defer { unlink(path) }
        try passed.add(listener)
        let activation = try #require(
            try SocketActivation.parse(
                environment: ["LISTEN_PID": "4242", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "iommufdd.socket"], pid: pid,
                firstFD: passed.base))
        #expect(throws: SocketActivationError.controlSocketMisnamed(fd: passed.base, name: "iommufdd.socket")) {
            try activation.controlSocket()
        }
    }

    /// Each wrong kind of fd under the name `control`, and the error that names it.
    @Test func wrongKindsOfControlFD() throws {
        let passed = try PassedFDs(count: 5)
        try passed.add(temporaryFileFD())
        let (datagram, datagramPath) = try listeningUnixSocket(type: Int32(SOCK_DGRAM.rawValue), listen: false)
        defer { unlink(datagramPath) }
        try passed.add(datagram)
        var pair: [Int32] = [0, 0]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        try passed.add(pair[0])
        close(pair[1])
        try passed.add(socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0))
        passed.addClosed()

        func control(at index: Int32) throws -> Int32? {
            var names = Array(repeating: "other", count: 5)
            names[Int(index)] = "control"
            let activation = try SocketActivation.parse(
                environment: ["LISTEN_PID": "4242", "LISTEN_FDS": "5", "LISTEN_FDNAMES": names.joined(separator: ":")],
                pid: pid, firstFD: passed.base)
            return try activation?.controlSocket()
        }
        let b = passed.base
        #expect(throws: SocketActivationError.notASocket(fd: b, name: "control")) { try control(at: 0) }
        #expect(throws: SocketActivationError.wrongType(fd: b + 1, name: "control", type: Int32(SOCK_DGRAM.rawValue))) {
            try control(at: 1)
        }
        #expect(throws: SocketActivationError.notListening(fd: b + 2, name: "control")) { try control(at: 2) }
        #expect(throws: SocketActivationError.wrongFamily(fd: b + 3, name: "control", family: AF_INET)) {
            try control(at: 3)
        }
        #expect(throws: SocketActivationError.notOpen(fd: b + 4, name: "control", errno: .EBADF)) { try control(at: 4) }
    }

    @Test func twoControlSocketsAreAnError() throws {
        let activation = try #require(
            try SocketActivation.parse(
                environment: ["LISTEN_PID": "4242", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "control:control"], pid: pid))
        #expect(throws: SocketActivationError.duplicateName(name: "control", fds: [3, 4])) {
            try activation.controlSocket()
        }
    }

    @Test func errorsSayWhatToFix() {
        #expect(
            SocketActivationError.controlSocketMisnamed(fd: 3, name: "iommufdd.socket").description
                .contains("FileDescriptorName=control"))
        #expect(SocketActivationError.notListening(fd: 3, name: "control").description.contains("Accept=yes"))
    }
}

// MARK: - signals

/// libdispatch sets up and tears down a signal's handling asynchronously, so each signal is
/// watched by one test only and never re-watched (as in the daemon, which watches once).
@Suite("Signals through DispatchSource", .serialized)
struct SignalWatcherTests {
    @Test func daemonSignalsReloadOnHangupStopOnInterruptAndIgnoreSIGPIPE() async throws {
        let queue = DispatchQueue(label: "signal-test")
        let received = SignalLog()
        let watcher = SignalWatcher.daemonSignals(
            queue: queue, terminate: { received.append($0) }, reload: { received.append(-SIGHUP) })
        defer { watcher.cancel() }
        #expect(watcher.signals == [SIGTERM, SIGINT, SIGHUP])
        kill(getpid(), SIGHUP)
        #expect(try await received.next() == -SIGHUP, "SIGHUP calls reload")
        kill(getpid(), SIGINT)
        #expect(try await received.next() == SIGINT, "SIGINT calls terminate")

        // SIGPIPE is ignored: writing to a closed pipe gives EPIPE instead of killing us.
        var pipeFDs: [Int32] = [0, 0]
        try #require(pipe(&pipeFDs) == 0)
        close(pipeFDs[0])
        var byte: UInt8 = 1
        let n = write(pipeFDs[1], &byte, 1)
        let writeErrno = errno
        close(pipeFDs[1])
        #expect(n == -1 && writeErrno == EPIPE)
    }

    @Test func eachSignalReachesTheHandlerOnTheQueue() async throws {
        let queue = DispatchQueue(label: "signal-test-usr")
        let key = DispatchSpecificKey<Bool>()
        queue.setSpecific(key: key, value: true)
        let received = SignalLog()
        let watcher = SignalWatcher(signals: [SIGUSR1, SIGUSR2], queue: queue) { signo in
            received.append(DispatchQueue.getSpecific(key: key) == true ? signo : -1)
        }
        defer { watcher.cancel() }
        kill(getpid(), SIGUSR2)
        #expect(try await received.next() == SIGUSR2)
        kill(getpid(), SIGUSR1)
        #expect(try await received.next() == SIGUSR1)
    }
}

/// Signals seen by a handler, awaited by the test (with a 10 s guard against a hang).
private final class SignalLog: @unchecked Sendable {
    private let lock = NSLock()
    private var signals: [Int32] = []
    private let semaphore = DispatchSemaphore(value: 0)

    func append(_ signo: Int32) {
        lock.lock()
        signals.append(signo)
        lock.unlock()
        semaphore.signal()
    }

    func next() async throws -> Int32? {
        let semaphore = self.semaphore
        let arrived = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: semaphore.wait(timeout: .now() + 10) == .success) }
        }
        guard arrived else { return nil }
        return lock.withLock { signals.isEmpty ? nil : signals.removeFirst() }
    }
}

// MARK: - the unit files

@Suite("systemd units")
struct SystemdUnitTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// Runs scripts/verify-units (systemd-analyze verify + security ≤ 2.0 + required device
    /// access) against the iommufdd built next to this test binary.
    @Test func unitsVerifyAndStayHardened() throws {
        let testBinary = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let binDirectory = URL(fileURLWithPath: testBinary).deletingLastPathComponent()
        // The test runner is bin/<Package>PackageTests.xctest; the daemon is bin/iommufdd.
        let daemon = binDirectory.appendingPathComponent("iommufdd").path
        try #require(
            FileManager.default.isExecutableFile(atPath: daemon),
            "\(daemon) is missing: swift build --product iommufdd before the tests")

        let run = try SpawnedProcess.run(
            Self.repositoryRoot + "/scripts/verify-units", ["--binary", daemon, "--max-exposure", "2.0"])
        let text = run.output + run.error
        #expect(run.status == 0, "\(text)")
        #expect(text.contains("ok: systemd-analyze verify"))
        #expect(text.contains("ok: systemd-analyze security exposure"))
        // Not one warning, on any systemd: a key the running systemd does not know is not
        // installed for it (FileDescriptorStorePreserve= before 254), so nothing is tolerated.
        #expect(!text.contains("Unknown key") && !text.contains("tolerated"), "\(text)")
    }

    /// scripts/install-units puts the FileDescriptorStorePreserve= drop-in beside the service
    /// for systemd 254 and later only, and for older ones the drop-in that passes $FDSTORE (with
    /// the service's FileDescriptorStoreMax=), removing the other kind an earlier install left.
    @Test func preserveDropInIsInstalledFromSystemd254On() throws {
        let root = try TemporaryDirectory("install-units")
        let units = root.path + "/usr/local/lib/systemd/system"
        let dropIn = units + "/iommufdd.service.d/fdstore-preserve.conf"
        let variable = units + "/iommufdd.service.d/fdstore-variable.conf"
        let shipped = try String(contentsOfFile: Self.repositoryRoot + "/systemd/iommufdd.service", encoding: .utf8)
        let storeMax = try #require(shipped.split(separator: "\n").first { $0.hasPrefix("FileDescriptorStoreMax=") }?.split(separator: "=").last)
        func install(_ version: String) throws -> (status: Int32, output: String, error: String) {
            try SpawnedProcess.run(Self.repositoryRoot + "/scripts/install-units", ["--destdir", root.path, "--systemd-version", version])
        }
        for (version, expectDropIn) in [("254", true), ("252", false), ("255", true), ("253", false), ("1000", true)] {
            let run = try install(version)
            #expect(run.status == 0, "systemd \(version): \(run.error)")
            #expect(FileManager.default.fileExists(atPath: units + "/iommufdd.service"))
            #expect(FileManager.default.fileExists(atPath: units + "/iommufdd.socket"))
            #expect(FileManager.default.fileExists(atPath: dropIn) == expectDropIn, "systemd \(version): \(run.output)")
            #expect(FileManager.default.fileExists(atPath: variable) == !expectDropIn, "systemd \(version): \(run.output)")
            let service = try String(contentsOfFile: units + "/iommufdd.service", encoding: .utf8)
            #expect(!service.contains("\nFileDescriptorStorePreserve="), "the service itself must not set it")
            if expectDropIn {
                let text = try String(contentsOfFile: dropIn, encoding: .utf8)
                #expect(text.split(separator: "\n").contains("FileDescriptorStorePreserve=yes"))
            } else {
                let text = try String(contentsOfFile: variable, encoding: .utf8)
                #expect(text.split(separator: "\n").contains("Environment=FDSTORE=\(storeMax)"), "\(text)")
                #expect(run.output.contains("a restart keeps every object") && run.output.contains("a stop does not"), "\(run.output)")
            }
        }
        let bad = try install("v254")
        #expect(bad.status == 2 && bad.error.contains("version number"), "\(bad)")
    }

    /// What each systemd reads: the units installed for 254 carry FileDescriptorStorePreserve=
    /// through the drop-in, which `systemd-analyze verify` reads beside the unit — so this
    /// machine's systemd, when older than 254, reports exactly that key as unknown there, and the
    /// units installed for its own version verify without a word.
    @Test func eachSystemdGetsWhatItKnows() throws {
        let testBinary = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let daemon = URL(fileURLWithPath: testBinary).deletingLastPathComponent().appendingPathComponent("iommufdd").path
        try #require(FileManager.default.isExecutableFile(atPath: daemon), "\(daemon) is missing: swift build --product iommufdd before the tests")
        let versionText = try SpawnedProcess.run("/usr/bin/env", ["systemd-analyze", "--version"]).output
        let local = try #require(Int(versionText.split(separator: " ").dropFirst().first ?? ""), "systemd-analyze --version: \(versionText)")

        func verify(installedFor version: Int) throws -> String {
            let root = try TemporaryDirectory("verify-units")
            let install = try SpawnedProcess.run(
                Self.repositoryRoot + "/scripts/install-units", ["--destdir", root.path, "--systemd-version", "\(version)"])
            try #require(install.status == 0, "\(install.error)")
            let units = root.path + "/usr/local/lib/systemd/system"
            let service = units + "/iommufdd.service"
            let text = try String(contentsOfFile: service, encoding: .utf8)
            try text.replacingOccurrences(of: "ExecStart=/usr/local/bin/iommufdd", with: "ExecStart=\(daemon)")
                .write(toFile: service, atomically: true, encoding: .utf8)
            let run = try SpawnedProcess.run(
                "/bin/sh", ["-c", "cd \"$0\" && exec systemd-analyze verify iommufdd.service iommufdd.socket", units])
            #expect(run.status == 0, "\(run.output)\(run.error)")
            return (run.output + run.error).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try verify(installedFor: local) == "", "systemd \(local) warns about the units installed for it")
        let newer = try verify(installedFor: max(local, 254))
        if local < 254 {
            #expect(newer.contains("fdstore-preserve.conf") && newer.contains("Unknown key 'FileDescriptorStorePreserve'"), "\(newer)")
            #expect(newer.split(separator: "\n").count == 1, "\(newer)")
        } else {
            #expect(newer == "", "systemd \(local): \(newer)")
        }
    }

    @Test func socketUnitMatchesTheDaemonDefaults() throws {
        let socketUnit = try String(contentsOfFile: Self.repositoryRoot + "/systemd/iommufdd.socket", encoding: .utf8)
        let lines = Set(socketUnit.split(separator: "\n").map(String.init))
        #expect(lines.contains("ListenStream=\(DaemonConfig.defaults.daemon.socketPath)"))
        #expect(lines.contains("FileDescriptorName=\(SocketActivation.controlName)"))
        #expect(lines.contains("SocketMode=0\(String(DaemonConfig.defaults.daemon.socketMode, radix: 8))"))
        #expect(lines.contains("Service=iommufdd.service"))
    }
}
