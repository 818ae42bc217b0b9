import CIommufd
import IommufdCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An open iommufd (`/dev/iommu`), owned: the descriptor closes when the handle is released,
/// which destroys every object created through it.
///
/// One typed method per ioctl. Each fills its argument struct with `size` set to the struct
/// as of Linux 7.3 (older kernels accept a larger size when the tail is zero) and throws an
/// `IommuError` naming the ioctl. The kernel serialises concurrent ioctls itself, so the handle
/// is immutable and freely shared.
public final class Iommufd: Sendable {
    public let fd: Int32
    let syscalls: Syscalls

    /// Opens `path` read-write and close-on-exec.
    public init(path: String = "/dev/iommu", syscalls: Syscalls = .live) throws {
        self.syscalls = syscalls
        self.fd = try syscalls.openFile(path, flags: O_RDWR | O_CLOEXEC)
            .orThrow("open", detail: "\(path): is the iommufd module loaded and the daemon allowed to open it?")
    }

    /// Takes ownership of an iommufd opened by a previous daemon (from systemd's fd store):
    /// every object it holds is still there, under the same IDs.
    public init(adopting fd: Int32, syscalls: Syscalls = .live) {
        self.syscalls = syscalls
        self.fd = fd
    }

    deinit {
        syscalls.closeFile(fd)
    }

    /// Issues `request` on this iommufd; the raw errno on failure.
    func ioctl<Argument>(_ request: UInt, _ argument: inout Argument) -> Result<Void, Errno> {
        syscalls.ioctl(fd, request, &argument)
    }

    // MARK: Objects

    /// `IOMMU_DESTROY`.
    public func destroy(_ id: ObjectID) throws {
        var cmd = ifd_destroy()
        cmd.size = UInt32(MemoryLayout<ifd_destroy>.size)
        cmd.id = id
        try ioctl(IFD_IOMMU_DESTROY, &cmd).orThrow("IOMMU_DESTROY", detail: "object \(id)")
    }

    // MARK: IOAS

    /// `IOMMU_IOAS_ALLOC`.
    public func allocIOAS() throws -> ObjectID {
        var cmd = ifd_ioas_alloc()
        cmd.size = UInt32(MemoryLayout<ifd_ioas_alloc>.size)
        try ioctl(IFD_IOMMU_IOAS_ALLOC, &cmd).orThrow("IOMMU_IOAS_ALLOC")
        return cmd.out_ioas_id
    }

    /// `IOMMU_IOAS_MAP` of `length` bytes at `userAddress` in this process. Without
    /// `.fixedIOVA` the kernel picks the IOVA. Returns the IOVA used.
    public func map(ioas: ObjectID, userAddress: UInt64, length: UInt64, iova: UInt64, flags: MapFlags) throws -> UInt64 {
        var cmd = ifd_ioas_map()
        cmd.size = UInt32(MemoryLayout<ifd_ioas_map>.size)
        cmd.flags = flags.rawValue
        cmd.ioas_id = ioas
        cmd.user_va = userAddress
        cmd.length = length
        cmd.iova = flags.contains(.fixedIOVA) ? iova : 0
        try ioctl(IFD_IOMMU_IOAS_MAP, &cmd)
            .orThrow("IOMMU_IOAS_MAP", detail: "ioas \(ioas) \(Self.span(iova: cmd.iova, length: length, fixed: flags))")
        return cmd.iova
    }

    /// `IOMMU_IOAS_MAP_FILE` (Linux >= 6.13) of `length` bytes of `fd` from `offset`.
    public func mapFile(ioas: ObjectID, fd file: Int32, offset: UInt64, length: UInt64, iova: UInt64, flags: MapFlags) throws -> UInt64 {
        var cmd = ifd_ioas_map_file()
        cmd.size = UInt32(MemoryLayout<ifd_ioas_map_file>.size)
        cmd.flags = flags.rawValue
        cmd.ioas_id = ioas
        cmd.fd = file
        cmd.start = offset
        cmd.length = length
        cmd.iova = flags.contains(.fixedIOVA) ? iova : 0
        try ioctl(IFD_IOMMU_IOAS_MAP_FILE, &cmd)
            .orThrow("IOMMU_IOAS_MAP_FILE", detail: "ioas \(ioas) fd \(file) \(Self.span(iova: cmd.iova, length: length, fixed: flags))")
        return cmd.iova
    }

