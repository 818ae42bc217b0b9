import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC

#if canImport(Glibc)
import Glibc
#endif

/// `vm-e2e mini-vmm`: libiommufdd's example VMM (libiommufdd/examples/mini-vmm.c) on the real
/// kernel. This harness plays the VM manager over JSON-RPC — the owner, its IOAS, the edu
/// device leased and attached, guest memory in a memfd, the delegated channel — and starts
/// `mini-vmm` with the channel and the memfd inherited (their numbers on its command line).
/// The example maps over the channel, takes the device fd, confines itself, makes the device
/// DMA, unmaps and sees the DMA blocked, and gets EPERM when it tries to attach its device to
/// another owner's IOAS (and to detach, rebind or hot-reset it). Afterwards the harness checks
/// on the control plane that the device never left its owner's IOAS.
enum MiniVMMChecks {
    static let owner = "vm-mini"
    static let other = "vm-other"

    static func runAll(run: CheckRunner) -> Bool {
        DaemonProcess.withDaemon(run: run) { _, client, directory in
            run.check("confined-vmm-dma") { try confinedVMM(client: client, directory: directory) }
        }
    }

    /// The example next to this binary (the guest installs both in /usr/bin), or $MINI_VMM.
    static func examplePath() -> String {
        if let env = ProcessInfo.processInfo.environment["MINI_VMM"], !env.isEmpty { return env }
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return ((me as NSString).deletingLastPathComponent as NSString).appendingPathComponent("mini-vmm")
    }

    static func confinedVMM(client: DaemonClient, directory: String) throws {
        defer {
            _ = try? client.release(owner)
            _ = try? client.release(other)
        }
        _ = try client.call("owner.create", OwnerCreateParams(name: owner), as: OwnerInfo.self)
        _ = try client.call("owner.create", OwnerCreateParams(name: other), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner))
        let otherIOAS: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: other))
        let attached: DeviceAttachResult = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "vfio0", ioas: ioas.ioas))
        let memory = try GuestMemory(size: DaemonChecks.mib)
        let (delegated, fds) = try client.json("owner.delegate", ["name": .string(owner)])
        guard fds.count == 1 else {
            for fd in fds { close(fd) }
            throw CheckFailure(description: "owner.delegate answered \(delegated) with \(fds.count) fds, not 1")
        }
        let channel = fds[0]
        defer { close(channel) }
        print("      owner \(owner): IOAS \(ioas.ioas), vfio0 attached (device ID \(attached.deviceID)), channel \(delegated["channel"]?.uint64Value ?? 0); owner \(other): IOAS \(otherIOAS.ioas)")

        let logPath = directory + "/mini-vmm.log"
        let (status, output) = try spawn(examplePath(), ["\(channel)", "\(memory.fd)", "\(ioas.ioas)", "vfio0", "\(otherIOAS.ioas)"],
                                         inherit: [channel, memory.fd], log: logPath)
        print(output.split(separator: "\n", omittingEmptySubsequences: false).map { "  mini-vmm| " + $0 }.joined(separator: "\n"))
        try expect(status == 0, "mini-vmm exited with status \(status)")
        try expect(output.contains(" passed, 0 failed"), "mini-vmm printed no summary")

        // The control plane: the device is where its owner put it, the other owner untouched,
        // the example unmapped what it mapped.
        let device: DeviceInfo = try client.call("device.info", DeviceInfoParams(device: "vfio0"))
        try expect(device.owner == owner && device.ioas == ioas.ioas, "vfio0 is on IOAS \(device.ioas.map(String.init) ?? "none") of \(device.owner ?? "nobody"), not IOAS \(ioas.ioas) of \(owner)")
        let mine: IOASInfo = try client.call("ioas.info", IOASInfoParams(ioas: ioas.ioas))
        try expect(mine.mappingCount == 0 && mine.devices == ["vfio0"], "IOAS \(ioas.ioas) after the example: \(mine)")
        let theirs: IOASInfo = try client.call("ioas.info", IOASInfoParams(ioas: otherIOAS.ioas))
        try expect(theirs.devices.isEmpty && theirs.hwpts.isEmpty, "the other owner's IOAS gained \(theirs.devices) / HWPTs \(theirs.hwpts)")
    }

    /// Runs `path` with the fds of `inherit` open in it at the same numbers (close-on-exec is
    /// cleared for the spawn and set again after), stdout and stderr to `log`. Returns the exit
    /// status (128 + signal when killed) and what it printed.
    static func spawn(_ path: String, _ arguments: [String], inherit: [Int32], log: String) throws -> (Int32, String) {
        let out = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard out >= 0 else { throw IommuError(.current, "open", detail: log) }
        defer { close(out) }
        // An fd kept across exec must not be close-on-exec: cleared here, set again after.
        for fd in inherit { _ = fcntl(fd, F_SETFD, 0) }
        defer { for fd in inherit { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, out, 1)
        posix_spawn_file_actions_adddup2(&actions, out, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        fflush(nil)
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard rc == 0 else { throw IommuError(Errno(rc), "posix_spawn", detail: path) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, text)
    }
}
