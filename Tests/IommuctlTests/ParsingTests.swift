import ArgumentParser
import IommufdContract
import IommufdCore
import IommufdRPC
import Testing

@testable import IommuctlKit

@Suite("Command-line parsing")
struct ParsingTests {
    func parse<T: ParsableCommand>(_ args: [String], as type: T.Type = T.self) throws -> T {
        let command = try IommuCtl.parseAsRoot(args)
        return try #require(command as? T, "parsed as \(Swift.type(of: command))")
    }

    @Test("every method family has its command")
    func tree() throws {
        let cases: [([String], any ParsableCommand.Type)] = [
            (["status"], Status.self), (["devices"], Devices.self), (["metrics"], Metrics.self),
            (["device", "info", "vfio0"], DeviceInfoCommand.self),
            (["device", "attach", "vfio0", "--owner", "vm1", "--ioas", "1"], DeviceAttach.self),
            (["device", "detach", "vfio0"], DeviceDetach.self),
            (["device", "replace", "vfio0", "--hwpt", "4"], DeviceReplace.self),
            (["device", "release", "vfio0"], DeviceRelease.self),
            (["ioas", "create", "--owner", "vm1"], IOASCreate.self), (["ioas", "destroy", "1"], IOASDestroy.self),
            (["ioas", "list"], IOASList.self), (["ioas", "info", "1"], IOASInfoCommand.self),
            (["ioas", "map", "1", "/tmp/f"], IOASMap.self), (["ioas", "unmap", "1", "--all"], IOASUnmap.self),
            (["ioas", "copy", "--from", "1", "--src-iova", "0", "--length", "4K", "--to", "2"], IOASCopy.self),
            (["ioas", "ranges", "1"], IOASRanges.self), (["ioas", "set", "1", "--huge-pages", "off"], IOASSet.self),
            (["hwpt", "list"], HWPTList.self), (["hwpt", "alloc", "--ioas", "1", "--device", "d"], HWPTAlloc.self),
            (["hwpt", "destroy", "3"], HWPTDestroy.self),
            (["dirty", "start", "1"], DirtyStart.self), (["dirty", "stop", "1"], DirtyStop.self),
            (["dirty", "status", "1"], DirtyStatus.self),
            (["dirty", "read", "1", "--iova", "0", "--length", "1M"], DirtyRead.self),
            (["viommu", "create", "d"], VIOMMUCreate.self), (["viommu", "destroy", "2"], VIOMMUDestroy.self),
            (["viommu", "list"], VIOMMUList.self),
            (["vdevice", "create", "--viommu", "2", "--device", "d", "--virtual-id", "0x10"], VDeviceCreate.self),
            (["vdevice", "destroy", "5"], VDeviceDestroy.self),
            (["owner", "create", "vm1"], OwnerCreate.self), (["owner", "list"], OwnerList.self),
            (["owner", "info", "vm1"], OwnerInfoCommand.self), (["owner", "release", "vm1"], OwnerRelease.self),
            (["hwqueue", "alloc", "--viommu", "2", "--base", "0x100000", "--length", "4K"], HWQueueAlloc.self),  // hwqueue3
            (["hwqueue", "destroy", "3"], HWQueueDestroy.self),
            (["watch"], Watch.self), (["call", "daemon.ping"], Call.self),
        ]
        for (args, expected) in cases {
            let command = try IommuCtl.parseAsRoot(args)
            #expect(type(of: command) == expected, "\(args)")
            #expect(command is any DaemonCommand, "\(args) talks to the daemon")
        }
    }

    @Test("sizes, IOVAs and flags of ioas map")
    func ioasMap() throws {
        let map = try parse(["ioas", "map", "7", "/dev/shm/ram", "--offset", "2M", "--length", "0x40000000", "--iova", "4G", "--read-only"], as: IOASMap.self)
        #expect(map.ioas == 7)
        #expect(map.file == "/dev/shm/ram")
        #expect(map.offset.value == 2 << 20)
        #expect(map.length?.value == 1 << 30)
        #expect(map.iova?.value == 4 << 30)
        #expect(map.readOnly)
        let fresh = try parse(["ioas", "map", "7", "--memfd", "64M"], as: IOASMap.self)
        #expect(fresh.memfd?.value == 64 << 20)
        #expect(fresh.file == nil)
        #expect(fresh.offset.value == 0)
    }

