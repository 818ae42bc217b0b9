import Foundation
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Device-fd confinement (docs/SECURITY.md, "Device fds"): `iommufdd_confine()` in libiommufdd
/// and the `iommufdd-confine` exec wrapper. `libiommufdd/tests/confine_test.c` makes the checks
/// (seccomp needs no root: PR_SET_NO_NEW_PRIVS); on /dev/null the four denied VFIO ioctls answer
/// ENOTTY unconfined (the driver knows none) and EPERM confined (the filter), whatever the upper
/// 32 bits of the request, through the 32-bit ABI too; other ioctls still reach the driver; the
/// filter is inherited by children; the wrapper confines the command it runs.
@Suite("Device-fd confinement (seccomp)", .serialized)
struct ConfineTests {
    static let library = LibIommufddTests.library

    @Test("a confined process gets EPERM for the four VFIO ioctls on any fd; everything else still works")
    func libraryAndWrapper() throws {
        try LibIommufddTests.make([])
        let r = try SpawnedProcess.run(Self.library + "/build/confine-test", [Self.library + "/build/iommufdd-confine"])
        #expect(r.status == 0, "confine-test failed (\(r.status)):\n\(r.output)\n\(r.error)")
        #expect(r.output.contains(" passed, 0 failed"), "\(r.output)")
    }

    @Test("the wrapper runs the command confined and passes its exit status and fds through")
    func wrapperStatusAndFDs() throws {
        try LibIommufddTests.make([])
        let wrapper = Self.library + "/build/iommufdd-confine"
        // The command's status comes back as the wrapper's (it execs).
        let seven = try SpawnedProcess.run(wrapper, ["--", "/bin/sh", "-c", "exit 7"])
        #expect(seven.status == 7, "\(seven.error)")
        // An inherited fd (as a manager passes the channel) is still there for the command.
        var pipe: [Int32] = [-1, -1]
        #expect(Glibc.pipe(&pipe) == 0)
        defer { close(pipe[0]); close(pipe[1]) }
        let inherited = try SpawnedProcess.run(wrapper, ["--", "/bin/sh", "-c", "echo through >&3"], inherit: [(pipe[1], 3)])
        #expect(inherited.status == 0, "\(inherited.error)")
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = read(pipe[0], &buffer, buffer.count)
        #expect(n > 0 && String(decoding: buffer[0..<n], as: UTF8.self) == "through\n")
        // No_new_privs is what the command sees (the filter needs it, and setuid gains nothing).
        let nnp = try SpawnedProcess.run(wrapper, ["--", "/bin/grep", "NoNewPrivs", "/proc/self/status"])
        #expect(nnp.output.contains("NoNewPrivs:\t1"), "\(nnp.output)")
        let plain = try SpawnedProcess.run("/bin/grep", ["NoNewPrivs", "/proc/self/status"])
        #expect(plain.output.contains("NoNewPrivs:\t0"), "\(plain.output)")
        // Errors say what failed: a usage error (2), a command that cannot run (127).
        let usage = try SpawnedProcess.run(wrapper, [])
        #expect(usage.status == 2 && usage.error.contains("usage: iommufdd-confine [--] CMD"), "\(usage.error)")
        let missing = try SpawnedProcess.run(wrapper, ["--", "/nonexistent/vmm"])
        #expect(missing.status == 127 && missing.error.contains("cannot execute /nonexistent/vmm: No such file or directory"), "\(missing.error)")
    }
}
