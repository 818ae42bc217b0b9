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

// MARK: pasidnest

/// NESTED_ALLOC_FLAGS (op 19, channel version 1.2) served in process over a broker on the
/// journaled simulator: NESTED_ALLOC with a flags word whose PASID bit is `hwpt.alloc`'s
/// `pasid: true` for a nested HWPT (the same broker call, errors and journal), so PASID_ATTACH
/// can put a device PASID on the guest's stage 1 without the manager.
@Suite("NESTED_ALLOC_FLAGS on the VMM channel", .serialized)
struct ChannelNestedFlagsTests {
    typealias W = ChannelWire
    typealias Setup = ChannelPASIDTests.Setup
    let a = Incarnation.admin
    static let device = ChannelPASIDTests.device

    /// Selftest driver data (`struct iommu_hwpt_selftest`: iotlb, pagetable_type 0).
    static func selftest(_ iotlb: UInt32) -> [UInt8] {
        var w = W.Writer()
        w.u32(iotlb); w.u32(0)
        return w.bytes
    }

    /// A nest-parent HWPT of owner vm for sim-pasid0 (its RID stays on `rid`).
    static func nestParent(_ s: Setup) throws -> ObjectID {
        try s.f.broker.hwptAlloc(Incarnation.admin, HWPTAllocParams(ioas: s.ioas, device: device, nestParent: true)).hwpt
    }

    func hwpt(_ b: Broker, _ id: ObjectID) throws -> HWPTInfo? {
        try b.hwptList(a, HWPTListParams(owner: ChannelFixture.owner)).hwpts.first { $0.hwpt == id }
    }

    @Test("the PASID flag allocates the nested HWPT as hwpt.alloc pasid=true does; PASID_ATTACH onto it works; without the flag it is refused exactly as on the RPC path")
    func pasidFlagThenAttach() throws {
        let s = try Setup()
        defer { s.f.hangUp() }
        let (b, ch, sim) = (s.f.broker, s.f.ch, s.f.sim)
        let parent = try Self.nestParent(s)

        let (nested, nestParent) = try ch.nestedAlloc(parent: parent, dataType: HWPTDataType.selftest, device: Self.device, data: Self.selftest(3), flags: W.nestedAllocPASID)
        #expect(nestParent == parent)
        let info = try #require(try hwpt(b, nested))
        // What hwpt.alloc with pasid: true and the same parent and data makes, but for its ID.
        var twinParams = HWPTAllocParams(device: Self.device, parent: parent, data: NestedDataParams(type: "selftest", iotlb: 3))
        twinParams.pasid = true
        let twin = try b.hwptAlloc(a, twinParams)
        #expect(info.pasid == true && info.nested?.parent == parent, "\(info)")
        var same = twin
        same.hwpt = info.hwpt
        #expect(info == same, "channel \(info) against RPC \(twin)")

        let attached = try ch.pasidAttach(device: Self.device, pasid: 5, hwpt: nested)
        #expect(attached == .init(deviceID: s.deviceID, pasid: 5, hwpt: nested, previous: 0))
        try sim.checkPASID(deviceID: s.deviceID, pasid: 5, hwpt: nested)
        #expect(try b.deviceInfo(a, DeviceInfoParams(device: Self.device)).pasids == [PASIDAttachmentInfo(pasid: 5, hwpt: nested)])

        // Flags 0: the same as op 11, an HWPT without IOMMU_HWPT_ALLOC_PASID, and PASID_ATTACH
        // onto it is refused as device.attach_pasid refuses it (name, errno, message).
        let plain = try ch.nestedAlloc(parent: parent, dataType: HWPTDataType.selftest, device: Self.device, data: Self.selftest(4), flags: 0).hwpt
        #expect(try hwpt(b, plain)?.pasid == nil)
        let op11 = try ch.nestedAllocSelftest(parent: parent, device: Self.device, iotlb: 5)
        #expect(try hwpt(b, op11)?.pasid == nil)
        let channelID = try #require(try b.channelsToRevoke(a, owner: ChannelFixture.owner).first)
        let caller = try #require(b.channelCaller(channelID))
        for target in [plain, op11] {
            let e = ChannelFixture.failure { _ = try ch.pasidAttach(device: Self.device, pasid: 6, hwpt: target) }
            #expect(e?.name == "iommufdd.InvalidParams" && e?.errno == EINVAL && e?.message.contains("without IOMMU_HWPT_ALLOC_PASID") == true, "\(String(describing: e))")
            do {
                _ = try b.deviceAttachPASID(caller, DevicePASIDParams(device: Self.device, pasid: 6, hwpt: target))
                Issue.record("device.attach_pasid onto HWPT \(target) without pasid succeeded")
            } catch let rpc as BrokerError {
                #expect(rpc.wireName == e?.name && e?.message == "PASID_ATTACH: " + rpc.message.replacingOccurrences(of: "device.attach_pasid: ", with: ""),
                        "channel '\(e?.message ?? "")' against RPC '\(rpc.message)'")
            }
        }
        try sim.checkPASID(deviceID: s.deviceID, pasid: 6, hwpt: nil)