    @Test("dirty read options map onto dirty.read params")
    func dirtyRead() throws {
        let read = try parse(["dirty", "read", "3", "--iova", "0x100000", "--length", "1G", "--page-size", "4K", "--no-clear", "--bitmap", "/tmp/b", "--max-runs", "10"], as: DirtyRead.self)
        #expect(read.ioas == 3)
        #expect(read.iova.value == 0x10_0000)
        #expect(read.length.value == 1 << 30)
        #expect(read.pageSize?.value == 4096)
        #expect(read.noClear)
        #expect(read.bitmap == "/tmp/b")
        #expect(read.maxRuns == 10)
    }

    @Test("policies parse as words")
    func policies() throws {
        let owner = try parse(["owner", "create", "vm1", "--dirty", "required", "--huge-pages", "off", "--tolerate-missing"], as: OwnerCreate.self)
        #expect(owner.dirty == .required)
        #expect(owner.hugePages == .off)
        #expect(owner.tolerateMissing == true)
        let plain = try parse(["owner", "create", "vm1"], as: OwnerCreate.self)
        #expect(plain.dirty == nil && plain.hugePages == nil && plain.tolerateMissing == nil)
        let strict = try parse(["owner", "create", "vm1", "--no-tolerate-missing"], as: OwnerCreate.self)
        #expect(strict.tolerateMissing == false)
        let attach = try parse(["device", "attach", "0000:00:02.0", "--owner", "vm1", "--ioas", "1", "--dirty", "off"], as: DeviceAttach.self)
        #expect(attach.target.dirty == .off)
        #expect(attach.device == "0000:00:02.0")
    }

    @Test("vIOMMU types by name or number; virtual IDs in hex")
    func viommuTypes() throws {
        #expect(try parse(["viommu", "create", "d", "--type", "arm-smmuv3"], as: VIOMMUCreate.self).type?.value == VIOMMUType.armSMMUv3)
        #expect(try parse(["viommu", "create", "d", "--type", "selftest"], as: VIOMMUCreate.self).type?.value == VIOMMUType.selftest)
        #expect(try parse(["viommu", "create", "d", "--type", "7"], as: VIOMMUCreate.self).type?.value == 7)
        #expect(try parse(["vdevice", "create", "--viommu", "1", "--device", "d", "--virtual-id", "0x1f"], as: VDeviceCreate.self).virtualID.value == 0x1f)
    }

    @Test("global options on every command, socket from flag, environment, default")
    func socket() throws {
        let status = try parse(["status", "--socket", "/tmp/s", "--compact"], as: Status.self)
        #expect(status.global.socketPath(environment: ["IOMMUFDD_SOCKET": "/env"]) == "/tmp/s")
        #expect(status.global.jsonOutput)
        let plain = try parse(["ioas", "list"], as: IOASList.self)
        #expect(plain.global.socketPath(environment: ["IOMMUFDD_SOCKET": "/env"]) == "/env")
        #expect(plain.global.socketPath(environment: ["IOMMUFDD_SOCKET": ""]) == "/run/iommufdd/control.sock")
        #expect(plain.global.socketPath(environment: [:]) == "/run/iommufdd/control.sock")
        #expect(!plain.global.jsonOutput)
        #expect(plain.global.callTimeout == .seconds(60))
        #expect(try parse(["ioas", "list", "--timeout", "0"], as: IOASList.self).global.callTimeout == nil)
    }

    @Test("global options before the subcommand, as with git -C or virsh -c", arguments: [
        ["--socket", "/tmp/s", "--compact", "--timeout", "5", "status"],
        ["--socket=/tmp/s", "status", "--compact", "--timeout=5"],
        ["status", "--socket", "/tmp/s", "--compact", "--timeout", "5"],
        ["--compact", "status", "--timeout", "5", "--socket", "/tmp/s"],
    ])
    func globalOptionsBeforeOrAfter(args: [String]) throws {
        let status = try parse(args, as: Status.self)
        #expect(status.global.socketPath(environment: ["IOMMUFDD_SOCKET": "/env"]) == "/tmp/s", "\(args)")
        #expect(status.global.jsonOutput && status.global.compact, "\(args)")
        #expect(status.global.callTimeout == .seconds(5), "\(args)")
    }

