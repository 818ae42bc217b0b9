#if canImport(Glibc)
import Glibc
#endif

// MARK: i14audit

extension Broker {
    /// Whether the holder of a queue's fd still has it open: the daemon's end of the socket pair
    /// has not seen the other end close. The pump notices a hang-up on its own thread and then
    /// forgets the relay (`pumpRelay`); until it has, `queue.list` asks the socket itself, so
    /// `connected` is true of the moment it is asked (a holder that just exited shows `no`).
    static func holderConnected(_ relayFD: Int32) -> Bool {
        let rdhup: Int16 = 0x2000  // POLLRDHUP (a _GNU_SOURCE name)
        var p = pollfd(fd: relayFD, events: rdhup, revents: 0)
        guard poll(&p, 1, 0) == 1 else { return true }
        return p.revents & (Int16(POLLHUP | POLLERR | POLLNVAL) | rdhup) == 0
    }
}

/// A socket that holds one fd in flight (SCM_RIGHTS, never received): what the daemon puts in
/// the fd store for a queue's kernel fd. Every event and fault queue fd is a file of the kernel's
/// one anonymous inode (anon_inode_getfile) with flags O_RDWR, and systemd's fd store drops an fd
/// its `same_fd()` takes for a stored one. systemd 256 does, for two queue fds, on a kernel
/// without kcmp (or with kcmp denied to it): its fallback compares file type, st_dev, st_ino and
/// F_GETFL only, so the store would keep one queue's fd and a restart lose the others. systemd
/// 252-255 do not (their fallback never takes a file of type 0 — fstat's answer for an
/// anonymous inode — for another: seen with systemd 252 in the test VM), nor does 257 and later
/// (F_DUPFD_QUERY). docs/queues.md has the table; the test supervisor models each
/// (SystemdSameFD). Each capsule is a socket of its own inode, which no systemd merges. Taking
/// the fd back peeks (MSG_PEEK), so the capsule the store holds keeps it for the next restart.
enum FDCapsule {
    /// `struct cmsghdr` (size_t len, int level, int type) then one int, padded: CMSG_SPACE(4).
    private static let controlSpace = 24
    private static let controlLength = 20  // CMSG_LEN(sizeof(int))

    /// A new capsule holding a copy of `fd` (the caller closes both when done), or nil.
    static func wrap(_ fd: Int32) -> Int32? {
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else { return nil }
        defer { close(ends[0]) }
        var control = [UInt64](repeating: 0, count: controlSpace / 8)
        control.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt64(controlLength), toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: Int32(SOL_SOCKET), toByteOffset: 8, as: Int32.self)
            raw.storeBytes(of: Int32(SCM_RIGHTS), toByteOffset: 12, as: Int32.self)
            raw.storeBytes(of: fd, toByteOffset: 16, as: Int32.self)
        }
        var byte: UInt8 = 0x51
        let sent = withUnsafeMutablePointer(to: &byte) { bytePointer in
            control.withUnsafeMutableBytes { raw -> Int in
                var iov = iovec(iov_base: UnsafeMutableRawPointer(bytePointer), iov_len: 1)
                return withUnsafeMutablePointer(to: &iov) { iovPointer in
                    var msg = msghdr()
                    msg.msg_iov = iovPointer
                    msg.msg_iovlen = 1
                    msg.msg_control = raw.baseAddress
                    msg.msg_controllen = raw.count
                    return sendmsg(ends[0], &msg, Int32(MSG_NOSIGNAL))
                }
            }
        }
        guard sent == 1 else {
            close(ends[1])
            return nil
        }
        return ends[1]
    }

    /// A new fd for the file `capsule` holds (the capsule keeps it), or nil when `capsule` is
    /// not a socket holding one (an fd stored as it is).
    static func unwrap(_ capsule: Int32) -> Int32? {
        var st = stat()
        guard fstat(capsule, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else { return nil }
        var control = [UInt64](repeating: 0, count: controlSpace / 8)
        var byte: UInt8 = 0
        let received = withUnsafeMutablePointer(to: &byte) { bytePointer in
            control.withUnsafeMutableBytes { raw -> Int in
                var iov = iovec(iov_base: UnsafeMutableRawPointer(bytePointer), iov_len: 1)
                return withUnsafeMutablePointer(to: &iov) { iovPointer in
                    var msg = msghdr()
                    msg.msg_iov = iovPointer
                    msg.msg_iovlen = 1
                    msg.msg_control = raw.baseAddress
                    msg.msg_controllen = raw.count
                    return recvmsg(capsule, &msg, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT) | Int32(MSG_CMSG_CLOEXEC))
                }
            }
        }
        guard received == 1 else { return nil }
        let (length, level, type, fd) = control.withUnsafeBytes { raw in
            (raw.load(fromByteOffset: 0, as: UInt64.self), raw.load(fromByteOffset: 8, as: Int32.self),
             raw.load(fromByteOffset: 12, as: Int32.self), raw.load(fromByteOffset: 16, as: Int32.self))
        }
        guard length == UInt64(controlLength), level == Int32(SOL_SOCKET), type == Int32(SCM_RIGHTS), fd >= 0 else { return nil }
        return fd
    }
}
