import Foundation
import IommufdCore

/// A wrapper around any `IommuBackend` that records every call and fails the Nth one it is told
/// to, the way the kernel's `iommufd_fail_nth` selftest fails the Nth allocation of an ioctl:
/// the call does nothing and answers an errno it can really answer. Test-only (a test-support
/// target): no production target depends on it.
///
/// Counting: after `arm(failAt: n)`, the n-th call that can fail (every call but `unbind`,
/// which is `close()` and cannot, and `discoverDevices`, which reads sysfs, not the iommufd)
/// fails with that call's injected errno (or the one `arm` names) and nothing reaches the
/// wrapped backend. Calls before and after it go through. `fired` says whether it happened.
public final class FaultInjectingBackend: IommuBackend, @unchecked Sendable {
    /// One method of `IommuBackend`, by the uAPI call behind it.
    public enum Call: String, CaseIterable, Sendable {
        case discoverDevices, bind, unbind, attach, replace, detach, hwInfo, destroy
        case allocIOAS, map, unmap, copy, iovaRanges, allowIOVAs, setOption, getOption
        case allocHWPT, setDirtyTracking, readDirtyBitmap, allocVIOMMU, allocVDevice
        // MARK: nested
        case allocNestedHWPT, invalidate
        // MARK: queues
        case allocFaultQueue, allocVEventQueue, readEventQueue, respondToFaults
        // MARK: pasid
        case attachPASID, replacePASID, detachPASID
        // MARK: hwqueue
        case allocHWQueue

        /// The ioctl (or syscall) name the backend's `IommuError` carries.
        public var operation: String {
            switch self {
            case .discoverDevices: "discoverDevices"
            case .bind: "VFIO_DEVICE_BIND_IOMMUFD"
            case .unbind: "close"
            case .attach, .replace: "VFIO_DEVICE_ATTACH_IOMMUFD_PT"
            case .detach: "VFIO_DEVICE_DETACH_IOMMUFD_PT"
            case .hwInfo: "IOMMU_GET_HW_INFO"
            case .destroy: "IOMMU_DESTROY"
            case .allocIOAS: "IOMMU_IOAS_ALLOC"
            case .map: "IOMMU_IOAS_MAP"
            case .unmap: "IOMMU_IOAS_UNMAP"
            case .copy: "IOMMU_IOAS_COPY"
            case .iovaRanges: "IOMMU_IOAS_IOVA_RANGES"
            case .allowIOVAs: "IOMMU_IOAS_ALLOW_IOVAS"
            case .setOption, .getOption: "IOMMU_OPTION"
            case .allocHWPT: "IOMMU_HWPT_ALLOC"
            case .setDirtyTracking: "IOMMU_HWPT_SET_DIRTY_TRACKING"
            case .readDirtyBitmap: "IOMMU_HWPT_GET_DIRTY_BITMAP"
            case .allocVIOMMU: "IOMMU_VIOMMU_ALLOC"
            case .allocVDevice: "IOMMU_VDEVICE_ALLOC"
            case .allocNestedHWPT: "IOMMU_HWPT_ALLOC"
            case .invalidate: "IOMMU_HWPT_INVALIDATE"
            case .allocFaultQueue: "IOMMU_FAULT_QUEUE_ALLOC"
            case .allocVEventQueue: "IOMMU_VEVENTQ_ALLOC"
            case .readEventQueue: "read"
            case .attachPASID, .replacePASID: "VFIO_DEVICE_ATTACH_IOMMUFD_PT"
            case .detachPASID: "VFIO_DEVICE_DETACH_IOMMUFD_PT"
            case .respondToFaults: "write"
            case .allocHWQueue: "IOMMU_HW_QUEUE_ALLOC"
            }
        }

