#if canImport(Glibc)
import Glibc
#endif
import CIommufd
import Foundation
import IommufdBroker
import IommufdCore
import IommufdKernel
import IommufdContract

// MARK: nestedgaps

/// Nested translation through the broker on the real kernel (branch `nestedgaps`), run with the
/// queue checks (same in-process broker, mock device `qmock0`): a nested HWPT whose page faults
/// go to a fault queue, and a device on a nested HWPT of a dirty-tracked IOAS whose DMA the nest
/// parent's bitmap reports.
enum NestedGapChecks {
    static let admin = QueueChecks.admin

    static func runAll(run: CheckRunner, backend: KernelBackend, broker: Broker) {
        run.check("nested-hwpt-with-fault-queue") { try nestedFaults(backend, broker) }
        run.check("nested-attach-on-dirty-tracked-ioas") { try nestedDirty(backend, broker) }
    }

    static func nestedFaults(_ backend: KernelBackend, _ broker: Broker) throws {
        _ = try broker.ownerCreate(admin, OwnerCreateParams(name: "n-faults"))
        let ioas = try broker.ioasCreate(admin, IOASCreateParams(owner: "n-faults")).ioas
        _ = try broker.deviceAttach(admin, DeviceAttachParams(owner: "n-faults", device: "qmock0", ioas: ioas))
        let v = try broker.viommuCreate(admin, VIOMMUCreateParams(device: "qmock0"))
        let created = try broker.faultCreate(admin, FaultCreateParams(owner: "n-faults"))
        guard let fd = created.fds.first else { throw CheckFailure(description: "fault.create returned no fd") }
        defer { close(fd) }
        let queue = created.result.queue.queue
        let nested = try broker.hwptAlloc(
            admin, HWPTAllocParams(device: "qmock0", parent: v.nestParent, data: NestedDataParams(type: "selftest", iotlb: 0), faultQueue: queue))
        try expect(nested.faultQueue == queue && nested.nested?.parent == v.nestParent, "nested HWPT \(nested)")
        _ = try broker.deviceReplace(admin, DeviceReplaceParams(device: "qmock0", hwpt: nested.hwpt))
        let device = try broker.deviceInfo(admin, DeviceInfoParams(device: "qmock0")).deviceID ?? 0
        try backend.triggerIOPF(deviceID: device, pasid: 0, groupID: 4, perm: 1, address: 0xbeef_0000)
        guard let message = QueueChecks.receive(fd), let fault = PageFault.parse(message).first else {
            throw CheckFailure(description: "no page fault of the device on the nested HWPT reached the fault queue's holder")
        }
        try expect(fault.address == 0xbeef_0000 && fault.deviceID == device && fault.groupID == 4, "fault \(fault)")
        do {
            _ = try broker.faultDestroy(admin, QueueParams(queue: queue))
            throw CheckFailure(description: "fault.destroy of a queue a nested HWPT delivers to succeeded")
        } catch let error as BrokerError where error.kind == .busy {}
        let released = try broker.ownerRelease(admin, OwnerReleaseParams(name: "n-faults"))
        try expect(released.released, "owner.release: \(released.failures)")
    }

    static func nestedDirty(_ backend: KernelBackend, _ broker: Broker) throws {
        let page: UInt64 = 4096
        _ = try broker.ownerCreate(admin, OwnerCreateParams(name: "n-dirty", hugePages: false))
        let ioas = try broker.ioasCreate(admin, IOASCreateParams(owner: "n-dirty")).ioas
        let fd = ifd_memfd_create("nestedgaps", 0x0001)  // MFD_CLOEXEC
        guard fd >= 0, ftruncate(fd, off_t(16 * page)) == 0 else { throw CheckFailure(description: "memfd of 16 pages: errno \(errno)") }
        defer { close(fd) }
        _ = try broker.ioasMap(admin, IOASMapParams(ioas: ioas, length: 16 * page, iova: 0x100_0000), fd: fd)
        _ = try broker.deviceAttach(admin, DeviceAttachParams(owner: "n-dirty", device: "qmock0", ioas: ioas, dirty: .required))
        _ = try broker.dirtyStart(admin, DirtyParams(ioas: ioas))
        let v = try broker.viommuCreate(admin, VIOMMUCreateParams(device: "qmock0"))
        let parent = try broker.hwptList(admin, HWPTListParams(ioas: ioas)).hwpts.first { $0.hwpt == v.nestParent }
        try expect(parent?.dirtyTracking == true && parent?.tracking == true, "the nest parent made under tracking: \(String(describing: parent))")
        _ = try broker.vdeviceCreate(admin, VDeviceCreateParams(viommu: v.viommu, device: "qmock0", virtualID: 0x31))
        let nested = try broker.hwptAlloc(admin, HWPTAllocParams(device: "qmock0", viommu: v.viommu, data: NestedDataParams(type: "selftest", iotlb: 0)))
        let moved = try broker.deviceReplace(admin, DeviceReplaceParams(device: "qmock0", hwpt: nested.hwpt, dirty: .required))
        try expect(moved.pt == nested.hwpt, "device.replace onto the nested HWPT: \(moved)")
        // The device writes through its stage 1; the IOMMU dirties the nest parent's stage 2.
        try backend.simulateDeviceWrite(hwpt: v.nestParent, iova: 0x100_0000 + 5 * page, length: page, pageSize: page)
        let read = try broker.dirtyRead(admin, DirtyReadParams(ioas: ioas, iova: 0x100_0000, length: 16 * page))
        try expect(read.result.runs == [DirtyRun(iova: 0x100_0000 + 5 * page, length: page)], "dirty.read: \(read.result)")
        let released = try broker.ownerRelease(admin, OwnerReleaseParams(name: "n-dirty"))
        try expect(released.released, "owner.release: \(released.failures)")
    }
}
