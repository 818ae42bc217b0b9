import CIommufd
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// systemd's `same_fd()` (src/basic/fd-util.c), the test that `service_add_fd_store()`
/// (src/core/service.c) applies to an fd sent with `FDSTORE=1` against every fd already stored:
/// when it answers true the new fd is closed and not stored ("fd already included"); when it
/// fails (a negative errno) the fd is closed too and the rest of that message's fds are dropped
/// ("Failed to add fd to store"). Read in systemd-stable's tags v252 (commit e8dc527), v252.31
/// (8c2b721, the same logic), v253, v254, v255 (as v252) and v256 (5c79cde), and in systemd's
/// main branch after PR 34675 (merged October 2024, first in v257):
///
/// 1. `a == b`: the same.
/// 2. From v257: `fcntl(a, F_DUPFD_QUERY, b)` (Linux >= 6.10): > 0 the same, 0 not. EBADF,
///    EINVAL (an older kernel), a "not supported" or a privilege errno: go on; another errno: fail.
/// 3. `kcmp(pid, pid, KCMP_FILE, a, b)`: 0 the same, > 0 not. A "not supported" errno
///    (ENOSYS: a kernel without CONFIG_KCMP, like the test VM's) or a privilege errno (EPERM: a
///    seccomp filter): go on; another: fail.
/// 4. Without either, `fstat()` both and `stat_inode_same()`: the same file type, st_dev and
///    st_ino — and up to v255 also a file type that is not 0 ("if the structure was ever
///    initialized"). From v256 (commit 1c248d7, `stat_is_set()`) that condition is `st_dev != 0`
///    instead. Not the same inode: not the same.
/// 5. A character or block device: not the same.
/// 6. Otherwise the same exactly when `F_GETFL` answers the same for both. (No systemd compares
///    the file offset.)
///
/// What this means for iommufd's event and fault queue fds (`anon_inode_getfile()`: files of the
/// kernel's one anonymous inode, flags `O_RDWR`): with F_DUPFD_QUERY or kcmp, two queues are two
/// files, never the same. Without both, fstat reports the anonymous inode with file type 0 (mode
/// 0600: measured on Linux 7.3 in the test VM by `vm-e2e queues`, check queue-fd-identity), so
/// systemd 252-255 never takes two of them for one — which is what systemd 252 as the test VM's
/// PID 1 was seen to do (`vm-e2e systemd`, two-queues-*) — while systemd 256 does, and keeps
/// only the first: the configuration the daemon's FDCapsule is for.
public struct SystemdSameFD: Sendable, Equatable {
    /// What the kernel under the modelled systemd offers to compare open files.
    public struct Kernel: Sendable, Equatable {
        /// Whether kcmp(2) is asked (false: answered ENOSYS, a kernel without CONFIG_KCMP).
        public var kcmp: Bool
        /// Whether F_DUPFD_QUERY is asked (false: answered EINVAL, a kernel before 6.10).
        public var dupfdQuery: Bool
        public init(kcmp: Bool, dupfdQuery: Bool) {
            self.kcmp = kcmp
            self.dupfdQuery = dupfdQuery
        }
        /// What this process's kernel answers.
        public static let host = Kernel(kcmp: true, dupfdQuery: true)
        /// The test VM's kernel (Linux 7.3 without CONFIG_CHECKPOINT_RESTORE): no kcmp,
        /// F_DUPFD_QUERY (which only systemd >= 257 asks).
        public static let withoutKcmp = Kernel(kcmp: false, dupfdQuery: true)
        /// Neither (a kernel before 6.10 without kcmp).
        public static let neither = Kernel(kcmp: false, dupfdQuery: false)
    }

    public enum Answer: Equatable, Sendable {
        case same
        case different
        /// same_fd() returned this negative errno: the new fd is not stored.
        case failed(Int32)
    }

    public let systemdVersion: Int
    public let kernel: Kernel

    public init(systemdVersion: Int, kernel: Kernel = .host) {
        self.systemdVersion = systemdVersion
        self.kernel = kernel
    }

    static let fDupfdQuery: Int32 = 1024 + 3  // F_DUPFD_QUERY (F_LINUX_SPECIFIC_BASE + 3)
    static let modeInvalid = mode_t.max  // systemd's MODE_INVALID, (mode_t) -1

    static func notSupported(_ e: Int32) -> Bool {
        [EOPNOTSUPP, ENOTTY, ENOSYS, EAFNOSUPPORT, EPFNOSUPPORT, EPROTONOSUPPORT, ESOCKTNOSUPPORT].contains(e)
    }
    static func privilege(_ e: Int32) -> Bool { e == EACCES || e == EPERM }

    /// same_fd(a, b) of the modelled systemd (`a` the stored fd, `b` the new one).
    public func compare(_ a: Int32, _ b: Int32) -> Answer {
        if a == b { return systemdVersion >= 257 && fcntl(a, F_GETFD) < 0 ? .failed(errno) : .same }
        if systemdVersion >= 257 {
            let r = kernel.dupfdQuery ? fcntl(a, Self.fDupfdQuery, b) : -1
            let e = kernel.dupfdQuery ? errno : EINVAL
            if r > 0 { return .same }
            if r == 0 { return fcntl(b, F_GETFD) < 0 ? .failed(errno) : .different }
            if e == EBADF {
                if fcntl(a, F_GETFD) < 0 { return .failed(errno) }
            } else if !Self.notSupported(e) && !Self.privilege(e) && e != EINVAL {
                return .failed(e)
            }
        }
        let r = kernel.kcmp ? ifd_kcmp_file(a, b) : -1
        let e = kernel.kcmp ? errno : ENOSYS
        if r >= 0 { return r == 0 ? .same : .different }
        if !Self.notSupported(e) && !Self.privilege(e) { return .failed(e) }
        var sa = stat(), sb = stat()
        if fstat(a, &sa) < 0 { return .failed(errno) }
        if fstat(b, &sb) < 0 { return .failed(errno) }
        if !inodeSame(sa, sb) { return .different }
        let type = sa.st_mode & S_IFMT
        if type == S_IFCHR || type == S_IFBLK { return .different }
        let fa = fcntl(a, F_GETFL)
        if fa < 0 { return .failed(errno) }
        let fb = fcntl(b, F_GETFL)
        if fb < 0 { return .failed(errno) }
        return fa == fb ? .same : .different
    }

    /// stat_inode_same() of the modelled version.
    func inodeSame(_ a: stat, _ b: stat) -> Bool {
        let initialized: Bool
        if systemdVersion >= 256 {
            initialized = a.st_dev != 0 && a.st_mode != Self.modeInvalid && b.st_dev != 0 && b.st_mode != Self.modeInvalid
        } else {
            initialized = a.st_mode & S_IFMT != 0
        }
        return initialized && (a.st_mode ^ b.st_mode) & S_IFMT == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }
}