        /// The errnos Linux 7.3 can answer for this call when something other than the caller's
        /// arguments fails (an allocation, a copy to or from user memory, a reference held by
        /// a concurrent ioctl, the IOMMU driver), the first one most likely. Empty: it cannot
        /// fail that way. From drivers/iommu/iommufd/ and drivers/vfio/:
        public var errnos: [Errno] {
            switch self {
            // Not an iommufd call (sysfs), and close(2) of a VFIO cdev always releases it.
            case .discoverDevices, .unbind: []
            // vfio_df_ioctl_bind_iommufd → iommufd_device_bind: kzalloc, and
            // iommu_device_claim_dma_owner while another owner holds the group.
            case .bind: [.ENOMEM, .EBUSY]
            // iommufd_device_attach/replace: the domain and reserved-region allocations; EINVAL
            // from a driver's attach_dev for an incompatible domain (which the broker's
            // auto-domain policy reads as "try the next"); EBUSY from iopt_table_add_domain.
            case .attach, .replace: [.ENOMEM, .EINVAL, .EBUSY]
            // vfio_df_ioctl_detach_pt: copy_from_user of its argument.
            case .detach: [.EFAULT]
            // iommufd_get_hw_info: the driver's hw_info allocation, copy_to_user.
            case .hwInfo: [.ENOMEM, .EFAULT]
            // iommufd_object_remove: a users reference still held by a concurrent ioctl.
            case .destroy: [.EBUSY]
            case .allocIOAS: [.ENOMEM]
            // iopt_map_pages: pinning (RLIMIT_MEMLOCK, allocations), pin_user_pages faults.
            case .map: [.ENOMEM, .EFAULT]
            // iopt_unmap_iova_range: an area a concurrent map or an access still holds.
            case .unmap: [.EBUSY]
            case .copy: [.ENOMEM]
            case .iovaRanges: [.EFAULT]
            case .allowIOVAs: [.ENOMEM, .EFAULT]
            // iommufd_option: copy_to_user of val64; iopt_*_large_pages while domains change.
            case .setOption: [.EFAULT, .EBUSY]
            case .getOption: [.EFAULT]
            // iommufd_hwpt_paging_alloc: the domain allocation.
            case .allocHWPT: [.ENOMEM]
            // iopt_set_dirty_tracking: iopt_clear_dirty_data's bitmap, then the driver.
            case .setDirtyTracking: [.ENOMEM, .EIO]
            // iopt_read_and_clear_dirty_data: iova_bitmap_alloc, pinning the user bitmap.
            case .readDirtyBitmap: [.ENOMEM, .EFAULT]
            case .allocVIOMMU, .allocVDevice: [.ENOMEM]
            // iommufd_hwpt_nested_alloc: the domain allocation, copy of the driver data.
            case .allocNestedHWPT: [.ENOMEM, .EFAULT]
            // the driver's cache_invalidate: its array copy.
            case .invalidate: [.ENOMEM, .EFAULT]
            case .allocFaultQueue, .allocVEventQueue: [.ENOMEM]
            case .readEventQueue, .respondToFaults: [.EFAULT]
            // iommufd_hw_pagetable_attach / iommufd_hwpt_replace_device: the attach's and the
            // handle's allocations; vfio_df_ioctl_detach_pt: copy_from_user of its argument.
            case .attachPASID, .replacePASID: [.ENOMEM]
            case .detachPASID: [.EFAULT]
            // iommufd_hw_queue_alloc_ioctl: the object and page-array allocations, and the
            // internal access's pin (RLIMIT_MEMLOCK, allocations).
            case .allocHWQueue: [.ENOMEM]
            }
        }
    }

    /// One call as the wrapper saw it.
    public struct Record: Sendable, CustomStringConvertible {
        public var call: Call
        /// Its arguments, in words.
        public var arguments: String
        /// Its position among the calls that can fail since `arm` (nil for calls that cannot).
        public var index: Int?
        /// The failure injected into it, if any.
        public var injected: IommuError?
        /// The wrapped backend's own failure, if any.
        public var failed: IommuError?

        public var description: String {
            var s = "\(index.map { "#\($0) " } ?? "")\(call.rawValue)(\(arguments))"
            if let injected { s += " → injected \(injected.errno.name)" } else if let failed { s += " → \(failed.errno.name)" }
            return s
        }
    }

    public let inner: any IommuBackend
    public let kind: BackendKind
    public let features: Set<Feature>
    private let lock = NSLock()
    private var records: [Record] = []
    private var counted = 0
    private var target: (index: Int, errno: Errno?)?
    private var injectedError: IommuError?

    /// `without`: features to hide from the broker (to take its fallback paths).
    public init(_ inner: any IommuBackend, without: Set<Feature> = []) {
        self.inner = inner
        kind = inner.kind
        features = inner.features.subtracting(without)
    }

