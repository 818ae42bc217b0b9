/// Which implementation is behind an `IommuBackend`.
public enum BackendKind: String, Sendable, Codable, CaseIterable {
    case kernel
    case sim
}

/// The iommufd as the rest of the daemon sees it: one method per uAPI operation, the kernel's
/// semantics and errnos, whichever implementation is behind it.
///
/// Every method throws `IommuError` carrying the errno and the ioctl name. Implementations are
/// thread-safe (the kernel is; the simulator locks), but callers that need several calls to be
/// atomic (the broker) serialise them themselves.
public protocol IommuBackend: AnyObject, Sendable {
    var kind: BackendKind { get }

    /// Features this iommufd supports (probed once at open for the kernel).
    var features: Set<Feature> { get }

    // MARK: Devices

    /// Devices that can be bound: sysfs VFIO cdevs (kernel) or the configured topology (sim).
    func discoverDevices() throws -> [DeviceDescriptor]

    /// Opens the device and binds it to this iommufd (`VFIO_DEVICE_BIND_IOMMUFD`).
    /// The device is bound but not attached: it can do no DMA until `attach`.
    func bind(_ device: DeviceDescriptor) throws -> BoundDevice

    /// Closes the device, which unbinds it (the kernel detaches it first). A vDevice of the
    /// device is destroyed with it and its ID left a tombstone (`iommufd_device_remove_vdev`):
    /// destroying that ID afterwards is ENOENT.
    func unbind(deviceID: ObjectID) throws

    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` on a detached device. `ptID` is an IOAS (the kernel
    /// then finds or creates an automatic HWPT) or an HWPT. Returns the ID of the page table
    /// actually attached (the automatic HWPT when `ptID` was an IOAS of a device with HWPTs).
    @discardableResult
    func attach(deviceID: ObjectID, to ptID: ObjectID) throws -> ObjectID

    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` on an attached device: replaces its page table without
    /// a window of blocked DMA. Returns the ID attached, as `attach`.
    @discardableResult
    func replace(deviceID: ObjectID, with ptID: ObjectID) throws -> ObjectID

    /// `VFIO_DEVICE_DETACH_IOMMUFD_PT`.
    func detach(deviceID: ObjectID) throws

    /// `IOMMU_GET_HW_INFO` for a bound device: the driver's default (or `request.dataType`)
    /// vendor data into a buffer of `request.dataLength` bytes, and the capabilities.
    func hwInfo(deviceID: ObjectID, request: HWInfoRequest) throws -> HWInfo

    // MARK: Objects

    /// `IOMMU_DESTROY` of any object ID.
    func destroy(_ id: ObjectID) throws

    // MARK: IOAS

    /// `IOMMU_IOAS_ALLOC`.
    func allocIOAS() throws -> ObjectID

    /// `IOMMU_IOAS_MAP` (for `.userAddress`) or `IOMMU_IOAS_MAP_FILE` (for `.file`).
    /// With `.fixedIOVA` in `flags` the mapping goes at `iova`; otherwise the kernel picks the
    /// IOVA (aligned, outside reserved ranges) and `iova` is ignored. Returns the IOVA used.
    func map(ioas: ObjectID, source: MemorySource, length: UInt64, iova: UInt64, flags: MapFlags) throws -> UInt64

    /// `IOMMU_IOAS_UNMAP`: removes every mapping fully inside `[iova, iova+length)` and returns
    /// the bytes unmapped. A range that cuts a mapping, or covers none, is ENOENT.
    /// `iova == 0 && length == UInt64.max` unmaps everything.
    func unmap(ioas: ObjectID, iova: UInt64, length: UInt64) throws -> UInt64

    /// `IOMMU_IOAS_COPY`: maps the pages behind `src` `[srcIOVA, +length)` into `dst` too.
    /// Returns the destination IOVA (kernel-chosen unless `.fixedIOVA`).
    func copy(dst: ObjectID, src: ObjectID, srcIOVA: UInt64, length: UInt64, dstIOVA: UInt64, flags: MapFlags) throws -> UInt64

    /// `IOMMU_IOAS_IOVA_RANGES` with room for `capacity` ranges. EMSGSIZE (with
    /// `requiredCount` set on the error) when there are more.
    func iovaRanges(ioas: ObjectID, capacity: UInt32) throws -> IOVARanges

    /// `IOMMU_IOAS_ALLOW_IOVAS`: restricts kernel-chosen IOVAs to `ranges` (empty = no limit).
    func allowIOVAs(ioas: ObjectID, ranges: [IOVARange]) throws

    /// `IOMMU_OPTION` SET. `objectID` is 0 for global options.
    func setOption(_ option: IommuOption, objectID: ObjectID, value: UInt64) throws

    /// `IOMMU_OPTION` GET.
    func getOption(_ option: IommuOption, objectID: ObjectID) throws -> UInt64

