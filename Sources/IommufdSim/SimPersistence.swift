import Foundation
import IommufdCore

/// The simulator's stand-in for the kernel keeping an iommufd's objects alive while its fd is
/// held.
///
/// The kernel's objects (IOAS, mappings, HWPTs, bound devices, dirty bits) live in the kernel and
/// survive the daemon as long as the iommufd fd stays open (systemd's fd store holds it). The
/// simulator's objects live in the daemon's memory and would die with it, so the simulated
/// "iommufd" is itself a memfd: an operation log of every call that changed the simulator's
/// state. The daemon stores that memfd in the fd store like the kernel backend stores
/// `/dev/iommu`; a restarted daemon adopts it and replays the log into a fresh `SimBackend`,
/// which, allocating IDs the way the kernel's xarray does (lowest free), ends with the same
/// objects under the same IDs, the same mappings and the same dirty bits. Each logged
/// allocation carries the ID it returned and the replay checks it.
///
/// The log is written after the call succeeds and before it returns, as the kernel's state
/// changes before the ioctl returns. Memory files are named by `(st_dev, st_ino)`: a replayed
/// `IOMMU_IOAS_MAP_FILE` gets its fd from `resolveFile` (the broker's memfds, from the fd store).
public final class PersistentSimBackend: RestartableBackend, IommuTestHooks, @unchecked Sendable {
    public static let fdStoreName = "sim-iommufd"
    /// The format this simulator writes: a change to the operations that an older daemon would
    /// misread takes the next version (and keeps replaying every earlier one).
    public static let format = RecordLogFormat(kind: "IFDSIM", version: 1)
    static let magic: UInt64 = format.magic  // "IFDSIM01"

    /// Refuses a log written in a newer format than this simulator's, naming both versions,
    /// before anything is read or changed: the fd store keeps it for the newer daemon.
    public static func checkFormat(of fd: Int32) throws(FormatTooNew) {
        if let found = RecordLogFormat.of(fd), found.kind == format.kind, found.version > format.version {
            throw FormatTooNew(found: found, known: format)
        }
    }

    /// A persisted simulator log of a newer format than this daemon knows.
    public struct FormatTooNew: Error, CustomStringConvertible {
        public var found: RecordLogFormat
        public var known: RecordLogFormat
        public var description: String {
            "the simulator's iommufd log in the fd store is in format version \(found.version), newer than this daemon's version \(known.version) (a newer iommufdd wrote it); this daemon cannot replay it and leaves the fd store untouched: start the newer iommufdd again (do not clear the fd store: that would drop every device and mapping)"
        }
    }

    /// The simulator itself (for what the `IommuBackend` protocol does not cover, e.g. DMA).
    public let sim: SimBackend
    public let log: RecordLog
    private let lock = NSLock()

    public var kind: BackendKind { sim.kind }
    public var features: Set<Feature> { sim.features }

    /// What replaying an adopted log found.
    public struct ReplayReport: Sendable {
        public var operations = 0
        /// Torn bytes at the end of the log (a write the daemon was killed in).
        public var tornBytes = 0
        /// Operations that did not replay as they had run, in words.
        public var problems: [String] = []
        public init() {}
    }

    /// A fresh simulator with a new, empty log.
    public init(_ sim: SimBackend) throws(IommuError) {
        self.sim = sim
        log = try RecordLog(memfdName: "iommufdd-sim-iommufd", magic: Self.magic)
    }

