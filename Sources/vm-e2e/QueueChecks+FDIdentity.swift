#if canImport(Glibc)
import Glibc
#endif
import CIommufd
import Foundation
import IommufdCore
import IommufdKernel
import IommufdTestSupervisor

// MARK: samefd

/// What systemd's same_fd() sees of two iommufd fault queue fds on this kernel (the test VM's
/// Linux 7.3, no CONFIG_CHECKPOINT_RESTORE): fstat's st_dev/st_ino/st_mode, F_GETFL,
/// lseek(SEEK_CUR), kcmp(KCMP_FILE) and F_DUPFD_QUERY, printed; and the test supervisor's model
/// (SystemdSameFD) of systemd 252, which must keep the two apart, as systemd 252 as this VM's
/// PID 1 did (vm-e2e systemd, two-queues-*: they pass with the daemon's FDCapsule turned off).
extension QueueChecks {
    static func queueFDIdentity(_ backend: KernelBackend) throws {
        let q1 = try backend.allocFaultQueue()
        let q2: EventQueue
        do { q2 = try backend.allocFaultQueue() } catch {
            try? backend.destroy(q1.id)
            throw error
        }
        defer {
            try? backend.destroy(q1.id)
            try? backend.destroy(q2.id)
        }
        var st: [stat] = [stat(), stat()]
        for (i, q) in [q1, q2].enumerated() {
            try expect(fstat(q.fd, &st[i]) == 0, "fstat of fault queue \(q.id)'s fd: errno \(errno)")
            errno = 0
            let offset = lseek(q.fd, 0, SEEK_CUR)
            let lseekErrno = offset < 0 ? String(describing: Errno(rawValue: errno)) : "-"
            print("      fault queue \(q.id) fd \(q.fd): st_dev \(st[i].st_dev) st_ino \(st[i].st_ino) st_mode 0\(String(st[i].st_mode, radix: 8)) F_GETFL 0\(String(fcntl(q.fd, F_GETFL), radix: 8)) lseek(SEEK_CUR) \(offset) errno \(lseekErrno)")
        }
        errno = 0
        let k = ifd_kcmp_file(q1.fd, q2.fd)
        let kErrno = k < 0 ? String(describing: Errno(rawValue: errno)) : "-"
        errno = 0
        let dq = fcntl(q1.fd, 1024 + 3, q2.fd)  // F_DUPFD_QUERY
        let dqErrno = dq < 0 ? String(describing: Errno(rawValue: errno)) : "-"
        print("      kcmp(KCMP_FILE) \(k) errno \(kErrno); F_DUPFD_QUERY \(dq) errno \(dqErrno)")
        let answers = [252, 255, 256, 257].map { v in "systemd \(v): \(SystemdSameFD(systemdVersion: v, kernel: .host).compare(q1.fd, q2.fd))" }
        print("      the supervisor's same_fd() model on this kernel: \(answers.joined(separator: ", "))")
        try expect(st[0].st_dev == st[1].st_dev && st[0].st_ino == st[1].st_ino, "two fault queue fds are not one inode")
        try expect(SystemdSameFD(systemdVersion: 252, kernel: .host).compare(q1.fd, q2.fd) == .different,
                   "the model of systemd 252 takes two fault queues for one file, which systemd 252 in this VM does not (vm-e2e systemd)")
    }
}
