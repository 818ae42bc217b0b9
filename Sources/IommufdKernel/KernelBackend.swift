import Foundation
import IommufdCore

/// A kernel selftest mock device the backend may create (CONFIG_IOMMUFD_TEST kernels only).
public struct MockDeviceSpec: Hashable, Sendable, Codable {
    /// The device's handle in `discoverDevices()`.
    public var name: String
    /// Create it with MOCK_FLAGS_DEVICE_NO_DIRTY: its IOMMU cannot track dirty pages.
    public var noDirty: Bool
    // MARK: pasid
    /// Create it with MOCK_FLAGS_DEVICE_PASID: PASID-capable, `MOCK_PASID_WIDTH` (20) bits.
    public var pasid: Bool = false

    public init(name: String, noDirty: Bool = false) {
        self.name = name
        self.noDirty = noDirty
    }

    public init(name: String, noDirty: Bool = false, pasid: Bool) {
        self.name = name
        self.noDirty = noDirty
        self.pasid = pasid
    }
}

/// What the kernel backend opens and where it looks.
public struct KernelBackendOptions: Hashable, Sendable {
    /// The iommufd character device.
    public var iommuPath: String
    /// Where sysfs is mounted (device discovery, VFIO cdev probing).
    public var sysfsRoot: String
    /// Where devtmpfs is mounted (`<devRoot>/vfio/devices/vfioN`).
    public var devRoot: String
    /// Selftest mock devices to offer, only ever used when listed here (the config gates it).
    /// Needs a CONFIG_IOMMUFD_TEST kernel: opening the backend fails otherwise.
    public var mockDevices: [MockDeviceSpec]

    public init(iommuPath: String = "/dev/iommu", sysfsRoot: String = "/sys", devRoot: String = "/dev", mockDevices: [MockDeviceSpec] = []) {
        self.iommuPath = iommuPath
        self.sysfsRoot = sysfsRoot
        self.devRoot = devRoot
        self.mockDevices = mockDevices
    }
}

/// The `IommuBackend` over the real kernel: ioctls on one iommufd and on VFIO device cdevs.
///
/// Mock devices. `IOMMU_TEST_OP_MOCK_DOMAIN` creates a device that is bound *and attached* in
/// one step, and selftest.c offers no detach. So a mock device is bound by creating it on a
/// private "parking" IOAS that never holds a mapping (allocated lazily): bound, but able to
/// reach no memory, as a detached VFIO device. `attach`/`replace` use
/// `IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE`, which calls `iommufd_device_replace` with the given ID
/// — an IOAS gets an auto-domain HWPT exactly as a VFIO attach does, and the kernel writes the
/// attached page table's ID back into `pt_id`, which is what `attach` returns. `detach` replaces
/// back onto the parking IOAS; `unbind` destroys the selftest object (`IOMMU_DESTROY` of the
/// stdev ID), which detaches and unbinds the device in the kernel. Across a restart the
/// broker's journal keeps the stdev and parking IOAS IDs (`restartObjects(ofDevice:)`).
public final class KernelBackend: IommuBackend, IommuTestHooks, @unchecked Sendable {
    public let kind: BackendKind = .kernel
    public let features: Set<Feature>
    /// Probe answers that were neither EINVAL nor ENOTTY (see `FeatureProbe.Report`).
    public let unexpectedProbeAnswers: [Feature: Errno]
    public let options: KernelBackendOptions
    public let iommufd: Iommufd

    private let syscalls: Syscalls
    private let discovery: DeviceDiscovery

    private struct MockBinding {
        var descriptor: DeviceDescriptor
        var stdevID: ObjectID
    }

    // Guarded by `lock`. The kernel serialises the ioctls; the lock only protects this table.
    private let lock = NSLock()
    private var vfioDevices: [ObjectID: (descriptor: DeviceDescriptor, device: VFIODevice)] = [:]
    private var mockDevices: [ObjectID: MockBinding] = [:]
    private var parkingIOAS: ObjectID?
    // MARK: queues
    /// The fds of the event and fault queues allocated here (Iommufd+Queues.swift).
    let queueFDs = KernelQueueFDs()
    // MARK: pasid
    /// The PASIDs attached on each mock device (Iommufd+PASID.swift).
    let mockPASIDs = KernelPASIDTable()

