import Foundation
import IommufdCore

/// A backend that forwards every call to `base` and notes, for each call that succeeds, the
/// `Feature` whose ioctl it is. Run a case on it (`ConformanceFixture.runRecordingFeatures`)
/// to learn what the case really exercised, rather than what it says it does.
public final class FeatureRecordingBackend: IommuBackend, IommuTestHooks, @unchecked Sendable {
    public let base: ConformanceBackend
    private let lock = NSLock()
    private var recording = false
    private var seen: Set<Feature> = []

    public init(_ base: ConformanceBackend) {
        self.base = base
    }

    /// The features of the calls that succeeded since `startRecording()`.
    public var exercised: Set<Feature> {
        lock.lock()
        defer { lock.unlock() }
        return seen
    }

    /// Calls before this (the fixture binding devices and probing for nesting) are not the
    /// case's and are not recorded.
    public func startRecording() {
        lock.lock()
        defer { lock.unlock() }
        recording = true
    }

    /// Which feature a call belongs to: the ioctl it issues (see `FeatureProbe.requests`).
    /// `note` for the queue calls (FeatureRecordingBackend+Queues.swift).
    func noteQueue<T>(_ feature: Feature, _ call: () throws -> T) rethrows -> T { try note(feature, call) }

    func note<T>(_ feature: Feature, _ call: () throws -> T) rethrows -> T {
        let result = try call()
        lock.lock()
        if recording { seen.insert(feature) }
        lock.unlock()
        return result
    }

    public var kind: BackendKind { base.kind }
    public var features: Set<Feature> { base.features }

    public func discoverDevices() throws -> [DeviceDescriptor] { try base.discoverDevices() }
    public func bind(_ device: DeviceDescriptor) throws -> BoundDevice { try note(.vfioDeviceCdev) { try base.bind(device) } }
    public func unbind(deviceID: ObjectID) throws { try note(.vfioDeviceCdev) { try base.unbind(deviceID: deviceID) } }
    public func attach(deviceID: ObjectID, to ptID: ObjectID) throws -> ObjectID {
        try note(.vfioDeviceCdev) { try base.attach(deviceID: deviceID, to: ptID) }
    }
    public func replace(deviceID: ObjectID, with ptID: ObjectID) throws -> ObjectID {
        try note(.vfioDeviceCdev) { try base.replace(deviceID: deviceID, with: ptID) }
    }
    public func detach(deviceID: ObjectID) throws { try note(.vfioDeviceCdev) { try base.detach(deviceID: deviceID) } }
    public func hwInfo(deviceID: ObjectID, request: HWInfoRequest) throws -> HWInfo { try note(.hwInfo) { try base.hwInfo(deviceID: deviceID, request: request) } }
    public func destroy(_ id: ObjectID) throws { try note(.iommufd) { try base.destroy(id) } }
    public func allocIOAS() throws -> ObjectID { try note(.iommufd) { try base.allocIOAS() } }

    public func map(ioas: ObjectID, source: MemorySource, length: UInt64, iova: UInt64, flags: MapFlags) throws -> UInt64 {
        let feature: Feature
        switch source {
        case .userAddress: feature = .iommufd
        case .file: feature = .ioasMapFile
        }
        let iova = try note(feature) { try base.map(ioas: ioas, source: source, length: length, iova: iova, flags: flags) }
        if isDmabuf(source) { note(.dmabufMap) {} }  // MARK: p2p
        return iova
    }
    public func unmap(ioas: ObjectID, iova: UInt64, length: UInt64) throws -> UInt64 {
        try note(.iommufd) { try base.unmap(ioas: ioas, iova: iova, length: length) }
    }
    public func copy(dst: ObjectID, src: ObjectID, srcIOVA: UInt64, length: UInt64, dstIOVA: UInt64, flags: MapFlags) throws -> UInt64 {
        try note(.iommufd) { try base.copy(dst: dst, src: src, srcIOVA: srcIOVA, length: length, dstIOVA: dstIOVA, flags: flags) }
    }
    public func iovaRanges(ioas: ObjectID, capacity: UInt32) throws -> IOVARanges {
        try note(.iommufd) { try base.iovaRanges(ioas: ioas, capacity: capacity) }
    }
    public func allowIOVAs(ioas: ObjectID, ranges: [IOVARange]) throws { try note(.iommufd) { try base.allowIOVAs(ioas: ioas, ranges: ranges) } }
    public func setOption(_ option: IommuOption, objectID: ObjectID, value: UInt64) throws {
        try note(.iommufd) { try base.setOption(option, objectID: objectID, value: value) }
    }
    public func getOption(_ option: IommuOption, objectID: ObjectID) throws -> UInt64 {
        try note(.iommufd) { try base.getOption(option, objectID: objectID) }
    }

    public func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags) throws -> ObjectID {
        try note(.hwptAlloc) { try base.allocHWPT(deviceID: deviceID, ptID: ptID, flags: flags) }
    }
    public func setDirtyTracking(hwpt: ObjectID, enabled: Bool) throws {
        try note(.dirtyTracking) { try base.setDirtyTracking(hwpt: hwpt, enabled: enabled) }
    }
    public func readDirtyBitmap(
        hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64, clear: Bool, into bitmap: UnsafeMutableRawBufferPointer
    ) throws {
        try note(.dirtyTracking) {
            try base.readDirtyBitmap(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize, clear: clear, into: bitmap)
        }
    }

    public func allocVIOMMU(deviceID: ObjectID, hwpt: ObjectID, type: UInt32) throws -> ObjectID {
        try note(.viommu) { try base.allocVIOMMU(deviceID: deviceID, hwpt: hwpt, type: type) }
    }
    public func allocVDevice(viommu: ObjectID, deviceID: ObjectID, virtualID: UInt64) throws -> ObjectID {
        try note(.vdevice) { try base.allocVDevice(viommu: viommu, deviceID: deviceID, virtualID: virtualID) }
    }

    public func addReservedIOVA(ioas: ObjectID, range: IOVARange) throws {
        try note(.selftest) { try base.addReservedIOVA(ioas: ioas, range: range) }
    }
    public func simulateDeviceWrite(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64) throws {
        try note(.selftest) { try base.simulateDeviceWrite(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize) }
    }
}