    /// A simulator rebuilt from an adopted log. `resolveFile(device, inode)` returns an open fd of
    /// a memory file a logged mapping used (nil when the file is gone: the mapping is replayed
    /// over an empty placeholder file and reported).
    public init(_ sim: SimBackend, adopting fd: Int32, resolveFile: (UInt64, UInt64) -> Int32?, report: inout ReplayReport) throws(IommuError) {
        self.sim = sim
        if let found = RecordLogFormat.of(fd), found.kind == Self.format.kind, found.version > Self.format.version {
            throw IommuError(.EINVAL, "replay", detail: FormatTooNew(found: found, known: Self.format).description)
        }
        var records: [RecordLog.Record] = []
        var torn = 0
        log = try RecordLog(adopting: fd, magic: Self.magic, records: &records, tornBytes: &torn)
        report.tornBytes = torn
        var placeholder: Int32?
        defer { if let placeholder { close(placeholder) } }
        var missingFiles: [(ioas: ObjectID, iova: UInt64, device: UInt64, inode: UInt64)] = []
        for record in records {
            report.operations += 1
            do {
                try replay(record, resolveFile: resolveFile, placeholder: &placeholder, missingFiles: &missingFiles, report: &report)
            } catch {
                report.problems.append("operation \(report.operations) (\(Op(rawValue: record.type).map { "\($0)" } ?? "type \(record.type)")) did not replay: \(error)")
            }
        }
        for m in missingFiles {
            report.problems.append("IOAS \(m.ioas) mapping at 0x\(String(m.iova, radix: 16)): its memory file (dev \(m.device), inode \(m.inode)) is not in the fd store; the simulator maps an empty file there")
        }
    }

    public func fdsToStore() -> [(name: String, fd: Int32)] { [(Self.fdStoreName, log.fd)] }

    public func adoptBoundDevice(_ descriptor: DeviceDescriptor, id: ObjectID, fd: Int32?, objects: [String: ObjectID]) throws -> BoundDevice {
        // The replay bound it again; check it is the same device under the same ID (by name:
        // GET_HW_INFO would refuse an mdev-like device, an access rather than a device object).
        guard sim.boundID(of: descriptor.name) == id else {
            throw IommuError(.ENOENT, "VFIO_DEVICE_BIND_IOMMUFD", detail: "simulated device \(descriptor.name) is not bound as device \(id)")
        }
        return BoundDevice(descriptor: descriptor, id: id, fd: nil)
    }

    // MARK: Logging

    enum Op: UInt8 {
        case bind = 1, unbind, attach, replace, detach, destroy, allocIOAS, map, unmap, copy, allowIOVAs, setOption
        case allocHWPT, setDirtyTracking, readDirtyClear, allocVIOMMU, allocVDevice, addReserved, deviceWrite
        // MARK: nested (added kinds: a log without them replays as before)
        case allocNestedHWPT, invalidate
        // MARK: queues
        case allocFaultQueue = 100, allocVEventQueue, allocFaultHWPT
        // MARK: nestedgaps
        case allocNestedFaultHWPT = 110
        // MARK: pasid
        case attachPASID = 120, replacePASID, detachPASID
        // MARK: hwqueue
        case allocHWQueue = 130
    }

    /// Runs `body` and logs `op` with the fields `encode` writes when it succeeds, in one
    /// critical section so the log's order is the order the simulator ran them in.
    func logged<T>(_ op: Op, _ body: () throws -> T, _ encode: (inout ByteWriter, T) -> Void) throws -> T {
        // The crash-point sweep (TEST ONLY, see CrashPoints): the daemon dies before the
        // simulated ioctl, or after it (its effect logged, as the kernel's state changes before
        // the ioctl returns).
        CrashPoints.hit("before simulated \(op)")
        defer { CrashPoints.hit("after simulated \(op)") }
        return try lock.withLock {
            let result = try body()
            var w = ByteWriter(reserving: 64)
            encode(&w, result)
            log.append(type: op.rawValue, w.bytes)
            try log.flush()
            return result
        }
    }