    /// Opens the iommufd and probes it. Fails if it cannot be opened, or if mock devices are
    /// requested on a kernel without CONFIG_IOMMUFD_TEST.
    /// With `adoptingIommufd`, takes over that iommufd (from the fd store after a restart)
    /// instead of opening a new one.
    public init(options: KernelBackendOptions = KernelBackendOptions(), syscalls: Syscalls = .live, adoptingIommufd adopted: Int32? = nil) throws {
        self.options = options
        self.syscalls = syscalls
        self.discovery = DeviceDiscovery(sysfsRoot: options.sysfsRoot, devRoot: options.devRoot)
        self.iommufd = try adopted.map { Iommufd(adopting: $0, syscalls: syscalls) } ?? Iommufd(path: options.iommuPath, syscalls: syscalls)
        let report = FeatureProbe(sysfsRoot: options.sysfsRoot, devRoot: options.devRoot).probe(iommufd)
        self.features = report.supported
        self.unexpectedProbeAnswers = report.unexpected
        if !options.mockDevices.isEmpty && !report.supported.contains(.selftest) {
            throw IommuError(
                .ENOTTY, "IOMMU_TEST_CMD",
                detail: "mock devices are configured but this kernel has no iommufd selftest (CONFIG_IOMMUFD_TEST); remove them from the config or boot a test kernel"
            )
        }
        var names = Set<String>()
        for spec in options.mockDevices where !names.insert(spec.name).inserted {
            throw IommuError(.EINVAL, "IOMMU_TEST_OP_MOCK_DOMAIN", detail: "mock device name \"\(spec.name)\" is configured twice")
        }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    // MARK: Devices

    public func discoverDevices() throws -> [DeviceDescriptor] {
        discovery.devices() + options.mockDevices.map(Self.mockDescriptor)
    }

    private static func mockDescriptor(_ spec: MockDeviceSpec) -> DeviceDescriptor {
        DeviceDescriptor(name: spec.name, kind: .mock, iommuInstance: "mock-iommu")
    }

    public func bind(_ device: DeviceDescriptor) throws -> BoundDevice {
        CrashPoints.hit("before VFIO_DEVICE_BIND_IOMMUFD")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after VFIO_DEVICE_BIND_IOMMUFD") }
        switch device.kind {
        case .pci, .mdev:
            guard let path = device.cdevPath else {
                throw IommuError(.ENODEV, "VFIO_DEVICE_BIND_IOMMUFD", detail: "device \(device.name) has no VFIO cdev")
            }
            let vfio = try VFIODevice(path: path, syscalls: syscalls)
            let id = try vfio.bind(to: iommufd)  // on failure `vfio` is released: the fd closes
            locked { vfioDevices[id] = (device, vfio) }
            return BoundDevice(descriptor: device, id: id, fd: vfio.fd)
        case .mock:
            return try bindMock(device)
        case .simulated:
            throw IommuError(.ENODEV, "VFIO_DEVICE_BIND_IOMMUFD", detail: "device \(device.name) is a simulated device; the kernel backend cannot bind it")
        }
    }

    private func bindMock(_ device: DeviceDescriptor) throws -> BoundDevice {
        let operation = "IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS"
        guard let spec = options.mockDevices.first(where: { $0.name == device.name }) else {
            throw IommuError(.ENODEV, operation, detail: "no mock device \"\(device.name)\" is configured")
        }
        return try locked {
            if mockDevices.values.contains(where: { $0.descriptor.name == spec.name }) {
                throw IommuError(.EBUSY, operation, detail: "mock device \(spec.name) is already bound")
            }
            let parking = try parkingIOASLocked()
            let mock = try iommufd.testMockDomain(ptID: parking, noDirty: spec.noDirty, pasid: spec.pasid)
            let descriptor = Self.mockDescriptor(spec)
            mockDevices[mock.deviceID] = MockBinding(descriptor: descriptor, stdevID: mock.stdevID)
            return BoundDevice(descriptor: descriptor, id: mock.deviceID, fd: nil)
        }
    }

    /// The private IOAS that bound-but-detached mock devices sit on. Caller holds `lock`.
    private func parkingIOASLocked() throws -> ObjectID {
        if let parkingIOAS { return parkingIOAS }
        let id = try iommufd.allocIOAS()
        parkingIOAS = id
        return id
    }

    public func unbind(deviceID: ObjectID) throws {
        CrashPoints.hit("before unbind")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after unbind") }
        let (vfio, mock) = locked { (vfioDevices.removeValue(forKey: deviceID), mockDevices[deviceID]) }
        if vfio != nil {
            // Dropping the last reference closes the cdev, which unbinds it (the kernel detaches
            // it first). A call still using the device keeps the fd open until it returns.
            return
        }
        if let mock {
            detachMockPASIDs(deviceID, stdevID: mock.stdevID)  // pasid
            try iommufd.destroy(mock.stdevID)
            locked { _ = mockDevices.removeValue(forKey: deviceID) }
            return
        }
        throw Self.unknownDevice(deviceID, "unbind")
    }

    @discardableResult
    public func attach(deviceID: ObjectID, to ptID: ObjectID) throws -> ObjectID {
        try attachOrReplace(deviceID: deviceID, ptID: ptID)
    }

    @discardableResult
    public func replace(deviceID: ObjectID, with ptID: ObjectID) throws -> ObjectID {
        // VFIO_DEVICE_ATTACH_IOMMUFD_PT on an attached device is the replace operation.
        try attachOrReplace(deviceID: deviceID, ptID: ptID)
    }

    private func attachOrReplace(deviceID: ObjectID, ptID: ObjectID) throws -> ObjectID {
        CrashPoints.hit("before VFIO_DEVICE_ATTACH_IOMMUFD_PT")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after VFIO_DEVICE_ATTACH_IOMMUFD_PT") }
        switch try lookup(deviceID, "VFIO_DEVICE_ATTACH_IOMMUFD_PT") {
        case .vfio(let device): return try device.attach(ptID: ptID)
        case .mock(let stdevID): return try iommufd.testMockDomainReplace(stdevID: stdevID, ptID: ptID)
        }
    }

    public func detach(deviceID: ObjectID) throws {
        CrashPoints.hit("before VFIO_DEVICE_DETACH_IOMMUFD_PT")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after VFIO_DEVICE_DETACH_IOMMUFD_PT") }
        switch try lookup(deviceID, "VFIO_DEVICE_DETACH_IOMMUFD_PT") {
        case .vfio(let device): try device.detach()
        case .mock(let stdevID):
            let parking = try locked { try parkingIOASLocked() }
            _ = try iommufd.testMockDomainReplace(stdevID: stdevID, ptID: parking)
        }
    }

    public func hwInfo(deviceID: ObjectID, request: HWInfoRequest) throws -> HWInfo {
        try iommufd.hwInfo(deviceID: deviceID, request: request)
    }

    enum Binding {
        case vfio(VFIODevice)
        case mock(stdevID: ObjectID)
    }

    func lookup(_ deviceID: ObjectID, _ operation: String) throws -> Binding {
        try locked {
            if let entry = vfioDevices[deviceID] { return .vfio(entry.device) }
            if let mock = mockDevices[deviceID] { return .mock(stdevID: mock.stdevID) }
            throw Self.unknownDevice(deviceID, operation)
        }
    }

    /// The kernel's answer for an ID that names no device: ENOENT.
    private static func unknownDevice(_ id: ObjectID, _ operation: String) -> IommuError {
        IommuError(.ENOENT, operation, detail: "no device with ID \(id) is bound through this daemon")
    }

    // MARK: Objects and IOAS

    public func destroy(_ id: ObjectID) throws {
        CrashPoints.hit("before IOMMU_DESTROY")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after IOMMU_DESTROY") }
        // The parking IOAS is the backend's own: to clients it does not exist.
        if locked({ parkingIOAS == id }) {
            throw IommuError(.ENOENT, "IOMMU_DESTROY", detail: "object \(id)")
        }
        closeQueueFD(id)  // queues: their fd holds the object (Iommufd+Queues.swift)
        try iommufd.destroy(id)
    }

    public func allocIOAS() throws -> ObjectID {
        CrashPoints.hit("before IOMMU_IOAS_ALLOC")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after IOMMU_IOAS_ALLOC") }
        return try iommufd.allocIOAS()
    }

    public func map(ioas: ObjectID, source: MemorySource, length: UInt64, iova: UInt64, flags: MapFlags) throws -> UInt64 {
        CrashPoints.hit("before IOMMU_IOAS_MAP")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after IOMMU_IOAS_MAP") }
        switch source {
        case .userAddress(let address):
            return try iommufd.map(ioas: ioas, userAddress: address, length: length, iova: iova, flags: flags)
        case .file(let fd, let offset):
            guard features.contains(.ioasMapFile) else {
                throw IommuError(.ENOTTY, "IOMMU_IOAS_MAP_FILE", detail: "needs Linux 6.13")
            }
            return try iommufd.mapFile(ioas: ioas, fd: fd, offset: offset, length: length, iova: iova, flags: flags)
        }
    }

    public func unmap(ioas: ObjectID, iova: UInt64, length: UInt64) throws -> UInt64 {
        CrashPoints.hit("before IOMMU_IOAS_UNMAP")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after IOMMU_IOAS_UNMAP") }
        return try iommufd.unmap(ioas: ioas, iova: iova, length: length)
    }

    public func copy(dst: ObjectID, src: ObjectID, srcIOVA: UInt64, length: UInt64, dstIOVA: UInt64, flags: MapFlags) throws -> UInt64 {
        CrashPoints.hit("before IOMMU_IOAS_COPY")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after IOMMU_IOAS_COPY") }
        return try iommufd.copy(dst: dst, src: src, srcIOVA: srcIOVA, length: length, dstIOVA: dstIOVA, flags: flags)
    }

    public func iovaRanges(ioas: ObjectID, capacity: UInt32) throws -> IOVARanges {
        try iommufd.iovaRanges(ioas: ioas, capacity: capacity)
    }

    public func allowIOVAs(ioas: ObjectID, ranges: [IOVARange]) throws {
        try iommufd.allowIOVAs(ioas: ioas, ranges: ranges)
    }

    public func setOption(_ option: IommuOption, objectID: ObjectID, value: UInt64) throws {
        CrashPoints.hit("before IOMMU_OPTION")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after IOMMU_OPTION") }
        return try iommufd.setOption(option, objectID: objectID, value: value)
    }

    public func getOption(_ option: IommuOption, objectID: ObjectID) throws -> UInt64 {
        try iommufd.getOption(option, objectID: objectID)
    }

    // MARK: HWPT and dirty tracking

    public func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags) throws -> ObjectID {
        CrashPoints.hit("before IOMMU_HWPT_ALLOC")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after IOMMU_HWPT_ALLOC") }
        return try iommufd.allocHWPT(deviceID: deviceID, ptID: ptID, flags: flags)
    }

