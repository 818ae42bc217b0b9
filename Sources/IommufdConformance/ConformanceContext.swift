#if canImport(Glibc)
import Glibc
#endif
import IommufdCore

/// The devices a fixture finds for a case, by what the case needs them for.
public enum DeviceRole: String, Hashable, Sendable, CaseIterable {
    /// A device behind an IOMMU (dirty-capable when the case needs dirty tracking).
    case primary
    /// Another device behind the primary's IOMMU.
    case peer
    /// A device behind the primary's IOMMU that cannot track dirty pages.
    case noDirty
    /// A device behind another IOMMU instance.
    case otherIOMMU
    /// An mdev-like device.
    case mdev
    /// A device behind an IOMMU without nesting support.
    case nonNesting
    // MARK: pasid
    /// A PASID-capable device behind the primary's IOMMU.
    case pasid
    /// A device without PASID behind the PASID-capable device's IOMMU.
    case noPASID
}

/// What a case body works with: a fresh backend, its devices by role, memory to map, and
/// assertion helpers whose failures name the case, the expectation and what happened.
public final class ConformanceContext {
    public let caseID: String
    public let backend: ConformanceBackend
    /// The CPU page size (`PAGE_SIZE`) of this machine.
    public let pageSize: UInt64
    let memory: ConformanceMemory
    let roles: [DeviceRole: BoundDevice]
    /// Mappings made for this case (`inaccessibleAddress`, `readOnlyAddress`), unmapped with it.
    private var scratch: [(address: UnsafeMutableRawPointer, size: Int)] = []

    init(caseID: String, backend: ConformanceBackend, memory: ConformanceMemory, roles: [DeviceRole: BoundDevice]) {
        self.caseID = caseID
        self.backend = backend
        self.memory = memory
        self.roles = roles
        self.pageSize = memory.pageSize
    }

    // MARK: Devices and memory

    /// The bound device playing `role` (the fixture has bound it for the case's requirements).
    public func device(_ role: DeviceRole) throws -> BoundDevice {
        guard let device = roles[role] else {
            throw fail("the case uses device role \(role.rawValue) but does not declare the requirement for it")
        }
        return device
    }

    /// Memory for a mapping: byte `offset` of the fixture's shared-memory file, as a file
    /// (`IOMMU_IOAS_MAP_FILE`) when the backend supports it, else as the daemon's address.
    /// Offset 0 is aligned to 2 MiB either way.
    public func source(offset: UInt64 = 0) -> MemorySource {
        backend.features.contains(.ioasMapFile) ? .file(fd: memory.fd, offset: offset) : userSource(offset: offset)
    }

    /// The same memory as a user address (`IOMMU_IOAS_MAP`).
    public func userSource(offset: UInt64 = 0) -> MemorySource {
        .userAddress(memory.address + offset)
    }

    /// Bytes of memory available from `source(offset: 0)`.
    public var memorySize: UInt64 { memory.size }

    /// The address of `length` bytes (whole pages) of this process's address space reserved
    /// with `PROT_NONE` until the case ends: no page can be pinned there (EFAULT once a domain
    /// needs the pages).
    public func inaccessibleAddress(length: UInt64) throws -> UInt64 {
        try scratchMapping(length: length, protection: PROT_NONE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, what: "reserve address space")
    }

    /// The fixture's shared-memory file mapped a second time, read-only, until the case ends:
    /// pages that can be pinned for reading but not for writing.
    public func readOnlyAddress(length: UInt64) throws -> UInt64 {
        try scratchMapping(length: length, protection: PROT_READ, flags: MAP_SHARED, fd: memory.fd, what: "map the fixture file read-only")
    }

    private func scratchMapping(length: UInt64, protection: Int32, flags: Int32, fd: Int32, what: String) throws -> UInt64 {
        let size = Int((length + pageSize - 1) & ~(pageSize - 1))
        guard let mapped = mmap(nil, size, protection, flags, fd, 0), mapped != MAP_FAILED else {
            throw ConformanceSkip("cannot \(what) (\(size) bytes) in the test process: \(Errno.current)")
        }
        scratch.append((mapped, size))
        return UInt64(UInt(bitPattern: mapped))
    }

    deinit {
        for (address, size) in scratch { munmap(address, size) }
    }

    // MARK: IOVA helpers

    /// A `length`-byte window of usable IOVA in `ioas`, aligned to 2 MiB and not at IOVA 0,
    /// taken from `IOMMU_IOAS_IOVA_RANGES` so it is valid on any backend.
    public func baseIOVA(ioas: ObjectID, length: UInt64) throws -> UInt64 {
        let ranges = try backend.iovaRanges(ioas: ioas, capacity: 64)
        let alignment: UInt64 = 2 << 20
        for range in ranges.ranges {
            var start = range.start
            if start == 0 { start = alignment }
            let (rounded, overflow) = start.addingReportingOverflow(alignment - 1)
            if overflow { continue }
            let aligned = rounded & ~(alignment - 1)
            guard aligned >= range.start, aligned <= range.last, range.last - aligned >= length - 1 else { continue }
            return aligned
        }
        throw ConformanceSkip("no usable IOVA window of \(length) bytes in IOAS \(ioas): \(ranges.ranges)")
    }