    @Test("global options before a nested subcommand and its own options")
    func globalOptionsBeforeNestedCommands() throws {
        let map = try parse(["--socket", "/tmp/s", "--json", "ioas", "map", "7", "--memfd", "64M", "--iova", "4G"], as: IOASMap.self)
        #expect(map.global.socketPath(environment: [:]) == "/tmp/s")
        #expect(map.global.json)
        #expect(map.ioas == 7 && map.memfd?.value == 64 << 20 && map.iova?.value == 4 << 30)
        // Between the group and its subcommand too.
        let list = try parse(["ioas", "--json", "list", "--socket", "/tmp/t"], as: IOASList.self)
        #expect(list.global.json && list.global.socketPath(environment: [:]) == "/tmp/t")
        let call = try parse(["--timeout", "0", "call", "daemon.ping"], as: Call.self)
        #expect(call.global.callTimeout == nil)
        // A bad value before the subcommand is a usage error naming the option.
        let (terminal, captured) = Terminal.capturing()
        #expect(IommuCtl.run(arguments: ["--timeout", "soon", "status"], terminal: terminal, environment: [:]) == CtlExit.usage.rawValue)
        #expect(captured.error.contains("--timeout"), "\(captured.error)")
    }

    @Test("a non-root user without a system daemon finds their own under XDG_RUNTIME_DIR")
    func userDaemon() throws {
        let options = try parse(["status"], as: Status.self).global
        let env = ["XDG_RUNTIME_DIR": "/run/user/1000"]
        let own = "/run/user/1000/iommufdd/control.sock"
        #expect(options.socketPath(environment: env, uid: 1000, exists: { $0 == own }) == own)
        #expect(options.socketPath(environment: env, uid: 1000, exists: { _ in true }) == "/run/iommufdd/control.sock")
        #expect(options.socketPath(environment: env, uid: 1000, exists: { _ in false }) == "/run/iommufdd/control.sock")
        #expect(options.socketPath(environment: env, uid: 0, exists: { $0 == own }) == "/run/iommufdd/control.sock")
    }

    @Test("bad command lines are refused", arguments: [
        ["bogus"],
        ["ioas", "map", "1"],                                   // neither FILE nor --memfd
        ["ioas", "map", "1", "/f", "--memfd", "1M"],            // both
        ["ioas", "map", "1", "--memfd", "1M", "--offset", "4K"],
        ["ioas", "map", "1", "/f", "--length", "lots"],
        ["ioas", "unmap", "1"],
        ["ioas", "unmap", "1", "--all", "--iova", "0"],
        ["ioas", "unmap", "1", "--iova", "0"],
        ["ioas", "destroy", "-1"],
        ["ioas", "destroy", "4294967296"],
        ["ioas", "set", "1", "--huge-pages", "maybe"],
        ["device", "attach", "d", "--owner", "o"],               // no target
        ["device", "attach", "d", "--owner", "o", "--ioas", "1", "--hwpt", "2"],
        ["device", "attach", "d", "--ioas", "1"],               // no owner
        ["owner", "create", "o", "--dirty", "sometimes"],
        ["dirty", "read", "1", "--iova", "0"],
        ["viommu", "create", "d", "--type", "intel"],
        ["watch", "--count", "0"],
    ])
    func refused(args: [String]) {
        #expect(throws: (any Error).self) { _ = try IommuCtl.parseAsRoot(args) }
        let (terminal, captured) = Terminal.capturing()
        #expect(IommuCtl.run(arguments: args, terminal: terminal, environment: [:]) == CtlExit.usage.rawValue)
        #expect(captured.error.contains("Error:") || captured.error.contains("error:"))
        #expect(captured.output.isEmpty)
    }

    @Test("help and version exit 0 and print on stdout")
    func help() {
        for args in [["--help"], ["ioas", "map", "--help"], ["help", "dirty", "read"], ["--version"]] {
            let (terminal, captured) = Terminal.capturing()
            #expect(IommuCtl.run(arguments: args, terminal: terminal, environment: [:]) == 0, "\(args)")
            #expect(!captured.output.isEmpty, "\(args)")
        }
        let (terminal, captured) = Terminal.capturing()
        _ = IommuCtl.run(arguments: ["--help"], terminal: terminal, environment: [:])
        #expect(captured.output.contains("Exit status:"))
        #expect(captured.output.contains(" 5  not found"))
    }

    @Test("completion scripts for bash, zsh and fish name the subcommands", arguments: ["bash", "zsh", "fish"])
    func completions(shell: String) {
        let (terminal, captured) = Terminal.capturing()
        #expect(IommuCtl.run(arguments: ["--generate-completion-script", shell], terminal: terminal, environment: [:]) == 0)
        for word in ["ioas", "dirty", "viommu", "watch", "tolerate-missing"] {
            #expect(captured.output.contains(word), "\(shell) script mentions \(word)")
        }
    }
}