    public func setDirtyTracking(hwpt: ObjectID, enabled: Bool) throws {
        CrashPoints.hit("before IOMMU_HWPT_SET_DIRTY_TRACKING")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after IOMMU_HWPT_SET_DIRTY_TRACKING") }
        return try iommufd.setDirtyTracking(hwpt: hwpt, enabled: enabled)
    }

    public func readDirtyBitmap(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64, clear: Bool, into bitmap: UnsafeMutableRawBufferPointer) throws {
        try iommufd.getDirtyBitmap(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize, clear: clear, into: bitmap)
    }

    // MARK: vIOMMU

    public func allocVIOMMU(deviceID: ObjectID, hwpt: ObjectID, type: UInt32) throws -> ObjectID {
        CrashPoints.hit("before IOMMU_VIOMMU_ALLOC")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after IOMMU_VIOMMU_ALLOC") }
        return try iommufd.allocVIOMMU(deviceID: deviceID, hwpt: hwpt, type: type)
    }

    public func allocVDevice(viommu: ObjectID, deviceID: ObjectID, virtualID: UInt64) throws -> ObjectID {
        CrashPoints.hit("before IOMMU_VDEVICE_ALLOC")  // TEST ONLY: the crash-point sweep
        defer { CrashPoints.hit("after IOMMU_VDEVICE_ALLOC") }
        return try iommufd.allocVDevice(viommu: viommu, deviceID: deviceID, virtualID: virtualID)
    }

