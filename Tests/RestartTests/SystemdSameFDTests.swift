import CIommufd
import Foundation
import IommufdTestSupervisor
import Testing

@testable import IommufdBroker

#if canImport(Glibc)
import Glibc
#endif

// MARK: samefd

/// Pairs of fds for systemd's same_fd() (SystemdSameFD): two of each kind, made fresh per use.
enum FDPair: String, CaseIterable, Sendable {
    /// Two eventfds: two files of the kernel's one anonymous inode, like two iommufd queue fds.
    case twoEventfds
    /// An eventfd and a dup of it: one open file.
    case eventfdAndDup
    /// Two eventfds, one O_NONBLOCK.
    case eventfdsOfDifferentFlags
    /// A pipe's two ends: one inode, O_RDONLY and O_WRONLY.
    case pipeEnds
    /// A pipe opened twice for reading (/proc/self/fd): one inode with a file type (FIFO), the
    /// same flags, two open files.
    case pipeReadEndReopened
    /// A regular file opened twice for reading, one of them read from: two open files of one
    /// inode, the same flags, different offsets.
    case fileOpenedTwiceAtDifferentOffsets
    /// A regular file opened for reading and for reading and writing.
    case fileOpenedWithDifferentFlags
    /// /dev/null opened twice: a character device.
    case devNullTwice
    /// Two eventfds, each in an FDCapsule (what the daemon stores for a queue fd).
    case twoCapsules

