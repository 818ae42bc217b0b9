import Foundation
import IommufdChannel
import IommufdCore
import IommufdSim
import Logging
import Testing

@testable import IommufdBroker

#if canImport(Glibc)
import Glibc
import IommufdContract
#endif

/// The channel's nested-translation ops (branch chnested) served in process by a
/// `ChannelServer` over a broker on the journaled simulator, so the test can look into the mock
/// IOTLB and device caches and restart the broker from the fd store.
@Suite("Nested translation on the VMM channel", .serialized)
struct ChannelNestedTests {
    typealias W = ChannelWire
    let a = Incarnation.admin

    static func selftestData(_ iotlb: UInt32, pagetableType: UInt32 = 0) -> [UInt8] {
        var w = W.Writer()
        w.u32(iotlb); w.u32(pagetableType)
        return w.bytes
    }

    @Test("NESTED_ALLOC, REPLACE, INVALIDATE (batched, early stop), HWPT_DESTROY and QUEUE_FD act as their control-plane twins; every refusal says why")
    func nestedOps() throws {
        let f = try ChannelFixture(.attached)
        defer { f.hangUp() }
        let (inc, b, ioas, ch) = (f.inc, f.broker, f.ioas, f.ch)
        let attached = try #require(f.attached)
        let v = try b.viommuCreate(a, VIOMMUCreateParams(device: "sim0"))
        _ = try b.vdeviceCreate(a, VDeviceCreateParams(viommu: v.viommu, device: "sim0", virtualID: 7))
        #expect(try ch.hello().minor == W.versionMinor)

        // NESTED_ALLOC on the nest parent and on the vIOMMU: the mock IOTLB starts at the data's value.
        let onParent = try ch.nestedAlloc(parent: v.nestParent, dataType: HWPTDataType.selftest, device: "sim0", data: Self.selftestData(5))
        #expect(onParent.nestParent == v.nestParent)
        for i in 0..<4 { try inc.sim.checkNestedIOTLB(hwpt: onParent.hwpt, index: UInt32(i), value: 5) }
        let onVIOMMU = try ch.nestedAlloc(parent: v.viommu, dataType: HWPTDataType.selftest, device: "sim0", data: Self.selftestData(9))
        #expect(onVIOMMU.nestParent == v.nestParent)
        let listed = try b.hwptList(a, HWPTListParams(ioas: ioas)).hwpts
        #expect(listed.first { $0.hwpt == onParent.hwpt }?.nested == NestedHWPTInfo(parent: v.nestParent, viommu: nil, dataType: "selftest"))
        #expect(listed.first { $0.hwpt == onVIOMMU.hwpt }?.nested == NestedHWPTInfo(parent: v.nestParent, viommu: v.viommu, dataType: "selftest"))

        // REPLACE: the device moves onto the nested HWPT; the answer names the one it left.
        let moved = try ch.replace(device: "sim0", pt: onParent.hwpt)
        #expect(moved.pt == onParent.hwpt && moved.previous == v.nestParent, "\(moved), attached first to \(attached.pt)")
        #expect(try b.deviceInfo(a, DeviceInfoParams(device: "sim0")).pt == onParent.hwpt)

        // INVALIDATE: two entries in one call; the IOTLB entries 0 and 2 are cleared.
        let inv = try ch.invalidate(target: onParent.hwpt, dataType: InvalidateDataType.selftest, entryLength: 8,
                                    entries: ChannelClient.selftestHWPTEntries([(0, 0), (0, 2)]))
        #expect(inv == .init(requested: 2, done: 2, errno: 0))
        for (i, value) in [0, 5, 0, 5].enumerated() { try inc.sim.checkNestedIOTLB(hwpt: onParent.hwpt, index: UInt32(i), value: UInt32(value)) }
        // A full batch of 256, ALL.
        let full = try ch.invalidate(target: onVIOMMU.hwpt, dataType: InvalidateDataType.selftest, entryLength: 8,
                                     entries: ChannelClient.selftestHWPTEntries(Array(repeating: (1, 0), count: W.maxEntries)))
        #expect(full.done == UInt32(W.maxEntries) && full.errno == 0)
        for i in 0..<4 { try inc.sim.checkNestedIOTLB(hwpt: onVIOMMU.hwpt, index: UInt32(i), value: 0) }
        // The vIOMMU's entries stop at an unknown virtual ID: done 1 and the kernel's errno.
        let early = try ch.invalidate(target: v.viommu, dataType: InvalidateDataType.selftest, entryLength: 12,
                                      entries: ChannelClient.selftestVIOMMUEntries([(0, 7, 0), (0, 8, 1), (0, 7, 2)]))
        #expect(early == .init(requested: 3, done: 1, errno: EINVAL))
        // Nothing done at all is an error answer, with the kernel's errno.
        let none = ChannelFixture.failure { _ = try ch.invalidate(target: v.viommu, dataType: InvalidateDataType.selftest, entryLength: 12,
                                                       entries: ChannelClient.selftestVIOMMUEntries([(0, 8, 1)])) }
        #expect(none?.name == "iommufdd.Kernel" && none?.errno == EINVAL && none?.done == 0, "\(String(describing: none))")

        // INVALIDATE refusals: checked before the kernel, the control plane's rules.
        let sel = InvalidateDataType.selftest
        let refusals: [(String, UInt32, UInt32, UInt32, [UInt8], String, Int32, String)] = [
            ("iotlb_id past the IOTLB", onParent.hwpt, sel, 8, ChannelClient.selftestHWPTEntries([(0, 1), (0, 4)]), "iommufdd.InvalidParams", EINVAL, "entries[1].iotlb_id 4 is past"),
            ("an unknown flag", onParent.hwpt, sel, 8, ChannelClient.selftestHWPTEntries([(2, 0)]), "iommufdd.InvalidParams", EINVAL, "entries[0].flags 0x2"),
            ("cache_id past the cache", v.viommu, sel, 12, ChannelClient.selftestVIOMMUEntries([(0, 7, 9)]), "iommufdd.InvalidParams", EINVAL, "cache_id 9"),
            ("a vIOMMU's 12-byte entries to a nested HWPT", onParent.hwpt, sel, 12, ChannelClient.selftestVIOMMUEntries([(0, 7, 0)]), "iommufdd.InvalidParams", EINVAL, "takes 8-byte 'selftest' entries"),
            ("VT-d entries to a selftest HWPT", onParent.hwpt, InvalidateDataType.vtdS1, 24, [UInt8](repeating: 0, count: 24), "iommufdd.InvalidParams", EINVAL, "data_type 0xdeadbeef"),
            ("a paging HWPT", v.nestParent, sel, 8, ChannelClient.selftestHWPTEntries([(0, 0)]), "iommufdd.InvalidParams", EINVAL, "is not nested"),
            ("an absent target", 999_999, sel, 8, ChannelClient.selftestHWPTEntries([(0, 0)]), "iommufdd.NotFound", ENOENT, "no nested HWPT or vIOMMU 999999"),
        ]
        for (what, target, type, length, entries, name, errno, words) in refusals {
            let e = ChannelFixture.failure { _ = try ch.invalidate(target: target, dataType: type, entryLength: length, entries: entries) }
            #expect(e?.name == name && e?.errno == errno && e?.message.contains(words) == true, "\(what): \(String(describing: e))")
        }
        for (i, value) in [0, 5, 0, 5].enumerated() { try inc.sim.checkNestedIOTLB(hwpt: onParent.hwpt, index: UInt32(i), value: UInt32(value)) }

        // NESTED_ALLOC refusals.
        var vtd = W.Writer()
        vtd.u64(0); vtd.u64(0x1000); vtd.u32(48); vtd.u32(0)
        let allocRefusals: [(String, UInt32, UInt32, [UInt8], String, Int32, String)] = [
            ("an absent parent", 999_999, HWPTDataType.selftest, Self.selftestData(1), "iommufdd.NotFound", ENOENT, "no HWPT or vIOMMU 999999"),
            ("a nested parent", onParent.hwpt, HWPTDataType.selftest, Self.selftestData(1), "iommufdd.InvalidParams", EINVAL, "NESTED_ALLOC: 'parent' HWPT \(onParent.hwpt) is itself nested"),
            ("VT-d data for a mock device", v.nestParent, HWPTDataType.vtdS1, vtd.bytes, "iommufdd.InvalidParams", EINVAL, "does not fit device 'sim0'"),
            ("a pagetable_type", v.nestParent, HWPTDataType.selftest, Self.selftestData(1, pagetableType: 1), "iommufdd.InvalidParams", EINVAL, "pagetable_type is 1"),
        ]
        for (what, parent, type, data, name, errno, words) in allocRefusals {
            let e = ChannelFixture.failure { _ = try ch.nestedAlloc(parent: parent, dataType: type, device: "sim0", data: data) }
            #expect(e?.name == name && e?.errno == errno && e?.message.contains(words) == true, "\(what): \(String(describing: e))")
        }
        let noDevice = ChannelFixture.failure { _ = try ch.nestedAlloc(parent: v.nestParent, dataType: HWPTDataType.selftest, device: "nope", data: Self.selftestData(1)) }
        #expect(noDevice?.name == "iommufdd.NotFound", "\(String(describing: noDevice))")

        // HWPT_DESTROY of an HWPT in use is Busy; REPLACE onto what is absent is NotFound.
        let busy = ChannelFixture.failure { try ch.hwptDestroy(onParent.hwpt) }
        #expect(busy?.name == "iommufdd.Busy" && busy?.errno == EBUSY, "\(String(describing: busy))")
        #expect(ChannelFixture.failure { _ = try ch.replace(device: "sim0", pt: 999_999) }?.name == "iommufdd.NotFound")
        #expect(ChannelFixture.failure { _ = try ch.replace(device: "sim1", pt: onParent.hwpt) }?.errno != 0)

        // QEMU's flow for a guest STE change: alloc the new stage 1, replace, destroy the old.
        let next = try ch.nestedAllocSelftest(parent: v.nestParent, device: "sim0", iotlb: 3)
        #expect(try ch.replace(device: "sim0", pt: next) == (next, onParent.hwpt))
        try ch.hwptDestroy(onParent.hwpt)
        #expect(try b.hwptList(a, HWPTListParams(ioas: ioas)).hwpts.contains { $0.hwpt == onParent.hwpt } == false)
        #expect(ChannelFixture.failure { try ch.hwptDestroy(onParent.hwpt) }?.name == "iommufdd.NotFound")
        // REPLACE onto the IOAS: the auto-domain policy picks its HWPT.
        let back = try ch.replace(device: "sim0", pt: ioas)
        #expect(back.previous == next && back.pt != next)

        // QUEUE_FD: a relay fd of the owner's fault queue (never the kernel's queue fd).
        let fault = try b.faultCreate(a, FaultCreateParams(owner: "vm"))
        for f in fault.fds { close(f) }
        let q = try ch.queueFD(fault.result.queue.queue)
        #expect(q.queue == fault.result.queue.queue && q.kind == 1)
        let relay = try #require(q.fd)
        defer { close(relay) }
        var type: Int32 = 0
        var size = socklen_t(4)
        #expect(getsockopt(relay, SOL_SOCKET, SO_TYPE, &type, &size) == 0 && type == Int32(SOCK_SEQPACKET.rawValue))
        #expect(try b.queueList(a, QueueListParams(owner: "vm")).queues.first?.connected == true)
        #expect(ChannelFixture.failure { _ = try ch.queueFD(999_999) }?.name == "iommufdd.NotFound")

        try ch.hwptDestroy(next)
        try ch.hwptDestroy(onVIOMMU.hwpt)
        let released = try b.ownerRelease(a, OwnerReleaseParams(name: "vm"))
        #expect(released.released && released.failures.isEmpty, "\(released)")
    }