    // MARK: HWPT

    /// `IOMMU_HWPT_ALLOC` of a paging HWPT for `deviceID` from the IOAS `ptID`.
    func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags) throws -> ObjectID

    /// `IOMMU_HWPT_SET_DIRTY_TRACKING`.
    func setDirtyTracking(hwpt: ObjectID, enabled: Bool) throws

    /// `IOMMU_HWPT_GET_DIRTY_BITMAP` over `[iova, iova+length)` at `pageSize` granularity into
    /// `bitmap` (bit `(addr - iova) / pageSize` of an array of UInt64). `clear == false` is
    /// `IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR`. The caller sizes `bitmap` for the range and
    /// zeroes it: the kernel only sets bits.
    func readDirtyBitmap(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64, clear: Bool, into bitmap: UnsafeMutableRawBufferPointer) throws

    // MARK: vIOMMU

    /// `IOMMU_VIOMMU_ALLOC` on the physical IOMMU of `deviceID`, over the nest-parent HWPT `hwpt`.
    func allocVIOMMU(deviceID: ObjectID, hwpt: ObjectID, type: UInt32) throws -> ObjectID

    /// `IOMMU_VDEVICE_ALLOC`: gives `deviceID` the guest-visible `virtualID` on `viommu`.
    func allocVDevice(viommu: ObjectID, deviceID: ObjectID, virtualID: UInt64) throws -> ObjectID

    // MARK: queues

    /// `IOMMU_FAULT_QUEUE_ALLOC`: a queue of I/O page faults for HWPTs allocated with its ID
    /// (`allocHWPT(..., faultQueue:)`). The backend keeps the queue's fd (see `EventQueue`).
    func allocFaultQueue() throws -> EventQueue

    /// `IOMMU_VEVENTQ_ALLOC` on `viommu`: at most one per `type`, `depth` events before the
    /// queue loses events.
    func allocVEventQueue(viommu: ObjectID, type: UInt32, depth: UInt32) throws -> EventQueue

    /// `IOMMU_HWPT_ALLOC` with `IOMMU_HWPT_FAULT_ID_VALID` and `fault_id = faultQueue`: an HWPT
    /// whose I/O page faults go to that fault queue (which it then holds: EBUSY to destroy).
    func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags, faultQueue: ObjectID) throws -> ObjectID

    /// `read(2)` of a queue's fd into `buffer`, with the kernel's rules (eventq.c): whole
    /// records only, 0 when nothing is queued (it never blocks), EINVAL when the first record
    /// does not fit, ESPIPE for a fault-queue read that is not a multiple of its record.
    func readEventQueue(_ id: ObjectID, into buffer: UnsafeMutableRawBufferPointer) throws -> Int

    /// `write(2)` of `struct iommu_hwpt_page_response` records to a fault queue's fd: returns
    /// the bytes taken; EINVAL for an unknown cookie or code (when it is the first record).
    func respondToFaults(_ id: ObjectID, _ responses: UnsafeRawBufferPointer) throws -> Int
}

/// Test-only capabilities of a backend, so conformance tests can set up what the kernel's own
/// selftests set up: the simulator always has them; the kernel backend only on a
/// CONFIG_IOMMUFD_TEST kernel with mock devices explicitly enabled (else ENOTTY).
public protocol IommuTestHooks: IommuBackend {
    /// `IOMMU_TEST_OP_ADD_RESERVED`: reserves `range` in `ioas` so the kernel never picks or
    /// maps IOVAs in it.
    func addReservedIOVA(ioas: ObjectID, range: IOVARange) throws

    /// `IOMMU_TEST_OP_DIRTY`: a device wrote the pages of `[iova, iova+length)` (at `pageSize`
    /// granularity) through `hwpt`, which must have dirty tracking enabled (else EINVAL).
    func simulateDeviceWrite(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64) throws
}

extension IommuBackend {
    /// `IOMMU_GET_HW_INFO` of the driver's default type into a buffer big enough for every 7.3
    /// vendor struct.
    public func hwInfo(deviceID: ObjectID) throws -> HWInfo {
        try hwInfo(deviceID: deviceID, request: HWInfoRequest())
    }
}

// MARK: nested

extension IommuBackend {
    /// Whether this backend implements nested HWPTs and `IOMMU_HWPT_INVALIDATE` (the
    /// requirements in the `nested` block of `NestedIommuBackend`).
    public var nested: (any NestedIommuBackend)? { self as? any NestedIommuBackend }
}

