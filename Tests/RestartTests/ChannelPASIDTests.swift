import Foundation
import IommufdChannel
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker

#if canImport(Glibc)
import Glibc
import IommufdContract
#endif

/// The channel's PASID ops (branch pasidch, channel version 1.2) served in process by a
/// `ChannelServer` over a broker on the journaled simulator: PASID_ATTACH, PASID_REPLACE and
/// PASID_DETACH act as `device.attach_pasid`, `device.replace_pasid` and `device.detach_pasid`
/// (the same broker calls, errors and journal), only on the channel owner's objects.
@Suite("PASID attachments on the VMM channel", .serialized)
struct ChannelPASIDTests {
    typealias W = ChannelWire
    let a = Incarnation.admin
    static let device = "sim-pasid0"

    /// Owner "vm" with an IOAS, sim-pasid0's RID on an HWPT allocated with `pasid` (`rid`), a
    /// second such HWPT (`other`) and one without `pasid` (`plain`); a channel of "vm".
    struct Setup {
        let f: ChannelFixture
        let ioas: ObjectID, rid: ObjectID, other: ObjectID, plain: ObjectID, deviceID: ObjectID

        init(store: MemoryFDStore = MemoryFDStore()) throws {
            f = try ChannelFixture(.owner, store: store)
            let (b, a) = (f.broker, Incarnation.admin)
            ioas = try b.ioasCreate(a, IOASCreateParams(owner: ChannelFixture.owner)).ioas
            var p = HWPTAllocParams(ioas: ioas, device: ChannelPASIDTests.device)
            p.pasid = true
            rid = try b.hwptAlloc(a, p).hwpt
            deviceID = try b.deviceAttach(a, DeviceAttachParams(owner: ChannelFixture.owner, device: ChannelPASIDTests.device, hwpt: rid)).deviceID
            other = try b.hwptAlloc(a, p).hwpt
            plain = try b.hwptAlloc(a, HWPTAllocParams(ioas: ioas, device: ChannelPASIDTests.device)).hwpt
        }
    }

    /// The size of the simulator's operation log (one record per backend call).
    static func logSize(_ sim: PersistentSimBackend) -> Int {
        var st = stat()
        return fstat(sim.log.fd, &st) == 0 ? Int(st.st_size) : -1
    }

    func pasids(_ b: Broker) throws -> [PASIDAttachmentInfo] {
        try b.deviceInfo(a, DeviceInfoParams(device: Self.device)).pasids ?? []
    }

    @Test("PASID_ATTACH, PASID_REPLACE (one kernel call: no gap) and PASID_DETACH act as their control-plane twins; HELLO answers 1.2")
    func attachReplaceDetach() throws {
        let s = try Setup()
        defer { s.f.hangUp() }
        let (b, ch, sim) = (s.f.broker, s.f.ch, s.f.sim)
        let hello = try ch.hello()
        #expect(hello.major == 1 && hello.minor == 2 && W.versionMinor == 2)

        var size = Self.logSize(sim)
        let attached = try ch.pasidAttach(device: Self.device, pasid: 5, hwpt: s.rid)
        #expect(attached == .init(deviceID: s.deviceID, pasid: 5, hwpt: s.rid, previous: 0))
        try sim.checkPASID(deviceID: s.deviceID, pasid: 5, hwpt: s.rid)
        #expect(try pasids(b) == [PASIDAttachmentInfo(pasid: 5, hwpt: s.rid)])
        let attachRecord = Self.logSize(sim) - size
        #expect(attachRecord > 0)

        // The replace is one backend call (VFIO_DEVICE_ATTACH_IOMMUFD_PT with the PASID flag on
        // an attached PASID), not a detach and an attach: the log grows by one record of the
        // attach record's size (a detach and an attach would add two).
        size = Self.logSize(sim)
        let moved = try ch.pasidReplace(device: Self.device, pasid: 5, hwpt: s.other)
        #expect(moved == .init(deviceID: s.deviceID, pasid: 5, hwpt: s.other, previous: s.rid))
        #expect(Self.logSize(sim) - size == attachRecord)
        try sim.checkPASID(deviceID: s.deviceID, pasid: 5, hwpt: s.other)
        // Onto the HWPT it is on: nothing to do, and the answer says so.
        size = Self.logSize(sim)
        #expect(try ch.pasidReplace(device: Self.device, pasid: 5, hwpt: s.other) == .init(deviceID: s.deviceID, pasid: 5, hwpt: s.other, previous: s.other))
        #expect(Self.logSize(sim) == size)

        // The largest PASID of a 20-bit device, and a device's PCI address for its name.
        let top: UInt32 = (1 << 20) - 1
        #expect(try ch.pasidAttach(device: "0000:00:05.0", pasid: top, hwpt: s.rid).hwpt == s.rid)
        #expect(try pasids(b) == [PASIDAttachmentInfo(pasid: 5, hwpt: s.other), PASIDAttachmentInfo(pasid: top, hwpt: s.rid)])

        // An HWPT a PASID uses cannot be destroyed, on either plane.
        let busy = ChannelFixture.failure { try ch.hwptDestroy(s.other) }
        #expect(busy?.name == "iommufdd.Busy" && busy?.errno == EBUSY, "\(String(describing: busy))")

        let detached = try ch.pasidDetach(device: Self.device, pasid: 5)
        #expect(detached == .init(deviceID: s.deviceID, pasid: 5, hwpt: 0, previous: s.other))
        try sim.checkPASID(deviceID: s.deviceID, pasid: 5, hwpt: nil)
        #expect(try ch.pasidDetach(device: Self.device, pasid: top).previous == s.rid)
        #expect(try pasids(b).isEmpty)
        try ch.hwptDestroy(s.other)

        let released = try b.ownerRelease(a, OwnerReleaseParams(name: ChannelFixture.owner))
        #expect(released.released && released.failures.isEmpty, "\(released)")
    }