    // MARK: IommuTestHooks

    public func addReservedIOVA(ioas: ObjectID, range: IOVARange) throws {
        try requireSelftest("IOMMU_TEST_OP_ADD_RESERVED")
        try iommufd.testAddReserved(ioas: ioas, start: range.start, length: range.last &- range.start &+ 1)
    }

    public func simulateDeviceWrite(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64) throws {
        let operation = "IOMMU_TEST_OP_DIRTY"
        try requireSelftest(operation)
        // Invalid geometry goes to the kernel with an empty bitmap so it answers with its errno.
        let bytes = Iommufd.dirtyBitmapBytes(length: length, pageSize: pageSize) ?? 8
        let pages = pageSize == 0 ? 0 : length / pageSize
        let bitmap = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 8)
        defer { bitmap.deallocate() }
        // Bit i set for every page i of the range: the device wrote all of it.
        let setBits = Int(min(pages, UInt64(bytes) * 8))
        bitmap.initializeMemory(as: UInt8.self, repeating: 0)
        bitmap[0..<(setBits / 8)].initializeMemory(as: UInt8.self, repeating: 0xff)
        if setBits % 8 != 0 { bitmap[setBits / 8] = UInt8((1 << (setBits % 8)) - 1) }
        try iommufd.testDirty(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize, bitmap: UnsafeRawBufferPointer(bitmap))
    }

    /// Test hooks exist only with mock devices explicitly enabled on a selftest kernel.
    private func requireSelftest(_ operation: String) throws {
        guard !options.mockDevices.isEmpty, features.contains(.selftest) else {
            throw IommuError(.ENOTTY, operation, detail: "test hooks need a CONFIG_IOMMUFD_TEST kernel and mock devices enabled in the config")
        }
    }
}

