#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdChannel
import IommufdCore
import IommufdKernel

// MARK: chnested

/// The VMM channel's nested-translation ops on the real kernel (branch chnested), against
/// `iommufdd --backend kernel` (DaemonProcess's config: mock devices allowed): this harness is
/// the manager over JSON-RPC (owner, IOAS, mock0 attached, a vIOMMU with vDevice 7) and the VMM
/// on the delegated channel.
///
/// - `vm-e2e channel-nested`: NESTED_ALLOC (on the nest parent and on the vIOMMU), REPLACE,
///   INVALIDATE (a batch, the kernel's early stop on the vIOMMU, refusals), QEMU's alloc +
///   replace + destroy, HWPT_DESTROY; the control plane sees each change. Then the PASID ops
///   (channel 1.2) on mock-pasid (ChannelNestedChecks+PASID.swift), and NESTED_ALLOC_FLAGS with
///   the PASID flag then PASID_ATTACH onto its HWPT (ChannelNestedChecks+NestedFlags.swift).
/// - `vm-e2e invalidate-bench`: issue 16 target 2's real-kernel figure, printed: entries/s of
///   this process calling IOMMU_HWPT_INVALIDATE itself with one entry a call (QEMU's pattern:
///   its own iommufd, its own mock device and nested HWPT) against the daemon's channel with 64
///   entries a message (one at a time, and several in flight; the default adaptive spin, then spin off), same
///   boot, rounds interleaved, medians and their ratios (InvalidateBench.swift).
enum ChannelNestedChecks {
    static let owner = "vm-nested"

    static func runAll(run: CheckRunner, bench: Bool) -> Bool {
        if bench { return runBenchmarks(run: run) }  // InvalidateBench.swift
        return DaemonProcess.withDaemon(run: run) { _, client, _ in
            run.check("nested-ops-on-the-channel") { try nestedOps(client) }
            run.check("pasid-ops-on-the-channel") { try pasidOps(client) }  // pasidch
            run.check("nested-alloc-flags-on-the-channel") { try nestedAllocFlagsOps(client) }  // pasidnest
        }
    }

    struct Setup {
        var ioas: ObjectID
        var parent: ObjectID
        var viommu: ObjectID
        var channel: ChannelClient
    }

