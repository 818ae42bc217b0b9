import Foundation
import IommufdCore
import Testing

@testable import IommufdSim

/// A shared-memory file the tests map, closed at the end.
final class SharedFile {
    let fd: Int32
    init(size: Int) throws {
        var template = Array("/dev/shm/iommufd-sim-test-XXXXXX".utf8CString)
        var fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        if fd < 0 {
            template = Array("/tmp/iommufd-sim-test-XXXXXX".utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        }
        guard fd >= 0 else { throw Errno.current }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw Errno.current }
        self.fd = fd
    }
    func read(at offset: Int, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        return n == count ? bytes : []
    }
    func write(_ bytes: [UInt8], at offset: Int) {
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes.count, off_t(offset)) }
    }
    deinit { close(fd) }
}

/// A backend with the default topology and its devices bound by name.
struct SimBench {
    let backend: SimBackend
    let devices: [String: BoundDevice]
    init() throws {
        backend = try SimBackend()
        var devices: [String: BoundDevice] = [:]
        for descriptor in try backend.discoverDevices() { devices[descriptor.name] = try backend.bind(descriptor) }
        self.devices = devices
    }
    func id(_ name: String) -> ObjectID { devices[name]!.id }
}

@Suite("Simulated DMA")
struct SimDMATests {
    let page: UInt64 = 4096
    let base: UInt64 = 0x4000_0000