    private func replay(
        _ record: RecordLog.Record, resolveFile: (UInt64, UInt64) -> Int32?, placeholder: inout Int32?,
        missingFiles: inout [(ioas: ObjectID, iova: UInt64, device: UInt64, inode: UInt64)], report: inout ReplayReport
    ) throws {
        var r = ByteReader(record.payload)
        func expect(_ got: ObjectID, _ want: UInt32, _ what: String) throws {
            if got != want { throw IommuError(.EEXIST, what, detail: "replay allocated ID \(got) where the log says \(want)") }
        }
        guard let op = Op(rawValue: record.type) else { throw IommuError(.EINVAL, "replay", detail: "unknown operation type \(record.type)") }
        switch op {
        case .bind:
            let id = r.u32()
            let name = String(decoding: r.bytes(r.remaining), as: UTF8.self)
            guard let descriptor = try sim.discoverDevices().first(where: { $0.name == name }) else {
                throw IommuError(.ENOENT, "VFIO_DEVICE_BIND_IOMMUFD", detail: "the topology has no device \(name) any more")
            }
            try expect(try sim.bind(descriptor).id, id, "VFIO_DEVICE_BIND_IOMMUFD")
        case .unbind: try sim.unbind(deviceID: r.u32())
        case .attach: _ = try sim.attach(deviceID: r.u32(), to: r.u32())
        case .replace: _ = try sim.replace(deviceID: r.u32(), with: r.u32())
        case .detach: try sim.detach(deviceID: r.u32())
        case .destroy:
            let id = r.u32()
            try sim.destroy(id)
            missingFiles.removeAll { $0.ioas == id }
        case .allocIOAS: try expect(try sim.allocIOAS(), r.u32(), "IOMMU_IOAS_ALLOC")
        case .map:
            let ioas = r.u32(), iova = r.u64(), length = r.u64(), flags = MapFlags(rawValue: r.u32())
            let source: MemorySource
            if r.u8() == 0 {
                source = .userAddress(r.u64())
            } else {
                let device = r.u64(), inode = r.u64(), offset = r.u64()
                if let fd = resolveFile(device, inode) {
                    source = .file(fd: fd, offset: offset)
                } else {
                    // The file is gone from the store when every mapping of it was unmapped
                    // later in the log: only a mapping over it that survives the replay is a problem.
                    if placeholder == nil { placeholder = try Memfd.create(name: "iommufdd-sim-missing-file") }
                    source = .file(fd: placeholder ?? -1, offset: offset)
                    missingFiles.append((ioas, iova, device, inode))
                }
            }
            // The logged IOVA is the one the simulator chose: replay it as fixed.
            _ = try sim.map(ioas: ioas, source: source, length: length, iova: iova, flags: flags.union(.fixedIOVA))
        case .unmap:
            let ioas = r.u32(), iova = r.u64(), length = r.u64()
            _ = try sim.unmap(ioas: ioas, iova: iova, length: length)
            let last = iova &+ (length &- 1)
            missingFiles.removeAll { $0.ioas == ioas && $0.iova >= iova && $0.iova <= last }
        case .copy:
            let dst = r.u32(), src = r.u32(), srcIOVA = r.u64(), length = r.u64(), dstIOVA = r.u64(), flags = MapFlags(rawValue: r.u32())
            _ = try sim.copy(dst: dst, src: src, srcIOVA: srcIOVA, length: length, dstIOVA: dstIOVA, flags: flags.union(.fixedIOVA))
        case .allowIOVAs:
            let ioas = r.u32()
            var ranges: [IOVARange] = []
            while r.remaining >= 16 { ranges.append(IOVARange(start: r.u64(), last: r.u64())) }
            try sim.allowIOVAs(ioas: ioas, ranges: ranges)
        case .setOption:
            let raw = r.u32(), object = r.u32(), value = r.u64()
            guard let option = IommuOption(rawValue: raw) else { throw IommuError(.EINVAL, "IOMMU_OPTION", detail: "option \(raw)") }
            try sim.setOption(option, objectID: object, value: value)
        case .allocHWPT:
            let id = r.u32(), dev = r.u32(), pt = r.u32(), flags = HWPTAllocFlags(rawValue: r.u32())
            try expect(try sim.allocHWPT(deviceID: dev, ptID: pt, flags: flags), id, "IOMMU_HWPT_ALLOC")
        case .setDirtyTracking: try sim.setDirtyTracking(hwpt: r.u32(), enabled: r.u8() != 0)
        case .readDirtyClear:
            let hwpt = r.u32(), iova = r.u64(), length = r.u64(), pageSize = r.u64()
            let words = Int((length / max(pageSize, 1) + 63) / 64)
            var bitmap = [UInt64](repeating: 0, count: max(words, 1))
            try bitmap.withUnsafeMutableBytes {
                try sim.readDirtyBitmap(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize, clear: true, into: $0)
            }
        // MARK: queues (SimPersistence+Queues.swift)
        case .allocFaultQueue, .allocVEventQueue, .allocFaultHWPT:
            try replayQueueOp(op, &r, expect)
        case .allocVIOMMU:
            let id = r.u32(), dev = r.u32(), hwpt = r.u32(), type = r.u32()
            try expect(try sim.allocVIOMMU(deviceID: dev, hwpt: hwpt, type: type), id, "IOMMU_VIOMMU_ALLOC")
        case .allocVDevice:
            let id = r.u32(), viommu = r.u32(), dev = r.u32(), virtualID = r.u64()
            try expect(try sim.allocVDevice(viommu: viommu, deviceID: dev, virtualID: virtualID), id, "IOMMU_VDEVICE_ALLOC")
        case .addReserved: try sim.addReservedIOVA(ioas: r.u32(), range: IOVARange(start: r.u64(), last: r.u64()))
        case .deviceWrite: try sim.simulateDeviceWrite(hwpt: r.u32(), iova: r.u64(), length: r.u64(), pageSize: r.u64())
        case .allocNestedHWPT, .invalidate: try replayNested(op, &r)
        // MARK: nestedgaps
        case .allocNestedFaultHWPT: try replayNestedFault(&r, expect)
        case .attachPASID, .replacePASID, .detachPASID: try replayPASID(op, &r)  // pasid
        case .allocHWQueue: try replayHWQueue(&r, expect)  // hwqueue
        }
    }

