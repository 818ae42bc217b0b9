import Foundation
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// libiommufdd (libiommufdd/, the C client of the VMM channel) against the real `iommufdd` on
/// the simulator: this test plays the manager, `libiommufdd/tests/channel_test.c` the VMM. The
/// library is built with its own Makefile (no SwiftPM), and installed into a temporary prefix
/// to check that `pkg-config --cflags --libs iommufdd` builds a program against it.
@Suite("libiommufdd against the real daemon", .serialized)
struct LibIommufddTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let library = root + "/libiommufdd"

    static func make(_ arguments: [String]) throws {
        let r = try SpawnedProcess.run("/usr/bin/env", ["make", "-s", "-C", library] + arguments)
        guard r.status == 0 else { throw TestFailure("make \(arguments.joined(separator: " ")) in libiommufdd/ failed (\(r.status)):\n\(r.output)\n\(r.error)") }
    }

    @Test("the C test program drives the hot path through libiommufdd, as a uid with no role in the daemon")
    func channelTest() throws {
        try Self.make([])
        let daemon = try DaemonProcess()
        let mgr = try daemon.client()
        _ = try mgr.call("owner.create", ["name": "vm-c", "dirty": "preferred"])
        let ioas = try #require(try mgr.call("ioas.create", ["owner": "vm-c"])["ioas"]?.int)
        let ioas2 = try #require(try mgr.call("ioas.create", ["owner": "vm-c"])["ioas"]?.int)
        // A dirty-tracked mapping the simulated device writes pages 1, 2 and 5 of.
        let guest = try makeMemfd(bytes: 1 << 20)
        defer { close(guest) }
        let dirtyIOVA: UInt64 = 0x800_0000
        _ = try mgr.call("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 0], "offset": 0, "length": .int(64 * 4096), "iova": .unsigned(dirtyIOVA)], fds: [guest])
        _ = try mgr.call("device.attach", ["owner": "vm-c", "device": "sim-pci0", "ioas": .int(ioas)])
        _ = try mgr.call("dirty.start", ["ioas": .int(ioas)])
        try mgr.call("sim.dma", ["device": "sim-pci0", "iova": .unsigned(dirtyIOVA + 4096), "length": .unsigned(2 * 4096)])
        try mgr.call("sim.dma", ["device": "sim-pci0", "iova": .unsigned(dirtyIOVA + 5 * 4096), "length": .unsigned(4096)])
        // Another owner's device, for the program to be refused.
        _ = try mgr.call("owner.create", ["name": "vm-other"])
        let otherIOAS = try #require(try mgr.call("ioas.create", ["owner": "vm-other"])["ioas"]?.int)
        _ = try mgr.call("device.attach", ["owner": "vm-other", "device": "sim-pci1", "ioas": .int(otherIOAS)])

        let (delegated, fds) = try mgr.call("owner.delegate", params: ["name": "vm-c"], timeout: .seconds(60))
        #expect(delegated["channel"]?.uint != nil)
        let channel = try #require(fds.first)
        defer { close(channel) }
        let program = Self.library + "/build/channel-test"
        let arguments = ["3", "vm-c", "\(ioas)", "\(ioas2)", "0x" + String(dirtyIOVA, radix: 16), "0x26"]
        // The channel is a capability: a uid the daemon's config does not know uses it.
        let asStranger = getuid() == 0
        let r = asStranger
            ? try SpawnedProcess.run("/usr/bin/setpriv", ["--reuid=\(TestUID.unlisted)", "--regid=\(TestUID.unlisted)", "--clear-groups", program] + arguments, inherit: [(channel, 3)])
            : try SpawnedProcess.run(program, arguments, inherit: [(channel, 3)])
        #expect(r.status == 0, "channel-test failed (\(r.status)):\n\(r.output)\n\(r.error)")
        #expect(r.output.contains(" passed, 0 failed"), "\(r.output)")
        if asStranger { #expect(r.output.contains("running as uid \(TestUID.unlisted)"), "\(r.output)") }
        // What the program left mapped is what the manager sees.
        let info = try mgr.call("ioas.info", ["ioas": .int(ioas)])
        let iovas = Set(info["mappings"]?.arrayValue?.compactMap { $0["iova"]?.uint } ?? [])
        let auto = r.output.split(separator: "\n").first { $0.hasPrefix("auto_iova=") }.flatMap { UInt64($0.dropFirst(12), radix: 16) }
        #expect(iovas == [dirtyIOVA, 0x100_0000, try #require(auto)], "\(info)")
        #expect(try mgr.call("ioas.info", ["ioas": .int(ioas2)])["mapping_count"] == 1)
    }

    // MARK: chnested

    @Test("the C test program allocates, replaces onto, invalidates and destroys nested HWPTs and takes a queue fd through libiommufdd")
    func nestedTest() throws {
        try Self.make([])
        var config = TestConfig()
        config.allow = ["mock-pci0"]
        config.extra = """
            [[sim.iommu]]
            name = "mock0"
            driver = "selftest-mock"
            nesting = true

            [[sim.device]]
            name = "mock-pci0"
            iommu = "mock0"
            pci_address = "0000:01:00.0"
            """
        let daemon = try DaemonProcess(config: config)
        let mgr = try daemon.client()
        _ = try mgr.call("owner.create", ["name": "vm-n"])
        let ioas = try #require(try mgr.call("ioas.create", ["owner": "vm-n"])["ioas"]?.int)
        _ = try mgr.call("device.attach", ["owner": "vm-n", "device": "mock-pci0", "ioas": .int(ioas)])
        let created = try mgr.call("viommu.create", ["device": "mock-pci0"])
        let viommu = try #require(created["viommu"]?.int), parent = try #require(created["nest_parent"]?.int)
        _ = try mgr.call("vdevice.create", ["viommu": .int(viommu), "device": "mock-pci0", "virtual_id": 7])
        let (fault, faultFDs) = try mgr.call("fault.create", params: ["owner": "vm-n"], timeout: .seconds(60))
        for fd in faultFDs { close(fd) }
        let queue = try #require(fault["queue"]?["queue"]?.int)

        let (_, fds) = try mgr.call("owner.delegate", params: ["name": "vm-n"], timeout: .seconds(60))
        let channel = try #require(fds.first)
        defer { close(channel) }
        let program = Self.library + "/build/nested-test"
        let arguments = ["3", "mock-pci0", "\(parent)", "\(viommu)", "\(queue)"]
        let r = getuid() == 0
            ? try SpawnedProcess.run("/usr/bin/setpriv", ["--reuid=\(TestUID.unlisted)", "--regid=\(TestUID.unlisted)", "--clear-groups", program] + arguments, inherit: [(channel, 3)])
            : try SpawnedProcess.run(program, arguments, inherit: [(channel, 3)])
        #expect(r.status == 0, "nested-test failed (\(r.status)):\n\(r.output)\n\(r.error)")
        #expect(r.output.contains(" passed, 0 failed"), "\(r.output)")
        // What the program left is what the manager sees: the two nested HWPTs it kept, the device
        // back on the nest parent.
        let kept = r.output.split(separator: "\n").first { $0.hasPrefix("nested=") }.map { $0.dropFirst(7).split(separator: ",").compactMap { Int64($0) } } ?? []
        let hwpts = try mgr.call("hwpt.list", ["owner": "vm-n"])["hwpts"]?.arrayValue ?? []
        let nested = Set(hwpts.filter { $0["nested"] != nil && $0["nested"] != .null }.compactMap { $0["hwpt"]?.int })
        #expect(kept.count == 2 && nested == Set(kept), "\(hwpts)")
        #expect(try mgr.call("device.info", ["device": "mock-pci0"])["pt"]?.int == parent)
        let released = try mgr.call("owner.release", ["name": "vm-n"])
        #expect(released["released"] == true, "\(released)")
    }

    @Test("make install puts the header, library and iommufdd.pc in a prefix; pkg-config builds against them")
    func installAndPkgConfig() throws {
        let prefix = try TemporaryDirectory("libiommufdd-install")
        try Self.make(["install", "PREFIX=\(prefix.path)", "BUILD=\(prefix.path)/build"])
        for file in ["include/iommufdd.h", "lib/libiommufdd.so", "lib/libiommufdd.so.0", "lib/pkgconfig/iommufdd.pc"] {
            #expect(FileManager.default.fileExists(atPath: prefix.path + "/" + file), "\(file) not installed")
        }
        var env = ProcessInfo.processInfo.environment
        env["PKG_CONFIG_PATH"] = prefix.path + "/lib/pkgconfig"
        let flags = try SpawnedProcess.run("/usr/bin/env", ["pkg-config", "--cflags", "--libs", "iommufdd"], environment: env)
        #expect(flags.status == 0, "\(flags.error)")
        #expect(flags.output.trimmingCharacters(in: .whitespacesAndNewlines) == "-I\(prefix.path)/include -L\(prefix.path)/lib -liommufdd")
        let source = prefix.path + "/example.c"
        try """
            #include <iommufdd.h>
            #include <stdio.h>
            int main(void) {
                struct iommufdd_error e;
                return iommufdd_channel_adopt(-1, &e) == NULL ? 0 : 1;
            }
            """.write(toFile: source, atomically: true, encoding: .utf8)
        let build = try SpawnedProcess.run("/bin/sh", ["-c", "cc -o \(prefix.path)/example \(source) $(pkg-config --cflags --libs iommufdd) -Wl,-rpath,\(prefix.path)/lib"], environment: env)
        #expect(build.status == 0, "\(build.output)\(build.error)")
        let run = try SpawnedProcess.run(prefix.path + "/example", [])
        #expect(run.status == 0, "the example linked against the installed library failed: \(run.output)\(run.error)")
        // The shipped example VMM builds the same way (it runs in the test VM: vm-e2e mini-vmm).
        let vmm = try SpawnedProcess.run("/bin/sh", ["-c", "cc -Wall -Werror -o \(prefix.path)/mini-vmm \(Self.library)/examples/mini-vmm.c $(pkg-config --cflags --libs iommufdd) -Wl,-rpath,\(prefix.path)/lib"], environment: env)
        #expect(vmm.status == 0, "\(vmm.output)\(vmm.error)")
        let usage = try SpawnedProcess.run(prefix.path + "/mini-vmm", [])
        #expect(usage.status == 2 && usage.error.contains("usage: "), "\(usage.output)\(usage.error)")
        // The wrapper is installed beside it.
        #expect(FileManager.default.isExecutableFile(atPath: prefix.path + "/bin/iommufdd-confine"))
    }
}