    /// The two fds, and everything to close afterwards.
    func make() throws -> (a: Int32, b: Int32, close: [Int32]) {
        switch self {
        case .twoEventfds:
            let a = ifd_eventfd(), b = ifd_eventfd()
            try #require(a >= 0 && b >= 0)
            return (a, b, [a, b])
        case .eventfdAndDup:
            let a = ifd_eventfd()
            try #require(a >= 0)
            let b = fcntl(a, F_DUPFD_CLOEXEC, 0)
            return (a, b, [a, b])
        case .eventfdsOfDifferentFlags:
            let a = ifd_eventfd(), b = ifd_eventfd()
            try #require(a >= 0 && b >= 0)
            _ = fcntl(a, F_SETFL, fcntl(a, F_GETFL) & ~O_NONBLOCK)
            return (a, b, [a, b])
        case .pipeEnds:
            var p: [Int32] = [-1, -1]
            try #require(pipe(&p) == 0)
            return (p[0], p[1], p)
        case .pipeReadEndReopened:
            // Both through open() (which adds O_LARGEFILE, as pipe2() does not).
            var p: [Int32] = [-1, -1]
            try #require(pipe(&p) == 0)
            let a = open("/proc/self/fd/\(p[0])", O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            let b = open("/proc/self/fd/\(p[0])", O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            try #require(a >= 0 && b >= 0, "reopening a pipe through /proc/self/fd: errno \(errno)")
            return (a, b, p + [a, b])
        case .fileOpenedTwiceAtDifferentOffsets, .fileOpenedWithDifferentFlags:
            let path = NSTemporaryDirectory() + "samefd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try #require(FileManager.default.createFile(atPath: path, contents: Data("0123456789".utf8)))
            defer { unlink(path) }
            let a = open(path, O_RDONLY | O_CLOEXEC)
            let b = open(path, (self == .fileOpenedWithDifferentFlags ? O_RDWR : O_RDONLY) | O_CLOEXEC)
            try #require(a >= 0 && b >= 0)
            if self == .fileOpenedTwiceAtDifferentOffsets { try #require(lseek(b, 4, SEEK_SET) == 4) }
            return (a, b, [a, b])
        case .devNullTwice:
            let a = open("/dev/null", O_RDONLY | O_CLOEXEC), b = open("/dev/null", O_RDONLY | O_CLOEXEC)
            try #require(a >= 0 && b >= 0)
            return (a, b, [a, b])
        case .twoCapsules:
            let e1 = ifd_eventfd(), e2 = ifd_eventfd()
            defer { close(e1); close(e2) }
            let a = try #require(FDCapsule.wrap(e1)), b = try #require(FDCapsule.wrap(e2))
            return (a, b, [a, b])
        }
    }
}

/// The test supervisor's fd store decides as systemd's same_fd() does, version by version
/// (SystemdSameFD cites the code): the answers for each pair of fds under systemd 252 on a
/// kernel without kcmp (the test VM), 256 without kcmp, and 257 with F_DUPFD_QUERY.
@Suite("systemd's same_fd() as the test supervisor models it")
struct SystemdSameFDTests {
    typealias Row = (pair: FDPair, systemd252: SystemdSameFD.Answer, systemd256: SystemdSameFD.Answer, systemd257: SystemdSameFD.Answer)

    /// Without kcmp, systemd 252-255 and 256 tell fds apart by inode, file type and F_GETFL
    /// (never the offset); 252-255 take nothing of file type 0 (an anonymous inode) for the same,
    /// not even a dup, 256 does; 257 asks F_DUPFD_QUERY, which only a dup answers yes to.
    static let rows: [Row] = [
        (.twoEventfds, .different, .same, .different),
        // 252-255 without kcmp cannot even tell a dup of an anonymous-inode file for one.
        (.eventfdAndDup, .different, .same, .same),
        (.eventfdsOfDifferentFlags, .different, .different, .different),
        (.pipeEnds, .different, .different, .different),
        (.pipeReadEndReopened, .same, .same, .different),
        (.fileOpenedTwiceAtDifferentOffsets, .same, .same, .different),
        (.fileOpenedWithDifferentFlags, .different, .different, .different),
        (.devNullTwice, .different, .different, .different),
        (.twoCapsules, .different, .different, .different),
    ]

    @Test("answers per systemd version", arguments: rows.map(\.pair))
    func answers(pair: FDPair) throws {
        let row = try #require(Self.rows.first { $0.pair == pair })
        let (a, b, fds) = try pair.make()
        defer { for fd in fds { close(fd) } }
        let withoutKcmp252 = SystemdSameFD(systemdVersion: 252, kernel: .withoutKcmp)
        let withoutKcmp255 = SystemdSameFD(systemdVersion: 255, kernel: .withoutKcmp)
        let withoutKcmp256 = SystemdSameFD(systemdVersion: 256, kernel: .withoutKcmp)
        let dupfdQuery257 = SystemdSameFD(systemdVersion: 257, kernel: .withoutKcmp)
        #expect(withoutKcmp252.compare(a, b) == row.systemd252, "systemd 252 without kcmp, \(pair)")
        #expect(withoutKcmp252.compare(b, a) == row.systemd252, "systemd 252 without kcmp, \(pair) the other way")
        #expect(withoutKcmp255.compare(a, b) == row.systemd252, "systemd 255 without kcmp, \(pair)")
        #expect(withoutKcmp256.compare(a, b) == row.systemd256, "systemd 256 without kcmp, \(pair)")
        #expect(dupfdQuery257.compare(a, b) == row.systemd257, "systemd 257 with F_DUPFD_QUERY, \(pair)")
        // 257 on a kernel with neither F_DUPFD_QUERY nor kcmp falls back as 256 does.
        #expect(SystemdSameFD(systemdVersion: 257, kernel: .neither).compare(a, b) == row.systemd256, "systemd 257 with neither, \(pair)")
        // With kcmp (asked of this kernel when it has it), only one open file is the same: as 257.
        if ifd_kcmp_file(a, b) >= 0 {
            #expect(SystemdSameFD(systemdVersion: 252, kernel: .host).compare(a, b) == row.systemd257, "systemd 252 with kcmp, \(pair)")
        }
    }

    /// What the answers for two eventfds rest on, and what the VM measured for two iommufd
    /// fault queue fds (vm-e2e queues, queue-fd-identity): one inode, file type 0, the same flags.
    @Test func anonymousInodeFilesHaveNoFileType() throws {
        let (a, b, fds) = try FDPair.twoEventfds.make()
        defer { for fd in fds { close(fd) } }
        var sa = stat(), sb = stat()
        try #require(fstat(a, &sa) == 0 && fstat(b, &sb) == 0)
        #expect(sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino, "two eventfds are not one inode here")
        #expect(sa.st_mode & S_IFMT == 0, "an anonymous inode reports file type \(String(sa.st_mode & S_IFMT, radix: 8))")
        #expect(sa.st_dev != 0)
        #expect(fcntl(a, F_GETFL) == fcntl(b, F_GETFL))
    }

    /// FDSTORE=1 through the supervisor's notify socket: what each modelled systemd keeps.
    @Test(
        "the supervisor's store keeps what systemd keeps",
        arguments: [(252, false), (256, false), (256, true), (257, false)]
    )
    func supervisorStore(systemdVersion: Int, capsules: Bool) throws {
        let sup = try Supervisor(daemonPath: "/bin/false", arguments: [], systemdVersion: systemdVersion, kernel: .withoutKcmp)
        defer { sup.shutdown() }
        let sender = try NotifySender(sup.notifyPath)
        defer { close(sender.fd) }
        let (e1, e2, fds) = try FDPair.twoEventfds.make()
        defer { for fd in fds { close(fd) } }
        var sent: [Int32] = [e1, e2]
        if capsules { sent = [try #require(FDCapsule.wrap(e1)), try #require(FDCapsule.wrap(e2))] }
        defer { if capsules { for fd in sent { close(fd) } } }
        sender.store(sent[0], "queue.1")
        sender.store(sent[1], "queue.2")
        sender.store(e1, "again")  // the first eventfd raw: another fd of queue.1's open file unless capsuled
        sender.store(e1, "last")  // and once more
        // A socket of its own inode, which every systemd stores: once it is in, all before it are.
        let marker = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(marker >= 0)
        defer { close(marker) }
        sender.store(marker, "marker")
        #expect(sup.waitForStore(timeout: 10) { $0.contains("marker") }, "the store: \(sup.storedNames)")
        let expected: [String]
        switch (systemdVersion, capsules) {
        // No file of type 0 is the same as another, not even two fds of one open file.
        case (252, _): expected = ["queue.1", "queue.2", "again", "last", "marker"]
        // The second queue fd is taken for the first, and so is every copy of it.
        case (256, false): expected = ["queue.1", "marker"]
        // The capsules are two sockets; the raw eventfd is neither, and its second copy is it.
        case (256, true): expected = ["queue.1", "queue.2", "again", "marker"]
        // F_DUPFD_QUERY: the raw eventfd is queue.1's open file.
        default: expected = ["queue.1", "queue.2", "marker"]
        }
        #expect(sup.storedNames == expected, "systemd \(systemdVersion) without kcmp, capsules \(capsules)")
    }
}

/// A datagram socket connected to a supervisor's NOTIFY_SOCKET.
struct NotifySender {
    let fd: Int32
    init(_ path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(rc == 0, "connect to \(path): errno \(errno)")
    }

    func store(_ stored: Int32, _ name: String) {
        let message = Array("FDSTORE=1\nFDNAME=\(name)\nFDPOLL=0".utf8)
        var fds = [stored]
        _ = ciommufd_send_with_fds(fd, message, message.count, &fds, 1, 0)
    }
}
