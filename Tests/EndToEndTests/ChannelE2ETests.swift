import Foundation
import IommufdChannel
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The VMM channel (`owner.delegate`, docs/vmm-channel.md) against the real `iommufdd` binary
/// on the simulator: the manager delegates over JSON-RPC, the "VMM" speaks the binary protocol
/// over the fd it got, and the manager checks over JSON-RPC what the channel did.
@Suite("End to end: the VMM channel")
struct ChannelE2ETests {
    typealias W = ChannelWire

    /// `owner.delegate`: the channel fd that came with the answer, adopted by a client.
    static func delegate(_ rpc: RPCClient, _ owner: String) throws -> (ChannelClient, UInt64) {
        let (result, fds) = try rpc.call("owner.delegate", params: ["name": .string(owner)], timeout: .seconds(60))
        guard fds.count == 1 else {
            for fd in fds { close(fd) }
            throw TestFailure("owner.delegate sent \(fds.count) fds, not 1: \(result)")
        }
        return (ChannelClient(adopting: fds[0]), try #require(result["channel"]?.uint))
    }

    /// Open fds of a process.
    static func fdCount(_ pid: pid_t) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    static func failure(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> ChannelWire.ErrorReply? {
        do {
            try body()
            Issue.record("the channel request succeeded; an error was expected", sourceLocation: sourceLocation)
            return nil
        } catch let f as ChannelClient.Failure {
            return f.reply
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    @Test("delegate, then map, unmap, copy and read dirty pages over the channel; the control plane sees each change")
    func hotPath() throws {
        let daemon = try DaemonProcess()
        let mgr = try daemon.client()
        _ = try mgr.call("owner.create", ["name": "vm-1", "tolerate_missing": false, "dirty": "preferred"])
        let ioas = try #require(try mgr.call("ioas.create", ["owner": "vm-1"])["ioas"]?.int)
        let ioas2 = try #require(try mgr.call("ioas.create", ["owner": "vm-1"])["ioas"]?.int)
        let (ch, channelID) = try Self.delegate(mgr, "vm-1")

        // The fd is a connected SOCK_SEQPACKET socket, and HELLO says which owner it acts as.
        var type: Int32 = 0
        var size = socklen_t(4)
        #expect(getsockopt(ch.fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0 && type == Int32(SOCK_SEQPACKET.rawValue))
        let hello = try ch.hello()
        #expect(hello.major == 1 && hello.owner == "vm-1" && hello.channel == channelID && hello.pageSize == pageSize)
        #expect(hello.maxEntries == UInt32(W.maxEntries))

        // Guest RAM registered once, then a batch of four fixed-IOVA maps in one message.
        let ram = try makeMemfd(bytes: 1 << 20)
        defer { close(ram) }
        try ch.register(index: 0, memfd: ram)
        let base: UInt64 = 0x100_0000
        let specs = (0..<4).map { i in
            ChannelClient.MapSpec(ioas: UInt32(ioas), memIndex: 0, offset: UInt64(i) * 0x4000, length: 0x4000, iova: base + UInt64(i) * 0x10_0000)
        }
        let mapped = try ch.map(specs)
        #expect(mapped.iovas == specs.map { $0.iova! } && mapped.pinned == 4 * 0x4000)
        // And one where the kernel picks the IOVA.
        let auto = try ch.map([.init(ioas: UInt32(ioas), memIndex: 0, offset: 0x10_0000 - 0x1000, length: 0x1000, iova: nil)])
        #expect(auto.iovas.count == 1 && auto.pinned == 4 * 0x4000 + 0x1000)
        let info = try mgr.call("ioas.info", ["ioas": .int(ioas)])
        #expect(info["mapping_count"] == 5 && info["pinned_bytes"]?.uint == 4 * 0x4000 + 0x1000)
        let listed = info["mappings"]?.arrayValue?.compactMap { $0["iova"]?.uint } ?? []
        #expect(Set(listed) == Set(specs.map { $0.iova! } + auto.iovas))

        // COPY into the second IOAS, then UNMAP a batch; the owner's tolerate_missing is false.
        let copied = try ch.copy(dst: UInt32(ioas2), src: UInt32(ioas), srcIOVA: base, length: 0x4000, dstIOVA: 0x4000_0000)
        #expect(copied.iovas == [0x4000_0000])
        #expect(try mgr.call("ioas.info", ["ioas": .int(ioas2)])["mapping_count"] == 1)
        let unmapped = try ch.unmap([(UInt32(ioas), base, 0x4000, 0), (UInt32(ioas), base + 0x10_0000, 0x4000, 0)])
        #expect(unmapped.bytes == [0x4000, 0x4000])
        // A hole: NotFound under the owner's policy, a 0-byte success with TOLERATE_MISSING.
        let hole = Self.failure { _ = try ch.unmap([(UInt32(ioas), 0x7000_0000, 0x1000, 0)]) }
        #expect(hole?.errno == ENOENT && hole?.name == "iommufdd.NotFound" && hole?.index == 0 && hole?.done == 0)
        #expect(hole?.message.contains("tolerate_missing") == true)
        #expect(try ch.unmap([(UInt32(ioas), 0x7000_0000, 0x1000, W.unmapTolerateMissing)]).bytes == [0])
        // A batch that fails at entry 1 keeps entry 0's effect, and says so.
        let partial = Self.failure { _ = try ch.unmap([(UInt32(ioas), base + 0x20_0000, 0x4000, 0), (UInt32(ioas), 0x7000_0000, 0x1000, W.unmapRequirePresent)]) }
        #expect(partial?.index == 1 && partial?.done == 1)
        #expect(try mgr.call("ioas.info", ["ioas": .int(ioas)])["mapping_count"] == 2)

        // MAP is all or nothing: entry 2 overlaps entry 0, so entries 0 and 1 are undone.
        let overlap = Self.failure {
            _ = try ch.map([
                .init(ioas: UInt32(ioas), memIndex: 0, offset: 0, length: 0x2000, iova: 0x5000_0000),
                .init(ioas: UInt32(ioas), memIndex: 0, offset: 0, length: 0x2000, iova: 0x5010_0000),
                .init(ioas: UInt32(ioas), memIndex: 0, offset: 0, length: 0x2000, iova: 0x5000_1000),
            ])
        }
        #expect(overlap?.index == 2 && overlap?.done == 0 && overlap?.errno == EEXIST)
        #expect(overlap?.message.contains("nothing of the batch stays") == true, "\(overlap?.message ?? "")")
        #expect(try mgr.call("ioas.info", ["ioas": .int(ioas)])["mapping_count"] == 2)
        // An index never registered.
        let stale = Self.failure { _ = try ch.map([.init(ioas: UInt32(ioas), memIndex: 7, offset: 0, length: 0x1000, iova: 0x6000_0000)]) }
        #expect(stale?.errno == W.ESTALE && stale?.name == W.ErrorName.notRegistered)

        // Dirty pages into a bitmap memfd the VMM supplied once, read twice.
        _ = try mgr.call("device.attach", ["owner": "vm-1", "device": "sim-pci0", "ioas": .int(ioas)])
        _ = try mgr.call("dirty.start", ["ioas": .int(ioas)])
        let dirtyBase = base + 0x30_0000
        try mgr.call("sim.dma", ["device": "sim-pci0", "iova": .unsigned(dirtyBase + pageSize), "length": .unsigned(2 * pageSize)])
        let bitmap = try makeMemfd(bytes: 4096)
        defer { close(bitmap) }
        let noBitmap = Self.failure { _ = try ch.dirtyRead(ioas: UInt32(ioas), iova: dirtyBase, length: 0x4000) }
        #expect(noBitmap?.errno == W.ESTALE && noBitmap?.name == W.ErrorName.noBitmap)
        try ch.setBitmap(bitmap)
        let first = try ch.dirtyRead(ioas: UInt32(ioas), iova: dirtyBase, length: 0x4000)
        #expect(first.pages == 2 && first.bytes == 8 && first.failures == 0)
        var word: UInt64 = 0
        #expect(pread(bitmap, &word, 8, 0) == 8 && word == 0b110)
        let second = try ch.dirtyRead(ioas: UInt32(ioas), iova: dirtyBase, length: 0x4000)
        #expect(second.pages == 0)
        #expect(pread(bitmap, &word, 8, 0) == 8 && word == 0, "the reused memfd is rewritten whole")

        // The device fd goes over the channel under the control plane's rules: a simulated device
        // has none, and that is what the channel says.
        let devFD = Self.failure { _ = try ch.deviceFD("sim-pci0") }
        #expect(devFD?.name == "iommufdd.Unsupported" && devFD?.errno == EOPNOTSUPP)

        // owner.release closes the channel; the daemon's end is gone.
        _ = try mgr.call("owner.release", ["name": "vm-1"])
        #expect(ch.isClosedByDaemon())
    }

    @Test("a channel acts as its owner only: another owner of the same manager is absent to it")
    func scopedToOneOwner() throws {
        let daemon = try DaemonProcess()
        let mgr = try daemon.client()
        _ = try mgr.call("owner.create", ["name": "vm-a"])
        _ = try mgr.call("owner.create", ["name": "vm-b", "dirty": "preferred"])
        let a = try #require(try mgr.call("ioas.create", ["owner": "vm-a"])["ioas"]?.int)
        let b = try #require(try mgr.call("ioas.create", ["owner": "vm-b"])["ioas"]?.int)
        _ = try mgr.call("device.attach", ["owner": "vm-b", "device": "sim-pci1", "ioas": .int(b)])
        let ram = try makeMemfd(bytes: 1 << 16)
        defer { close(ram) }
        _ = try mgr.call("ioas.map", ["ioas": .int(b), "fd": ["fd": 0], "offset": 0, "length": 0x1000, "iova": 0x1000], fds: [ram])
        _ = try mgr.call("dirty.start", ["ioas": .int(b)])
        let (ch, _) = try Self.delegate(mgr, "vm-a")
        try ch.register(index: 0, memfd: ram)
        let bitmap = try makeMemfd(bytes: 4096)
        defer { close(bitmap) }
        try ch.setBitmap(bitmap)

        // Every way of naming owner B's objects is NotFound, worded as for an absent one.
        let map = Self.failure { _ = try ch.map([.init(ioas: UInt32(b), memIndex: 0, offset: 0, length: 0x1000, iova: 0x10_0000)]) }
        let absent = Self.failure { _ = try ch.map([.init(ioas: 9999, memIndex: 0, offset: 0, length: 0x1000, iova: 0x10_0000)]) }
        #expect(map?.name == "iommufdd.NotFound" && map?.errno == ENOENT)
        #expect(map?.message.replacingOccurrences(of: "\(b)", with: "N") == absent?.message.replacingOccurrences(of: "9999", with: "N"))
        let unmap = Self.failure { _ = try ch.unmap([(UInt32(b), 0x1000, 0x1000, 0)]) }
        #expect(unmap?.name == "iommufdd.NotFound")
        let unmapAll = Self.failure { _ = try ch.unmap([(UInt32(b), 0, 0, W.unmapAll)]) }
        #expect(unmapAll?.name == "iommufdd.NotFound")
        let copyOut = Self.failure { _ = try ch.copy(dst: UInt32(a), src: UInt32(b), srcIOVA: 0x1000, length: 0x1000, dstIOVA: 0x1000) }
        let copyIn = Self.failure { _ = try ch.copy(dst: UInt32(b), src: UInt32(a), srcIOVA: 0x1000, length: 0x1000, dstIOVA: 0x2000) }
        #expect(copyOut?.name == "iommufdd.NotFound" && copyIn?.name == "iommufdd.NotFound")
        let dirty = Self.failure { _ = try ch.dirtyRead(ioas: UInt32(b), iova: 0x1000, length: 0x1000) }
        #expect(dirty?.name == "iommufdd.NotFound")
        let device = Self.failure { _ = try ch.deviceFD("sim-pci1") }
        #expect(device?.name == "iommufdd.NotFound")
        let reset = Self.failure { _ = try ch.hotReset("sim-pci1") }
        #expect(reset?.name == "iommufdd.NotFound" && reset?.message == device?.message.replacingOccurrences(of: "device.fd", with: "hot reset"), "\(String(describing: reset))")
        // Owner B is untouched.
        #expect(try mgr.call("ioas.info", ["ioas": .int(b)])["mapping_count"] == 1)
    }

    @Test("HOT_RESET runs only when every device on the bus is the channel owner's; otherwise it is refused and names what is in the way")
    func hotReset() throws {
        // The simulator's default topology: sim-pci0, sim-pci1 and sim-pci2 on PCI bus 0000:00
        // (one secondary bus reset covers all three); sim-mdev0 is not PCI.
        let daemon = try DaemonProcess()
        let mgr = try daemon.client()
        _ = try mgr.call("owner.create", ["name": "vm-a"])
        _ = try mgr.call("owner.create", ["name": "vm-b"])
        let a = try #require(try mgr.call("ioas.create", ["owner": "vm-a"])["ioas"]?.int)
        let b = try #require(try mgr.call("ioas.create", ["owner": "vm-b"])["ioas"]?.int)
        _ = try mgr.call("device.attach", ["owner": "vm-a", "device": "sim-pci0", "ioas": .int(a)])
        _ = try mgr.call("device.attach", ["owner": "vm-b", "device": "sim-pci1", "ioas": .int(b)])
        let (ch, _) = try Self.delegate(mgr, "vm-a")

        // sim-pci1 is another owner's and sim-pci2 nobody's: refused, EPERM, nothing reset;
        // the other owner is not named (device.list shows that a device is leased, not to whom).
        let refused = Self.failure { _ = try ch.hotReset("sim-pci0") }
        #expect(refused?.name == "iommufdd.PolicyRefused" && refused?.errno == EPERM, "\(String(describing: refused))")
        #expect(refused?.message.contains("sim-pci1 (0000:00:03.0, leased to another owner)") == true, "\(String(describing: refused))")
        #expect(refused?.message.contains("sim-pci2 (0000:00:04.0, not leased)") == true, "\(String(describing: refused))")
        #expect(refused?.message.contains("vm-b") == false)
        // Another owner's device is absent to the channel.
        #expect(Self.failure { _ = try ch.hotReset("sim-pci1") }?.name == "iommufdd.NotFound")

        // Once the whole bus is vm-a's, the reset runs: three devices.
        _ = try mgr.call("device.release", ["device": "sim-pci1"])
        _ = try mgr.call("device.attach", ["owner": "vm-a", "device": "sim-pci1", "ioas": .int(a)])
        _ = try mgr.call("device.attach", ["owner": "vm-a", "device": "sim-pci2", "ioas": .int(a)])
        #expect(try ch.hotReset("sim-pci0") == 3)
        #expect(try ch.hotReset("0000:00:04.0") == 3)
        // A device the reset leaves attached where it was (the reset is of the device's state).
        let info = try mgr.call("device.info", ["device": "sim-pci0"])
        #expect(info["owner"]?.stringValue == "vm-a" && info["ioas"]?.int == a, "\(info)")

        // Not PCI: no hot reset, and the answer says what to do instead.
        _ = try mgr.call("device.attach", ["owner": "vm-a", "device": "sim-mdev0", "ioas": .int(a)])
        let mdev = Self.failure { _ = try ch.hotReset("sim-mdev0") }
        #expect(mdev?.name == "iommufdd.Unsupported" && mdev?.errno == EOPNOTSUPP, "\(String(describing: mdev))")
        #expect(mdev?.message.contains("VFIO_DEVICE_RESET") == true)
        // A device nobody leased, and one that does not exist.
        _ = try mgr.call("device.release", ["device": "sim-pci2"])
        #expect(Self.failure { _ = try ch.hotReset("sim-pci2") }?.name == "iommufdd.Conflict")
        #expect(Self.failure { _ = try ch.hotReset("sim-pci9") }?.name == "iommufdd.NotFound")
    }

    @Test("owner.revoke_channels closes every channel of the owner and no other")
    func revoke() throws {
        let daemon = try DaemonProcess()
        let mgr = try daemon.client()
        _ = try mgr.call("owner.create", ["name": "vm-a"])
        _ = try mgr.call("owner.create", ["name": "vm-b", "dirty": "preferred"])
        let (a1, _) = try Self.delegate(mgr, "vm-a")
        let (a2, _) = try Self.delegate(mgr, "vm-a")
        let (b1, _) = try Self.delegate(mgr, "vm-b")
        let revoked = try mgr.call("owner.revoke_channels", ["name": "vm-a"])
        #expect(revoked["revoked"] == 2)
        #expect(a1.isClosedByDaemon() && a2.isClosedByDaemon())
        #expect(try b1.hello().owner == "vm-b")
        #expect(try mgr.call("owner.revoke_channels", ["name": "vm-a"])["revoked"] == 0)
        // Another manager cannot delegate or revoke this manager's owner: it is absent to it.
        if getuid() == 0 {
            let other = try daemon.client(as: TestUID.managerB)
            #expect(try other.error("owner.delegate", ["name": "vm-b"]).name == "iommufdd.NotFound")
            #expect(try other.error("owner.revoke_channels", ["name": "vm-b"]).name == "iommufdd.NotFound")
            let reader = try daemon.client(as: TestUID.reader)
            #expect(try reader.error("owner.delegate", ["name": "vm-b"]).name == "iommufdd.PermissionDenied")
        }
        #expect(try b1.hello().owner == "vm-b")
    }

    @Test("the owner's quota applies on the channel as on the control plane")
    func quota() throws {
        guard getuid() == 0 else { return }  // the quota manager is another uid
        let daemon = try DaemonProcess()
        let q = try daemon.client(as: TestUID.quotaManager)
        _ = try q.call("owner.create", ["name": "vm-q"])
        let ioas = try #require(try q.call("ioas.create", ["owner": "vm-q"])["ioas"]?.int)
        let (ch, _) = try Self.delegate(q, "vm-q")
        let ram = try makeMemfd(bytes: 1 << 20)
        defer { close(ram) }
        try ch.register(index: 3, memfd: ram)
        _ = try ch.map([.init(ioas: UInt32(ioas), memIndex: 3, offset: 0, length: 0xC000, iova: 0x10_0000)])
        let over = Self.failure { _ = try ch.map([.init(ioas: UInt32(ioas), memIndex: 3, offset: 0, length: 0x8000, iova: 0x20_0000)]) }
        #expect(over?.name == "iommufdd.QuotaExceeded" && over?.errno == EDQUOT)
        #expect(over?.message.contains("quota") == true)
        #expect(try q.call("owner.info", ["name": "vm-q"])["pinned_bytes"] == 0xC000)
    }

    @Test("bad messages get a clear error, never crash the daemon or leak an fd, and the channel goes on")
    func badInput() throws {
        let daemon = try DaemonProcess()
        let mgr = try daemon.client()
        _ = try mgr.call("owner.create", ["name": "vm-1"])
        let ioas = try #require(try mgr.call("ioas.create", ["owner": "vm-1"])["ioas"]?.int)
        let (ch, _) = try Self.delegate(mgr, "vm-1")
        _ = try ch.hello()
        // The daemon closes its copy of the fd it sent right after sending it, before it
        // answers the next request on that connection.
        _ = try mgr.call("daemon.ping")
        let before = Self.fdCount(daemon.pid)

        func header(_ op: UInt16, _ size: Int, flags: UInt16 = 0, id: UInt64 = 42) -> [UInt8] {
            var w = W.Writer()
            w.u64(id); w.u16(op); w.u16(flags); w.u32(UInt32(size))
            return w.bytes
        }
        func expectError(_ bytes: [UInt8], fds: [Int32] = [], errno: Int32, name: String, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            try ch.sendRaw(bytes, fds: fds)
            let reply = try #require(try ch.receive(), "the daemon closed the channel", sourceLocation: sourceLocation)
            #expect(reply.fd == nil, sourceLocation: sourceLocation)
            #expect(reply.header.flags == W.flagReply | W.flagError, sourceLocation: sourceLocation)
            let e = try #require(reply.payload.withUnsafeBytes { W.decodeError($0) }, sourceLocation: sourceLocation)
            #expect(e.errno == errno && e.name == name, "\(e)", sourceLocation: sourceLocation)
            #expect(e.message.contains(fragment), "\(e.message)", sourceLocation: sourceLocation)
        }
        let pipeFDs = try Self.makePipe()
        defer { close(pipeFDs.0); close(pipeFDs.1) }
        let ram = try makeMemfd(bytes: 1 << 16)
        defer { close(ram) }

        try expectError([1, 2, 3], errno: W.EBADMSG, name: W.ErrorName.badMessage, "shorter than the 16-byte header")
        try expectError(header(1, 8), errno: W.EBADMSG, name: W.ErrorName.badMessage, "says 8 payload bytes")
        try expectError(header(1, 0, flags: W.flagReply), errno: W.EBADMSG, name: W.ErrorName.badMessage, "flags must be 0")
        try expectError(header(999, 0), errno: W.EOPNOTSUPP, name: W.ErrorName.unknownOp, "op 999")
        try expectError(header(W.Op.hello.rawValue, 4) + [0, 0, 0, 0], errno: W.EBADMSG, name: W.ErrorName.badMessage, "0-byte payload")
        try expectError(header(W.Op.map.rawValue, 8) + [0, 0, 0, 0, 0, 0, 0, 0], errno: W.EBADMSG, name: W.ErrorName.badMessage, "1 to 256")
        try expectError(header(W.Op.map.rawValue, 8 + 39) + [1, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 39), errno: W.EBADMSG, name: W.ErrorName.badMessage, "entries of 40 bytes")
        let huge = header(W.Op.map.rawValue, W.maxRequestBytes) + [UInt8](repeating: 0, count: W.maxRequestBytes)
        try expectError(huge, errno: W.EMSGSIZE, name: W.ErrorName.badMessage, "larger than the largest request")
        // fds where none belong, too many fds, an fd of the wrong kind: refused and closed.
        try expectError(header(W.Op.hello.rawValue, 0), fds: [ram], errno: W.EBADMSG, name: W.ErrorName.badMessage, "takes no fd")
        var reg = W.Writer()
        reg.u32(0); reg.u32(0)
        try expectError(header(W.Op.memRegister.rawValue, 8) + reg.bytes, errno: W.EBADMSG, name: W.ErrorName.badMessage, "exactly one fd")
        try expectError(header(W.Op.memRegister.rawValue, 8) + reg.bytes, fds: [ram, ram], errno: W.EBADMSG, name: W.ErrorName.badMessage, "at most one fd")
        try expectError(header(W.Op.memRegister.rawValue, 8) + reg.bytes, fds: [pipeFDs.0], errno: W.EBADF, name: W.ErrorName.badFD, "a pipe")
        try expectError(header(W.Op.dirtyBitmapSet.rawValue, 8) + [UInt8](repeating: 0, count: 8), fds: [ch.fd], errno: W.EBADF, name: W.ErrorName.badFD, "a socket")
        let readOnly = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
        defer { close(readOnly) }
        try expectError(header(W.Op.dirtyBitmapSet.rawValue, 8) + [UInt8](repeating: 0, count: 8), fds: [readOnly], errno: W.EBADF, name: W.ErrorName.badFD, "read-only")
        var badIndex = W.Writer()
        badIndex.u32(W.maxMemorySlots); badIndex.u32(0)
        try expectError(header(W.Op.memRegister.rawValue, 8) + badIndex.bytes, fds: [ram], errno: W.EINVAL, name: "iommufdd.InvalidParams", "out of range")
        var device = W.Writer()
        device.bytes = [UInt8](repeating: 0x41, count: W.deviceNameBytes)
        try expectError(header(W.Op.deviceFD.rawValue, W.deviceNameBytes) + device.bytes, errno: W.EBADMSG, name: W.ErrorName.badMessage, "must end with a NUL")
        var unknownFlags = W.Writer()
        unknownFlags.u32(1); unknownFlags.u32(0)
        unknownFlags.u32(UInt32(ioas)); unknownFlags.u32(0); unknownFlags.u64(0); unknownFlags.u64(0x1000); unknownFlags.u64(0x1000); unknownFlags.u32(0x80); unknownFlags.u32(0)
        try expectError(header(W.Op.map.rawValue, unknownFlags.bytes.count) + unknownFlags.bytes, errno: W.EBADMSG, name: W.ErrorName.badMessage, "unknown flags")
        // A broker refusal carries the broker's name: unaligned length.
        try ch.register(index: 0, memfd: ram)
        let unaligned = Self.failure { _ = try ch.map([.init(ioas: UInt32(ioas), memIndex: 0, offset: 0, length: 0x1001, iova: 0x10_0000)]) }
        #expect(unaligned?.name == "iommufdd.InvalidParams" && unaligned?.errno == EINVAL)
        let twice = Self.failure { try ch.register(index: 0, memfd: ram) }
        #expect(twice?.errno == EEXIST)
        try ch.unregister(index: 0)

        // Still serving, and no fd left behind in the daemon.
        #expect(try ch.hello().owner == "vm-1")
        #expect(Self.fdCount(daemon.pid) == before, "the daemon holds \(Self.fdCount(daemon.pid)) fds, \(before) before")
        #expect(daemon.isRunning)
        // Closing the VMM's end: the daemon forgets the channel and closes its end and the
        // eventfd its serving thread waits on.
        ch.close()
        _ = try mgr.call("daemon.ping")
        var closedEnd = false
        for _ in 0..<600 where !closedEnd {
            closedEnd = Self.fdCount(daemon.pid) == before - 2
            if !closedEnd { usleep(100_000) }
        }
        #expect(closedEnd, "the daemon still holds the channel's end")
    }

    static func makePipe() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw TestFailure("pipe2: \(Errno.current)") }
        return (fds[0], fds[1])
    }
}