    /// `IOMMU_IOAS_UNMAP`. Returns the number of bytes unmapped.
    public func unmap(ioas: ObjectID, iova: UInt64, length: UInt64) throws -> UInt64 {
        var cmd = ifd_ioas_unmap()
        cmd.size = UInt32(MemoryLayout<ifd_ioas_unmap>.size)
        cmd.ioas_id = ioas
        cmd.iova = iova
        cmd.length = length
        try ioctl(IFD_IOMMU_IOAS_UNMAP, &cmd)
            .orThrow("IOMMU_IOAS_UNMAP", detail: "ioas \(ioas) iova 0x\(String(iova, radix: 16)) length 0x\(String(length, radix: 16))")
        return cmd.length
    }

    /// `IOMMU_IOAS_COPY`. Returns the destination IOVA.
    public func copy(dst: ObjectID, src: ObjectID, srcIOVA: UInt64, length: UInt64, dstIOVA: UInt64, flags: MapFlags) throws -> UInt64 {
        var cmd = ifd_ioas_copy()
        cmd.size = UInt32(MemoryLayout<ifd_ioas_copy>.size)
        cmd.flags = flags.rawValue
        cmd.dst_ioas_id = dst
        cmd.src_ioas_id = src
        cmd.length = length
        cmd.src_iova = srcIOVA
        cmd.dst_iova = flags.contains(.fixedIOVA) ? dstIOVA : 0
        try ioctl(IFD_IOMMU_IOAS_COPY, &cmd)
            .orThrow("IOMMU_IOAS_COPY", detail: "ioas \(src) iova 0x\(String(srcIOVA, radix: 16)) -> ioas \(dst), length 0x\(String(length, radix: 16))")
        return cmd.dst_iova
    }

    /// `IOMMU_IOAS_IOVA_RANGES` with room for `capacity` ranges. On EMSGSIZE the thrown error's
    /// `requiredCount` is the number of ranges the kernel has.
    public func iovaRanges(ioas: ObjectID, capacity: UInt32) throws -> IOVARanges {
        var buffer = [ifd_iova_range](repeating: ifd_iova_range(), count: Int(capacity))
        var cmd = ifd_ioas_iova_ranges()
        cmd.size = UInt32(MemoryLayout<ifd_ioas_iova_ranges>.size)
        cmd.ioas_id = ioas
        cmd.num_iovas = capacity
        let result = buffer.withUnsafeMutableBufferPointer { ranges -> Result<Void, Errno> in
            cmd.allowed_iovas = UInt64(UInt(bitPattern: ranges.baseAddress))
            return ioctl(IFD_IOMMU_IOAS_IOVA_RANGES, &cmd)
        }
        if case .failure(let errno) = result {
            var error = IommuError(errno, "IOMMU_IOAS_IOVA_RANGES", detail: "ioas \(ioas)")
            // The kernel writes the full count back before answering EMSGSIZE.
            if errno == .EMSGSIZE { error.requiredCount = cmd.num_iovas }
            throw error
        }
        let count = min(Int(cmd.num_iovas), buffer.count)
        return IOVARanges(
            ranges: buffer.prefix(count).map { IOVARange(start: $0.start, last: $0.last) },
            alignment: cmd.out_iova_alignment
        )
    }

