import CIommufd
import Foundation
import IommufdCore
import Testing
@testable import IommufdKernel

#if canImport(Glibc)
import Glibc
#endif

@Suite struct IommufdErrorTests {
    @Test func openFailureNamesOpenAndPath() throws {
        let kernel = FakeKernel()
        kernel.openFailures["/dev/iommu"] = .ENOENT
        let error = try #require(throws: IommuError.self) { try Iommufd(path: "/dev/iommu", syscalls: kernel.syscalls) }
        #expect(error.errno == .ENOENT)
        #expect(error.operation == "open")
        #expect(error.detail?.contains("/dev/iommu") == true)
    }

    @Test func errnoIsKeptAndTheIoctlNamed() throws {
        let kernel = FakeKernel { request, _ in request == IFD_IOMMU_IOAS_UNMAP ? .ENOENT : nil }
        let iommufd = try Iommufd(syscalls: kernel.syscalls)
        let error = try #require(throws: IommuError.self) { try iommufd.unmap(ioas: 1, iova: 0x1000, length: 0x1000) }
        #expect(error == IommuError(.ENOENT, "IOMMU_IOAS_UNMAP", detail: "ioas 1 iova 0x1000 length 0x1000"))
    }

    @Test func unknownIoctlIsENOTTY() throws {
        let kernel = FakeKernel(known: [IFD_IOMMU_IOAS_ALLOC])
        let iommufd = try Iommufd(syscalls: kernel.syscalls)
        let error = try #require(throws: IommuError.self) { try iommufd.allocVIOMMU(deviceID: 2, hwpt: 3, type: VIOMMUType.selftest) }
        #expect(error.errno == .ENOTTY)
        #expect(error.operation == "IOMMU_VIOMMU_ALLOC")
    }

    @Test func eintrIsRetried() throws {
        let interrupts = LockedBox(2)
        let kernel = FakeKernel { request, argument in
            var interrupted = false
            interrupts.mutate { left in
                if left > 0 { left -= 1; interrupted = true }
            }
            if interrupted { return .EINTR }
            withArgument(argument, as: ifd_ioas_alloc.self) { $0.out_ioas_id = 7 }
            return nil
        }
        let iommufd = try Iommufd(syscalls: kernel.syscalls)
        #expect(try iommufd.allocIOAS() == 7)
        #expect(kernel.requests == [IFD_IOMMU_IOAS_ALLOC, IFD_IOMMU_IOAS_ALLOC, IFD_IOMMU_IOAS_ALLOC])
    }

    @Test func iovaRangesEMSGSIZECarriesTheRequiredCount() throws {
        let kernel = FakeKernel { _, argument in
            withArgument(argument, as: ifd_ioas_iova_ranges.self) { $0.num_iovas = 3 }
            return .EMSGSIZE
        }
        let iommufd = try Iommufd(syscalls: kernel.syscalls)
        let error = try #require(throws: IommuError.self) { try iommufd.iovaRanges(ioas: 1, capacity: 1) }
        #expect(error.errno == .EMSGSIZE)
        #expect(error.operation == "IOMMU_IOAS_IOVA_RANGES")
        #expect(error.requiredCount == 3)
    }

