import CIommufd
import IommufdCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// QEMU's `edu` PCI device (1234:11e8) driven through its VFIO cdev: a DMA engine that copies
/// between its 4 KiB internal buffer and bus addresses, which the IOMMU translates. This is how
/// the guest tests make a real device DMA through iommufd mappings.
///
/// Registers (QEMU docs/specs/edu.rst), in BAR0: 0x00 identification (0xRRrr00ed), 0x80 DMA
/// source, 0x88 DMA destination, 0x90 count, 0x98 command (bit 0 start / busy, bit 1 direction
/// 1 = buffer to RAM). BAR0 and config space are reached with pread/pwrite on the device fd at
/// the region offsets VFIO reports, so no MMIO mapping (and no volatile access) is needed.
/// The engine masks bus addresses to 28 bits: IOVAs used with it must stay below 256 MiB.
struct EduDevice {
    /// Bus address of the device's internal buffer in its DMA address space.
    static let bufferAddress: UInt64 = 0x40000
    static let bufferSize: UInt64 = 4096

    let fd: Int32
    private let bar0: off_t

    // <linux/vfio.h>: VFIO_DEVICE_GET_REGION_INFO = _IO(';', VFIO_BASE + 8); struct
    // vfio_region_info { u32 argsz, flags, index, cap_offset; u64 size, offset; }.
    private static let getRegionInfo: UInt = 0x3b6c
    private static let regionInfoSize = 32
    private static let bar0Index: UInt32 = 0
    private static let configIndex: UInt32 = 7

    /// Takes a bound VFIO cdev fd (not owned), enables memory decoding and bus mastering, and
    /// checks that the device answers as an edu.
    init(fd: Int32) throws {
        self.fd = fd
        self.bar0 = try Self.regionOffset(fd: fd, index: Self.bar0Index)
        let config = try Self.regionOffset(fd: fd, index: Self.configIndex)
        var command: UInt16 = 0
        try Self.io("read PCI command register", pread(fd, &command, 2, config + 4), 2)
        command |= 0x6  // memory space + bus master
        try Self.io("write PCI command register", pwrite(fd, &command, 2, config + 4), 2)
        let id = try read32(0)
        try expect(id & 0xff == 0xed, "BAR0 identification register reads 0x\(String(id, radix: 16)), not an edu device")
    }

    /// Copies `count` bytes from bus address `source` to `destination` and waits for the engine.
    /// One side must be the internal buffer (`bufferAddress`); `toRAM` gives the direction.
    /// A blocked transfer (IOMMU fault) completes all the same: callers check the memory.
    func dma(from source: UInt64, to destination: UInt64, count: UInt64, toRAM: Bool) throws {
        try write64(0x80, source)
        try write64(0x88, destination)
        try write64(0x90, count)
        try write64(0x98, toRAM ? 0x3 : 0x1)
        // The engine finishes on a QEMU timer (about 100 ms of virtual time).
        for _ in 0..<2000 {
            if try read64(0x98) & 1 == 0 { return }
            usleep(5000)
        }
        throw CheckFailure(description: "edu DMA 0x\(String(source, radix: 16)) -> 0x\(String(destination, radix: 16)) did not complete in 10 s")
    }

    private func read32(_ register: off_t) throws -> UInt32 {
        var value: UInt32 = 0
        try Self.io("read edu register 0x\(String(register, radix: 16))", pread(fd, &value, 4, bar0 + register), 4)
        return value
    }

    private func read64(_ register: off_t) throws -> UInt64 {
        var value: UInt64 = 0
        try Self.io("read edu register 0x\(String(register, radix: 16))", pread(fd, &value, 8, bar0 + register), 8)
        return value
    }

    private func write64(_ register: off_t, _ value: UInt64) throws {
        var value = value
        try Self.io("write edu register 0x\(String(register, radix: 16))", pwrite(fd, &value, 8, bar0 + register), 8)
    }

    private static func io(_ what: String, _ result: Int, _ expected: Int) throws {
        if result != expected {
            throw IommuError(result < 0 ? .current : .EIO, what, detail: "transferred \(result) of \(expected) bytes")
        }
    }

    private static func regionOffset(fd: Int32, index: UInt32) throws -> off_t {
        let info = UnsafeMutableRawBufferPointer.allocate(byteCount: regionInfoSize, alignment: 8)
        defer { info.deallocate() }
        info.initializeMemory(as: UInt8.self, repeating: 0)
        info.storeBytes(of: UInt32(regionInfoSize), toByteOffset: 0, as: UInt32.self)
        info.storeBytes(of: index, toByteOffset: 8, as: UInt32.self)
        if ifd_ioctl(fd, getRegionInfo, info.baseAddress) != 0 {
            throw IommuError(.current, "VFIO_DEVICE_GET_REGION_INFO", detail: "region \(index)")
        }
        return off_t(info.load(fromByteOffset: 24, as: UInt64.self))
    }
}

/// A memfd of `size` bytes standing in for guest RAM: mapped through iommufd with
/// IOAS_MAP_FILE by the tests and into this process (MAP_SHARED) to set and check its bytes.
/// (hugetlbfs has no write(2), so the bytes go through the mapping rather than pwrite.)
final class GuestMemory {
    let fd: Int32
    let size: UInt64
    let bytes: UnsafeMutableRawPointer

    // <linux/memfd.h>
    static let hugeTLB: UInt32 = 0x0004
    static let huge2MB: UInt32 = 21 << 26

    init(size: UInt64, flags: UInt32 = 0) throws {
        let fd = ifd_memfd_create("vm-e2e", flags)
        guard fd >= 0 else { throw IommuError(.current, "memfd_create", detail: "flags 0x\(String(flags, radix: 16))") }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let error = IommuError(.current, "ftruncate", detail: "memfd to \(size) bytes")
            close(fd)
            throw error
        }
        guard let bytes = ifd_mmap_shared(fd, Int(size), 0) else {
            let error = IommuError(.current, "mmap", detail: "memfd of \(size) bytes")
            close(fd)
            throw error
        }
        self.fd = fd
        self.size = size
        self.bytes = bytes
    }

    deinit {
        _ = ifd_munmap(bytes, Int(size))
        close(fd)
    }

    func write(_ pattern: [UInt8], at offset: UInt64) {
        pattern.withUnsafeBytes { source in
            guard let base = source.baseAddress else { return }
            (bytes + Int(offset)).copyMemory(from: base, byteCount: source.count)
        }
    }

    func read(_ count: Int, at offset: UInt64) -> [UInt8] {
        [UInt8](UnsafeRawBufferPointer(start: bytes + Int(offset), count: count))
    }
}