    /// mock0 of owner `owner` on a vIOMMU's nest parent, vDevice 7, and a channel.
    static func setUp(_ client: DaemonClient) throws -> Setup {
        _ = try client.call("owner.create", OwnerCreateParams(name: owner), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner))
        let _: DeviceAttachResult = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "mock0", ioas: ioas.ioas))
        let v: VIOMMUCreateResult = try client.call("viommu.create", VIOMMUCreateParams(device: "mock0"))
        let _: VDeviceCreateResult = try client.call("vdevice.create", VDeviceCreateParams(viommu: v.viommu, device: "mock0", virtualID: 7))
        let (delegated, fds) = try client.json("owner.delegate", ["name": .string(owner)])
        guard fds.count == 1 else {
            for fd in fds { close(fd) }
            throw CheckFailure(description: "owner.delegate answered \(delegated) with \(fds.count) fds, not 1")
        }
        print("      owner \(owner): IOAS \(ioas.ioas), mock0 on nest parent \(v.nestParent) of vIOMMU \(v.viommu), channel \(delegated["channel"]?.uint64Value ?? 0)")
        return Setup(ioas: ioas.ioas, parent: v.nestParent, viommu: v.viommu, channel: ChannelClient(adopting: fds[0]))
    }

    static func failure(_ body: () throws -> Void) -> ChannelWire.ErrorReply? {
        do {
            try body()
            return nil
        } catch let f as ChannelClient.Failure {
            return f.reply
        } catch {
            return ChannelWire.ErrorReply(errno: -1, index: 0, done: 0, name: "transport", message: "\(error)")
        }
    }

    static func nestedOps(_ client: DaemonClient) throws {
        defer { _ = try? client.release(owner) }
        let s = try setUp(client)
        let ch = s.channel
        defer { ch.close() }
        let sel = InvalidateDataType.selftest
        // NESTED_ALLOC on the nest parent and on the vIOMMU: the kernel's mock driver allocates them.
        var data = ChannelWire.Writer()
        data.u32(5); data.u32(0)
        let onParent = try ch.nestedAlloc(parent: s.parent, dataType: HWPTDataType.selftest, device: "mock0", data: data.bytes)
        try expect(onParent.nestParent == s.parent, "NESTED_ALLOC's nest parent \(onParent.nestParent), not \(s.parent)")
        let onVIOMMU = try ch.nestedAlloc(parent: s.viommu, dataType: HWPTDataType.selftest, device: "mock0", data: data.bytes)
        let listed: HWPTListResult = try client.call("hwpt.list", HWPTListParams(ioas: s.ioas))
        try expect(listed.hwpts.first { $0.hwpt == onParent.hwpt }?.nested?.parent == s.parent
                   && listed.hwpts.first { $0.hwpt == onVIOMMU.hwpt }?.nested?.viommu == s.viommu, "hwpt.list: \(listed.hwpts)")
        // REPLACE onto it; the kernel moves the device without a gap.
        let moved = try ch.replace(device: "mock0", pt: onParent.hwpt)
        try expect(moved == (onParent.hwpt, s.parent), "REPLACE answered \(moved)")
        let info: DeviceInfo = try client.call("device.info", DeviceInfoParams(device: "mock0"))
        try expect(info.pt == onParent.hwpt, "device.info says mock0 is on \(info.pt.map(String.init) ?? "nothing")")
        // INVALIDATE: 64 entries in one IOMMU_HWPT_INVALIDATE.
        let batch = ChannelClient.selftestHWPTEntries((0..<64).map { (UInt32(0), UInt32($0 % 4)) })
        let all = try ch.invalidate(target: onParent.hwpt, dataType: sel, entryLength: 8, entries: batch)
        try expect(all == .init(requested: 64, done: 64, errno: 0), "INVALIDATE of 64: \(all)")
        // The kernel's own early stop, on the vIOMMU: vDevice 8 does not exist.
        let early = try ch.invalidate(target: s.viommu, dataType: sel, entryLength: 12,
                                      entries: ChannelClient.selftestVIOMMUEntries([(0, 7, 0), (0, 8, 1), (0, 7, 2)]))
        try expect(early == .init(requested: 3, done: 1, errno: EINVAL), "the vIOMMU's early stop: \(early)")
        let none = failure { _ = try ch.invalidate(target: s.viommu, dataType: sel, entryLength: 12, entries: ChannelClient.selftestVIOMMUEntries([(0, 8, 0)])) }
        try expect(none?.name == "iommufdd.Kernel" && none?.errno == EINVAL, "nothing done: \(String(describing: none))")
        let bad = failure { _ = try ch.invalidate(target: onParent.hwpt, dataType: sel, entryLength: 8, entries: ChannelClient.selftestHWPTEntries([(0, 4)])) }
        try expect(bad?.name == "iommufdd.InvalidParams", "iotlb_id 4: \(String(describing: bad))")
        let busy = failure { try ch.hwptDestroy(onParent.hwpt) }
        try expect(busy?.name == "iommufdd.Busy" && busy?.errno == EBUSY, "destroying the HWPT in use: \(String(describing: busy))")
        // QEMU's flow for a guest STE change: alloc the new stage 1, replace, destroy the old one.
        let next = try ch.nestedAllocSelftest(parent: s.parent, device: "mock0", iotlb: 3)
        try expect(try ch.replace(device: "mock0", pt: next) == (next, onParent.hwpt), "REPLACE onto the new stage 1")
        try ch.hwptDestroy(onParent.hwpt)
        try expect(try ch.replace(device: "mock0", pt: s.parent) == (s.parent, next), "REPLACE back onto the nest parent")
        try ch.hwptDestroy(next)
        try ch.hwptDestroy(onVIOMMU.hwpt)
        let after: HWPTListResult = try client.call("hwpt.list", HWPTListParams(ioas: s.ioas))
        try expect(after.hwpts.allSatisfy { $0.nested == nil }, "nested HWPTs left: \(after.hwpts)")
        print("      nested HWPTs \(onParent.hwpt), \(onVIOMMU.hwpt), \(next): allocated, replaced onto, invalidated (64 in one call; early stop at entry 1 on vIOMMU \(s.viommu)) and destroyed over the channel")
    }

    // MARK: The figure

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    }

    /// Median microseconds of a round trip of a `bytes`-byte packet over a SOCK_SEQPACKET pair
    /// whose other end a thread echoes.
    static func echoRoundTrip(bytes: Int, count: Int) throws -> Double {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &pair) == 0 else { throw IommuError(.current, "socketpair") }
        let far = pair[1]
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(far, $0.baseAddress, $0.count, 0) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                _ = buffer.withUnsafeBytes { send(far, $0.baseAddress, n, 0) }
            }
            close(far)
        }
        thread.start()
        defer { shutdown(pair[0], Int32(SHUT_RDWR)); close(pair[0]) }
        let packet = [UInt8](repeating: 0x5a, count: bytes)
        var reply = [UInt8](repeating: 0, count: 1 << 16)
        var samples: [Double] = []
        for i in 0..<(count + 100) {
            let t0 = monotonicNanoseconds()
            _ = packet.withUnsafeBytes { send(pair[0], $0.baseAddress, $0.count, 0) }
            _ = reply.withUnsafeMutableBytes { recv(pair[0], $0.baseAddress, $0.count, 0) }
            if i >= 100 { samples.append(Double(monotonicNanoseconds() - t0) / 1000) }
        }
        return median(samples)
    }
}