    /// Fails the `n`-th call that can fail from now on (1 = the next one) with `errno`, or with
    /// that call's first injectable errno. Clears the record of calls.
    public func arm(failAt n: Int, errno: Errno? = nil) {
        precondition(n >= 1, "calls are counted from 1")
        lock.withLock {
            records.removeAll()
            counted = 0
            target = (n, errno)
            injectedError = nil
        }
    }

    /// Stops injecting and clears the record of calls; counting starts again from 1.
    public func disarm() {
        lock.withLock {
            records.removeAll()
            counted = 0
            target = nil
            injectedError = nil
        }
    }

    /// Every call since the last `arm`/`disarm`, in order.
    public var calls: [Record] { lock.withLock { records } }
    /// How many calls that can fail were made since the last `arm`/`disarm`.
    public var countedCalls: Int { lock.withLock { counted } }
    /// The failure injected since the last `arm`, nil if the armed call never came.
    public var injected: IommuError? { lock.withLock { injectedError } }

    /// Records the call and throws the injected failure when it is the armed one; else runs it.
    func run<T>(_ call: Call, _ arguments: @autoclosure () -> String, operation: String? = nil, _ body: () throws -> T) throws -> T {
        let position: Int = lock.withLock {
            var record = Record(call: call, arguments: arguments())
            if !call.errnos.isEmpty {
                counted += 1
                record.index = counted
                if let target, target.index == counted {
                    let errno = target.errno ?? call.errnos[0]
                    let error = IommuError(errno, operation ?? call.operation, detail: "injected by the fault-injecting backend at call \(counted)")
                    record.injected = error
                    injectedError = error
                }
            }
            records.append(record)
            return records.count - 1
        }
        if let error = lock.withLock({ records[position].injected }) { throw error }
        do {
            return try body()
        } catch let error as IommuError {
            lock.withLock { records[position].failed = error }
            throw error
        }
    }

    // MARK: IommuBackend

