import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC

// MARK: hwqueue3

// HW queues across the SIGKILL, through the daemon's RPC on the real kernel: mock1's selftest
// vIOMMU gets queues 0 and 1 (hwqueue.alloc) over two pages mapped in its IOAS. The kernel keeps
// them with the iommufd in the store; the restarted daemon takes them back from its journal, still
// refuses (before the kernel) an unmap of the pinned pages, a viommu.destroy and a destroy of queue
// 0 while queue 1 holds it, and owner.release then destroys them highest index first before the
// vIOMMU (the kernel would answer EBUSY to any other order, and owner-release checks it released all).
final class RestartHWQueueState: @unchecked Sendable {
    static let shared = RestartHWQueueState()
    var ioas: ObjectID = 0
    var viommu: ObjectID = 0
    var queues: [HWQueueInfo] = []
    static let iova: UInt64 = 0x4000_0000
}

extension RestartChecks {
    static let hwQueueDevice = "mock1"

    func hwQueueBeforeKill() throws {
        let c = try connected()
        let s = RestartHWQueueState.shared
        let p = Self.page
        s.ioas = try c.call("ioas.create", IOASCreateParams(owner: Self.owner, hugePages: false), as: IOASCreateResult.self).ioas
        let memory = try GuestMemory(size: 2 * p)
        _ = try c.map(ioas: s.ioas, memory: memory, iova: RestartHWQueueState.iova)
        _ = try c.call("device.attach", DeviceAttachParams(owner: Self.owner, device: Self.hwQueueDevice, ioas: s.ioas), as: DeviceAttachResult.self)
        s.viommu = try c.call("viommu.create", VIOMMUCreateParams(device: Self.hwQueueDevice), as: VIOMMUCreateResult.self).viommu
        // The kernel's own refusals come back with their errno.
        try c.expectError("iommufdd.Kernel", errno: "EIO", "hwqueue.alloc of index 1 before index 0") {
            _ = try c.call("hwqueue.alloc", HWQueueAllocParams(viommu: s.viommu, type: .name("selftest"), index: 1, baseAddress: RestartHWQueueState.iova, length: p), as: HWQueueInfo.self)
        }
        try c.expectError("iommufdd.Kernel", errno: "ENOENT", "hwqueue.alloc over an unmapped range") {
            _ = try c.call("hwqueue.alloc", HWQueueAllocParams(viommu: s.viommu, type: .name("selftest"), index: 0, baseAddress: RestartHWQueueState.iova + 2 * p, length: p), as: HWQueueInfo.self)
        }
        try c.expectError("iommufdd.Unsupported", "hwqueue.alloc of type tegra241_cmdqv") {
            _ = try c.call("hwqueue.alloc", HWQueueAllocParams(viommu: s.viommu, type: .name("tegra241_cmdqv"), index: 0, baseAddress: RestartHWQueueState.iova, length: p), as: HWQueueInfo.self)
        }
        let q0: HWQueueInfo = try c.call("hwqueue.alloc", HWQueueAllocParams(viommu: s.viommu, type: .name("selftest"), index: 0, baseAddress: RestartHWQueueState.iova, length: p))
        let q1: HWQueueInfo = try c.call("hwqueue.alloc", HWQueueAllocParams(viommu: s.viommu, type: .number(HWQueueType.selftest), index: 1, baseAddress: RestartHWQueueState.iova + p, length: p))
        try c.expectError("iommufdd.Kernel", errno: "EEXIST", "a second hwqueue.alloc of index 1") {
            _ = try c.call("hwqueue.alloc", HWQueueAllocParams(viommu: s.viommu, type: .name("selftest"), index: 1, baseAddress: RestartHWQueueState.iova + p, length: p), as: HWQueueInfo.self)
        }
        s.queues = [q0, q1]
        print("      mock1: vIOMMU \(s.viommu) with HW queues \(q0.hwQueue) (index 0) and \(q1.hwQueue) (index 1) in IOAS \(s.ioas)")
        // same-objects-same-ids compares every view (owner.info with its hw_queues, hwpt.list,
        // device.list) after the restart with this one.
        state.before = try state.snapshot(c)
    }

    func hwQueueAfterRestart() throws {
        let c = try connected()
        let s = RestartHWQueueState.shared
        let list: VIOMMUListResult = try c.call("viommu.list", VIOMMUListParams(ioas: s.ioas))
        let queues = list.viommus.first { $0.viommu == s.viommu }?.hwQueues ?? []
        try expect(queues == s.queues, "viommu.list hw_queues after the restart: \(queues), before: \(s.queues)")
        try c.expectError("iommufdd.Busy", "ioas.unmap of the pages HW queue \(s.queues[0].hwQueue) pins") {
            _ = try c.call("ioas.unmap", IOASUnmapParams(ioas: s.ioas, all: true), as: IOASUnmapResult.self)
        }
        try c.expectError("iommufdd.Busy", "viommu.destroy of vIOMMU \(s.viommu) with HW queues") {
            _ = try c.call("viommu.destroy", VIOMMUDestroyParams(viommu: s.viommu), as: VIOMMUDestroyResult.self)
        }
        try c.expectError("iommufdd.Busy", "hwqueue.destroy of index 0 while index 1 holds it") {
            _ = try c.call("hwqueue.destroy", HWQueueParams(hwQueue: s.queues[0].hwQueue), as: HWQueueDestroyResult.self)
        }
        // The kernel agrees that index 1 is still taken (the queue lived on without a daemon).
        try c.expectError("iommufdd.Kernel", errno: "EEXIST", "hwqueue.alloc of index 1 after the restart") {
            _ = try c.call("hwqueue.alloc", HWQueueAllocParams(viommu: s.viommu, type: .name("selftest"), index: 1, baseAddress: RestartHWQueueState.iova + Self.page, length: Self.page), as: HWQueueInfo.self)
        }
        // Both queues stay for owner.release, which must destroy them before the vIOMMU.
    }
}