// MARK: Restart

extension KernelBackend: RestartableBackend {
    /// The fd-store name of the iommufd.
    public static let fdStoreName = "iommufd"

    public func fdsToStore() -> [(name: String, fd: Int32)] { [(Self.fdStoreName, iommufd.fd)] }

    /// The journal names of a mock device's objects: its selftest object and the parking IOAS.
    public static let selftestObjectName = "selftest", parkingIOASName = "parking_ioas"

    /// A mock device's selftest object (which `unbind`, `attach` and `detach` act on) and the
    /// parking IOAS it goes back to on `detach`: what `adoptBoundDevice` needs to take it back.
    public func restartObjects(ofDevice id: ObjectID) -> [String: ObjectID] {
        locked {
            guard let mock = mockDevices[id], let parkingIOAS else { return [:] }
            return [Self.selftestObjectName: mock.stdevID, Self.parkingIOASName: parkingIOAS]
        }
    }

    /// Takes back a device bound by the previous daemon. A VFIO cdev: `IOMMU_GET_HW_INFO` on
    /// `id` checks it is still bound to this iommufd under that ID. A mock device: its selftest
    /// object must still answer (`IOMMU_TEST_OP_PASID_CHECK_HWPT`) and the parking IOAS too
    /// (`IOMMU_OPTION` GET); the caller checks the device ID (`IOMMU_GET_HW_INFO`).
    public func adoptBoundDevice(_ descriptor: DeviceDescriptor, id: ObjectID, fd: Int32?, objects: [String: ObjectID]) throws -> BoundDevice {
        switch descriptor.kind {
        case .pci, .mdev:
            guard let fd else {
                throw IommuError(.EBADF, "VFIO_DEVICE_BIND_IOMMUFD", detail: "device \(descriptor.name) has no cdev fd to take back")
            }
            _ = try iommufd.hwInfo(deviceID: id)  // before taking the fd: on failure the caller still owns it
            let vfio = VFIODevice(adopting: fd, path: descriptor.cdevPath ?? "(from the fd store)", syscalls: syscalls)
            locked { vfioDevices[id] = (descriptor, vfio) }
            return BoundDevice(descriptor: descriptor, id: id, fd: fd)
        case .mock:
            return try adoptMock(descriptor, id: id, objects: objects)
        case .simulated:
            throw IommuError(.EOPNOTSUPP, "VFIO_DEVICE_BIND_IOMMUFD", detail: "simulated device \(descriptor.name) cannot be taken over by the kernel backend")
        }
    }