    /// `IOMMU_IOAS_ALLOW_IOVAS`: kernel-chosen IOVAs stay inside `ranges` (empty: no limit).
    public func allowIOVAs(ioas: ObjectID, ranges: [IOVARange]) throws {
        var buffer = ranges.map { range -> ifd_iova_range in
            var r = ifd_iova_range()
            r.start = range.start
            r.last = range.last
            return r
        }
        var cmd = ifd_ioas_allow_iovas()
        cmd.size = UInt32(MemoryLayout<ifd_ioas_allow_iovas>.size)
        cmd.ioas_id = ioas
        cmd.num_iovas = UInt32(buffer.count)
        let isEmpty = buffer.isEmpty
        try buffer.withUnsafeMutableBufferPointer { pointer in
            cmd.allowed_iovas = isEmpty ? 0 : UInt64(UInt(bitPattern: pointer.baseAddress))
            return ioctl(IFD_IOMMU_IOAS_ALLOW_IOVAS, &cmd)
        }.orThrow("IOMMU_IOAS_ALLOW_IOVAS", detail: "ioas \(ioas), \(ranges.count) range(s)")
    }

    // MARK: Options

    /// `IOMMU_OPTION` with `IOMMU_OPTION_OP_SET`. `objectID` 0 for global options.
    public func setOption(_ option: IommuOption, objectID: ObjectID, value: UInt64) throws {
        var cmd = Self.optionCommand(option, objectID: objectID, op: UInt16(IFD_OPTION_OP_SET))
        cmd.val64 = value
        try ioctl(IFD_IOMMU_OPTION, &cmd).orThrow("IOMMU_OPTION", detail: "set \(option) = \(value) on object \(objectID)")
    }

    /// `IOMMU_OPTION` with `IOMMU_OPTION_OP_GET`.
    public func getOption(_ option: IommuOption, objectID: ObjectID) throws -> UInt64 {
        var cmd = Self.optionCommand(option, objectID: objectID, op: UInt16(IFD_OPTION_OP_GET))
        try ioctl(IFD_IOMMU_OPTION, &cmd).orThrow("IOMMU_OPTION", detail: "get \(option) of object \(objectID)")
        return cmd.val64
    }

    private static func optionCommand(_ option: IommuOption, objectID: ObjectID, op: UInt16) -> ifd_option {
        var cmd = ifd_option()
        cmd.size = UInt32(MemoryLayout<ifd_option>.size)
        cmd.option_id = option.rawValue
        cmd.op = op
        cmd.object_id = objectID
        return cmd
    }

    // MARK: HWPT

    /// `IOMMU_HWPT_ALLOC` of a paging HWPT (`IOMMU_HWPT_DATA_NONE`) for `deviceID` from `ptID`.
    /// `faultID` is passed (with `.faultIDValid` added) when given.
    public func allocHWPT(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags, faultID: ObjectID? = nil) throws -> ObjectID {
        try hwptAlloc(deviceID: deviceID, ptID: ptID, flags: flags, faultID: faultID, data: nil)
    }

    /// The one `IOMMU_HWPT_ALLOC` command builder, for paging HWPTs (`data` nil:
    /// `IOMMU_HWPT_DATA_NONE`, no data) and nested ones (`allocNestedHWPT`: the driver's data
    /// type and bytes, `ptID` the nest parent or vIOMMU). `faultID` is passed (with
    /// `.faultIDValid` added) when given.
    func hwptAlloc(deviceID: ObjectID, ptID: ObjectID, flags: HWPTAllocFlags, faultID: ObjectID?, data: HWPTUserData?) throws -> ObjectID {
        var cmd = ifd_hwpt_alloc()
        cmd.size = UInt32(MemoryLayout<ifd_hwpt_alloc>.size)
        var flags = flags
        if let faultID {
            flags.insert(.faultIDValid)
            cmd.fault_id = faultID
        }
        cmd.flags = flags.rawValue
        cmd.dev_id = deviceID
        cmd.pt_id = ptID
        cmd.data_type = data?.type ?? UInt32(IFD_HWPT_DATA_NONE)
        var bytes = data?.bytes ?? []
        cmd.data_len = UInt32(bytes.count)
        func detail() -> String {
            let flagsHex = "flags 0x\(String(flags.rawValue, radix: 16))"
            guard let data else { return "device \(deviceID) on \(ptID), \(flagsHex)" }
            return "nested HWPT for device \(deviceID) on \(ptID), data type \(HWPTDataType.name(data.type)) (\(data.bytes.count) bytes), \(flagsHex)"
                + (faultID.map { ", fault queue \($0)" } ?? "")
        }
        try bytes.withUnsafeMutableBytes { raw in
            if data != nil { cmd.data_uptr = UInt64(UInt(bitPattern: raw.baseAddress)) }
            try ioctl(IFD_IOMMU_HWPT_ALLOC, &cmd).orThrow("IOMMU_HWPT_ALLOC", detail: detail())
        }
        return cmd.out_hwpt_id
    }

