import Foundation
import IommufdCore

/// An in-memory iommufd that answers like Linux 7.3, errno for errno, over the simulated
/// devices and IOMMU instances of a `SimTopology`.
///
/// Each rule is taken from drivers/iommu/iommufd/ (the function is named next to it) and pinned
/// by the conformance suite, which runs unchanged against the kernel. All state sits behind one
/// lock; every public method is one critical section, as one ioctl is.
public final class SimBackend: IommuBackend, IommuTestHooks, @unchecked Sendable {
    public let kind: BackendKind = .sim
    public var features: Set<Feature> { Self.implementedFeatures }

    /// What the simulator models: the iommufd operations of `IommuBackend`, nested HWPTs and
    /// `IOMMU_HWPT_INVALIDATE` of the selftest mock driver (`NestedIommuBackend`), the selftest
    /// operations of `IommuTestHooks` / `NestedTestHooks`, and fault queues and vEVENTQs as far
    /// as the queue conformance cases go (SimBackend+Queues.swift).
    /// HW queues of the mock vIOMMU (SimBackend+HWQueue.swift).
    /// Not `ioasChangeProcess`: no
    /// call reaches it, so advertising it would promise what nothing answers. A test runs
    /// the conformance suite on the simulator and checks each of these is exercised by a case
    /// that passes.
    public static let implementedFeatures: Set<Feature> = [
        .faultQueue, .veventq,
        .iommufd, .vfioDeviceCdev, .hwptAlloc, .hwInfo, .dirtyTracking, .ioasMapFile, .viommu, .vdevice, .selftest,
        .hwptInvalidate,
        .dmabufMap,
        .pasid,  // SimBackend+PASID.swift
        .hwQueue,  // SimBackend+HWQueue.swift
    ]
    public let topology: SimTopology
    /// The simulated CPU page size (`PAGE_SIZE`).
    public let pageSize: UInt64
    /// `HPAGE_SIZE`: the cap on the alignment of kernel-chosen IOVAs.
    public let hugePageSize: UInt64
    /// The time the kernel spends pinning one page (`[sim] pin_ns_per_page`; 0: none). Paid
    /// where Linux pins at map time — `map` and `copy` into an IOAS with a domain attached —
    /// as a sleep after the operation's critical section, so, as in the kernel (which pins
    /// under the IOAS's `domains_rwsem` only), other objects' operations go on meanwhile.
    public let pinNanosecondsPerPage: UInt64

    let lock = NSLock()
    /// The object xarray (`ictx->objects`).
    var objects: [ObjectID: SimObject] = [:]
    /// Every ID below this one is taken (see `allocateID`).
    var lowestFreeHint: ObjectID = 1
    /// Device name → its bound ID.
    var boundByName: [String: ObjectID] = [:]
    /// Hot resets run (`VFIO_DEVICE_PCI_HOT_RESET` that succeeded), for tests.
    var hotResets = 0
    /// `ictx->account_mode == IOPT_PAGES_ACCOUNT_MM`.
    var accountModeMM = false
    /// The files behind mappings, by identity: one dup per regular file, shared by its mappings.
    var files: [SimFileKey: WeakFile] = [:]
    /// When `files` reaches this many entries, entries of closed files are dropped.
    var filesPurgeThreshold = 64
    // MARK: p2p
    /// The selftest exporter's dma-bufs (SimBackend+Dmabuf.swift), by the memfd standing for each.
    var dmabufs: [SimFileKey: SimDmabuf] = [:]

    /// Creates a simulator; throws `SimTopologyError` for an invalid topology.
    public init(
        topology: SimTopology = .default, pageSize: UInt64 = UInt64(sysconf(Int32(_SC_PAGESIZE))),
        hugePageSize: UInt64 = 2 << 20, pinNanosecondsPerPage: UInt64 = 0
    ) throws(SimTopologyError) {
        try topology.validate()
        self.topology = topology
        self.pageSize = pageSize
        self.hugePageSize = hugePageSize
        self.pinNanosecondsPerPage = pinNanosecondsPerPage
    }

    // MARK: Plumbing

    /// Runs `body` under the lock; an `Errno` it throws becomes an `IommuError` for `operation`.
    func locked<T>(_ operation: String, _ body: () throws -> T) throws(IommuError) -> T {
        lock.lock()
        defer { lock.unlock() }
        do {
            return try body()
        } catch let error as Errno {
            throw IommuError(error, operation)
        } catch let error as IommuError {
            throw error
        } catch {
            throw IommuError(.EIO, operation, detail: "\(error)")
        }
    }