    /// `IOMMU_IOAS_MAP` with a fixed IOVA, read-write, of the fixture memory at `offset`.
    @discardableResult
    public func mapFixed(ioas: ObjectID, iova: UInt64, length: UInt64, offset: UInt64 = 0, flags: MapFlags = .readWrite) throws -> UInt64 {
        try backend.map(ioas: ioas, source: source(offset: offset), length: length, iova: iova, flags: flags.union(.fixedIOVA))
    }

    /// `IOMMU_TEST_OP_ADD_RESERVED`; a backend without the selftest hooks skips the case.
    public func addReserved(ioas: ObjectID, _ range: IOVARange) throws {
        do {
            try backend.addReservedIOVA(ioas: ioas, range: range)
        } catch let error as IommuError where error.errno == .ENOTTY {
            throw ConformanceSkip("IOMMU_TEST_OP_ADD_RESERVED is not available (needs CONFIG_IOMMUFD_TEST)")
        }
    }

    /// `IOMMU_TEST_OP_DIRTY`; a backend without the selftest hooks skips the case.
    public func deviceWrite(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64) throws {
        do {
            try backend.simulateDeviceWrite(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize)
        } catch let error as IommuError where error.errno == .ENOTTY {
            throw ConformanceSkip("IOMMU_TEST_OP_DIRTY is not available (needs CONFIG_IOMMUFD_TEST)")
        }
    }

    /// Reads the dirty bitmap of `[iova, iova+length)` into fresh zeroed u64 words.
    public func dirtyBitmap(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64, clear: Bool) throws -> [UInt64] {
        let bits = length / pageSize
        var words = [UInt64](repeating: 0, count: Int((bits + 63) / 64))
        try words.withUnsafeMutableBytes { raw in
            try backend.readDirtyBitmap(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize, clear: clear, into: raw)
        }
        return words
    }

    // MARK: Assertions

    /// A failure of this case with `message`.
    public func fail(_ message: String) -> ConformanceFailure {
        ConformanceFailure(caseID: caseID, message: message)
    }

    public func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw fail(message()) }
    }

    public func expectEqual<T: Equatable>(_ actual: T, _ expected: T, _ what: String) throws {
        if actual != expected { throw fail("\(what): expected \(expected), got \(actual)") }
    }

    /// Runs `body`, which must fail with exactly `expected`; returns the error for further checks.
    @discardableResult
    public func expectErrno<T>(_ expected: Errno, _ what: String, _ body: () throws -> T) throws -> IommuError {
        let outcome: Result<T, any Error>
        do { outcome = .success(try body()) } catch { outcome = .failure(error) }
        switch outcome {
        case .success(let value):
            throw fail("\(what): expected \(expected.name), but it succeeded (returned \(value))")
        case .failure(let error as IommuError):
            if error.isMissingTestHook { throw ConformanceSkip("\(error.operation) is not available (needs CONFIG_IOMMUFD_TEST)") }
            if error.errno != expected {
                throw fail("\(what): expected \(expected.name), got \(error.errno.name) from \(error.operation)")
            }
            return error
        case .failure(let error):
            throw error
        }
    }

    /// Runs `body`, which must succeed; an error is reported as a failure naming `what`.
    @discardableResult
    public func expectSuccess<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as IommuError {
            if error.isMissingTestHook { throw ConformanceSkip("\(error.operation) is not available (needs CONFIG_IOMMUFD_TEST)") }
            throw fail("\(what): expected success, got \(error.errno.name) from \(error.operation)")
        }
    }
}

/// A shared-memory file mapped at a 2 MiB-aligned address: what the cases map into IOASes.
final class ConformanceMemory {
    let fd: Int32
    let address: UInt64
    let size: UInt64
    let pageSize: UInt64
    private let reservation: UnsafeMutableRawPointer
    private let reservationSize: Int

    static let alignment = 2 << 20

    init(size: UInt64 = 16 << 20) throws {
        pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        self.size = size
        var fd: Int32 = -1
        for directory in ["/dev/shm", "/tmp"] {
            var template = Array("\(directory)/iommufd-conformance-XXXXXX".utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            if fd >= 0 {
                template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
                break
            }
        }
        guard fd >= 0 else { throw ConformanceSkip("cannot create a shared-memory file for mappings: \(Errno.current)") }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let error = Errno.current
            close(fd)
            throw ConformanceSkip("cannot size the mapping file: \(error)")
        }
        reservationSize = Int(size) + Self.alignment
        guard let reserved = mmap(nil, reservationSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            reserved != MAP_FAILED
        else {
            close(fd)
            throw ConformanceSkip("cannot reserve address space: \(Errno.current)")
        }
        let aligned = (UInt(bitPattern: reserved) + UInt(Self.alignment - 1)) & ~UInt(Self.alignment - 1)
        guard let mapped = mmap(UnsafeMutableRawPointer(bitPattern: aligned), Int(size), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0),
            mapped != MAP_FAILED
        else {
            munmap(reserved, reservationSize)
            close(fd)
            throw ConformanceSkip("cannot map the mapping file: \(Errno.current)")
        }
        self.fd = fd
        self.reservation = reserved
        self.address = UInt64(aligned)
    }

    deinit {
        munmap(reservation, reservationSize)
        close(fd)
    }
}

extension IommuError {
    /// A selftest hook (`IOMMU_TEST_OP_*`) the backend does not have: the kernel answers ENOTTY.
    var isMissingTestHook: Bool { errno == .ENOTTY && operation.hasPrefix("IOMMU_TEST") }
}