    /// `IOMMU_GET_HW_INFO`: the IOMMU type, capabilities, PASID width and the driver's vendor data
    /// (`request.dataLength` bytes offered; `data` holds what the kernel filled, `dataLength` the
    /// driver's full length). `request.dataType` sets `IOMMU_HW_INFO_FLAG_INPUT_TYPE`.
    public func hwInfo(deviceID: ObjectID, request: HWInfoRequest = HWInfoRequest()) throws -> HWInfo {
        let operation = "IOMMU_GET_HW_INFO"
        guard request.dataLength <= HWInfoRequest.maxDataLength else {
            throw IommuError(.EINVAL, operation, detail: "a vendor data buffer of \(request.dataLength) bytes is more than the \(HWInfoRequest.maxDataLength) offered at most")
        }
        var buffer = [UInt8](repeating: 0, count: Int(request.dataLength))
        var cmd = ifd_hw_info()
        cmd.size = UInt32(MemoryLayout<ifd_hw_info>.size)
        cmd.dev_id = deviceID
        cmd.data_len = request.dataLength
        if let type = request.dataType {
            cmd.flags = Self.hwInfoFlagInputType
            cmd.out_data_type = type
        }
        try buffer.withUnsafeMutableBytes { raw in
            cmd.data_uptr = UInt64(UInt(bitPattern: raw.baseAddress))
            try ioctl(IFD_IOMMU_GET_HW_INFO, &cmd).orThrow(operation, detail: "device \(deviceID)\(request.dataType.map { " data type \($0)" } ?? "")")
        }
        return HWInfo(
            type: cmd.out_data_type,
            capabilities: HWCapabilities(rawValue: cmd.out_capabilities),
            maxPasidLog2: cmd.out_max_pasid_log2,
            data: Array(buffer.prefix(Int(min(cmd.data_len, request.dataLength)))),
            dataLength: cmd.data_len
        )
    }

    /// `IOMMU_HW_INFO_FLAG_INPUT_TYPE` (7.3 uAPI, `enum iommufd_hw_info_flags`).
    static let hwInfoFlagInputType: UInt32 = 1 << 0

    /// `IOMMU_HWPT_SET_DIRTY_TRACKING`.
    public func setDirtyTracking(hwpt: ObjectID, enabled: Bool) throws {
        var cmd = ifd_hwpt_set_dirty_tracking()
        cmd.size = UInt32(MemoryLayout<ifd_hwpt_set_dirty_tracking>.size)
        cmd.flags = enabled ? UInt32(IFD_HWPT_DIRTY_TRACKING_ENABLE) : 0
        cmd.hwpt_id = hwpt
        try ioctl(IFD_IOMMU_HWPT_SET_DIRTY_TRACKING, &cmd)
            .orThrow("IOMMU_HWPT_SET_DIRTY_TRACKING", detail: "hwpt \(hwpt) \(enabled ? "enable" : "disable")")
    }