    public func discoverDevices() throws -> [DeviceDescriptor] { try run(.discoverDevices, "") { try inner.discoverDevices() } }
    public func bind(_ device: DeviceDescriptor) throws -> BoundDevice { try run(.bind, device.name) { try inner.bind(device) } }
    public func unbind(deviceID: ObjectID) throws { try run(.unbind, "\(deviceID)") { try inner.unbind(deviceID: deviceID) } }
    public func attach(deviceID: ObjectID, to ptID: ObjectID) throws -> ObjectID {
        try run(.attach, "\(deviceID) → \(ptID)") { try inner.attach(deviceID: deviceID, to: ptID) }
    }
    public func replace(deviceID: ObjectID, with ptID: ObjectID) throws -> ObjectID {
        try run(.replace, "\(deviceID) → \(ptID)") { try inner.replace(deviceID: deviceID, with: ptID) }
    }
    public func detach(deviceID: ObjectID) throws { try run(.detach, "\(deviceID)") { try inner.detach(deviceID: deviceID) } }
    public func hwInfo(deviceID: ObjectID, request: HWInfoRequest) throws -> HWInfo { try run(.hwInfo, "\(deviceID)") { try inner.hwInfo(deviceID: deviceID, request: request) } }
    public func destroy(_ id: ObjectID) throws { try run(.destroy, "\(id)") { try inner.destroy(id) } }
    public func allocIOAS() throws -> ObjectID { try run(.allocIOAS, "") { try inner.allocIOAS() } }
    public func map(ioas: ObjectID, source: MemorySource, length: UInt64, iova: UInt64, flags: MapFlags) throws -> UInt64 {
        let operation: String
        if case .file = source { operation = "IOMMU_IOAS_MAP_FILE" } else { operation = "IOMMU_IOAS_MAP" }
        return try run(.map, "IOAS \(ioas) iova 0x\(String(iova, radix: 16)) length 0x\(String(length, radix: 16))", operation: operation) {
            try inner.map(ioas: ioas, source: source, length: length, iova: iova, flags: flags)
        }
    }
    public func unmap(ioas: ObjectID, iova: UInt64, length: UInt64) throws -> UInt64 {
        try run(.unmap, "IOAS \(ioas) iova 0x\(String(iova, radix: 16)) length 0x\(String(length, radix: 16))") {
            try inner.unmap(ioas: ioas, iova: iova, length: length)
        }
    }
    public func copy(dst: ObjectID, src: ObjectID, srcIOVA: UInt64, length: UInt64, dstIOVA: UInt64, flags: MapFlags) throws -> UInt64 {
        try run(.copy, "IOAS \(src) → IOAS \(dst) length 0x\(String(length, radix: 16))") {
            try inner.copy(dst: dst, src: src, srcIOVA: srcIOVA, length: length, dstIOVA: dstIOVA, flags: flags)
        }
    }
    public func iovaRanges(ioas: ObjectID, capacity: UInt32) throws -> IOVARanges {
        try run(.iovaRanges, "IOAS \(ioas)") { try inner.iovaRanges(ioas: ioas, capacity: capacity) }
    }
    public func allowIOVAs(ioas: ObjectID, ranges: [IOVARange]) throws {
        try run(.allowIOVAs, "IOAS \(ioas)") { try inner.allowIOVAs(ioas: ioas, ranges: ranges) }
    }
    public func setOption(_ option: IommuOption, objectID: ObjectID, value: UInt64) throws {
        try run(.setOption, "\(option) of \(objectID) = \(value)") { try inner.setOption(option, objectID: objectID, value: value) }
    }
    public func getOption(_ option: IommuOption, objectID: ObjectID) throws -> UInt64 {
        try run(.getOption, "\(option) of \(objectID)") { try inner.getOption(option, objectID: objectID) }
    }
    public func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags) throws -> ObjectID {
        try run(.allocHWPT, "device \(deviceID) in \(ptID) flags \(flags.rawValue)") { try inner.allocHWPT(deviceID: deviceID, ptID: ptID, flags: flags) }
    }
    public func setDirtyTracking(hwpt: ObjectID, enabled: Bool) throws {
        try run(.setDirtyTracking, "HWPT \(hwpt) \(enabled ? "on" : "off")") { try inner.setDirtyTracking(hwpt: hwpt, enabled: enabled) }
    }
    public func readDirtyBitmap(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64, clear: Bool, into bitmap: UnsafeMutableRawBufferPointer) throws {
        try run(.readDirtyBitmap, "HWPT \(hwpt) iova 0x\(String(iova, radix: 16)) length 0x\(String(length, radix: 16))\(clear ? "" : " no-clear")") {
            try inner.readDirtyBitmap(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize, clear: clear, into: bitmap)
        }
    }
    public func allocVIOMMU(deviceID: ObjectID, hwpt: ObjectID, type: UInt32) throws -> ObjectID {
        try run(.allocVIOMMU, "device \(deviceID) on HWPT \(hwpt)") { try inner.allocVIOMMU(deviceID: deviceID, hwpt: hwpt, type: type) }
    }
    public func allocVDevice(viommu: ObjectID, deviceID: ObjectID, virtualID: UInt64) throws -> ObjectID {
        try run(.allocVDevice, "device \(deviceID) on vIOMMU \(viommu)") { try inner.allocVDevice(viommu: viommu, deviceID: deviceID, virtualID: virtualID) }
    }

    // MARK: queues
    public func allocFaultQueue() throws -> EventQueue { try run(.allocFaultQueue, "") { try inner.allocFaultQueue() } }
    public func allocVEventQueue(viommu: ObjectID, type: UInt32, depth: UInt32) throws -> EventQueue {
        try run(.allocVEventQueue, "vIOMMU \(viommu) type \(type)") { try inner.allocVEventQueue(viommu: viommu, type: type, depth: depth) }
    }
    public func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags, faultQueue: ObjectID) throws -> ObjectID {
        try run(.allocHWPT, "device \(deviceID) on \(ptID), fault queue \(faultQueue)") {
            try inner.allocHWPT(deviceID: deviceID, ptID: ptID, flags: flags, faultQueue: faultQueue)
        }
    }
    public func readEventQueue(_ id: ObjectID, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try run(.readEventQueue, "queue \(id)") { try inner.readEventQueue(id, into: buffer) }
    }
    public func respondToFaults(_ id: ObjectID, _ responses: UnsafeRawBufferPointer) throws -> Int {
        try run(.respondToFaults, "queue \(id)") { try inner.respondToFaults(id, responses) }
    }
}