    @Test("a nested HWPT allocated and attached on a channel is journaled: after a restart the broker has it, and a new channel invalidates, replaces and destroys it")
    func nestedFromTheChannelSurvivesRestart() throws {
        let store = MemoryFDStore()
        let first = try ChannelFixture(.nestParent, store: store)
        let (b, ioas, parent, ch) = (first.broker, first.ioas, first.parent, first.ch)
        let nested = try ch.nestedAllocSelftest(parent: parent, device: "sim0", iotlb: 6)
        _ = try ch.replace(device: "sim0", pt: nested)
        #expect(try ch.invalidate(target: nested, dataType: InvalidateDataType.selftest, entryLength: 8,
                                  entries: ChannelClient.selftestHWPTEntries([(0, 3)])).done == 1)
        let before = try b.hwptList(a, HWPTListParams(ioas: ioas))
        first.hangUp()

        let (second, replay) = try Incarnation.restarted(store)
        #expect(replay.problems.isEmpty && second.recovery?.problems == [])
        let b2 = second.broker
        #expect(try b2.hwptList(a, HWPTListParams(ioas: ioas)) == before)
        #expect(try b2.deviceInfo(a, DeviceInfoParams(device: "sim0")).pt == nested)
        for (i, value) in [6, 6, 6, 0].enumerated() { try second.sim.checkNestedIOTLB(hwpt: nested, index: UInt32(i), value: UInt32(value)) }

        let (server2, ch2) = try ChannelFixture.delegate(b2)
        defer { ChannelFixture.hangUp(ch2, server2) }
        #expect(try ch2.invalidate(target: nested, dataType: InvalidateDataType.selftest, entryLength: 8,
                                   entries: ChannelClient.selftestHWPTEntries([(1, 0)])).done == 1)
        for i in 0..<4 { try second.sim.checkNestedIOTLB(hwpt: nested, index: UInt32(i), value: 0) }
        #expect(try ch2.replace(device: "sim0", pt: parent) == (parent, nested))
        try ch2.hwptDestroy(nested)

        // And that is journaled too.
        let (third, replay3) = try Incarnation.restarted(store)
        #expect(replay3.problems.isEmpty && third.recovery?.problems == [])
        #expect(try third.broker.hwptList(a, HWPTListParams(ioas: ioas)).hwpts.map(\.hwpt) == [parent])
        #expect(try third.broker.deviceInfo(a, DeviceInfoParams(device: "sim0")).pt == parent)
    }

    /// The request bytes: header (id 1, `op`, flags 0, the payload's size) and `payload`.
    static func message(_ op: W.Op, _ payload: [UInt8], size: UInt32? = nil) -> [UInt8] {
        var w = W.Writer()
        w.u64(1); w.u16(op.rawValue); w.u16(0); w.u32(size ?? UInt32(payload.count))
        return w.bytes + payload
    }

    @Test("malformed nested-translation requests are refused with the right errno and name, change nothing, and the channel goes on; the decoder and encoder agree on every op")
    func malformedRequests() throws {
        let f = try ChannelFixture(.nestParent)
        defer { f.hangUp() }
        let (inc, b, parent, ch) = (f.inc, f.broker, f.parent, f.ch)
        let before = try b.hwptList(a, HWPTListParams())

        func alloc(parent: UInt32 = parent, type: UInt32 = HWPTDataType.selftest, dataLen: UInt32? = nil, device: [UInt8]? = nil, data: [UInt8] = ChannelNestedTests.selftestData(1)) -> [UInt8] {
            var w = W.Writer()
            w.u32(parent); w.u32(0); w.u32(type); w.u32(dataLen ?? UInt32(data.count))
            w.bytes += device ?? Array("sim0".utf8) + [UInt8](repeating: 0, count: 60)
            return w.bytes + data
        }
        func invalidate(type: UInt32 = InvalidateDataType.selftest, length: UInt32 = 8, count: UInt32 = 1, entries: [UInt8]? = nil) -> [UInt8] {
            var w = W.Writer()
            w.u32(parent); w.u32(type); w.u32(length); w.u32(count)
            return w.bytes + (entries ?? [UInt8](repeating: 0, count: Int(length) * Int(count)))
        }
        let bad = W.ErrorName.badMessage
        let cases: [(String, [UInt8], [Int32], String, Int32)] = [
            ("NESTED_ALLOC shorter than its fixed part", Self.message(.nestedAlloc, Array(alloc().prefix(40))), [], bad, W.EBADMSG),
            ("NESTED_ALLOC of an unknown data type", Self.message(.nestedAlloc, alloc(type: 7)), [], "iommufdd.InvalidParams", EINVAL),
            ("NESTED_ALLOC with data_len not the type's", Self.message(.nestedAlloc, alloc(dataLen: 4, data: [1, 0, 0, 0])), [], bad, W.EBADMSG),
            ("NESTED_ALLOC with more data than data_len", Self.message(.nestedAlloc, alloc() + [0]), [], bad, W.EBADMSG),
            ("NESTED_ALLOC with a device name without NUL", Self.message(.nestedAlloc, alloc(device: [UInt8](repeating: 0x61, count: 64))), [], bad, W.EBADMSG),
            ("NESTED_ALLOC with an fd", Self.message(.nestedAlloc, alloc()), [inc.sim.log.fd], bad, W.EBADMSG),
            ("REPLACE of the wrong size", Self.message(.replace, [UInt8](repeating: 0, count: 8)), [], bad, W.EBADMSG),
            ("REPLACE with a reserved word", Self.message(.replace, [1, 0, 0, 0, 1, 0, 0, 0] + Array("sim0".utf8) + [UInt8](repeating: 0, count: 60)), [], bad, W.EBADMSG),
            ("HWPT_DESTROY of 4 bytes", Self.message(.hwptDestroy, [1, 0, 0, 0]), [], bad, W.EBADMSG),
            ("HWPT_DESTROY with a reserved word", Self.message(.hwptDestroy, [1, 0, 0, 0, 0, 0, 0, 1]), [], bad, W.EBADMSG),
            ("QUEUE_FD of 12 bytes", Self.message(.queueFD, [UInt8](repeating: 0, count: 12)), [], bad, W.EBADMSG),
            ("INVALIDATE shorter than its fixed part", Self.message(.invalidate, [UInt8](repeating: 0, count: 12)), [], bad, W.EBADMSG),
            ("INVALIDATE of 0 entries", Self.message(.invalidate, invalidate(count: 0)), [], bad, W.EBADMSG),
            ("INVALIDATE of 257 entries", Self.message(.invalidate, invalidate(count: 257)), [], bad, W.EBADMSG),
            ("INVALIDATE of an unknown data type", Self.message(.invalidate, invalidate(type: 0xdad_beef)), [], "iommufdd.InvalidParams", EINVAL),
            ("INVALIDATE with entry_len not the type's", Self.message(.invalidate, invalidate(length: 10)), [], bad, W.EBADMSG),
            ("INVALIDATE with fewer entry bytes than count x entry_len", Self.message(.invalidate, Array(invalidate(count: 2).dropLast(8))), [], bad, W.EBADMSG),
            ("INVALIDATE whose header size is not the payload's", Self.message(.invalidate, invalidate(), size: 8), [], bad, W.EBADMSG),
        ]
        for (what, bytes, fds, name, errno) in cases {
            try ch.sendRaw(bytes, fds: fds)
            let reply = try #require(try ch.receive(timeoutMilliseconds: 10_000), "\(what): no answer")
            let e = reply.payload.withUnsafeBytes { W.decodeError($0) }
            #expect(reply.header.flags & W.flagError != 0 && e?.name == name && e?.errno == errno, "\(what): \(String(describing: e))")
            #expect(e?.message.isEmpty == false)
            // The decoder alone says the same.
            let local = bytes.withUnsafeBytes { raw -> W.Refusal? in
                do throws(W.Refusal) { _ = try W.decode(raw, fdCount: fds.count); return nil } catch { return error }
            }
            #expect(local?.name == name && local?.errno == errno, "\(what): the decoder says \(String(describing: local))")
        }
        #expect(try b.hwptList(a, HWPTListParams()) == before)
        #expect(try ch.hello().owner == "vm")

        // Every new op: what `encode` writes, `decode` reads back as the same request.
        let requests: [W.Request] = [
            .nestedAlloc(.init(parent: 3, faultQueue: 4, dataType: HWPTDataType.vtdS1, device: "dev", data: [UInt8](repeating: 7, count: 24))),
            .replace(.init(pt: 9, device: "0000:01:00.0")),
            .hwptDestroy(hwpt: 11),
            .invalidate(.init(target: 5, dataType: InvalidateDataType.armSMMUv3, entryLength: 16, entryCount: 3, entries: [UInt8](repeating: 1, count: 48))),
            .queueFD(queue: 12),
        ]
        for request in requests {
            let bytes = W.encode(id: 42, request)
            let decoded = try bytes.withUnsafeBytes { raw in try W.decode(raw, fdCount: 0) }
            #expect(decoded.0.id == 42 && decoded.1 == request)
        }
    }
}
