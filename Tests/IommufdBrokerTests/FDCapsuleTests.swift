#if canImport(Glibc)
import Glibc
#endif
import IommufdSim
import Testing

@testable import IommufdBroker

// MARK: i14audit

/// Queue fds go to the fd store in capsules (FDCapsule): two eventfds stand in for two kernel
/// queue fds, files of the one anonymous inode with the same flags, which systemd 256 without
/// kcmp would take for one file (systemd 252 would not: SystemdSameFDTests).
@Suite("FDCapsule: a queue fd in a socket of its own inode, taken back as often as needed")
struct FDCapsuleTests {
    @Test func capsulesOfTwoAnonymousFilesAreDistinctAndGiveTheFilesBack() throws {
        // Two fault queues of the simulator: their fds are eventfds, anonymous-inode files like
        // the kernel's queue fds. The simulator owns and closes them.
        let sim = try SimBackend(topology: .default)
        let a = try sim.allocFaultQueue().fd, b = try sim.allocFaultQueue().fd
        // (Whether the two are one inode depends on the kernel: iommufd's queue fds are on 7.3
        // (anon_inode_getfile; vm-e2e queues, queue-fd-identity), and so are eventfds on this
        // machine's 6.18. The capsules must be distinct either way.)
        let ca = try #require(FDCapsule.wrap(a)), cb = try #require(FDCapsule.wrap(b))
        defer { close(ca); close(cb) }
        var sca = stat(), scb = stat()
        try #require(fstat(ca, &sca) == 0 && fstat(cb, &scb) == 0)
        #expect(sca.st_ino != scb.st_ino, "two capsules share an inode")
        // Taken back twice (two restarts): each time a copy of the same open file — the file
        // status flags are the open file's, so O_NONBLOCK set on `a` shows on a's copy only.
        let flagsA = fcntl(a, F_GETFL)
        defer { _ = fcntl(a, F_SETFL, flagsA) }
        for round in 1...2 {
            let nonblocking = round == 1
            _ = fcntl(a, F_SETFL, nonblocking ? flagsA | O_NONBLOCK : flagsA & ~O_NONBLOCK)
            let innerA = try #require(FDCapsule.unwrap(ca), "round \(round)")
            let innerB = try #require(FDCapsule.unwrap(cb), "round \(round)")
            defer { close(innerA); close(innerB) }
            #expect((fcntl(innerA, F_GETFL) & O_NONBLOCK != 0) == nonblocking, "round \(round): the capsule's fd is not a's open file")
            #expect(fcntl(innerB, F_GETFL) & O_NONBLOCK == fcntl(b, F_GETFL) & O_NONBLOCK)
            #expect(fcntl(innerA, F_GETFD) & FD_CLOEXEC != 0)
        }
        // An fd that is not a capsule is left alone: nil, and the caller uses it as it is.
        #expect(FDCapsule.unwrap(a) == nil)
    }
}
