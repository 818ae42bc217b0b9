// The VMM channel's fuzz target: the bytes of one input are the messages a VMM sends on a
// delegated channel (docs/vmm-channel.md), each with the fds it says.
//
// An input is a sequence of records, `ctl:u8 length:u16le bytes[length]` (a record whose bytes
// run past the end takes what is left; at most 32 records). `ctl & 3` says which fds ride with
// the message: 0 none, 1 the guest memfd, 2 /dev/null (a character device: the wrong kind),
// 3 two memfds (one too many). Each message goes
//   1. through `ChannelWire.decode` in this process: it must not trap, and a message it accepts
//      must be exactly what `ChannelWire.encode` writes for the decoded request (no field is
//      dropped, no reserved byte ignored), and
//   2. to the real daemon (`Daemon` on the simulator backend, in this process) on a channel
//      delegated for owner `fz`, which has two IOAS, a dirty-tracked one with device sim-pci0
//      attached, and devices on two PCI buses (one all its own, one shared with a device nobody
//      leased, for HOT_RESET), and sim-mock0 (behind the selftest mock IOMMU) on IOAS 2 through a
//      vIOMMU's nest parent with vDevice 7 and a fault queue (NESTED_ALLOC, REPLACE, INVALIDATE,
//      HWPT_DESTROY, QUEUE_FD), and sim-pasid0 (20-bit PASIDs) with its RID on an HWPT allocated
//      with `pasid` and a second such HWPT (PASID_ATTACH, PASID_REPLACE, PASID_DETACH;
//      FuzzChannel+PASID.swift): the answer must come (a hang is a failure), echo the request's id and op (0
//      and 0 for a message shorter than the header), carry a well-formed error payload with a
//      known error name, or a payload of the size its op answers with (and the device fd for
//      DEVICE_FD, no fd otherwise). A message the decoder refuses must be refused by the daemon
//      with the same errno and name, and one it accepts must not be called malformed.
// After the records a HELLO must still be answered (no message kills the channel). Then the
// channel is revoked, every mapping it made is unmapped on the control plane, every device is
// put back on its page table, the PASIDs an input attached are detached and the nested HWPTs it
// made are destroyed, and the daemon
// must hold no mapping, no pinned page and its set-up's HWPTs: inputs do not depend on each other.
//
// An empty message is not sent: on a SOCK_SEQPACKET socket a 0-byte message reads as end of
// file, so the daemon ends the channel as if the VMM had hung up (the decoder still sees it).
//
// Built with libFuzzer (`scripts/fuzz --target channel`), `-D FUZZING` drops the replay `main`
// and libFuzzer's own takes over. Built plainly, `fuzz-channel FILE|DIR...` replays inputs
// through the same function (SecurityTests replays Fuzz/corpus/channel and
// Fuzz/regressions/channel on every `swift test`).
import CIommufd
import Foundation
import IommufdContract
import IommufdChannel
import IommufdCore
import IommufdRPC
import Logging
@testable import IommufdDaemon

#if canImport(Glibc)
import Glibc
#endif

func die(_ message: String) -> Never {
    FileHandle.standardError.write(Data("fuzz-channel: \(message)\n".utf8))
    fatalError("fuzz-channel: \(message)")
}

/// The daemon every input talks to, started once, with the owner `fz` the channels act as.
final class FuzzChannelDaemon: @unchecked Sendable {
    let daemon: Daemon
    let socketPath: String
    let admin: RPCClient
    /// The guest memory a message may carry (MEM_REGISTER, DIRTY_BITMAP_SET), 256 KiB.
    let memfd: Int32
    let devnull: Int32
    /// IOAS 1 (dirty-tracked, sim-pci0 attached) and IOAS 2 of owner `fz`: the seeds name them.
    static let owner = "fz"
    /// IOMMUFDD_FUZZ_TRACE=1: print each answer (to see what a seed reaches).
    static let trace = ProcessInfo.processInfo.environment["IOMMUFDD_FUZZ_TRACE"] == "1"
    static let expectedIOAS: [UInt32] = [1, 2]

    static let shared: FuzzChannelDaemon = {
        do { return try FuzzChannelDaemon() } catch { die("cannot start the daemon: \(error)") }
    }()