    /// `xa_alloc` with `XA_FLAGS_ALLOC1`: the lowest free ID from 1 (tombstones stay taken).
    /// The search starts at `lowestFreeHint`, below which every ID is taken.
    func allocateID() throws(Errno) -> ObjectID {
        var id = lowestFreeHint
        while objects[id] != nil {
            if id == ObjectID(Int32.max) { throw .ENOSPC }
            id += 1
        }
        lowestFreeHint = id
        return id
    }

    /// Frees an object's ID (`xa_erase`).
    func removeObject(_ id: ObjectID) {
        objects[id] = nil
        lowestFreeHint = min(lowestFreeHint, id)
    }

    /// The simulator's file for the caller's `fd` (`fget` in `iommufd_ioas_map_file`): the one
    /// already held for the same regular file opened with the same access mode, else a new dup.
    /// Any other kind of file gets a dup of its own (anonymous inodes share one inode number).
    func sharedFile(for fd: Int32) throws(Errno) -> SimFile {
        var st = stat()
        let mode = fcntl(fd, F_GETFL)
        let key: SimFileKey?
        if mode >= 0, fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG {
            key = SimFileKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), accessMode: mode & O_ACCMODE)
        } else {
            key = nil
        }
        if let key, let file = files[key]?.file { return file }
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        if copy < 0 { throw .EBADF }
        let file = SimFile(fd: copy)
        guard let key else { return file }
        files[key] = WeakFile(file)
        if files.count >= filesPurgeThreshold {
            files = files.filter { $0.value.file != nil }
            filesPurgeThreshold = max(64, 2 * files.count)
        }
        return file
    }

    func ioas(_ id: ObjectID) throws(Errno) -> SimIOAS {
        guard case .ioas(let ioas) = objects[id] else { throw .ENOENT }
        return ioas
    }

    /// An `IOMMUFD_OBJ_HWPT_PAGING` (a nested HWPT is another object type: ENOENT).
    func hwpt(_ id: ObjectID) throws(Errno) -> SimHWPT {
        guard case .hwpt(let hwpt) = objects[id], hwpt.nested == nil else { throw .ENOENT }
        return hwpt
    }

    /// `iommufd_get_device`: an access (mdev-like device) is not a device object.
    func physicalDevice(_ id: ObjectID) throws(Errno) -> SimDevice {
        guard case .device(let device) = objects[id], !device.isAccess else { throw .ENOENT }
        return device
    }

    /// A bound device of either kind (device or access).
    func anyDevice(_ id: ObjectID) throws(Errno) -> SimDevice {
        guard case .device(let device) = objects[id] else { throw .ENOENT }
        return device
    }

    func viommu(_ id: ObjectID) throws(Errno) -> SimVIOMMU {
        guard case .viommu(let viommu) = objects[id] else { throw .ENOENT }
        return viommu
    }

    // MARK: Devices

    public func discoverDevices() throws -> [DeviceDescriptor] {
        topology.devices.enumerated().map { index, device in descriptor(for: device, group: index) }
    }

    func descriptor(for device: SimTopology.Device, group: Int) -> DeviceDescriptor {
        DeviceDescriptor(
            name: device.name, kind: device.iommu == nil ? .mdev : .simulated,
            pciAddress: device.pciAddress, iommuGroup: device.iommu == nil ? nil : group,
            iommuInstance: device.iommu, driver: device.iommu == nil ? "mdev-sim" : "vfio-pci-sim")
    }

    public func bind(_ descriptor: DeviceDescriptor) throws -> BoundDevice {
        try locked("VFIO_DEVICE_BIND_IOMMUFD") {
            guard let index = topology.devices.firstIndex(where: { $0.name == descriptor.name }) else {
                throw IommuError(
                    .ENOENT, "open",
                    detail: "no simulated device named \"\(descriptor.name)\"; see discoverDevices()")
            }
            // vfio_df_open: the cdev path cannot open a device twice.
            if boundByName[descriptor.name] != nil {
                throw IommuError(.EINVAL, "VFIO_DEVICE_BIND_IOMMUFD", detail: "device \(descriptor.name) is already bound")
            }
            let config = topology.devices[index]
            let iommu = config.iommu.flatMap { topology.iommu(named: $0) }
            // device_iommu_capable(IOMMU_CAP_DIRTY_TRACKING) asks the device's IOMMU driver: a
            // device can lack what its IOMMU has (MOCK_FLAGS_DEVICE_NO_DIRTY), never the reverse.
            let dirty = iommu.map { $0.dirtyTracking && (config.dirtyTracking ?? true) } ?? false
            let id = try allocateID()
            let desc = self.descriptor(for: config, group: index)
            let device = SimDevice(descriptor: desc, iommu: iommu, dirtyCapable: dirty)
            device.pasidWidth = iommu == nil ? 0 : config.pasidWidth ?? 0  // pasid
            objects[id] = .device(device)
            boundByName[descriptor.name] = id
            return BoundDevice(descriptor: desc, id: id, fd: nil)
        }
    }

    /// Closing the cdev: detaches, then `iommufd_device_unbind`. A vDevice of the device is
    /// destroyed and its ID left as a tombstone (`iommufd_device_remove_vdev`,
    /// selftest `iommufd_viommu.vdevice_tombstone`); close itself cannot fail.
    public func unbind(deviceID: ObjectID) throws {
        try locked("close") {
            let device = try anyDevice(deviceID)
            if let vdevID = device.vdevice, case .vdevice(let vdev) = objects[vdevID] {
                if case .viommu(let viommu) = objects[vdev.viommu] { viommu.vdevices[vdev.virtualID] = nil }
                objects[vdevID] = .tombstone
                device.vdevice = nil
            }
            detachPASIDsLocked(device)  // pasid: vfio_iommufd_physical_unbind detaches them first
            detachLocked(deviceID, device)
            removeObject(deviceID)
            boundByName[device.descriptor.name] = nil
        }
    }

    @discardableResult
    public func attach(deviceID: ObjectID, to ptID: ObjectID) throws -> ObjectID {
        try locked("VFIO_DEVICE_ATTACH_IOMMUFD_PT") { try changePT(deviceID, ptID) }
    }

    @discardableResult
    public func replace(deviceID: ObjectID, with ptID: ObjectID) throws -> ObjectID {
        try locked("VFIO_DEVICE_ATTACH_IOMMUFD_PT") { try changePT(deviceID, ptID) }
    }

    /// `vfio_iommufd_physical_detach_ioas`: a device that is not attached is left alone.
    public func detach(deviceID: ObjectID) throws {
        try locked("VFIO_DEVICE_DETACH_IOMMUFD_PT") {
            let device = try anyDevice(deviceID)
            detachLocked(deviceID, device)
        }
    }

    /// `iommufd_get_hw_info`: ENOENT for anything but a device (an access included); the
    /// driver's `hw_info` refuses an input type other than DEFAULT or its own with EOPNOTSUPP; a
    /// driver without one answers type NONE and no data whatever was asked. The data is copied
    /// up to the buffer offered, `dataLength` is the driver's. No simulated device has ATS or
    /// PASID enabled unless its topology gives it a `pasid_width`: `IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED`,
    /// `out_max_pasid_log2` 0 (or the width), as for the selftest's mock devices (20 with
    /// MOCK_FLAGS_DEVICE_PASID) and QEMU's emulated PCI devices.
    public func hwInfo(deviceID: ObjectID, request: HWInfoRequest) throws -> HWInfo {
        try locked("IOMMU_GET_HW_INFO") {
            guard request.dataLength <= HWInfoRequest.maxDataLength else { throw Errno.EINVAL }
            let device = try physicalDevice(deviceID)
            let type = device.iommu?.hwInfoType ?? HWInfoType.none
            var data: [UInt8] = []
            if type != HWInfoType.none {
                if let wanted = request.dataType, wanted != HWInfoType.none, wanted != type { throw Errno.EOPNOTSUPP }
                data = device.iommu?.vendorData?.bytes ?? []
            }
            var capabilities: HWCapabilities = .pciATSNotSupported
            if device.dirtyCapable { capabilities.insert(.dirtyTracking) }
            return HWInfo(
                type: type, capabilities: capabilities, maxPasidLog2: device.pasidWidth,
                data: Array(data.prefix(Int(request.dataLength))), dataLength: UInt32(data.count))
        }
    }

    // MARK: Objects

    /// `iommufd_object_remove`: ENOENT for a free or tombstoned ID, EBUSY while another object
    /// (or, for a device, its driver) holds a reference.
    public func destroy(_ id: ObjectID) throws {
        try locked("IOMMU_DESTROY") {
            guard let object = objects[id] else { throw Errno.ENOENT }
            switch object {
            case .tombstone:
                throw Errno.ENOENT
            case .device:
                // The VFIO driver holds a users reference until close (iommufd_device_bind).
                throw Errno.EBUSY
            case .ioas(let ioas):
                // HWPTs (iommufd_hwpt_paging_alloc) and accesses hold the IOAS.
                if !ioas.hwpts.isEmpty || !ioas.accessDevices.isEmpty { throw Errno.EBUSY }
                removeObject(id)
            case .hwpt(let hwpt):
                if !hwpt.devices.isEmpty || hwpt.viommuUsers > 0 || hwpt.nestedUsers > 0 || hwpt.pasidUsers > 0 { throw Errno.EBUSY }
                if hwpt.nested != nil {
                    removeNestedHWPT(id, hwpt)
                } else {
                    removeHWPT(id, hwpt)
                }
            case .viommu(let viommu):
                // Each vDevice (iommufd_vdevice_alloc_ioctl), nested HWPT
                // (iommufd_viommu_alloc_hwpt_nested) and vEVENTQ (iommufd_veventq_alloc) holds a
                // users reference on its vIOMMU.
                // A HW queue (iommufd_hw_queue_alloc_ioctl) holds one too.
                if !viommu.vdevices.isEmpty || !viommu.veventqs.isEmpty || viommu.nestedUsers > 0 || !viommu.hwQueues.isEmpty {
                    throw Errno.EBUSY
                }
                if case .hwpt(let parent) = objects[viommu.hwpt] { parent.viommuUsers -= 1 }
                removeObject(id)
            case .vdevice(let vdev):
                if case .viommu(let viommu) = objects[vdev.viommu] { viommu.vdevices[vdev.virtualID] = nil }
                if case .device(let device) = objects[vdev.device] { device.vdevice = nil }
                removeObject(id)
            case .eventQueue(let queue):
                try destroyEventQueue(id, queue)
            case .hwQueue(let queue):
                try destroyHWQueue(id, queue)
            }
        }
    }

    /// `iommufd_hwpt_paging_destroy`: takes the domain out of its IOAS.
    func removeHWPT(_ id: ObjectID, _ hwpt: SimHWPT) {
        if let fault = hwpt.faultQueue, case .eventQueue(let queue) = objects[fault] { queue.users -= 1 }
        if case .ioas(let ioas) = objects[hwpt.ioas] {
            ioas.hwpts.removeAll { $0 == id }
            ioas.table.removeDomain(hwpt: id)
        }
        removeObject(id)
    }

    // MARK: Options

    /// `iommufd_option`: RLIMIT_MODE is global (object 0), HUGE_PAGES is per IOAS.
    public func setOption(_ option: IommuOption, objectID: ObjectID, value: UInt64) throws {
        try locked("IOMMU_OPTION") {
            switch option {
            case .rlimitMode:
                // iommufd_option_rlimit_mode
                if objectID != 0 { throw Errno.EOPNOTSUPP }
                if !objects.isEmpty { throw Errno.EBUSY }
                switch value {
                case 0: accountModeMM = false
                case 1: accountModeMM = true
                default: throw Errno.EINVAL
                }
            case .hugePages:
                // iommufd_ioas_option_huge_pages
                let ioas = try ioas(objectID)
                switch value {
                case 0: try ioas.table.setLargePages(enabled: false)
                case 1: try ioas.table.setLargePages(enabled: true)
                default: throw Errno.EINVAL
                }
            }
        }
    }

    public func getOption(_ option: IommuOption, objectID: ObjectID) throws -> UInt64 {
        try locked("IOMMU_OPTION") {
            switch option {
            case .rlimitMode:
                if objectID != 0 { throw Errno.EOPNOTSUPP }
                return accountModeMM ? 1 : 0
            case .hugePages:
                return try ioas(objectID).table.disableLargePages ? 0 : 1
            }
        }
    }
}

/// A regular file's identity: the dup of one open file stands for another only when both
/// reach the same inode with the same access mode.
struct SimFileKey: Hashable {
    var device: UInt64
    var inode: UInt64
    var accessMode: Int32
}

/// The file table's reference: mappings own their file; the table only finds it again.
struct WeakFile {
    weak var file: SimFile?
    init(_ file: SimFile) { self.file = file }
}