    // MARK: IommuBackend

    public func discoverDevices() throws -> [DeviceDescriptor] { try sim.discoverDevices() }

    public func bind(_ device: DeviceDescriptor) throws -> BoundDevice {
        try logged(.bind, { try sim.bind(device) }) { w, bound in
            w.u32(bound.id)
            w.bytes.append(contentsOf: Array(device.name.utf8))
        }
    }

    public func unbind(deviceID: ObjectID) throws {
        try logged(.unbind, { try sim.unbind(deviceID: deviceID) }) { w, _ in w.u32(deviceID) }
    }

    public func attach(deviceID: ObjectID, to ptID: ObjectID) throws -> ObjectID {
        try logged(.attach, { try sim.attach(deviceID: deviceID, to: ptID) }) { w, _ in w.u32(deviceID); w.u32(ptID) }
    }

    public func replace(deviceID: ObjectID, with ptID: ObjectID) throws -> ObjectID {
        try logged(.replace, { try sim.replace(deviceID: deviceID, with: ptID) }) { w, _ in w.u32(deviceID); w.u32(ptID) }
    }

    public func detach(deviceID: ObjectID) throws {
        try logged(.detach, { try sim.detach(deviceID: deviceID) }) { w, _ in w.u32(deviceID) }
    }

    public func hwInfo(deviceID: ObjectID, request: HWInfoRequest) throws -> HWInfo { try sim.hwInfo(deviceID: deviceID, request: request) }

    public func destroy(_ id: ObjectID) throws {
        try logged(.destroy, { try sim.destroy(id) }) { w, _ in w.u32(id) }
    }

    public func allocIOAS() throws -> ObjectID {
        try logged(.allocIOAS, { try sim.allocIOAS() }) { w, id in w.u32(id) }
    }

    public func map(ioas: ObjectID, source: MemorySource, length: UInt64, iova: UInt64, flags: MapFlags) throws -> UInt64 {
        try logged(.map, { try sim.map(ioas: ioas, source: source, length: length, iova: iova, flags: flags) }) { w, chosen in
            w.u32(ioas); w.u64(chosen); w.u64(length); w.u32(flags.subtracting(.fixedIOVA).rawValue)
            switch source {
            case .userAddress(let address):
                w.u8(0); w.u64(address)
            case .file(let fd, let offset):
                let id = Memfd.identity(fd) ?? (0, 0)
                w.u8(1); w.u64(id.device); w.u64(id.inode); w.u64(offset)
            }
        }
    }

    public func unmap(ioas: ObjectID, iova: UInt64, length: UInt64) throws -> UInt64 {
        try logged(.unmap, { try sim.unmap(ioas: ioas, iova: iova, length: length) }) { w, _ in w.u32(ioas); w.u64(iova); w.u64(length) }
    }

