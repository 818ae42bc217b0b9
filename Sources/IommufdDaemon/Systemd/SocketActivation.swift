import Foundation
import IommufdCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The file descriptors systemd passed at start (sd_listen_fds(3)): `LISTEN_PID` names this
/// process, `LISTEN_FDS` counts fds starting at 3, `LISTEN_FDNAMES` names them (colon-separated)
/// — the `.socket` unit's `FileDescriptorName=` or the fd store's `FDNAME=`.
///
/// iommufdd expects its listening socket under the name `control`; every other fd comes from
/// the fd store (the iommufd, device fds, memfds, the journal), for restart recovery.
public struct SocketActivation: Sendable, Equatable {
    /// The name of the listening control socket (`FileDescriptorName=control`).
    public static let controlName = "control"
    /// `SD_LISTEN_FDS_START`.
    public static let firstFD: Int32 = 3

    public struct PassedFD: Sendable, Equatable {
        public var fd: Int32
        /// The name systemd gave; `"unknown"` when `LISTEN_FDNAMES` was not set.
        public var name: String
        public init(fd: Int32, name: String) {
            self.fd = fd
            self.name = name
        }
    }

    /// Every passed fd, in order.
    public let fds: [PassedFD]
    /// Whether `LISTEN_FDNAMES` was set (when not, systemd's convention names them "unknown").
    public let namesGiven: Bool

    public init(fds: [PassedFD], namesGiven: Bool) {
        self.fds = fds
        self.namesGiven = namesGiven
    }

    /// Reads the protocol's variables from `environment`. nil when nothing was passed to this
    /// process (`LISTEN_PID` unset or another pid's, or `LISTEN_FDS` unset or 0).
    public static func parse(
        environment: [String: String], pid: pid_t, firstFD: Int32 = SocketActivation.firstFD
    ) throws(SocketActivationError) -> SocketActivation? {
        guard let pidText = environment["LISTEN_PID"] else { return nil }
        guard let listenPID = pid_t(pidText), listenPID > 0 else {
            throw .malformed(variable: "LISTEN_PID", value: pidText)
        }
        guard listenPID == pid else { return nil }  // meant for another process (our parent)
        guard let countText = environment["LISTEN_FDS"] else { return nil }
        guard let count = Int(countText), count >= 0, count <= Int(Int32.max - firstFD) else {
            throw .malformed(variable: "LISTEN_FDS", value: countText)
        }
        guard count > 0 else { return nil }
        var names = Array(repeating: "unknown", count: count)
        let namesText = environment["LISTEN_FDNAMES"]
        if let namesText {
            let given = namesText.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard given.count == count else {
                throw .nameCountMismatch(fds: count, names: given.count, value: namesText)
            }
            names = given
        }
        let fds = names.enumerated().map { PassedFD(fd: firstFD + Int32($0.offset), name: $0.element) }
        return SocketActivation(fds: fds, namesGiven: namesText != nil)
    }

    /// The fds passed to this process. It marks them close-on-exec and removes the variables
    /// from the environment (children must not believe the fds are theirs), as
    /// sd_listen_fds(unset_environment=1) does.
    public static func inherited() throws(SocketActivationError) -> SocketActivation? {
        let activation = try parse(environment: ProcessInfo.processInfo.environment, pid: getpid())
        for passed in activation?.fds ?? [] {
            let flags = fcntl(passed.fd, F_GETFD)
            guard flags >= 0 else { throw .notOpen(fd: passed.fd, name: passed.name, errno: .current) }
            _ = fcntl(passed.fd, F_SETFD, flags | FD_CLOEXEC)
        }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        return activation
    }

    /// The listening socket to serve on, checked to be a listening `AF_UNIX` `SOCK_STREAM`
    /// socket; nil when none was passed (the daemon then creates its own).
    ///
    /// The socket is the fd named `control`; without `LISTEN_FDNAMES`, a single passed fd
    /// (`systemd-socket-activate` with no `--fdname`).
    public func controlSocket() throws(SocketActivationError) -> Int32? {
        let named = fds.filter { $0.name == Self.controlName }
        if named.count > 1 { throw .duplicateName(name: Self.controlName, fds: named.map(\.fd)) }
        if let control = named.first {
            try Self.checkListeningUnixStream(control)
            return control.fd
        }
        if !namesGiven, fds.count == 1 {
            try Self.checkListeningUnixStream(fds[0])
            return fds[0].fd
        }
        // A listening socket under another name is a unit without FileDescriptorName=control:
        // serving on a socket of our own instead would leave systemd's unused and confuse everyone.
        for passed in fds where (try? Self.checkListeningUnixStream(passed)) != nil {
            throw .controlSocketMisnamed(fd: passed.fd, name: passed.name)
        }
        return nil
    }

