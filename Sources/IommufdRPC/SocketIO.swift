#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CIommufd
import IommufdCore

/// Thin throwing layer over the socket syscalls the transport uses. EINTR is retried here (by
/// `retryOnInterrupt`), EAGAIN is returned to the caller.
enum SocketIO {
    struct Received {
        var count: Int
        var fds: [Int32]
        /// The peer sent more fds than fit: every one of them was closed.
        var fdsTruncated: Bool
        /// The fds could not all be received (the process's fd limit): every one was closed.
        var fdsLost: Bool
    }

    static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, fds: [Int32]) -> Result<Int, Errno> {
        retryOnInterrupt {
            fds.withUnsafeBufferPointer { f in
                ciommufd_send_with_fds(fd, bytes.baseAddress, bytes.count, f.baseAddress, UInt32(f.count), 0)
            }
        }
    }

    static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, maxFDs: Int) -> Result<Received, Errno> {
        let capacity = max(0, min(maxFDs, Int(CIOMMUFD_SCM_MAX_FDS)))
        return withUnsafeTemporaryAllocation(of: Int32.self, capacity: max(capacity, 1)) { fdBuffer in
            var count: UInt32 = 0
            var truncated: Int32 = 0
            let result = retryOnInterrupt {
                ciommufd_recv_with_fds(fd, buffer.baseAddress, buffer.count, fdBuffer.baseAddress, UInt32(capacity), &count, &truncated, 0)
            }
            return result.map { n in
                Received(count: n, fds: Array(fdBuffer.prefix(Int(count))), fdsTruncated: truncated != 0,
                         fdsLost: truncated == CIOMMUFD_FDS_LOST)
            }
        }
    }

    static func peerCredentials(_ fd: Int32) -> Result<RPCPeer, Errno> {
        var uid: UInt32 = 0, gid: UInt32 = 0, pid: Int32 = 0
        if ciommufd_peer_credentials(fd, &uid, &gid, &pid) != 0 { return .failure(.current) }
        return .success(RPCPeer(uid: uid, gid: gid, pid: pid))
    }

    /// A `sockaddr_un` for `path`; ENAMETOOLONG when it does not fit `sun_path`.
    static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> Result<R, Errno> {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else { return .failure(.ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        return .success(withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        })
    }

    static func setNonBlocking(_ fd: Int32) -> Result<Void, Errno> {
        let flags = fcntl(fd, F_GETFL)
        if flags < 0 { return .failure(.current) }
        if fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 { return .failure(.current) }
        return .success(())
    }

    static func setCloseOnExec(_ fd: Int32) -> Result<Void, Errno> {
        let flags = fcntl(fd, F_GETFD)
        if flags < 0 { return .failure(.current) }
        if fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0 { return .failure(.current) }
        return .success(())
    }

    static func intOption(_ fd: Int32, _ level: Int32, _ name: Int32) -> Result<Int32, Errno> {
        var value: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, level, name, &value, &size) != 0 { return .failure(.current) }
        return .success(value)
    }

    static func closeAll(_ fds: [Int32]) {
        for fd in fds { _ = Glibc.close(fd) }
    }
}

/// A failure of the transport itself (not a JSON-RPC error answered by the daemon): what
/// failed, on which socket, and what to do about it.
public struct RPCTransportError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// Nothing listens at the path (ENOENT): the daemon is not running.
        case noDaemon
        /// EACCES/EPERM on the socket.
        case permissionDenied
        /// ECONNREFUSED: a socket file without a listener (stale), or a full backlog.
        case connectionRefused
        /// Another process already serves the path (server start).
        case addressInUse
        /// The peer closed the connection.
        case disconnected
        /// No answer within the timeout.
        case timedOut
        /// The peer sent something that is not JSON-RPC.
        case protocolViolation
        /// Any other system call failure.
        case system
    }

    public var kind: Kind
    public var errno: Errno?
    /// The socket path, when there is one.
    public var path: String?
    public var message: String

    public init(_ kind: Kind, errno: Errno? = nil, path: String? = nil, message: String) {
        self.kind = kind
        self.errno = errno
        self.path = path
        self.message = message
    }

    public var description: String { message }

    /// Maps a `connect(2)` failure to a message a user can act on.
    static func connectFailed(_ errno: Errno, path: String) -> RPCTransportError {
        switch errno {
        case .ENOENT:
            return .init(.noDaemon, errno: errno, path: path, message: "no daemon at \(path): is iommufdd running? (connect: ENOENT)")
        case .EACCES, .EPERM:
            return .init(.permissionDenied, errno: errno, path: path,
                         message: "permission denied on \(path) (connect: \(errno.name)): the socket is for root and the iommufdd group; ask an administrator to add your user to that group")
        case .ECONNREFUSED:
            return .init(.connectionRefused, errno: errno, path: path,
                         message: "connection refused at \(path) (connect: ECONNREFUSED): the socket exists but no iommufdd is listening (stale socket, or the daemon is overloaded)")
        case .ENAMETOOLONG:
            return .init(.system, errno: errno, path: path, message: "socket path \(path) is too long for a Unix socket (at most 107 bytes)")
        case .ENOTDIR:
            return .init(.noDaemon, errno: errno, path: path, message: "no daemon at \(path): a component of the path is not a directory (connect: ENOTDIR)")
        default:
            return .init(.system, errno: errno, path: path, message: "cannot connect to \(path): connect failed with \(errno)")
        }
    }
}
