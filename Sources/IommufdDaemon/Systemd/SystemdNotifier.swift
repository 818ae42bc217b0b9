import CSystemd
import IommufdCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Talks to the service manager over `NOTIFY_SOCKET` (sd_notify(3)), through libsystemd.
///
/// Every call is a no-op returning false when `NOTIFY_SOCKET` is unset (not started by
/// systemd, or `Type=` is not notify); true once the datagram is sent. Sending fails only
/// when the socket is set but unusable, and then throws with the errno.
public struct SystemdNotifier: Sendable {
    public init() {}

    /// Whether a service manager listens (`NOTIFY_SOCKET` is set).
    public var isEnabled: Bool { getenv("NOTIFY_SOCKET") != nil }

    /// `READY=1`: the socket is listening and state is restored. After a reload, too.
    @discardableResult
    public func ready(status: String? = nil) throws(SystemdNotifyError) -> Bool {
        try send(["READY=1"] + statusField(status))
    }

    /// `STATUS=`: one line shown by `systemctl status`.
    @discardableResult
    public func status(_ text: String) throws(SystemdNotifyError) -> Bool {
        try send(statusField(text))
    }

    /// `STOPPING=1`: shutdown has begun (SIGTERM).
    @discardableResult
    public func stopping(status: String? = nil) throws(SystemdNotifyError) -> Bool {
        try send(["STOPPING=1"] + statusField(status))
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (the CLOCK_MONOTONIC time the reload began, which
    /// `Type=notify-reload` managers require); send `ready()` when the reload is done.
    @discardableResult
    public func reloading(status: String? = nil) throws(SystemdNotifyError) -> Bool {
        try send(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())"] + statusField(status))
    }

    /// `WATCHDOG=1`: the keep-alive ping `WatchdogSec=` expects.
    @discardableResult
    public func watchdog() throws(SystemdNotifyError) -> Bool {
        try send(["WATCHDOG=1"])
    }

    /// `EXTEND_TIMEOUT_USEC=`: ask for more time to start, reload or stop (a long restore).
    @discardableResult
    public func extendTimeout(by duration: Duration) throws(SystemdNotifyError) -> Bool {
        let (seconds, attoseconds) = duration.components
        let usec = max(0, seconds) * 1_000_000 + attoseconds / 1_000_000_000_000
        return try send(["EXTEND_TIMEOUT_USEC=\(usec)"])
    }

    /// `FDSTORE=1` + `FDNAME=`: hands systemd a duplicate of `fd` to keep across restarts; it
    /// comes back in `LISTEN_FDS` / `LISTEN_FDNAMES` (see `SocketActivation`). With `poll`
    /// false (`FDPOLL=0`) systemd does not drop the fd when it signals EPOLLHUP/EPOLLERR —
    /// what an iommufd, a device fd or a memfd needs. Needs `FileDescriptorStoreMax=` > 0.
    @discardableResult
    public func storeFileDescriptor(_ fd: Int32, name: String, poll: Bool = false) throws(SystemdNotifyError) -> Bool {
        try Self.checkName(name)
        var fields = ["FDSTORE=1", "FDNAME=\(name)"]
        if !poll { fields.append("FDPOLL=0") }
        return try send(fields, fds: [fd])
    }

    /// `FDSTOREREMOVE=1` + `FDNAME=`: systemd closes every stored fd of that name.
    @discardableResult
    public func removeStoredFileDescriptors(name: String) throws(SystemdNotifyError) -> Bool {
        try Self.checkName(name)
        return try send(["FDSTOREREMOVE=1", "FDNAME=\(name)"])
    }

    /// The raw protocol: newline-separated `KEY=VALUE` fields, optionally with fds.
    @discardableResult
    public func send(_ fields: [String], fds: [Int32] = []) throws(SystemdNotifyError) -> Bool {
        let message = fields.joined(separator: "\n")
        let rc: Int32 =
            fds.isEmpty
            ? sd_notify(0, message)
            : fds.withUnsafeBufferPointer { sd_pid_notify_with_fds(0, 0, message, $0.baseAddress, UInt32($0.count)) }
        if rc < 0 { throw SystemdNotifyError(message: message, errno: Errno(-rc)) }
        return rc > 0
    }

    /// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
    public static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    /// systemd's rule for fd names: 1 to 255 printable ASCII characters, no `:`.
    public static func isValidFDName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 255 && name.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7f && $0 != UInt8(ascii: ":") }
    }

    private static func checkName(_ name: String) throws(SystemdNotifyError) {
        guard isValidFDName(name) else {
            throw SystemdNotifyError(
                message: "FDNAME=\(name)", errno: .EINVAL,
                detail: "an fd name is 1 to 255 printable ASCII characters without ':'")
        }
    }

    private func statusField(_ status: String?) -> [String] {
        guard let status else { return [] }
        // One field per line: a newline would end STATUS= and start a bogus field.
        return ["STATUS=" + status.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).joined(separator: " ")]
    }
}

/// sd_notify failed: the socket in `NOTIFY_SOCKET` is unusable, or the message was invalid.
public struct SystemdNotifyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was being sent (the `KEY=VALUE` lines).
    public var message: String
    public var errno: Errno
    public var detail: String?

    public init(message: String, errno: Errno, detail: String? = nil) {
        self.message = message
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        let what = message.split(separator: "\n").first.map(String.init) ?? message
        return "sd_notify(\(what)) failed: \(errno)" + (detail.map { ": \($0)" } ?? "")
    }
}
