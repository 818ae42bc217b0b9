import CIommufd
import IommufdCore

/// A mock device made by `IOMMU_TEST_OP_MOCK_DOMAIN`: three objects at once.
public struct MockDomain: Hashable, Sendable {
    /// The selftest object: destroying it detaches and unbinds the device; replace acts on it.
    public var stdevID: ObjectID
    /// The page table the device was attached to (the auto-domain HWPT when created on an IOAS).
    public var hwptID: ObjectID
    /// The iommufd device ID, as `VFIO_DEVICE_BIND_IOMMUFD` would return: HWPT_ALLOC,
    /// GET_HW_INFO, VIOMMU_ALLOC and VDEVICE_ALLOC take this one.
    public var deviceID: ObjectID
}

/// The kernel's selftest operations (`IOMMU_TEST_CMD`), present only on kernels built with
/// CONFIG_IOMMUFD_TEST; elsewhere every one of them fails with ENOTTY.
extension Iommufd {
    /// An `IOMMU_TEST_CMD` argument for `op` on object `id` (0 when the op names none).
    static func testCommand(op: Int32, id: ObjectID) -> ifd_test_cmd {
        var cmd = ifd_test_cmd()
        cmd.size = UInt32(MemoryLayout<ifd_test_cmd>.size)
        cmd.op = UInt32(op)
        cmd.id = id
        return cmd
    }

    /// `IOMMU_TEST_OP_ADD_RESERVED`: reserves `[start, start+length)` in `ioas`.
    public func testAddReserved(ioas: ObjectID, start: UInt64, length: UInt64) throws {
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_ADD_RESERVED), id: ioas)
        cmd.add_reserved.start = start
        cmd.add_reserved.length = length
        try ioctl(IFD_IOMMU_TEST_CMD, &cmd)
            .orThrow("IOMMU_TEST_OP_ADD_RESERVED", detail: "ioas \(ioas) start 0x\(String(start, radix: 16)) length 0x\(String(length, radix: 16))")
    }

    /// `IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS`: creates a mock device, binds it and attaches it to
    /// `ptID` (an IOAS: the kernel finds or makes an auto-domain HWPT; or an HWPT).
    /// `noDirty` creates it with MOCK_FLAGS_DEVICE_NO_DIRTY (no dirty-tracking capability).
    /// `pasid` creates it with MOCK_FLAGS_DEVICE_PASID (PASID-capable, 20 bits).
    public func testMockDomain(ptID: ObjectID, noDirty: Bool, pasid: Bool = false) throws -> MockDomain {
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_MOCK_DOMAIN_FLAGS), id: ptID)
        cmd.mock_domain_flags.dev_flags = (noDirty ? UInt32(IFD_MOCK_FLAGS_DEVICE_NO_DIRTY) : 0) | (pasid ? UInt32(IFD_MOCK_FLAGS_DEVICE_PASID) : 0)
        try ioctl(IFD_IOMMU_TEST_CMD, &cmd)
            .orThrow("IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS", detail: "on \(ptID)\(noDirty ? ", no dirty tracking" : "")\(pasid ? ", PASID" : "")")
        return MockDomain(
            stdevID: cmd.mock_domain_flags.out_stdev_id,
            hwptID: cmd.mock_domain_flags.out_hwpt_id,
            deviceID: cmd.mock_domain_flags.out_idev_id
        )
    }

    /// `IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE`: moves the mock device `stdevID` to `ptID` with
    /// `iommufd_device_replace` (an IOAS gets an auto-domain, as a VFIO attach does). Returns
    /// the page table actually attached, which the kernel writes back.
    public func testMockDomainReplace(stdevID: ObjectID, ptID: ObjectID) throws -> ObjectID {
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_MOCK_DOMAIN_REPLACE), id: stdevID)
        cmd.mock_domain_replace.pt_id = ptID
        try ioctl(IFD_IOMMU_TEST_CMD, &cmd)
            .orThrow("IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE", detail: "mock device \(stdevID) to \(ptID)")
        return cmd.mock_domain_replace.pt_id
    }

    /// `IOMMU_TEST_OP_PASID_CHECK_HWPT` with no HWPT on PASID 1: answers ENOENT once
    /// `stdevID` is no mock device's selftest object in this iommufd, and changes nothing — the
    /// check of a mock device after a restart. EINVAL (PASID 1 is attached to something, which
    /// `device.attach_pasid` may have done) also means the object is there.
    public func testCheckMockDevice(stdevID: ObjectID) throws {
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_PASID_CHECK_HWPT), id: stdevID)
        cmd.pasid_check.pasid = 1
        cmd.pasid_check.hwpt_id = 0
        switch ioctl(IFD_IOMMU_TEST_CMD, &cmd) {
        case .success, .failure(.EINVAL): return
        case .failure(let errno): throw IommuError(errno, "IOMMU_TEST_OP_PASID_CHECK_HWPT", detail: "mock device \(stdevID)")
        }
    }

    /// `IOMMU_TEST_OP_DIRTY`: marks the pages whose bits are set in `bitmap` (bit i = page
    /// `iova + i * pageSize`) dirty in the mock HWPT `hwpt`, as if a device had written them.
    /// The HWPT must be tracking dirty pages (else EINVAL). Returns how many pages were marked.
    @discardableResult
    public func testDirty(hwpt: ObjectID, iova: UInt64, length: UInt64, pageSize: UInt64, bitmap: UnsafeRawBufferPointer) throws -> UInt64 {
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_DIRTY), id: hwpt)
        cmd.dirty.iova = iova
        cmd.dirty.length = length
        cmd.dirty.page_size = pageSize
        cmd.dirty.uptr = UInt64(UInt(bitPattern: bitmap.baseAddress))
        try ioctl(IFD_IOMMU_TEST_CMD, &cmd)
            .orThrow("IOMMU_TEST_OP_DIRTY", detail: "hwpt \(hwpt) iova 0x\(String(iova, radix: 16)) length 0x\(String(length, radix: 16)) page \(pageSize)")
        return cmd.dirty.out_nr_dirty
    }
}