        // The HWPT a PASID is on cannot be destroyed; once detached it can.
        #expect(ChannelFixture.failure { try ch.hwptDestroy(nested) }?.name == "iommufdd.Busy")
        _ = try ch.pasidDetach(device: Self.device, pasid: 5)
        for id in [nested, plain, op11, twin.hwpt] { try ch.hwptDestroy(id) }
        let released = try b.ownerRelease(a, OwnerReleaseParams(name: ChannelFixture.owner))
        #expect(released.released && released.failures.isEmpty, "\(released)")
    }

    @Test("the broker's refusals of NESTED_ALLOC_FLAGS are hwpt.alloc's (name, errno, message) with the op named; another owner's parent answers as an absent one; nothing reaches the backend")
    func brokerRefusals() throws {
        let s = try Setup()
        defer { s.f.hangUp() }
        let (b, ch, sim) = (s.f.broker, s.f.ch, s.f.sim)
        let parent = try Self.nestParent(s)
        _ = try b.ownerCreate(a, OwnerCreateParams(name: "other"))
        let otherIOAS = try b.ioasCreate(a, IOASCreateParams(owner: "other")).ioas
        _ = try b.deviceAttach(a, DeviceAttachParams(owner: "other", device: "sim1", ioas: otherIOAS))
        let foreignParent = try b.hwptAlloc(a, HWPTAllocParams(ioas: otherIOAS, device: "sim1", nestParent: true)).hwpt
        let channelID = try #require(try b.channelsToRevoke(a, owner: ChannelFixture.owner).first)
        let caller = try #require(b.channelCaller(channelID))
        let before = try b.hwptList(a, HWPTListParams())
        let size = ChannelPASIDTests.logSize(sim)

        let cases: [(String, UInt32, String, [UInt8], String, Int32, String)] = [
            ("an absent parent", 999_999, Self.device, Self.selftest(0), "iommufdd.NotFound", ENOENT, "no HWPT or vIOMMU 999999"),
            ("another owner's parent", foreignParent, Self.device, Self.selftest(0), "iommufdd.NotFound", ENOENT, "no HWPT or vIOMMU \(foreignParent)"),
            ("a parent that is not a nest parent", s.rid, Self.device, Self.selftest(0), "iommufdd.InvalidParams", EINVAL, "nest"),
            ("another owner's device", parent, "sim1", Self.selftest(0), "iommufdd.NotFound", ENOENT, "sim1"),
            ("selftest data with pagetable_type 1", parent, Self.device, [0, 0, 0, 0, 1, 0, 0, 0], "iommufdd.InvalidParams", EINVAL, "pagetable_type is 1"),
        ]
        for (what, parentID, device, data, name, errno, words) in cases {
            let e = ChannelFixture.failure { _ = try ch.nestedAlloc(parent: parentID, dataType: HWPTDataType.selftest, device: device, data: data, flags: W.nestedAllocPASID) }
            #expect(e?.name == name && e?.errno == errno && e?.message.contains(words) == true, "\(what): \(String(describing: e))")
            #expect(e?.message.hasPrefix("NESTED_ALLOC_FLAGS: ") == true, "\(what): \(String(describing: e?.message))")
            // Op 11, the same call without the PASID bit, fails alike (the same broker path; op 11
            // leaves the op's name out of some messages, op 19 names it in every one).
            let op11 = ChannelFixture.failure { _ = try ch.nestedAlloc(parent: parentID, dataType: HWPTDataType.selftest, device: device, data: data) }
            let said = op11.map { $0.message.hasPrefix("NESTED_ALLOC: ") ? String($0.message.dropFirst("NESTED_ALLOC: ".count)) : $0.message }
            #expect(op11?.name == name && said.map { "NESTED_ALLOC_FLAGS: " + $0 } == e?.message,
                    "\(what): op 11 '\(op11?.message ?? "")' against op 19 '\(e?.message ?? "")'")
            // The broker call the channel makes, by the channel's caller, gives the same error name.
            do {
                _ = try b.channelNestedAlloc(caller, parent: parentID, faultQueue: nil, dataType: HWPTDataType.selftest, device: device, data: data, pasid: true)
                Issue.record("\(what): the broker call succeeded")
            } catch let twin as BrokerError {
                #expect(twin.wireName == name, "\(what): \(twin.wireName): \(twin.message)")
            }
        }
        let absent = ChannelFixture.failure { _ = try ch.nestedAlloc(parent: 999_999, dataType: HWPTDataType.selftest, device: Self.device, data: Self.selftest(0), flags: 1) }
        let foreign = ChannelFixture.failure { _ = try ch.nestedAlloc(parent: foreignParent, dataType: HWPTDataType.selftest, device: Self.device, data: Self.selftest(0), flags: 1) }
        #expect(absent?.message.replacingOccurrences(of: "999999", with: "N") == foreign?.message.replacingOccurrences(of: "\(foreignParent)", with: "N"))
        #expect(try b.hwptList(a, HWPTListParams()) == before)
        #expect(ChannelPASIDTests.logSize(sim) == size, "a refused NESTED_ALLOC_FLAGS reached the backend")
    }

    @Test("malformed NESTED_ALLOC_FLAGS: an undefined flag bit is Unsupported (the kernel's EOPNOTSUPP), a nonzero reserved word InvalidParams, a wrong size BadMessage; the decoder says the same, nothing changes, and encode and decode agree")
    func malformedRequests() throws {
        let s = try Setup()
        defer { s.f.hangUp() }
        let (b, ch, inc) = (s.f.broker, s.f.ch, s.f.inc)
        let parent = try Self.nestParent(s)
        func payload(flags: UInt32 = W.nestedAllocPASID, reserved: UInt32 = 0, dataType: UInt32 = HWPTDataType.selftest, dataLength: UInt32? = nil, device: String = Self.device, data: [UInt8] = Self.selftest(0)) -> [UInt8] {
            ChannelClient.nestedAllocFlagsPayload(parent: parent, dataType: dataType, device: device, flags: flags, reserved: reserved, dataLength: dataLength, data: data)
        }
        let good = payload()
        #expect(good.count == W.nestedAllocFlagsFixedBytes + 8 && W.nestedAllocFlagsFixedBytes == 88)
        let op = W.Op.nestedAllocFlags
        let (bad, invalid) = (W.ErrorName.badMessage, "iommufdd.InvalidParams")
        let cases: [(String, [UInt8], [Int32], String, Int32, String)] = [
            ("flag bit 1", ChannelPASIDTests.message(op, payload(flags: 0x3)), [], "iommufdd.Unsupported", EOPNOTSUPP, "bits 0x2 this daemon does not support"),
            ("flag bit 31 alone", ChannelPASIDTests.message(op, payload(flags: 0x8000_0000)), [], "iommufdd.Unsupported", EOPNOTSUPP, "bits 0x80000000 this daemon does not support"),
            ("a nonzero reserved word", ChannelPASIDTests.message(op, payload(reserved: 1)), [], invalid, EINVAL, "bytes 84-87 are reserved"),
            ("a data type with no nested HWPTs", ChannelPASIDTests.message(op, payload(dataType: 0)), [], invalid, EINVAL, "not a nested data type"),
            ("87 bytes (short of the fixed part)", ChannelPASIDTests.message(op, Array(good.prefix(87))), [], bad, W.EBADMSG, "88-byte fixed part"),
            ("0 bytes", ChannelPASIDTests.message(op, []), [], bad, W.EBADMSG, "88-byte fixed part"),
            ("op 11's layout (80 bytes and the data)", ChannelPASIDTests.message(op, Array(good.prefix(80)) + Self.selftest(0)), [], bad, W.EBADMSG, "a 96-byte payload, not 88"),
            ("a data byte too many", ChannelPASIDTests.message(op, good + [0]), [], bad, W.EBADMSG, "a 96-byte payload, not 97"),
            ("data_len 12 for selftest data", ChannelPASIDTests.message(op, payload(dataLength: 12)), [], bad, W.EBADMSG, "data_len is 12"),
            ("a header size that is not the payload's", ChannelPASIDTests.message(op, good, size: 88), [], bad, W.EBADMSG, "payload bytes"),
            ("an fd", ChannelPASIDTests.message(op, good), [inc.sim.log.fd], bad, W.EBADMSG, "no fd"),
            ("an empty device name", ChannelPASIDTests.message(op, payload(device: "")), [], bad, W.EBADMSG, "device name is empty"),
            ("op 20, past version 1.2", ChannelPASIDTests.message(op, good).enumerated().map { $0.offset == 8 ? 20 : $0.element }, [], W.ErrorName.unknownOp, W.EOPNOTSUPP, "op 20"),
        ]
        let before = try b.hwptList(a, HWPTListParams())
        for (what, bytes, fds, name, errno, words) in cases {
            try ch.sendRaw(bytes, fds: fds)
            let reply = try #require(try ch.receive(timeoutMilliseconds: 10_000), "\(what): no answer")
            let e = reply.payload.withUnsafeBytes { W.decodeError($0) }
            #expect(reply.header.flags & W.flagError != 0 && e?.name == name && e?.errno == errno && e?.message.contains(words) == true, "\(what): \(String(describing: e))")
            let local = bytes.withUnsafeBytes { raw -> W.Refusal? in
                do throws(W.Refusal) { _ = try W.decode(raw, fdCount: fds.count); return nil } catch { return error }
            }
            #expect(local?.name == name && local?.errno == errno && local?.message == e?.message, "\(what): the decoder says \(String(describing: local))")
        }
        #expect(try b.hwptList(a, HWPTListParams()) == before)
        #expect(try ch.hello().owner == ChannelFixture.owner)

        let requests: [W.Request] = [
            .nestedAllocFlags(.init(.init(parent: 7, dataType: HWPTDataType.selftest, device: "dev", data: Self.selftest(1)), flags: W.nestedAllocPASID)),
            .nestedAllocFlags(.init(.init(parent: 9, faultQueue: 4, dataType: HWPTDataType.vtdS1, device: "0000:01:00.0", data: [UInt8](repeating: 0, count: 24)), flags: 0)),
        ]
        for request in requests {
            let bytes = W.encode(id: 42, request)
            let decoded = try bytes.withUnsafeBytes { raw in try W.decode(raw, fdCount: 0) }
            #expect(decoded.0.id == 42 && decoded.0.op == 19 && decoded.1 == request)
        }
        #expect(W.Op.allCases.map(\.rawValue) == Array(1...19) && W.versionMinor == 2)
    }

    @Test("a nested HWPT allocated with the PASID flag is journaled: after a restart it still has pasid, the PASID on it is still attached, and a new channel replaces and detaches it")
    func survivesRestart() throws {
        let store = MemoryFDStore()
        let s = try Setup(store: store)
        let parent = try Self.nestParent(s)
        let nested = try s.f.ch.nestedAllocSelftest(parent: parent, device: Self.device, iotlb: 2, flags: W.nestedAllocPASID)
        _ = try s.f.ch.pasidAttach(device: Self.device, pasid: 300, hwpt: nested)
        let hwptBefore = try #require(try hwpt(s.f.broker, nested))
        s.f.hangUp()

        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems.isEmpty && second.recovery?.problems == [])
        #expect(try hwpt(second.broker, nested) == hwptBefore && hwptBefore.pasid == true)
        try second.sim.checkPASID(deviceID: s.deviceID, pasid: 300, hwpt: nested)

        let (server2, ch2) = try ChannelFixture.delegate(second.broker)
        #expect(try ch2.pasidAttach(device: Self.device, pasid: 301, hwpt: nested).hwpt == nested)
        #expect(try ch2.pasidReplace(device: Self.device, pasid: 300, hwpt: s.rid).previous == nested)
        #expect(try ch2.pasidDetach(device: Self.device, pasid: 301).previous == nested)
        try ch2.hwptDestroy(nested)
        ChannelFixture.hangUp(ch2, server2)

        let (third, replay3) = try Incarnation.restarted(store)
        #expect(replay3.problems.isEmpty && third.recovery?.problems == [])
        #expect(try hwpt(third.broker, nested) == nil)
        #expect(try third.broker.deviceInfo(a, DeviceInfoParams(device: Self.device)).pasids == [PASIDAttachmentInfo(pasid: 300, hwpt: s.rid)])
        try third.sim.checkPASID(deviceID: s.deviceID, pasid: 300, hwpt: s.rid)
    }
}