    @Test func iovaRangesReadsWhatTheKernelWrote() throws {
        let kernel = FakeKernel { _, argument in
            withArgument(argument, as: ifd_ioas_iova_ranges.self) { cmd in
                let ranges = UnsafeMutablePointer<ifd_iova_range>(bitPattern: UInt(cmd.allowed_iovas))!
                ranges[0].start = 0x1000; ranges[0].last = 0xfedf_ffff
                ranges[1].start = 0xfef0_0000; ranges[1].last = UInt64.max
                cmd.num_iovas = 2
                cmd.out_iova_alignment = 4096
            }
            return nil
        }
        let iommufd = try Iommufd(syscalls: kernel.syscalls)
        let answer = try iommufd.iovaRanges(ioas: 1, capacity: 4)
        #expect(answer == IOVARanges(
            ranges: [IOVARange(start: 0x1000, last: 0xfedf_ffff), IOVARange(start: 0xfef0_0000, last: .max)],
            alignment: 4096))
    }

    @Test func mapPassesFlagsAndReturnsTheKernelsIOVA() throws {
        let seen = LockedBox(ifd_ioas_map())
        let kernel = FakeKernel { _, argument in
            withArgument(argument, as: ifd_ioas_map.self) { cmd in
                seen.mutate { $0 = cmd }
                cmd.iova = 0x40_0000
            }
            return nil
        }
        let iommufd = try Iommufd(syscalls: kernel.syscalls)
        let iova = try iommufd.map(ioas: 5, userAddress: 0x7f00_0000_0000, length: 0x20_0000, iova: 0x1234, flags: .readWrite)
        #expect(iova == 0x40_0000)
        #expect(seen.value.size == 40)
        #expect(seen.value.ioas_id == 5)
        #expect(seen.value.flags == MapFlags.readWrite.rawValue)
        #expect(seen.value.iova == 0, "without FIXED_IOVA the requested IOVA is not passed")
    }

    @Test func dirtyBitmapRefusesAShortBuffer() throws {
        let kernel = FakeKernel()
        let iommufd = try Iommufd(syscalls: kernel.syscalls)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        defer { buffer.deallocate() }
        // 65 pages need two u64 words.
        let error = try #require(throws: IommuError.self) {
            try iommufd.getDirtyBitmap(hwpt: 3, iova: 0, length: 65 * 4096, pageSize: 4096, clear: true, into: buffer)
        }
        #expect(error.errno == .EINVAL)
        #expect(error.operation == "IOMMU_HWPT_GET_DIRTY_BITMAP")
        #expect(kernel.requests.isEmpty)
    }

    @Test func dirtyBitmapNoClearFlag() throws {
        let flags = LockedBox<[UInt32]>([])
        let kernel = FakeKernel { _, argument in
            withArgument(argument, as: ifd_hwpt_get_dirty_bitmap.self) { cmd in flags.mutate { $0.append(cmd.flags) } }
            return nil
        }
        let iommufd = try Iommufd(syscalls: kernel.syscalls)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        defer { buffer.deallocate() }
        try iommufd.getDirtyBitmap(hwpt: 3, iova: 0, length: 64 * 4096, pageSize: 4096, clear: false, into: buffer)
        try iommufd.getDirtyBitmap(hwpt: 3, iova: 0, length: 64 * 4096, pageSize: 4096, clear: true, into: buffer)
        #expect(flags.value == [UInt32(IFD_HWPT_GET_DIRTY_BITMAP_NO_CLEAR), 0])
    }

    @Test func bitmapSizing() {
        #expect(Iommufd.dirtyBitmapBytes(length: 4096, pageSize: 4096) == 8)
        #expect(Iommufd.dirtyBitmapBytes(length: 64 * 4096, pageSize: 4096) == 8)
        #expect(Iommufd.dirtyBitmapBytes(length: 65 * 4096, pageSize: 4096) == 16)
        #expect(Iommufd.dirtyBitmapBytes(length: 4096, pageSize: 0) == nil)
        #expect(Iommufd.dirtyBitmapBytes(length: 0, pageSize: 4096) == nil)
    }

    @Test func handleClosesItsDescriptor() throws {
        let kernel = FakeKernel()
        var fd: Int32 = -1
        do {
            let iommufd = try Iommufd(syscalls: kernel.syscalls)
            fd = iommufd.fd
        }
        #expect(kernel.closed == [fd])
    }
}

/// `IOMMU_GET_HW_INFO` as `iommufd_get_hw_info` answers it: the driver's struct copied into the
/// buffer up to `data_len`, `data_len` set to the driver's length.
@Suite struct IommufdHWInfoTests {
    static let vtd = HWInfoVendorData.intelVTd(.init(flags: 0, capReg: 0x00d2_0084_0673_0462, ecapReg: 0x0000_0000_00f0_101e))