    @Test func writeLandsInTheFileAndReadsBack() throws {
        let bench = try SimBench()
        let file = try SharedFile(size: 1 << 20)
        let ioas = try bench.backend.allocIOAS()
        try bench.backend.attach(deviceID: bench.id("sim0"), to: ioas)
        _ = try bench.backend.map(ioas: ioas, source: .file(fd: file.fd, offset: 0x2000), length: 4 * page, iova: base, flags: [.fixedIOVA, .readWrite])
        try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base + 10, write: Array("hello".utf8))
        #expect(file.read(at: 0x2000 + 10, count: 5) == Array("hello".utf8))
        file.write(Array("world".utf8), at: 0x2000 + Int(page))
        #expect(try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base + page, readLength: 5) == Array("world".utf8))
    }

    @Test func afterUnmapTheDMAFaultsAndDoesNotLand() throws {
        let bench = try SimBench()
        let file = try SharedFile(size: 1 << 20)
        let ioas = try bench.backend.allocIOAS()
        try bench.backend.attach(deviceID: bench.id("sim0"), to: ioas)
        _ = try bench.backend.map(ioas: ioas, source: .file(fd: file.fd, offset: 0), length: page, iova: base, flags: [.fixedIOVA, .readWrite])
        #expect(try bench.backend.unmap(ioas: ioas, iova: base, length: page) == page)
        let fault = #expect(throws: SimDMAFault.self) {
            try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base, write: [1, 2, 3])
        }
        #expect(fault?.reason == .notMapped)
        #expect(fault?.iova == base)
        #expect(file.read(at: 0, count: 3) == [0, 0, 0])
    }

    @Test func devicesInDifferentIOASesAreIsolated() throws {
        let bench = try SimBench()
        let file = try SharedFile(size: 1 << 20)
        let guestA = try bench.backend.allocIOAS()
        let guestB = try bench.backend.allocIOAS()
        try bench.backend.attach(deviceID: bench.id("sim0"), to: guestA)
        try bench.backend.attach(deviceID: bench.id("sim2"), to: guestB)
        _ = try bench.backend.map(ioas: guestA, source: .file(fd: file.fd, offset: 0), length: page, iova: base, flags: [.fixedIOVA, .readWrite])
        let fault = #expect(throws: SimDMAFault.self) {
            try bench.backend.simulateDMA(deviceID: bench.id("sim2"), iova: base, write: [0xff])
        }
        #expect(fault?.reason == .notMapped)
        try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base, write: [0x5a])
        #expect(file.read(at: 0, count: 1) == [0x5a])
    }

    @Test func permissionsAndAttachmentAreEnforced() throws {
        let bench = try SimBench()
        let file = try SharedFile(size: 1 << 20)
        let ioas = try bench.backend.allocIOAS()
        _ = try bench.backend.map(ioas: ioas, source: .file(fd: file.fd, offset: 0), length: page, iova: base, flags: [.fixedIOVA, .readable])
        let detached = #expect(throws: SimDMAFault.self) {
            try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base, readLength: 1)
        }
        #expect(detached?.reason == .notAttached)
        try bench.backend.attach(deviceID: bench.id("sim0"), to: ioas)
        let readOnly = #expect(throws: SimDMAFault.self) {
            try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base, write: [1])
        }
        #expect(readOnly?.reason == .notWriteable)
        #expect(try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base, readLength: 2) == [0, 0])
        try bench.backend.detach(deviceID: bench.id("sim0"))
        let blocked = #expect(throws: SimDMAFault.self) {
            try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base, readLength: 1)
        }
        #expect(blocked?.reason == .notAttached)
    }

    @Test func userAddressMappingWritesProcessMemory() throws {
        let bench = try SimBench()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Int(2 * page), alignment: Int(page))
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: Int(2 * page))
        let ioas = try bench.backend.allocIOAS()
        try bench.backend.attach(deviceID: bench.id("sim0"), to: ioas)
        let address = UInt64(UInt(bitPattern: buffer))
        let iova = try bench.backend.map(ioas: ioas, source: .userAddress(address), length: 2 * page, iova: 0, flags: .readWrite)
        try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: iova + page - 2, write: [7, 8, 9, 10])
        #expect(buffer.load(fromByteOffset: Int(page) - 2, as: UInt8.self) == 7)
        #expect(buffer.load(fromByteOffset: Int(page) + 1, as: UInt8.self) == 10)
    }

    @Test func writeSpanningAdjacentMappingsAndCopiesShareMemory() throws {
        let bench = try SimBench()
        let file = try SharedFile(size: 1 << 20)
        let guestA = try bench.backend.allocIOAS()
        _ = try bench.backend.map(ioas: guestA, source: .file(fd: file.fd, offset: 0), length: page, iova: base, flags: [.fixedIOVA, .readWrite])
        _ = try bench.backend.map(ioas: guestA, source: .file(fd: file.fd, offset: 0x10000), length: page, iova: base + page, flags: [.fixedIOVA, .readWrite])
        try bench.backend.attach(deviceID: bench.id("sim0"), to: guestA)
        try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base + page - 1, write: [0xaa, 0xbb])
        #expect(file.read(at: Int(page) - 1, count: 1) == [0xaa])
        #expect(file.read(at: 0x10000, count: 1) == [0xbb])

        // A copy into another IOAS reaches the same memory.
        let guestB = try bench.backend.allocIOAS()
        let copied = try bench.backend.copy(dst: guestB, src: guestA, srcIOVA: base, length: 2 * page, dstIOVA: 0, flags: .readWrite)
        try bench.backend.attach(deviceID: bench.id("sim2"), to: guestB)
        try bench.backend.simulateDMA(deviceID: bench.id("sim2"), iova: copied + page, write: [0xcc])
        #expect(file.read(at: 0x10000, count: 1) == [0xcc])
    }

    @Test func mappingOutlivesTheCallersFileDescriptor() throws {
        let bench = try SimBench()
        var file: SharedFile? = try SharedFile(size: 1 << 20)
        let ioas = try bench.backend.allocIOAS()
        try bench.backend.attach(deviceID: bench.id("sim0"), to: ioas)
        _ = try bench.backend.map(ioas: ioas, source: .file(fd: file!.fd, offset: 0), length: page, iova: base, flags: [.fixedIOVA, .readWrite])
        file = nil
        try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base, write: [42])
        #expect(try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base, readLength: 1) == [42])
    }

    @Test func mdevReadsAndWritesThroughTheIOAS() throws {
        let bench = try SimBench()
        let file = try SharedFile(size: 1 << 20)
        let ioas = try bench.backend.allocIOAS()
        #expect(try bench.backend.attach(deviceID: bench.id("mdev0"), to: ioas) == ioas)
        _ = try bench.backend.map(ioas: ioas, source: .file(fd: file.fd, offset: 0), length: page, iova: base, flags: [.fixedIOVA, .readWrite])
        try bench.backend.simulateDMA(deviceID: bench.id("mdev0"), iova: base + 1, write: [3])
        #expect(file.read(at: 1, count: 1) == [3])
    }

    @Test func dmaWritesSetDirtyBitsAtIOPTEGranularity() throws {
        let bench = try SimBench()
        let file = try SharedFile(size: 8 << 20)
        let twoMiB: UInt64 = 2 << 20
        for hugePages: UInt64 in [0, 1] {
            let ioas = try bench.backend.allocIOAS()
            try bench.backend.setOption(.hugePages, objectID: ioas, value: hugePages)
            let hwpt = try bench.backend.allocHWPT(deviceID: bench.id("sim0"), ptID: ioas, flags: .dirtyTracking)
            try bench.backend.attach(deviceID: bench.id("sim0"), to: hwpt)
            _ = try bench.backend.map(ioas: ioas, source: .file(fd: file.fd, offset: 0), length: twoMiB, iova: base, flags: [.fixedIOVA, .readWrite])
            try bench.backend.setDirtyTracking(hwpt: hwpt, enabled: true)
            try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base + 3 * page + 5, write: [1])
            var words = [UInt64](repeating: 0, count: Int(twoMiB / page / 64))
            try words.withUnsafeMutableBytes {
                try bench.backend.readDirtyBitmap(hwpt: hwpt, iova: base, length: twoMiB, pageSize: page, clear: true, into: $0)
            }
            let dirtyPages = words.reduce(0) { $0 + $1.nonzeroBitCount }
            if hugePages == 0 {
                // One 4 KiB IOPTE: page 3 only.
                #expect(dirtyPages == 1)
                #expect(words[0] == 1 << 3)
            } else {
                // The 2 MiB mapping sits in one huge IOPTE: every page of it reads dirty.
                #expect(dirtyPages == 512)
            }
            try bench.backend.detach(deviceID: bench.id("sim0"))
        }
    }

    @Test func unmapDropsDirtyBitsOfTheUnmappedIOPTEs() throws {
        let bench = try SimBench()
        let file = try SharedFile(size: 1 << 20)
        let ioas = try bench.backend.allocIOAS()
        let hwpt = try bench.backend.allocHWPT(deviceID: bench.id("sim0"), ptID: ioas, flags: .dirtyTracking)
        try bench.backend.attach(deviceID: bench.id("sim0"), to: hwpt)
        try bench.backend.setDirtyTracking(hwpt: hwpt, enabled: true)
        let flags: MapFlags = [.fixedIOVA, .readWrite]
        _ = try bench.backend.map(ioas: ioas, source: .file(fd: file.fd, offset: 0), length: page, iova: base, flags: flags)
        _ = try bench.backend.map(ioas: ioas, source: .file(fd: file.fd, offset: page), length: page, iova: base + page, flags: flags)
        try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base, write: [1])
        try bench.backend.simulateDMA(deviceID: bench.id("sim0"), iova: base + page, write: [1])
        #expect(try bench.backend.unmap(ioas: ioas, iova: base, length: page) == page)
        _ = try bench.backend.map(ioas: ioas, source: .file(fd: file.fd, offset: 0), length: page, iova: base, flags: flags)
        var words: [UInt64] = [0]
        try words.withUnsafeMutableBytes {
            try bench.backend.readDirtyBitmap(hwpt: hwpt, iova: base, length: 2 * page, pageSize: page, clear: true, into: $0)
        }
        #expect(words == [0b10])
    }

    @Test func unknownDeviceFaults() throws {
        let bench = try SimBench()
        let fault = #expect(throws: SimDMAFault.self) { try bench.backend.simulateDMA(deviceID: 999, iova: 0, write: [1]) }
        #expect(fault?.reason == .unknownDevice)
        #expect(fault?.description.contains("unknown device") == true)
    }
}