    @Test("every refusal of the PASID ops has the RPC method's error name and errno (the broker's own error for the same call), says why, and changes nothing")
    func refusals() throws {
        let s = try Setup()
        defer { s.f.hangUp() }
        let (b, ch, sim) = (s.f.broker, s.f.ch, s.f.sim)
        // sim0 (no PASIDs) leased to vm; sim1 leased to another owner; sim2 leased to nobody.
        _ = try b.deviceAttach(a, DeviceAttachParams(owner: ChannelFixture.owner, device: "sim0", ioas: s.ioas))
        _ = try b.ownerCreate(a, OwnerCreateParams(name: "other"))
        let otherIOAS = try b.ioasCreate(a, IOASCreateParams(owner: "other")).ioas
        let otherHWPT = try b.deviceAttach(a, DeviceAttachParams(owner: "other", device: "sim1", ioas: otherIOAS)).pt
        _ = try ch.pasidAttach(device: Self.device, pasid: 9, hwpt: s.rid)
        let channelID = try #require(try b.channelsToRevoke(a, owner: ChannelFixture.owner).first)
        let caller = try #require(b.channelCaller(channelID))
        let before = try pasids(b)
        let size = Self.logSize(sim)

        enum Op { case attach, replace, detach }
        let cases: [(String, Op, String, UInt32, UInt32, String, Int32, String)] = [
            ("an absent device", .attach, "nope", 5, s.rid, "iommufdd.NotFound", ENOENT, "nope"),
            ("a device leased to nobody", .attach, "sim2", 5, s.rid, "iommufdd.Conflict", EEXIST, "not leased"),
            ("another owner's device", .attach, "sim1", 5, s.rid, "iommufdd.NotFound", ENOENT, "sim1"),
            ("another owner's HWPT", .attach, Self.device, 5, otherHWPT, "iommufdd.NotFound", ENOENT, "no HWPT \(otherHWPT)"),
            ("an absent HWPT", .attach, Self.device, 5, 999_999, "iommufdd.NotFound", ENOENT, "no HWPT 999999"),
            ("an HWPT without IOMMU_HWPT_ALLOC_PASID", .attach, Self.device, 5, s.plain, "iommufdd.InvalidParams", EINVAL, "without IOMMU_HWPT_ALLOC_PASID"),
            ("PASID 0 (the RID)", .attach, Self.device, 0, s.rid, "iommufdd.InvalidParams", EINVAL, "PASID 0 is IOMMU_NO_PASID"),
            ("a PASID past the device's 20 bits", .attach, Self.device, 1 << 20, s.rid, "iommufdd.InvalidParams", EINVAL, "beyond the 20-bit PASIDs"),
            ("a device without PASIDs", .attach, "sim0", 5, s.rid, "iommufdd.InvalidParams", EINVAL, "no PASID support"),
            ("an attached PASID", .attach, Self.device, 9, s.other, "iommufdd.Conflict", EEXIST, "already attached to HWPT \(s.rid)"),
            ("replacing a PASID not attached", .replace, Self.device, 5, s.other, "iommufdd.Conflict", EEXIST, "is not attached"),
            ("replacing onto another owner's HWPT", .replace, Self.device, 9, otherHWPT, "iommufdd.NotFound", ENOENT, "no HWPT \(otherHWPT)"),
            ("replacing onto an HWPT without pasid", .replace, Self.device, 9, s.plain, "iommufdd.InvalidParams", EINVAL, "without IOMMU_HWPT_ALLOC_PASID"),
            ("detaching a PASID not attached", .detach, Self.device, 5, 0, "iommufdd.Conflict", EEXIST, "is not attached (its attached PASIDs: 9)"),
            ("detaching another owner's device's PASID", .detach, "sim1", 9, 0, "iommufdd.NotFound", ENOENT, "sim1"),
        ]
        for (what, op, device, pasid, hwpt, name, errno, words) in cases {
            let e = ChannelFixture.failure {
                switch op {
                case .attach: _ = try ch.pasidAttach(device: device, pasid: pasid, hwpt: hwpt)
                case .replace: _ = try ch.pasidReplace(device: device, pasid: pasid, hwpt: hwpt)
                case .detach: _ = try ch.pasidDetach(device: device, pasid: pasid)
                }
            }
            let (opName, method) = op == .attach ? ("PASID_ATTACH", "device.attach_pasid") : op == .replace ? ("PASID_REPLACE", "device.replace_pasid") : ("PASID_DETACH", "device.detach_pasid")
            #expect(e?.name == name && e?.errno == errno && e?.message.contains(words) == true, "\(what): \(String(describing: e))")
            #expect(e?.message.hasPrefix(opName + ": ") == true, "\(what): \(String(describing: e?.message))")
            // The JSON-RPC twin, called by the same caller, fails with the same error name.
            do {
                switch op {
                case .attach: _ = try b.deviceAttachPASID(caller, DevicePASIDParams(device: device, pasid: pasid, hwpt: hwpt))
                case .replace: _ = try b.deviceReplacePASID(caller, DevicePASIDParams(device: device, pasid: pasid, hwpt: hwpt))
                case .detach: _ = try b.deviceDetachPASID(caller, DevicePASIDDetachParams(device: device, pasid: pasid))
                }
                Issue.record("\(what): the broker call succeeded")
            } catch let twin as BrokerError {
                #expect(twin.wireName == name, "\(what): the RPC method answers \(twin.wireName): \(twin.message)")
                // The same message, the channel's op named instead of the method.
                let said = twin.message.hasPrefix(method + ": ") ? String(twin.message.dropFirst(method.count + 2)) : twin.message
                #expect(e?.message == opName + ": " + said, "\(what): channel '\(e?.message ?? "")' against RPC '\(twin.message)'")
            }
        }
        #expect(try pasids(b) == before)
        #expect(Self.logSize(sim) == size, "a refused PASID op reached the backend")
    }