/// Nested translation (branch `nested`): every backend conforms (KernelBackend, SimBackend,
/// PersistentSimBackend, FeatureRecordingBackend, FaultInjectingBackend).
public protocol NestedIommuBackend: IommuBackend {
    /// `IOMMU_HWPT_ALLOC` of a nested HWPT for `deviceID` on `parentID`, a nest-parent HWPT or a
    /// vIOMMU, with the driver's `data` (`data_type`, `data_len`, `data_uptr`).
    func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData) throws -> ObjectID

    /// One `IOMMU_HWPT_INVALIDATE` on a nested HWPT or a vIOMMU with `request.entryCount`
    /// entries. Throws only when the call could not be made; the kernel's answer, including an
    /// early stop (`done` < `entryCount` with the errno), is the result.
    func invalidate(_ id: ObjectID, _ request: InvalidationRequest) -> InvalidationResult
}

/// The selftest checks of nested state (CONFIG_IOMMUFD_TEST kernels; always on the simulator).
public protocol NestedTestHooks: IommuTestHooks {
    /// `IOMMU_TEST_OP_MD_CHECK_IOTLB`: succeeds when entry `index` of the mock nested HWPT
    /// `hwpt`'s IOTLB holds `value`, else EINVAL.
    func checkNestedIOTLB(hwpt: ObjectID, index: UInt32, value: UInt32) throws

    /// `IOMMU_TEST_OP_DEV_CHECK_CACHE`: succeeds when entry `index` of the mock device
    /// `deviceID`'s cache holds `value`, else EINVAL.
    func checkDeviceCache(deviceID: ObjectID, index: UInt32, value: UInt32) throws
}

// MARK: nestedgaps

/// A nested HWPT whose I/O page faults go to a fault queue (branch `nestedgaps`): every backend
/// that conforms to `NestedIommuBackend` conforms to this too (KernelBackend, SimBackend,
/// PersistentSimBackend, FeatureRecordingBackend, FaultInjectingBackend).
public protocol NestedFaultIommuBackend: NestedIommuBackend {
    /// `IOMMU_HWPT_ALLOC` of a nested HWPT (as `allocNestedHWPT`) with
    /// `IOMMU_HWPT_FAULT_ID_VALID` and `fault_id = faultQueue`: its I/O page faults go to that
    /// fault queue, which it then holds (EBUSY to destroy). ENOENT when `faultQueue` is not a
    /// fault queue; the kernel checks that after the nested domain is allocated, so every other
    /// refusal of a nested alloc comes first.
    func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData, faultQueue: ObjectID) throws -> ObjectID
}

// MARK: pasid

extension IommuBackend {
    /// Whether this backend implements PASID attachments (the requirements of
    /// `PASIDIommuBackend`).
    public var pasid: (any PASIDIommuBackend)? { self as? any PASIDIommuBackend }
}

/// PASID attachments (branch `pasid`): a device's PASID other than `IOMMU_NO_PASID` (0) attached
/// to an HWPT allocated with `IOMMU_HWPT_ALLOC_PASID`, with the iommufd core's rules
/// (drivers/iommu/iommufd/device.c, `iommufd_device_attach/replace/detach` with a pasid). Every
/// backend conforms (KernelBackend, SimBackend, PersistentSimBackend, FeatureRecordingBackend,
/// FaultInjectingBackend).
///
/// The semantics are the iommufd core's, which the kernel's selftest ops reach directly: an
/// attach of an attached PASID is EBUSY, a replace of an unattached one EINVAL, a detach of an
/// unattached one does nothing. On a VFIO cdev (`VFIO_DEVICE_ATTACH_IOMMUFD_PT` with
/// `VFIO_DEVICE_ATTACH_PASID`) the VFIO glue turns an attach of an attached PASID into a replace
/// and a replace of an unattached one into an attach; callers that need the core's answer (the
/// broker) check their own records first.
public protocol PASIDIommuBackend: IommuBackend {
    /// Attaches `pasid` of `deviceID` to the HWPT `ptID` (`VFIO_DEVICE_ATTACH_PASID`).
    func attachPASID(deviceID: ObjectID, pasid: UInt32, to ptID: ObjectID) throws

    /// Replaces the HWPT of the attached `pasid` of `deviceID` with `ptID`.
    func replacePASID(deviceID: ObjectID, pasid: UInt32, with ptID: ObjectID) throws

    /// Detaches `pasid` of `deviceID` (`VFIO_DEVICE_DETACH_PASID`); nothing for an unattached one.
    func detachPASID(deviceID: ObjectID, pasid: UInt32) throws
}

/// The selftest check of a PASID attachment (CONFIG_IOMMUFD_TEST kernels; always on the
/// simulator).
public protocol PASIDTestHooks: IommuTestHooks {
    /// `IOMMU_TEST_OP_PASID_CHECK_HWPT`: succeeds when `pasid` of the mock device `deviceID` is
    /// attached to `hwpt` (or, with `hwpt` nil, to nothing), else EINVAL.
    func checkPASID(deviceID: ObjectID, pasid: UInt32, hwpt: ObjectID?) throws
}