    /// Bytes of bitmap `IOMMU_HWPT_GET_DIRTY_BITMAP` writes for `length` at `pageSize`: one bit
    /// per page, in whole u64 words. Nil when the kernel would reject the geometry anyway.
    public static func dirtyBitmapBytes(length: UInt64, pageSize: UInt64) -> Int? {
        guard pageSize > 0, length > 0 else { return nil }
        let pages = length / pageSize + (length % pageSize == 0 ? 0 : 1)
        let words = pages / 64 + (pages % 64 == 0 ? 0 : 1)
        let (bytes, overflow) = words.multipliedReportingOverflow(by: 8)
        guard !overflow, bytes <= UInt64(Int.max) else { return nil }
        return Int(bytes)
    }

    /// `IOMMU_HWPT_GET_DIRTY_BITMAP` into `bitmap`; `clear == false` adds
    /// `IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR`. A buffer too small for the range is refused
    /// (EINVAL) before the kernel could write past it.
    public func getDirtyBitmap(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64, clear: Bool, into bitmap: UnsafeMutableRawBufferPointer) throws {
        let operation = "IOMMU_HWPT_GET_DIRTY_BITMAP"
        if let needed = Self.dirtyBitmapBytes(length: length, pageSize: pageSize), bitmap.count < needed {
            throw IommuError(.EINVAL, operation, detail: "bitmap buffer holds \(bitmap.count) bytes, the range needs \(needed)")
        }
        var cmd = ifd_hwpt_get_dirty_bitmap()
        cmd.size = UInt32(MemoryLayout<ifd_hwpt_get_dirty_bitmap>.size)
        cmd.hwpt_id = hwpt
        cmd.flags = clear ? 0 : UInt32(IFD_HWPT_GET_DIRTY_BITMAP_NO_CLEAR)
        cmd.iova = iova
        cmd.length = length
        cmd.page_size = pageSize
        cmd.data = UInt64(UInt(bitPattern: bitmap.baseAddress))
        try ioctl(IFD_IOMMU_HWPT_GET_DIRTY_BITMAP, &cmd)
            .orThrow(operation, detail: "hwpt \(hwpt) iova 0x\(String(iova, radix: 16)) length 0x\(String(length, radix: 16)) page \(pageSize)")
    }

    // MARK: vIOMMU

    /// `IOMMU_VIOMMU_ALLOC` of `type` on the physical IOMMU of `deviceID`, over the nest-parent
    /// HWPT `hwpt`, without driver-specific data.
    public func allocVIOMMU(deviceID: ObjectID, hwpt: ObjectID, type: UInt32) throws -> ObjectID {
        var cmd = ifd_viommu_alloc()
        cmd.size = UInt32(MemoryLayout<ifd_viommu_alloc>.size)
        cmd.type = type
        cmd.dev_id = deviceID
        cmd.hwpt_id = hwpt
        try ioctl(IFD_IOMMU_VIOMMU_ALLOC, &cmd)
            .orThrow("IOMMU_VIOMMU_ALLOC", detail: "device \(deviceID) hwpt \(hwpt) type 0x\(String(type, radix: 16))")
        return cmd.out_viommu_id
    }

    /// `IOMMU_VDEVICE_ALLOC`.
    public func allocVDevice(viommu: ObjectID, deviceID: ObjectID, virtualID: UInt64) throws -> ObjectID {
        var cmd = ifd_vdevice_alloc()
        cmd.size = UInt32(MemoryLayout<ifd_vdevice_alloc>.size)
        cmd.viommu_id = viommu
        cmd.dev_id = deviceID
        cmd.virt_id = virtualID
        try ioctl(IFD_IOMMU_VDEVICE_ALLOC, &cmd)
            .orThrow("IOMMU_VDEVICE_ALLOC", detail: "viommu \(viommu) device \(deviceID) virtual ID 0x\(String(virtualID, radix: 16))")
        return cmd.out_vdevice_id
    }

    // MARK: Helpers

    private static func span(iova: UInt64, length: UInt64, fixed flags: MapFlags) -> String {
        let at = flags.contains(.fixedIOVA) ? "iova 0x\(String(iova, radix: 16))" : "kernel-chosen iova"
        return "\(at) length 0x\(String(length, radix: 16))"
    }
}