    /// The request bytes: header (id 1, `op`, flags 0, the payload's size) and `payload`.
    static func message(_ op: W.Op, _ payload: [UInt8], size: UInt32? = nil) -> [UInt8] {
        var w = W.Writer()
        w.u64(1); w.u16(op.rawValue); w.u16(0); w.u32(size ?? UInt32(payload.count))
        return w.bytes + payload
    }

    @Test("malformed PASID requests: a payload of the wrong size is BadMessage, a nonzero reserved field (PASID_DETACH's hwpt too) InvalidParams; the decoder says the same, nothing changes, and encode and decode agree")
    func malformedRequests() throws {
        let s = try Setup()
        defer { s.f.hangUp() }
        let (b, ch, inc) = (s.f.broker, s.f.ch, s.f.inc)
        let good = ChannelClient.pasidPayload(pasid: 5, hwpt: s.rid, device: Self.device)
        #expect(good.count == W.pasidRequestBytes)
        let bad = W.ErrorName.badMessage
        let cases: [(String, [UInt8], [Int32], String, Int32)] = [
            ("PASID_ATTACH of 72 bytes (short)", Self.message(.pasidAttach, Array(good.prefix(72))), [], bad, W.EBADMSG),
            ("PASID_ATTACH of 0 bytes", Self.message(.pasidAttach, []), [], bad, W.EBADMSG),
            ("PASID_REPLACE of 81 bytes", Self.message(.pasidReplace, good + [0]), [], bad, W.EBADMSG),
            ("PASID_DETACH of 8 bytes", Self.message(.pasidDetach, [5, 0, 0, 0, 0, 0, 0, 0]), [], bad, W.EBADMSG),
            ("PASID_ATTACH whose header size is not the payload's", Self.message(.pasidAttach, good, size: 72), [], bad, W.EBADMSG),
            ("PASID_ATTACH with an fd", Self.message(.pasidAttach, good), [inc.sim.log.fd], bad, W.EBADMSG),
            ("PASID_ATTACH with a device name without NUL", Self.message(.pasidAttach, Array(good.prefix(16)) + [UInt8](repeating: 0x61, count: 64)), [], bad, W.EBADMSG),
            ("PASID_ATTACH with an empty device name", Self.message(.pasidAttach, ChannelClient.pasidPayload(pasid: 5, hwpt: s.rid, device: "")), [], bad, W.EBADMSG),
            ("PASID_ATTACH with a reserved byte set", Self.message(.pasidAttach, ChannelClient.pasidPayload(pasid: 5, hwpt: s.rid, reserved: 1 << 56, device: Self.device)), [], "iommufdd.InvalidParams", EINVAL),
            ("PASID_REPLACE with a reserved byte set", Self.message(.pasidReplace, ChannelClient.pasidPayload(pasid: 5, hwpt: s.rid, reserved: 1, device: Self.device)), [], "iommufdd.InvalidParams", EINVAL),
            ("PASID_DETACH with a reserved byte set", Self.message(.pasidDetach, ChannelClient.pasidPayload(pasid: 5, hwpt: 0, reserved: 0x100, device: Self.device)), [], "iommufdd.InvalidParams", EINVAL),
            ("PASID_DETACH naming an HWPT", Self.message(.pasidDetach, ChannelClient.pasidPayload(pasid: 5, hwpt: s.rid, device: Self.device)), [], "iommufdd.InvalidParams", EINVAL),
            ("op 20, past version 1.2", Self.message(W.Op.pasidDetach, good).enumerated().map { $0.offset == 8 ? 20 : $0.element }, [], W.ErrorName.unknownOp, W.EOPNOTSUPP),
        ]
        for (what, bytes, fds, name, errno) in cases {
            try ch.sendRaw(bytes, fds: fds)
            let reply = try #require(try ch.receive(timeoutMilliseconds: 10_000), "\(what): no answer")
            let e = reply.payload.withUnsafeBytes { W.decodeError($0) }
            #expect(reply.header.flags & W.flagError != 0 && e?.name == name && e?.errno == errno, "\(what): \(String(describing: e))")
            #expect(e?.message.isEmpty == false)
            let local = bytes.withUnsafeBytes { raw -> W.Refusal? in
                do throws(W.Refusal) { _ = try W.decode(raw, fdCount: fds.count); return nil } catch { return error }
            }
            #expect(local?.name == name && local?.errno == errno, "\(what): the decoder says \(String(describing: local))")
        }
        #expect(try pasids(b).isEmpty)
        #expect(try ch.hello().owner == ChannelFixture.owner)

        let requests: [W.Request] = [
            .pasidAttach(.init(device: "dev", pasid: 1, hwpt: 9)),
            .pasidReplace(.init(device: "0000:01:00.0", pasid: 0xfffff, hwpt: 12)),
            .pasidDetach(.init(device: "dev", pasid: 77)),
        ]
        for request in requests {
            let bytes = W.encode(id: 42, request)
            #expect(bytes.count == W.headerSize + W.pasidRequestBytes)
            let decoded = try bytes.withUnsafeBytes { raw in try W.decode(raw, fdCount: 0) }
            #expect(decoded.0.id == 42 && decoded.1 == request)
        }
        #expect(W.Op.allCases.map(\.rawValue) == Array(1...19))  // 19: NESTED_ALLOC_FLAGS (ChannelNestedFlagsTests)
    }