    init() throws {
        var template = Array("/tmp/iommufdd-fuzzch-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw Errno.current }
        let directory = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        socketPath = directory + "/control.sock"
        let configPath = directory + "/iommufdd.toml"
        try Self.config(uid: getuid()).write(toFile: configPath, atomically: true, encoding: .utf8)
        var overrides = ConfigOverrides()
        overrides.configPath = configPath
        overrides.socketPath = socketPath
        overrides.backend = .sim
        overrides.logLevel = .critical
        daemon = try Daemon(overrides: overrides)
        daemon.server.start()
        memfd = ifd_memfd_create("fuzz-channel", 0)
        guard memfd >= 0, ftruncate(memfd, 256 << 10) == 0 else { throw Errno.current }
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard devnull >= 0 else { throw Errno.current }

        admin = try RPCClient(path: socketPath)
        _ = try admin.call("owner.create", params: ["name": .string(Self.owner), "dirty": "preferred"])
        var ioas: [UInt32] = []
        for _ in 0..<2 {
            let r = try admin.call("ioas.create", params: ["owner": .string(Self.owner)]).result
            ioas.append(UInt32(r["ioas"]?.uint64Value ?? 0))
        }
        // The seeds name IOAS 1 and 2: a simulator that numbered them otherwise would leave the
        // seeds testing nothing but NotFound.
        guard ioas == Self.expectedIOAS else {
            die("the simulator gave owner \(Self.owner) IOAS \(ioas), not \(Self.expectedIOAS) as the seeds in Fuzz/corpus/channel expect; change them in Fuzz/make-channel-seeds.py and run it")
        }
        // Bus 00 (sim-pci0, sim-pci1) is all fz's: a hot reset there runs. On bus 01 sim-pci3 is
        // nobody's: a hot reset of sim-pci2 is refused. sim-mdev0 has no hot reset.
        for (device, target) in [("sim-pci0", ioas[0]), ("sim-pci1", ioas[1]), ("sim-pci2", ioas[1]), ("sim-mdev0", ioas[1])] {
            _ = try admin.call("device.attach", params: ["owner": .string(Self.owner), "device": .string(device), "ioas": .uint(UInt64(target))])
        }
        _ = try admin.call("dirty.start", params: ["ioas": .uint(UInt64(ioas[0]))])
        try setUpNested(ioas: ioas[1])
        try setUpPASID(ioas: ioas[1])
    }

    // MARK: chnested

    /// What the nested-translation seeds name: sim-mock0 (behind the selftest mock IOMMU) on IOAS
    /// 2 through a vIOMMU's nest parent, with vDevice 7, and a fault queue.
    static let expectedNested = (parent: UInt32(11), viommu: UInt32(12), vdevice: UInt32(10), faultQueue: UInt32(13))
    /// Each device's IOAS and page table after set-up, which the clean-up puts back (a REPLACE
    /// in an input may move any of them).
    var placement: [String: (ioas: UInt64, pt: UInt64)] = [:]
    var baselineHWPTs = 0
    /// The PASID-capable HWPTs of sim-pasid0 (branch pasidch): the RID's, and a second one.
    var pasidHWPTs: [UInt64] = []

    func setUpNested(ioas: UInt32) throws {
        _ = try admin.call("device.attach", params: ["owner": .string(Self.owner), "device": "sim-mock0", "ioas": .uint(UInt64(ioas))])
        let v = try admin.call("viommu.create", params: ["device": "sim-mock0"]).result
        let vdev = try admin.call("vdevice.create", params: ["viommu": v["viommu"] ?? .null, "device": "sim-mock0", "virtual_id": 7]).result
        let fault = try admin.call("fault.create", params: ["owner": .string(Self.owner)])
        for fd in fault.fds { close(fd) }
        let got = (UInt32(v["nest_parent"]?.uint64Value ?? 0), UInt32(v["viommu"]?.uint64Value ?? 0),
                   UInt32(vdev["vdevice"]?.uint64Value ?? 0), UInt32(fault.result["queue"]?["queue"]?.uint64Value ?? 0))
        guard got == Self.expectedNested else {
            die("the nested set-up gave nest parent, vIOMMU, vDevice, fault queue \(got), not \(Self.expectedNested) as the seeds in Fuzz/corpus/channel expect; change them in Fuzz/make-channel-seeds.py and run it")
        }
        for device in ["sim-pci0", "sim-pci1", "sim-pci2", "sim-mdev0", "sim-mock0"] {
            let info = try admin.call("device.info", params: ["device": .string(device)]).result
            placement[device] = (info["ioas"]?.uint64Value ?? 0, info["pt"]?.uint64Value ?? 0)
        }
        baselineHWPTs = daemon.service.broker.counts().hwpts
    }

    /// Puts every device back on its page table of the set-up (onto its IOAS when an input
    /// emptied, and so destroyed, its auto-domain HWPT), then destroys the nested HWPTs an
    /// input left; the owner then has as many HWPTs as after the set-up.
    func restoreNested() {
        detachPASIDs()
        do {
            for (device, home) in placement.sorted(by: { $0.key < $1.key }) {
                let info = try admin.call("device.info", params: ["device": .string(device)]).result
                guard info["pt"]?.uint64Value != home.pt else { continue }
                let hwpts = try admin.call("hwpt.list", params: ["owner": .string(Self.owner)]).result["hwpts"]?.arrayValue ?? []
                let params: JSONValue = hwpts.contains(where: { $0["hwpt"]?.uint64Value == home.pt })
                    ? ["device": .string(device), "hwpt": .uint(home.pt)]
                    : ["device": .string(device), "ioas": .uint(home.ioas)]
                let moved = try admin.call("device.replace", params: params).result
                placement[device] = (home.ioas, moved["pt"]?.uint64Value ?? 0)
            }
            let hwpts = try admin.call("hwpt.list", params: ["owner": .string(Self.owner)]).result["hwpts"]?.arrayValue ?? []
            for h in hwpts where h["nested"] != nil && h["nested"] != .null {
                _ = try admin.call("hwpt.destroy", params: ["hwpt": h["hwpt"] ?? .null])
            }
        } catch { die("putting the nested set-up back failed: \(error)") }
        restorePASIDHWPTs()
        let hwpts = daemon.service.broker.counts().hwpts
        guard hwpts == baselineHWPTs else { die("after the input was undone the daemon holds \(hwpts) HWPTs, not \(baselineHWPTs)") }
    }

    static func config(uid: uid_t) -> String {
        """
        [policy]
        dirty_tracking = "preferred"
        [devices]
        allow = ["sim-pci0", "sim-pci1", "sim-pci2", "sim-pci3", "sim-mdev0", "sim-mock0", "sim-pasid0"]
        [[access]]
        user = \(uid)
        role = "admin"
        trusted_vmm = true
        [[sim.iommu]]
        name = "sim-iommu0"
        dirty_tracking = true
        [[sim.device]]
        name = "sim-pci0"
        iommu = "sim-iommu0"
        pci_address = "0000:00:02.0"
        [[sim.device]]
        name = "sim-pci1"
        iommu = "sim-iommu0"
        pci_address = "0000:00:03.0"
        [[sim.device]]
        name = "sim-pci2"
        iommu = "sim-iommu0"
        pci_address = "0000:01:00.0"
        [[sim.device]]
        name = "sim-pci3"
        iommu = "sim-iommu0"
        pci_address = "0000:01:00.1"
        [[sim.device]]
        name = "sim-mdev0"
        mdev = true
        [[sim.iommu]]
        name = "sim-mock"
        driver = "selftest-mock"
        nesting = true
        [[sim.device]]
        name = "sim-mock0"
        iommu = "sim-mock"
        pci_address = "0000:02:00.0"
        [[sim.device]]
        name = "sim-pasid0"
        iommu = "sim-mock"
        pci_address = "0000:03:00.0"
        pasid_width = 20
        """
    }

    /// The error names a channel answer may carry: the broker's and the channel's own, from the
    /// contract's catalogue.
    static let errorNames: Set<String> = Set(ErrorName.allCases.filter { $0.origin == .broker || $0.origin == .channel }.map(\.wireName))

    struct Record {
        var fds: Int  // 0 none, 1 memfd, 2 /dev/null, 3 two memfds
        var bytes: [UInt8]
    }

    static func records(_ input: [UInt8]) -> [Record] {
        var out: [Record] = []
        var i = 0
        while i < input.count && out.count < 32 {
            let ctl = input[i]
            i += 1
            var length = 0
            if i < input.count { length |= Int(input[i]); i += 1 }
            if i < input.count { length |= Int(input[i]) << 8; i += 1 }
            let end = min(i + length, input.count)
            out.append(Record(fds: Int(ctl & 3), bytes: Array(input[i..<end])))
            i = end
        }
        return out
    }

    func run(_ input: [UInt8]) {
        let delegated: (result: JSONValue, fds: [Int32])
        do {
            delegated = try admin.call("owner.delegate", params: ["name": .string(Self.owner)])
        } catch { die("owner.delegate failed: \(error)") }
        guard delegated.fds.count == 1 else { die("owner.delegate answered \(delegated.fds.count) fds, not 1") }
        let channel = ChannelClient(adopting: delegated.fds[0])
        for record in Self.records(input) { exchange(record, on: channel) }
        do {
            let hello = try channel.hello()
            guard hello.owner == Self.owner else { die("HELLO after the input answered owner '\(hello.owner)'") }
        } catch { die("the channel no longer answers HELLO after the input: \(error)") }
        cleanUp(channel)
    }

    /// Sends one message and checks its answer.
    func exchange(_ record: Record, on channel: ChannelClient) {
        let bytes = record.bytes
        let fds: [Int32] = [[], [memfd], [devnull], [memfd, memfd]][record.fds]
        let local: Result<(ChannelWire.Header, ChannelWire.Request), ChannelWire.Refusal> = bytes.withUnsafeBytes { b in
            do throws(ChannelWire.Refusal) { return .success(try ChannelWire.decode(b, fdCount: fds.count)) } catch { return .failure(error) }
        }
        if case .success(let (header, request)) = local {
            let encoded = ChannelWire.encode(id: header.id, request)
            guard encoded == bytes else {
                die("decode/encode is not the identity: \(bytes) decoded as \(request) and encodes as \(encoded)")
            }
        }
        guard !bytes.isEmpty else { return }

        do { try channel.sendRaw(bytes, fds: fds) } catch { die("sending a \(bytes.count)-byte message failed: \(error)") }
        let reply: ChannelClient.Reply?
        do { reply = try channel.receive(timeoutMilliseconds: 20_000) } catch { die("no answer within 20 s: the daemon hangs (\(error))") }
        guard let reply else { die("the daemon closed the channel on a \(bytes.count)-byte message \(bytes.prefix(64))") }
        defer { if let f = reply.fd { close(f) } }
        if Self.trace {
            let e = reply.header.flags & ChannelWire.flagError != 0 ? reply.payload.withUnsafeBytes { ChannelWire.decodeError($0) } : nil
            print("  op \(reply.header.op) fds \(fds.count): " + (e.map { "\($0.name) (\($0.errno)) entry \($0.index) done \($0.done): \($0.message)" } ?? "ok, \(reply.payload.count) bytes\(reply.fd == nil ? "" : " + fd")"))
        }

        let sent = bytes.withUnsafeBytes { try? ChannelWire.header($0) }
        guard reply.header.id == (sent?.id ?? 0), reply.header.op == (sent?.op ?? 0) else {
            die("the answer has id \(reply.header.id) op \(reply.header.op); the request had \(String(describing: sent))")
        }
        guard reply.header.flags & ChannelWire.flagReply != 0, Int(reply.header.size) == reply.payload.count else {
            die("malformed answer header \(reply.header) for \(reply.payload.count) payload bytes")
        }
        if reply.header.flags & ChannelWire.flagError != 0 {
            guard let e = reply.payload.withUnsafeBytes({ ChannelWire.decodeError($0) }) else {
                die("an error answer whose payload (\(reply.payload.count) bytes) does not decode")
            }
            guard e.errno > 0, Self.errorNames.contains(e.name), !e.message.isEmpty else {
                die("an error answer with errno \(e.errno), name '\(e.name)', message '\(e.message)'")
            }
            guard reply.fd == nil else { die("an error answer came with an fd") }
            switch local {
            case .failure(let refusal) where fds.count <= 1:
                guard e.errno == refusal.errno, e.name == refusal.name else {
                    die("the decoder refuses with \(refusal.name) (\(refusal.errno)): \(refusal.message); the daemon answered \(e.name) (\(e.errno)): \(e.message)")
                }
            case .success(let (_, request)):
                guard e.name != ChannelWire.ErrorName.badMessage, e.name != ChannelWire.ErrorName.unknownOp else {
                    die("the decoder accepts \(request) but the daemon calls it malformed: \(e.name): \(e.message)")
                }
                if let count = Self.entries(request), e.index >= count || e.done > count {
                    die("an error for entry \(e.index) (done \(e.done)) of a \(count)-entry batch")
                }
            default:
                break
            }
            return
        }
        guard case .success(let (_, request)) = local else {
            die("the daemon accepted a message the decoder refuses: \(bytes.prefix(64)) (\(local))")
        }
        let want: Int
        switch request {
        case .hello: want = 160
        case .memRegister: want = 16
        case .memUnregister: want = 0
        case .map(let e): want = 16 + 8 * e.count
        case .unmap(let e): want = 16 + 8 * e.count
        case .copy(let e): want = 16 + 8 * e.count
        case .dirtyBitmapSet: want = 8
        case .dirtyRead: want = 24
        case .deviceFD: want = 8
        case .hotReset: want = 8
        case .nestedAlloc, .nestedAllocFlags: want = 8
        case .replace: want = 8
        case .hwptDestroy: want = 0
        case .invalidate: want = 16
        case .queueFD: want = 8
        case .pasidAttach, .pasidReplace, .pasidDetach: want = ChannelWire.pasidResultBytes
        }
        guard reply.payload.count == want else { die("\(request) answered \(reply.payload.count) payload bytes, not \(want)") }
        let isDevice: Bool = switch request { case .deviceFD, .queueFD: true; default: false }
        guard (reply.fd != nil) == isDevice else { die("\(request) answered with \(reply.fd == nil ? "no" : "an") fd") }
        if let count = Self.entries(request) {
            let echoed = reply.payload.withUnsafeBytes { b in var r = ChannelWire.Reader(b); return r.u32() }
            guard echoed == count else { die("a \(count)-entry batch answered count \(echoed)") }
        }
    }

    static func entries(_ request: ChannelWire.Request) -> UInt32? {
        switch request {
        case .map(let e): UInt32(e.count)
        case .unmap(let e): UInt32(e.count)
        case .copy(let e): UInt32(e.count)
        default: nil
        }
    }

    /// Revokes the channel (its end of file means the daemon forgot it), unmaps what the input
    /// mapped, and checks nothing stays.
    func cleanUp(_ channel: ChannelClient) {
        do {
            let r = try admin.call("owner.revoke_channels", params: ["name": .string(Self.owner)]).result
            guard r["revoked"]?.uint64Value == 1 else { die("owner.revoke_channels answered \(r)") }
        } catch { die("owner.revoke_channels failed: \(error)") }
        while true {
            do {
                guard let stray = try channel.receive(timeoutMilliseconds: 20_000) else { break }
                die("an answer nobody asked for: \(stray.header)")
            } catch { die("the revoked channel did not end within 20 s: \(error)") }
        }
        channel.close()
        restoreNested()
        for ioas in Self.expectedIOAS {
            do {
                _ = try admin.call("ioas.unmap", params: ["ioas": .uint(UInt64(ioas)), "all": true])
            } catch { die("ioas.unmap all of IOAS \(ioas) failed: \(error)") }
        }
        let counts = daemon.service.broker.counts()
        guard counts.mappings == 0, counts.pinnedBytes == 0, counts.ioas == 2, counts.owners == 1 else {
            die("after the input was undone the daemon holds \(counts)")
        }
        guard daemon.service.broker.channelCount(owner: Self.owner) == 0 else { die("the revoked channel is still counted") }
    }
}

func fuzzOne(_ input: [UInt8]) {
    FuzzChannelDaemon.shared.run(input)
}

#if FUZZING
// Only in the libFuzzer build: the plain build's replay main calls `fuzzOne`, and the test bundle
// links this module beside fuzz-rpc, which defines the symbol too.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    fuzzOne(input)
    return 0
}
#endif
