import Foundation
import Logging
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker
import IommufdContract

/// A backend that forwards to a `SimBackend` and can be told to fail chosen calls, or to lack
/// features — for the rollback and fallback paths the simulator itself never takes.
final class FaultyBackend: IommuBackend, @unchecked Sendable {
    let sim: SimBackend
    let kind: BackendKind = .sim
    var features: Set<Feature>
    private let lock = NSLock()
    private var _failDirtyOn: Set<ObjectID> = []
    private var _failAttachOn: [ObjectID: Errno] = [:]
    private var _attachAttempts: [ObjectID] = []
    private var _hwInfoTypes: [String: UInt32] = [:]
    private var _boundNames: [ObjectID: String] = [:]
    private var _failHWInfo: Errno?
    private var _failClearingReadOn: Set<ObjectID> = []
    private var _dirtyReads: [(hwpt: ObjectID, iova: UInt64, length: UInt64, clear: Bool)] = []
    private var _beforeDirtyRead: ((_ hwpt: ObjectID, _ clear: Bool) -> Void)?

    init(sim: SimBackend, without: Set<Feature> = []) {
        self.sim = sim
        self.features = sim.features.subtracting(without)
    }

    /// `setDirtyTracking(enabled: true)` on these HWPTs fails with EIO.
    func failDirty(on ids: Set<ObjectID>) { lock.withLock { _failDirtyOn = ids } }
    /// `attach`/`replace` onto `pt` fails with `errno`.
    func failAttach(onto pt: ObjectID, with errno: Errno) { lock.withLock { _failAttachOn[pt] = errno } }
    var attachAttempts: [ObjectID] { lock.withLock { _attachAttempts } }