    @Test("another owner's channel (same manager) cannot attach, replace or detach owner vm's PASIDs or use its HWPTs: NotFound as for absent ones, and nothing changes")
    func otherOwnersChannel() throws {
        let s = try Setup()
        defer { s.f.hangUp() }
        let (b, ch) = (s.f.broker, s.f.ch)
        _ = try ch.pasidAttach(device: Self.device, pasid: 9, hwpt: s.rid)
        _ = try b.ownerCreate(a, OwnerCreateParams(name: "other"))
        let otherIOAS = try b.ioasCreate(a, IOASCreateParams(owner: "other")).ioas
        _ = try b.deviceAttach(a, DeviceAttachParams(owner: "other", device: "sim1", ioas: otherIOAS))
        let (_, fd) = try s.f.server.delegate(a, owner: "other")
        let other = ChannelClient(adopting: fd)
        defer { other.close() }
        #expect(try other.hello().owner == "other")
        let before = try pasids(b)

        let cells: [(String, () throws -> Void)] = [
            ("PASID_ATTACH on vm's device", { _ = try other.pasidAttach(device: Self.device, pasid: 10, hwpt: s.other) }),
            ("PASID_REPLACE of vm's PASID", { _ = try other.pasidReplace(device: Self.device, pasid: 9, hwpt: s.other) }),
            ("PASID_DETACH of vm's PASID", { _ = try other.pasidDetach(device: Self.device, pasid: 9) }),
            ("PASID_ATTACH of its own device onto vm's HWPT", { _ = try other.pasidAttach(device: "sim1", pasid: 10, hwpt: s.rid) }),
        ]
        for (what, body) in cells {
            let e = ChannelFixture.failure(body)
            #expect(e?.name == "iommufdd.NotFound" && e?.errno == ENOENT, "\(what): \(String(describing: e))")
        }
        // vm's HWPT answers as an absent one does.
        let onVM = ChannelFixture.failure { _ = try other.pasidAttach(device: "sim1", pasid: 10, hwpt: s.rid) }
        let onAbsent = ChannelFixture.failure { _ = try other.pasidAttach(device: "sim1", pasid: 10, hwpt: 999_999) }
        #expect(onVM?.message.replacingOccurrences(of: "\(s.rid)", with: "N") == onAbsent?.message.replacingOccurrences(of: "999999", with: "N"),
                "\(String(describing: onVM)) / \(String(describing: onAbsent))")
        #expect(try pasids(b) == before)
        try s.f.sim.checkPASID(deviceID: s.deviceID, pasid: 9, hwpt: s.rid)
    }

    @Test("a PASID attached on the channel is journaled: after a restart the broker and the iommufd have it, a new channel replaces and detaches it, and that is journaled too")
    func survivesRestart() throws {
        let store = MemoryFDStore()
        let s = try Setup(store: store)
        _ = try s.f.ch.pasidAttach(device: Self.device, pasid: 100, hwpt: s.rid)
        _ = try s.f.ch.pasidAttach(device: Self.device, pasid: 200, hwpt: s.other)
        let before = try s.f.broker.deviceInfo(a, DeviceInfoParams(device: Self.device))
        s.f.hangUp()

        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems.isEmpty && second.recovery?.problems == [])
        #expect(try second.broker.deviceInfo(a, DeviceInfoParams(device: Self.device)) == before)
        try second.sim.checkPASID(deviceID: s.deviceID, pasid: 100, hwpt: s.rid)
        try second.sim.checkPASID(deviceID: s.deviceID, pasid: 200, hwpt: s.other)

        let (server2, ch2) = try ChannelFixture.delegate(second.broker)
        #expect(try ch2.pasidReplace(device: Self.device, pasid: 100, hwpt: s.other).previous == s.rid)
        #expect(try ch2.pasidDetach(device: Self.device, pasid: 200).previous == s.other)
        let busy = ChannelFixture.failure { _ = try ch2.pasidAttach(device: Self.device, pasid: 100, hwpt: s.rid) }
        #expect(busy?.name == "iommufdd.Conflict", "the restarted daemon forgot PASID 100: \(String(describing: busy))")
        ChannelFixture.hangUp(ch2, server2)

        let (third, replay3) = try Incarnation.restarted(store)
        #expect(replay3.problems.isEmpty && third.recovery?.problems == [])
        #expect(try third.broker.deviceInfo(a, DeviceInfoParams(device: Self.device)).pasids == [PASIDAttachmentInfo(pasid: 100, hwpt: s.other)])
        try third.sim.checkPASID(deviceID: s.deviceID, pasid: 100, hwpt: s.other)
        try third.sim.checkPASID(deviceID: s.deviceID, pasid: 200, hwpt: nil)
        let released = try third.broker.ownerRelease(a, OwnerReleaseParams(name: ChannelFixture.owner))
        #expect(released.released && released.failures.isEmpty && released.destroyed["pasid_attachment"] == 1, "\(released)")
    }
}