    /// The fds other than the control socket: what the fd store gave back.
    public var storedFDs: [PassedFD] {
        if !namesGiven && fds.count == 1 { return [] }
        return fds.filter { $0.name != Self.controlName }
    }

    /// The fds passed under `name` (the fd store may hold several with one name).
    public func fds(named name: String) -> [Int32] {
        fds.filter { $0.name == name }.map(\.fd)
    }

    /// Throws unless `passed.fd` is a listening Unix stream socket.
    public static func checkListeningUnixStream(_ passed: PassedFD) throws(SocketActivationError) {
        var st = stat()
        guard fstat(passed.fd, &st) == 0 else { throw .notOpen(fd: passed.fd, name: passed.name, errno: .current) }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw .notASocket(fd: passed.fd, name: passed.name) }
        func option(_ name: Int32) throws(SocketActivationError) -> Int32 {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(passed.fd, SOL_SOCKET, name, &value, &length) == 0 else {
                throw .notOpen(fd: passed.fd, name: passed.name, errno: .current)
            }
            return value
        }
        let domain = try option(SO_DOMAIN)
        guard domain == AF_UNIX else { throw .wrongFamily(fd: passed.fd, name: passed.name, family: domain) }
        let type = try option(SO_TYPE)
        guard type == Int32(SOCK_STREAM.rawValue) else { throw .wrongType(fd: passed.fd, name: passed.name, type: type) }
        guard try option(SO_ACCEPTCONN) != 0 else { throw .notListening(fd: passed.fd, name: passed.name) }
    }
}

/// Why the fds systemd passed cannot be used. Each case names the fd and what to fix.
public enum SocketActivationError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(variable: String, value: String)
    case nameCountMismatch(fds: Int, names: Int, value: String)
    case duplicateName(name: String, fds: [Int32])
    case notOpen(fd: Int32, name: String, errno: Errno)
    case notASocket(fd: Int32, name: String)
    case wrongFamily(fd: Int32, name: String, family: Int32)
    case wrongType(fd: Int32, name: String, type: Int32)
    case notListening(fd: Int32, name: String)
    case controlSocketMisnamed(fd: Int32, name: String)

    public var description: String {
        switch self {
        case .malformed(let variable, let value):
            return "socket activation: \(variable)=\"\(value)\" is not a valid number"
        case .nameCountMismatch(let fds, let names, let value):
            return "socket activation: LISTEN_FDS=\(fds) but LISTEN_FDNAMES=\"\(value)\" has \(names) names"
        case .duplicateName(let name, let fds):
            return "socket activation: fds \(fds.map(String.init).joined(separator: ", ")) are all named \"\(name)\"; "
                + "only one socket unit may use FileDescriptorName=\(name)"
        case .notOpen(let fd, let name, let errno):
            return "socket activation: fd \(fd) (\"\(name)\") is unusable: \(errno)"
        case .notASocket(let fd, let name):
            return "socket activation: fd \(fd) (\"\(name)\") is not a socket"
        case .wrongFamily(let fd, let name, let family):
            return "socket activation: fd \(fd) (\"\(name)\") is not a Unix socket (address family \(family)); "
                + "use ListenStream=/path in iommufdd.socket"
        case .wrongType(let fd, let name, let type):
            return "socket activation: fd \(fd) (\"\(name)\") is not a stream socket (type \(type)); "
                + "use ListenStream=, not ListenDatagram= or ListenSequentialPacket="
        case .notListening(let fd, let name):
            return "socket activation: fd \(fd) (\"\(name)\") is a connected socket, not a listening one; "
                + "iommufdd.socket must not set Accept=yes"
        case .controlSocketMisnamed(let fd, let name):
            return "socket activation: fd \(fd) is a listening socket named \"\(name)\", but iommufdd serves on the one "
                + "named \"control\"; set FileDescriptorName=control in the socket unit"
        }
    }
}
