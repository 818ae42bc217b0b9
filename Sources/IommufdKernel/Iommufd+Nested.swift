import CIommufd
import IommufdCore

/// `struct iommu_hwpt_invalidate` (32 bytes; Swift lays these fields out as C does, checked by
/// `Iommufd.invalidateLayoutIsUAPI`).
struct HWPTInvalidateArgument {
    var size: UInt32 = 32
    var hwptID: UInt32 = 0
    var dataUptr: UInt64 = 0
    var dataType: UInt32 = 0
    var entryLen: UInt32 = 0
    var entryNum: UInt32 = 0
    var reserved: UInt32 = 0
}

/// Nested HWPTs and cache invalidation (branch `nested`).
extension Iommufd {
    /// The uAPI offsets of `struct iommu_hwpt_invalidate`.
    static var invalidateLayoutIsUAPI: Bool {
        MemoryLayout<HWPTInvalidateArgument>.size == 32
            && MemoryLayout<HWPTInvalidateArgument>.offset(of: \.dataUptr) == 8
            && MemoryLayout<HWPTInvalidateArgument>.offset(of: \.dataType) == 16
            && MemoryLayout<HWPTInvalidateArgument>.offset(of: \.entryNum) == 24
    }

    /// `IOMMU_HWPT_ALLOC` of a nested HWPT on `parentID` (a nest-parent HWPT or a vIOMMU) with
    /// the driver's data. `faultID` is passed (with `.faultIDValid` added) when given.
    public func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData, faultID: ObjectID? = nil) throws -> ObjectID {
        try hwptAlloc(deviceID: deviceID, ptID: parentID, flags: flags, faultID: faultID, data: data)
    }

    /// `IOMMU_HWPT_INVALIDATE` with the whole array in one call: `entry_num` out is `done`.
    public func invalidate(_ id: ObjectID, _ request: InvalidationRequest) -> InvalidationResult {
        var cmd = HWPTInvalidateArgument()
        cmd.hwptID = id
        cmd.dataType = request.dataType
        cmd.entryLen = request.entryLength
        cmd.entryNum = request.entryCount
        var bytes = request.bytes
        let outcome: Result<Void, Errno> = bytes.withUnsafeMutableBytes { raw in
            cmd.dataUptr = request.entryCount == 0 ? 0 : UInt64(UInt(bitPattern: raw.baseAddress))
            return ioctl(IFD_IOMMU_HWPT_INVALIDATE, &cmd)
        }
        switch outcome {
        case .success:
            return InvalidationResult(done: cmd.entryNum)
        case .failure(let errno):
            return InvalidationResult(
                done: cmd.entryNum,
                error: IommuError(
                    errno, "IOMMU_HWPT_INVALIDATE",
                    detail: "object \(id), data type 0x\(String(request.dataType, radix: 16)), \(request.entryCount) entries of \(request.entryLength) bytes; \(cmd.entryNum) done"))
        }
    }

    /// `IOMMU_TEST_OP_MD_CHECK_IOTLB` (14) / `IOMMU_TEST_OP_DEV_CHECK_CACHE` (16): the union's
    /// first two u32 are the entry and the expected value.
    public func testCheck(op: UInt32, id: ObjectID, index: UInt32, value: UInt32, name: String) throws {
        var cmd = Self.testCommand(op: Int32(op), id: id)
        withUnsafeMutableBytes(of: &cmd) { raw in
            raw.storeBytes(of: index.littleEndian, toByteOffset: 16, as: UInt32.self)
            raw.storeBytes(of: value.littleEndian, toByteOffset: 20, as: UInt32.self)
        }
        try ioctl(IFD_IOMMU_TEST_CMD, &cmd).orThrow(name, detail: "object \(id) entry \(index) expected 0x\(String(value, radix: 16))")
    }
}

extension KernelBackend: NestedIommuBackend, NestedTestHooks {
    public func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData) throws -> ObjectID {
        try iommufd.allocNestedHWPT(deviceID: deviceID, parentID: parentID, flags: flags, data: data)
    }

    public func invalidate(_ id: ObjectID, _ request: InvalidationRequest) -> InvalidationResult {
        iommufd.invalidate(id, request)
    }

    public func checkNestedIOTLB(hwpt: ObjectID, index: UInt32, value: UInt32) throws {
        try iommufd.testCheck(op: 14, id: hwpt, index: index, value: value, name: "IOMMU_TEST_OP_MD_CHECK_IOTLB")
    }

    public func checkDeviceCache(deviceID: ObjectID, index: UInt32, value: UInt32) throws {
        try iommufd.testCheck(op: 16, id: deviceID, index: index, value: value, name: "IOMMU_TEST_OP_DEV_CHECK_CACHE")
    }
}