    private func adoptMock(_ descriptor: DeviceDescriptor, id: ObjectID, objects: [String: ObjectID]) throws -> BoundDevice {
        let operation = "IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS"
        guard let spec = options.mockDevices.first(where: { $0.name == descriptor.name }) else {
            throw IommuError(.ENODEV, operation, detail: "mock device \(descriptor.name) is no longer configured")
        }
        guard let stdevID = objects[Self.selftestObjectName], let parking = objects[Self.parkingIOASName] else {
            throw IommuError(.ENOENT, operation, detail: "the journal does not record mock device \(descriptor.name)'s selftest object and parking IOAS (written by an older iommufdd)")
        }
        try iommufd.testCheckMockDevice(stdevID: stdevID)
        _ = try iommufd.getOption(.hugePages, objectID: parking)
        let descriptor = Self.mockDescriptor(spec)
        return try locked {
            if let other = parkingIOAS, other != parking {
                throw IommuError(.EEXIST, operation, detail: "mock device \(descriptor.name) was parked on IOAS \(parking), but the other mock devices on IOAS \(other)")
            }
            if mockDevices[id] != nil || mockDevices.values.contains(where: { $0.descriptor.name == spec.name }) {
                throw IommuError(.EBUSY, operation, detail: "mock device \(spec.name) is already bound")
            }
            parkingIOAS = parking
            mockDevices[id] = MockBinding(descriptor: descriptor, stdevID: stdevID)
            return BoundDevice(descriptor: descriptor, id: id, fd: nil)
        }
    }
}

// MARK: PCI hot reset (the VMM channel's HOT_RESET)

extension KernelBackend: PCIHotResetBackend {
    public func hotResetTargets(deviceID: ObjectID) throws -> [HotResetTarget] {
        switch try lookup(deviceID, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO") {
        case .vfio(let device):
            return try device.hotResetInfo().map { d in
                HotResetTarget(pciAddress: HotResetTarget.address(segment: d.segment, bus: d.bus, devfn: d.devfn),
                               deviceID: d.devid > 0 ? ObjectID(d.devid) : nil)
            }
        case .mock:
            throw IommuError(.ENOTTY, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", detail: "device \(deviceID) is an iommufd selftest mock, not a PCI device")
        }
    }

    public func hotReset(deviceID: ObjectID) throws {
        switch try lookup(deviceID, "VFIO_DEVICE_PCI_HOT_RESET") {
        case .vfio(let device): try device.hotReset()
        case .mock:
            throw IommuError(.ENOTTY, "VFIO_DEVICE_PCI_HOT_RESET", detail: "device \(deviceID) is an iommufd selftest mock, not a PCI device")
        }
    }
}