    /// A VT-d driver: answers type 1 (refuses any other requested type), 24 bytes of data.
    static func kernel(seen: LockedBox<[(flags: UInt32, type: UInt32, length: UInt32)]>) -> FakeKernel {
        FakeKernel { request, argument in
            guard request == IFD_IOMMU_GET_HW_INFO else { return nil }
            var failure: Errno?
            withArgument(argument, as: ifd_hw_info.self) { cmd in
                seen.mutate { $0.append((cmd.flags, cmd.out_data_type, cmd.data_len)) }
                if cmd.flags & 1 != 0, cmd.out_data_type != 0, cmd.out_data_type != HWInfoType.intelVTd {
                    failure = .EOPNOTSUPP
                    return
                }
                let data = vtd.bytes
                let copy = min(Int(cmd.data_len), data.count)
                if copy > 0, let to = UnsafeMutableRawPointer(bitPattern: UInt(cmd.data_uptr)) {
                    data.withUnsafeBytes { to.copyMemory(from: $0.baseAddress!, byteCount: copy) }
                }
                cmd.data_len = UInt32(data.count)
                cmd.out_data_type = HWInfoType.intelVTd
                cmd.out_max_pasid_log2 = 20
                cmd.out_capabilities = HWCapabilities([.dirtyTracking, .pciPasidExec]).rawValue
            }
            return failure
        }
    }

    @Test func vendorDataAndCapabilities() throws {
        let seen = LockedBox<[(flags: UInt32, type: UInt32, length: UInt32)]>([])
        let iommufd = try Iommufd(syscalls: Self.kernel(seen: seen).syscalls)
        let info = try iommufd.hwInfo(deviceID: 3)
        #expect(info.type == HWInfoType.intelVTd && info.dataLength == 24 && info.data == Self.vtd.bytes)
        #expect(info.vendor == Self.vtd)
        #expect(info.maxPasidLog2 == 20 && info.capabilities == [.dirtyTracking, .pciPasidExec])
        // The default: no input type, a buffer bigger than every 7.3 struct.
        #expect(seen.value.last?.flags == 0 && seen.value.last?.length == HWInfoRequest.defaultDataLength)

        let short = try iommufd.hwInfo(deviceID: 3, request: HWInfoRequest(dataLength: 8))
        #expect(short.data == Array(Self.vtd.bytes.prefix(8)) && short.dataLength == 24 && short.vendor == nil)
        let none = try iommufd.hwInfo(deviceID: 3, request: HWInfoRequest(dataLength: 0))
        #expect(none.data.isEmpty && none.dataLength == 24)

        _ = try iommufd.hwInfo(deviceID: 3, request: HWInfoRequest(dataType: HWInfoType.intelVTd))
        #expect(seen.value.last?.flags == 1 && seen.value.last?.type == HWInfoType.intelVTd)
        let refused = try #require(throws: IommuError.self) {
            try iommufd.hwInfo(deviceID: 3, request: HWInfoRequest(dataType: HWInfoType.armSMMUv3))
        }
        #expect(refused.errno == .EOPNOTSUPP && refused.operation == "IOMMU_GET_HW_INFO")
        #expect(refused.detail == "device 3 data type 2")
    }

    @Test func bufferBeyondTheLimitIsRefusedBeforeTheKernel() throws {
        let seen = LockedBox<[(flags: UInt32, type: UInt32, length: UInt32)]>([])
        let kernel = Self.kernel(seen: seen)
        let iommufd = try Iommufd(syscalls: kernel.syscalls)
        let error = try #require(throws: IommuError.self) {
            try iommufd.hwInfo(deviceID: 3, request: HWInfoRequest(dataLength: HWInfoRequest.maxDataLength + 1))
        }
        #expect(error.errno == .EINVAL)
        #expect(kernel.requests.isEmpty)
    }
}