    func discoverDevices() throws -> [DeviceDescriptor] { try sim.discoverDevices() }
    func bind(_ device: DeviceDescriptor) throws -> BoundDevice {
        let bound = try sim.bind(device)
        lock.withLock { _boundNames[bound.id] = device.name }
        return bound
    }
    func unbind(deviceID: ObjectID) throws { try sim.unbind(deviceID: deviceID) }
    func attach(deviceID: ObjectID, to ptID: ObjectID) throws -> ObjectID {
        try injectedAttachFailure(ptID, "VFIO_DEVICE_ATTACH_IOMMUFD_PT")
        return try sim.attach(deviceID: deviceID, to: ptID)
    }
    func replace(deviceID: ObjectID, with ptID: ObjectID) throws -> ObjectID {
        try injectedAttachFailure(ptID, "VFIO_DEVICE_ATTACH_IOMMUFD_PT")
        return try sim.replace(deviceID: deviceID, with: ptID)
    }
    private func injectedAttachFailure(_ pt: ObjectID, _ op: String) throws {
        let errno: Errno? = lock.withLock {
            _attachAttempts.append(pt)
            return _failAttachOn[pt]
        }
        if let errno { throw IommuError(errno, op, detail: "injected") }
    }
    func detach(deviceID: ObjectID) throws { try sim.detach(deviceID: deviceID) }
    /// `hwInfo` fails with `errno` (nil: works again).
    func failHWInfo(with errno: Errno?) { lock.withLock { _failHWInfo = errno } }
    /// Clearing dirty reads of these HWPTs fail with ENOMEM (NO_CLEAR reads work).
    func failClearingRead(on ids: Set<ObjectID>) { lock.withLock { _failClearingReadOn = ids } }
    /// Every dirty read made, in order.
    var dirtyReads: [(hwpt: ObjectID, iova: UInt64, length: UInt64, clear: Bool)] { lock.withLock { _dirtyReads } }
    /// Runs before each dirty read reaches the simulator (a device writing meanwhile).
    func beforeDirtyRead(_ body: ((_ hwpt: ObjectID, _ clear: Bool) -> Void)?) { lock.withLock { _beforeDirtyRead = body } }
    func hwInfo(deviceID: ObjectID, request: HWInfoRequest) throws -> HWInfo {
        if let errno = lock.withLock({ _failHWInfo }) { throw IommuError(errno, "IOMMU_GET_HW_INFO", detail: "injected") }
        var info = try sim.hwInfo(deviceID: deviceID, request: request)
        lock.withLock {
            if let name = _boundNames[deviceID], let type = _hwInfoTypes[name] { info.type = type }
        }
        return info
    }
    /// GET_HW_INFO of device `name` reports `type` (another IOMMU driver) from its next bind.
    func reportHWInfoType(_ type: UInt32, forDevice name: String) { lock.withLock { _hwInfoTypes[name] = type } }
    func destroy(_ id: ObjectID) throws { try sim.destroy(id) }
    func allocIOAS() throws -> ObjectID { try sim.allocIOAS() }
    func map(ioas: ObjectID, source: MemorySource, length: UInt64, iova: UInt64, flags: MapFlags) throws -> UInt64 {
        try sim.map(ioas: ioas, source: source, length: length, iova: iova, flags: flags)
    }
    func unmap(ioas: ObjectID, iova: UInt64, length: UInt64) throws -> UInt64 { try sim.unmap(ioas: ioas, iova: iova, length: length) }
    func copy(dst: ObjectID, src: ObjectID, srcIOVA: UInt64, length: UInt64, dstIOVA: UInt64, flags: MapFlags) throws -> UInt64 {
        try sim.copy(dst: dst, src: src, srcIOVA: srcIOVA, length: length, dstIOVA: dstIOVA, flags: flags)
    }
    func iovaRanges(ioas: ObjectID, capacity: UInt32) throws -> IOVARanges { try sim.iovaRanges(ioas: ioas, capacity: capacity) }
    func allowIOVAs(ioas: ObjectID, ranges: [IOVARange]) throws { try sim.allowIOVAs(ioas: ioas, ranges: ranges) }
    func setOption(_ option: IommuOption, objectID: ObjectID, value: UInt64) throws { try sim.setOption(option, objectID: objectID, value: value) }
    func getOption(_ option: IommuOption, objectID: ObjectID) throws -> UInt64 { try sim.getOption(option, objectID: objectID) }
    func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags) throws -> ObjectID {
        try sim.allocHWPT(deviceID: deviceID, ptID: ptID, flags: flags)
    }
    func setDirtyTracking(hwpt: ObjectID, enabled: Bool) throws {
        if enabled, lock.withLock({ _failDirtyOn.contains(hwpt) }) {
            throw IommuError(.EIO, "IOMMU_HWPT_SET_DIRTY_TRACKING", detail: "injected")
        }
        try sim.setDirtyTracking(hwpt: hwpt, enabled: enabled)
    }
    func readDirtyBitmap(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64, clear: Bool, into bitmap: UnsafeMutableRawBufferPointer) throws {
        let (hook, fail) = lock.withLock {
            _dirtyReads.append((hwpt, iova, length, clear))
            return (_beforeDirtyRead, clear && _failClearingReadOn.contains(hwpt))
        }
        hook?(hwpt, clear)
        if fail { throw IommuError(.ENOMEM, "IOMMU_HWPT_GET_DIRTY_BITMAP", detail: "injected") }
        try sim.readDirtyBitmap(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize, clear: clear, into: bitmap)
    }
    func allocVIOMMU(deviceID: ObjectID, hwpt: ObjectID, type: UInt32) throws -> ObjectID {
        try sim.allocVIOMMU(deviceID: deviceID, hwpt: hwpt, type: type)
    }
    func allocVDevice(viommu: ObjectID, deviceID: ObjectID, virtualID: UInt64) throws -> ObjectID {
        try sim.allocVDevice(viommu: viommu, deviceID: deviceID, virtualID: virtualID)
    }

    // MARK: queues
    func allocFaultQueue() throws -> EventQueue { try sim.allocFaultQueue() }
    func allocVEventQueue(viommu: ObjectID, type: UInt32, depth: UInt32) throws -> EventQueue {
        try sim.allocVEventQueue(viommu: viommu, type: type, depth: depth)
    }
    func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags, faultQueue: ObjectID) throws -> ObjectID {
        try sim.allocHWPT(deviceID: deviceID, ptID: ptID, flags: flags, faultQueue: faultQueue)
    }
    func readEventQueue(_ id: ObjectID, into buffer: UnsafeMutableRawBufferPointer) throws -> Int { try sim.readEventQueue(id, into: buffer) }
    func respondToFaults(_ id: ObjectID, _ responses: UnsafeRawBufferPointer) throws -> Int { try sim.respondToFaults(id, responses) }
}

