#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC

// MARK: i14audit

// A nested HWPT and a vEVENTQ across the SIGKILL (issue 14 item 9): mock1 gets a vIOMMU, its
// vDevice (virtual ID 0x33), a nested HWPT on the vIOMMU that it is moved onto, and a vEVENTQ
// whose holder fd this process keeps. Before the kill a vEVENT (`test.trigger_vevent`,
// IOMMU_TEST_OP_TRIGGER_VEVENT) reaches the holder. After the restart the same objects are
// there (same-objects-same-ids compares every view), a second vEVENT reaches the same holder fd
// with the next sequence number — so the kernel kept the nested attachment, the vDevice and the
// vEVENTQ, and the restarted daemon took the queue and the holder's socket back from the fd
// store — and an invalidation of the adopted nested HWPT takes effect. owner.release then tears
// it all down in the kernel's order (vEVENTQ, nested HWPT, vDevice, vIOMMU, parent).
final class RestartNestedState: @unchecked Sendable {
    static let shared = RestartNestedState()
    var nested: Int64 = 0
    var queue: Int64 = 0
    var holderFD: Int32 = -1
}

extension RestartChecks {
    static let nestedDevice = "mock1"
    static let nestedVirtualID: UInt32 = 0x33

    /// One record from the vEVENTQ holder's fd, within two seconds.
    func readVEvent(_ fd: Int32, _ what: String) throws -> VEvent {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        try expect(poll(&p, 1, 2000) == 1, "\(what): nothing came on the vEVENTQ holder's fd within 2 s")
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        try expect(n >= EventQueueABI.veventHeaderSize, "\(what): recv from the holder's fd returned \(n) (errno \(errno))")
        return VEvent.parse(buffer[0..<n], dataLength: n - EventQueueABI.veventHeaderSize)[0]
    }

    func nestedBeforeKill() throws {
        let c = try connected()
        let owner = JSONValue.string(Self.owner), device = JSONValue.string(Self.nestedDevice)
        // mock1 already has a vIOMMU when the HW queue check (hwqueue-before-kill) ran first: the
        // vDevice, the nested HWPT and the vEVENTQ go on that one, beside its HW queues.
        let viommu: Int64
        if RestartHWQueueState.shared.viommu != 0 {
            viommu = Int64(RestartHWQueueState.shared.viommu)
        } else {
            let ioas = try c.json("ioas.create", ["owner": owner]).result["ioas"]?.int64Value ?? 0
            _ = try c.json("device.attach", ["owner": owner, "device": device, "ioas": .int(ioas)])
            viommu = try c.json("viommu.create", ["device": device]).result["viommu"]?.int64Value ?? 0
        }
        _ = try c.json("vdevice.create", ["viommu": .int(viommu), "device": device, "virtual_id": .int(Int64(Self.nestedVirtualID))])
        let nested = try c.json("hwpt.alloc", ["device": device, "viommu": .int(viommu), "data": ["type": "selftest", "iotlb": 0]]).result["hwpt"]?.int64Value ?? 0
        _ = try c.json("device.replace", ["device": device, "hwpt": .int(nested)])
        let (created, fds) = try c.json("veventq.create", ["viommu": .int(viommu), "depth": 8])
        guard let queue = created["queue"]?["queue"]?.int64Value, let holder = fds.first else {
            for fd in fds { close(fd) }
            throw CheckFailure(description: "veventq.create answered \(created) with \(fds.count) fds")
        }
        RestartNestedState.shared.nested = nested
        RestartNestedState.shared.queue = queue
        RestartNestedState.shared.holderFD = holder
        print("      \(Self.nestedDevice): vIOMMU \(viommu), vDevice 0x33, nested HWPT \(nested) attached, vEVENTQ \(queue)")
        _ = try c.json("test.trigger_vevent", ["device": device])
        let event = try readVEvent(holder, "the vEVENT before the kill")
        try expect(
            event == VEvent(flags: 0, sequence: 0, data: [UInt8(Self.nestedVirtualID), 0, 0, 0]),
            "the vEVENT before the kill: \(event)")
        let names = supervisor.storedNames
        try expect(names.contains("queue.\(queue)") && names.contains("queuerelay.\(queue)"), "the vEVENTQ's fds are not in the store: \(names)")
        // same-objects-same-ids compares every view after the restart with this one.
        state.before = try state.snapshot(c)
    }

    func nestedAfterRestart() throws {
        let c = try connected()
        let s = RestartNestedState.shared
        let device = JSONValue.string(Self.nestedDevice)
        let info = try c.json("device.info", ["device": device]).result
        try expect(info["pt"]?.int64Value == s.nested, "\(Self.nestedDevice) after the restart is on \(info["pt"] ?? nil), not nested HWPT \(s.nested)")
        let queues = try c.json("queue.list", ["owner": .string(Self.owner)]).result["queues"]?.arrayValue ?? []
        let queue = queues.first { $0["queue"]?.int64Value == s.queue }
        try expect(queue?["connected"] == .bool(true), "the vEVENTQ's holder is not connected after the restart: \(queues)")
        _ = try c.json("test.trigger_vevent", ["device": device])
        let event = try readVEvent(s.holderFD, "the vEVENT after the restart")
        try expect(
            event == VEvent(flags: 0, sequence: 1, data: [UInt8(Self.nestedVirtualID), 0, 0, 0]),
            "the vEVENT after the restart (the kernel's next sequence number, the vDevice's ID): \(event)")
        let invalidated = try c.json("hwpt.invalidate", ["hwpt": .int(s.nested), "entries": [["iotlb_id": 0], ["all": true]]]).result
        try expect(invalidated["done"]?.int64Value == 2, "hwpt.invalidate of the adopted nested HWPT: \(invalidated)")
        close(s.holderFD)
        s.holderFD = -1
    }
}