    public func copy(dst: ObjectID, src: ObjectID, srcIOVA: UInt64, length: UInt64, dstIOVA: UInt64, flags: MapFlags) throws -> UInt64 {
        try logged(.copy, { try sim.copy(dst: dst, src: src, srcIOVA: srcIOVA, length: length, dstIOVA: dstIOVA, flags: flags) }) { w, chosen in
            w.u32(dst); w.u32(src); w.u64(srcIOVA); w.u64(length); w.u64(chosen); w.u32(flags.subtracting(.fixedIOVA).rawValue)
        }
    }

    public func iovaRanges(ioas: ObjectID, capacity: UInt32) throws -> IOVARanges { try sim.iovaRanges(ioas: ioas, capacity: capacity) }

    public func allowIOVAs(ioas: ObjectID, ranges: [IOVARange]) throws {
        try logged(.allowIOVAs, { try sim.allowIOVAs(ioas: ioas, ranges: ranges) }) { w, _ in
            w.u32(ioas)
            for range in ranges { w.u64(range.start); w.u64(range.last) }
        }
    }

    public func setOption(_ option: IommuOption, objectID: ObjectID, value: UInt64) throws {
        try logged(.setOption, { try sim.setOption(option, objectID: objectID, value: value) }) { w, _ in
            w.u32(option.rawValue); w.u32(objectID); w.u64(value)
        }
    }

    public func getOption(_ option: IommuOption, objectID: ObjectID) throws -> UInt64 { try sim.getOption(option, objectID: objectID) }

    public func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags) throws -> ObjectID {
        try logged(.allocHWPT, { try sim.allocHWPT(deviceID: deviceID, ptID: ptID, flags: flags) }) { w, id in
            w.u32(id); w.u32(deviceID); w.u32(ptID); w.u32(flags.rawValue)
        }
    }

    public func setDirtyTracking(hwpt: ObjectID, enabled: Bool) throws {
        try logged(.setDirtyTracking, { try sim.setDirtyTracking(hwpt: hwpt, enabled: enabled) }) { w, _ in w.u32(hwpt); w.u8(enabled ? 1 : 0) }
    }

    public func readDirtyBitmap(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64, clear: Bool, into bitmap: UnsafeMutableRawBufferPointer) throws {
        guard clear else {
            return try sim.readDirtyBitmap(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize, clear: false, into: bitmap)
        }
        try logged(.readDirtyClear, { try sim.readDirtyBitmap(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize, clear: true, into: bitmap) }) { w, _ in
            w.u32(hwpt); w.u64(iova); w.u64(length); w.u64(pageSize)
        }
    }

    public func allocVIOMMU(deviceID: ObjectID, hwpt: ObjectID, type: UInt32) throws -> ObjectID {
        try logged(.allocVIOMMU, { try sim.allocVIOMMU(deviceID: deviceID, hwpt: hwpt, type: type) }) { w, id in
            w.u32(id); w.u32(deviceID); w.u32(hwpt); w.u32(type)
        }
    }

    public func allocVDevice(viommu: ObjectID, deviceID: ObjectID, virtualID: UInt64) throws -> ObjectID {
        try logged(.allocVDevice, { try sim.allocVDevice(viommu: viommu, deviceID: deviceID, virtualID: virtualID) }) { w, id in
            w.u32(id); w.u32(viommu); w.u32(deviceID); w.u64(virtualID)
        }
    }

    public func addReservedIOVA(ioas: ObjectID, range: IOVARange) throws {
        try logged(.addReserved, { try sim.addReservedIOVA(ioas: ioas, range: range) }) { w, _ in w.u32(ioas); w.u64(range.start); w.u64(range.last) }
    }

    public func simulateDeviceWrite(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64) throws {
        try logged(.deviceWrite, { try sim.simulateDeviceWrite(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize) }) { w, _ in
            w.u32(hwpt); w.u64(iova); w.u64(length); w.u64(pageSize)
        }
    }
}

extension SimBackend {
    /// The ID `name` is bound under, if it is.
    public func boundID(of name: String) -> ObjectID? {
        lock.withLock { boundByName[name] }
    }
}