let page = Broker.pageSize

/// uids of the test identities.
enum TestUID {
    static let managerA: UInt32 = 1000
    static let managerB: UInt32 = 1001
    static let reader: UInt32 = 1002
    static let vmm: UInt32 = 1003
    static let admin: UInt32 = 1004
}

/// A broker over a simulator, with two managers (A with a quota of 64 pages), a reader, a
/// trusted VMM identity and an admin.
struct Fixture {
    let sim: SimBackend
    let backend: FaultyBackend
    let broker: Broker
    let a: Caller
    let b: Caller
    let reader: Caller
    let vmm: Caller
    let admin: Caller

    static let quotaPages: UInt64 = 64

    init(topology: SimTopology = .default, allow: DeviceAllowList = .all, without: Set<Feature> = [], defaults: OwnerPolicy = OwnerPolicy()) throws {
        sim = try SimBackend(topology: topology)
        backend = FaultyBackend(sim: sim, without: without)
        let access = AccessControl(
            rules: [
                AccessRule(.uid(TestUID.managerA), role: .manager, name: "libvirt-a", quotaBytes: Self.quotaPages * page),
                AccessRule(.uid(TestUID.managerB), role: .manager, name: "libvirt-b"),
                AccessRule(.uid(TestUID.reader), role: .reader, name: "monitor"),
                AccessRule(.uid(TestUID.vmm), role: .manager, name: "qemu", trustedVMM: true),
                AccessRule(.uid(TestUID.admin), role: .admin, name: "ops"),
            ],
            rootIsAdmin: false, groupsOf: { _, _ in [] })
        var logger = Logger(label: "broker-test")
        logger.logLevel = .error
        broker = try Broker(backend: backend, config: BrokerConfig(access: access, allowList: allow, defaults: defaults), logger: logger)
        func resolve(_ uid: UInt32) throws -> Caller { try #require(access.resolve(uid: uid, gid: uid, pid: 1)) }
        a = try resolve(TestUID.managerA)
        b = try resolve(TestUID.managerB)
        reader = try resolve(TestUID.reader)
        vmm = try resolve(TestUID.vmm)
        admin = try resolve(TestUID.admin)
    }

    /// An owner of manager A with one IOAS.
    func ownerWithIOAS(_ name: String = "vm-1", as caller: Caller? = nil) throws -> ObjectID {
        let caller = caller ?? a
        _ = try broker.ownerCreate(caller, OwnerCreateParams(name: name))
        return try broker.ioasCreate(caller, IOASCreateParams(owner: name)).ioas
    }

    /// The sim's device ID of a bound device.
    func deviceID(_ name: String) throws -> ObjectID {
        try #require(broker.deviceInfo(admin, DeviceInfoParams(device: name)).deviceID)
    }
}

/// A memfd of `pages` pages (closed by the caller).
func memfd(pages: UInt64) throws -> Int32 {
    let fd = try Memfd.create(name: "broker-test")
    guard ftruncate(fd, off_t(pages * page)) == 0 else {
        let err = Errno.current
        close(fd)
        throw err
    }
    return fd
}

/// Asserts that `body` throws a `BrokerError` of `kind`, and returns it.
@discardableResult
func expectBrokerError<T>(_ kind: BrokerError.Kind, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) -> BrokerError? {
    do {
        _ = try body()
        Issue.record("expected \(kind.wireName), but it succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as BrokerError {
        #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected \(kind.wireName), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The errno a backend call fails with (nil on success).
func errnoOf(_ body: () throws -> Void) -> Errno? {
    do {
        try body()
        return nil
    } catch let error as IommuError {
        return error.errno
    } catch {
        return nil
    }
}

extension Broker {
    /// Memory files the broker holds a duplicate of.
    var heldFileCount: Int { (try? locked { files.files.count }) ?? -1 }
}

/// A list several threads append to.
final class LockedList<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [T] = []
    func append(_ item: T) { lock.withLock { list.append(item) } }
    var items: [T] { lock.withLock { list } }
}
