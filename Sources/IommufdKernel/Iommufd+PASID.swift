import CIommufd
import Foundation
import IommufdCore

// MARK: pasid

/// PASID attachments on the real kernel (branch `pasid`): `VFIO_DEVICE_ATTACH_IOMMUFD_PT` /
/// `VFIO_DEVICE_DETACH_IOMMUFD_PT` with the PASID flag on a VFIO cdev, and the selftest's
/// `IOMMU_TEST_OP_PASID_*` on a mock device (which call `iommufd_device_attach/replace/detach`
/// with the pasid, as the VFIO glue does).
extension VFIODevice {
    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` with `VFIO_DEVICE_ATTACH_PASID`: attaches `pasid` to
    /// `ptID`, or, when `pasid` is attached, replaces its page table
    /// (`vfio_iommufd_physical_pasid_attach_ioas`). EOPNOTSUPP from a driver without PASID ops.
    public func attachPASID(_ pasid: UInt32, ptID: ObjectID) throws {
        var cmd = ifd_vfio_device_attach_iommufd_pt()
        cmd.argsz = UInt32(MemoryLayout<ifd_vfio_device_attach_iommufd_pt>.size)
        cmd.flags = UInt32(IFD_VFIO_DEVICE_ATTACH_PASID)
        cmd.pt_id = ptID
        cmd.pasid = pasid
        try syscalls.ioctl(fd, IFD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &cmd)
            .orThrow("VFIO_DEVICE_ATTACH_IOMMUFD_PT", detail: "\(path) PASID \(pasid) to \(ptID)")
    }

    /// `VFIO_DEVICE_DETACH_IOMMUFD_PT` with `VFIO_DEVICE_DETACH_PASID`.
    public func detachPASID(_ pasid: UInt32) throws {
        var cmd = ifd_vfio_device_detach_iommufd_pt()
        cmd.argsz = UInt32(MemoryLayout<ifd_vfio_device_detach_iommufd_pt>.size)
        cmd.flags = UInt32(IFD_VFIO_DEVICE_DETACH_PASID)
        cmd.pasid = pasid
        try syscalls.ioctl(fd, IFD_VFIO_DEVICE_DETACH_IOMMUFD_PT, &cmd)
            .orThrow("VFIO_DEVICE_DETACH_IOMMUFD_PT", detail: "\(path) PASID \(pasid)")
    }
}

extension Iommufd {
    /// `IOMMU_TEST_OP_PASID_ATTACH`: `iommufd_device_attach` of the mock device `stdevID`'s
    /// `pasid` to `ptID`.
    public func testPASIDAttach(stdevID: ObjectID, pasid: UInt32, ptID: ObjectID) throws {
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_PASID_ATTACH), id: stdevID)
        cmd.pasid_attach.pasid = pasid
        cmd.pasid_attach.pt_id = ptID
        try ioctl(IFD_IOMMU_TEST_CMD, &cmd)
            .orThrow("IOMMU_TEST_OP_PASID_ATTACH", detail: "mock device \(stdevID) PASID \(pasid) to \(ptID)")
    }

    /// `IOMMU_TEST_OP_PASID_REPLACE`: `iommufd_device_replace` with the pasid.
    public func testPASIDReplace(stdevID: ObjectID, pasid: UInt32, ptID: ObjectID) throws {
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_PASID_REPLACE), id: stdevID)
        cmd.pasid_attach.pasid = pasid
        cmd.pasid_attach.pt_id = ptID
        try ioctl(IFD_IOMMU_TEST_CMD, &cmd)
            .orThrow("IOMMU_TEST_OP_PASID_REPLACE", detail: "mock device \(stdevID) PASID \(pasid) to \(ptID)")
    }

    /// `IOMMU_TEST_OP_PASID_DETACH`: `iommufd_device_detach` with the pasid (nothing for an
    /// unattached one).
    public func testPASIDDetach(stdevID: ObjectID, pasid: UInt32) throws {
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_PASID_DETACH), id: stdevID)
        cmd.pasid_detach.pasid = pasid
        try ioctl(IFD_IOMMU_TEST_CMD, &cmd)
            .orThrow("IOMMU_TEST_OP_PASID_DETACH", detail: "mock device \(stdevID) PASID \(pasid)")
    }

    /// `IOMMU_TEST_OP_PASID_CHECK_HWPT`: EINVAL unless `pasid` of `stdevID` is attached to
    /// `hwpt` (0: to nothing).
    public func testPASIDCheck(stdevID: ObjectID, pasid: UInt32, hwpt: ObjectID) throws {
        var cmd = Self.testCommand(op: Int32(IFD_TEST_OP_PASID_CHECK_HWPT), id: stdevID)
        cmd.pasid_check.pasid = pasid
        cmd.pasid_check.hwpt_id = hwpt
        try ioctl(IFD_IOMMU_TEST_CMD, &cmd)
            .orThrow("IOMMU_TEST_OP_PASID_CHECK_HWPT", detail: "mock device \(stdevID) PASID \(pasid) on \(hwpt == 0 ? "nothing" : "\(hwpt)")")
    }
}

/// The PASIDs the kernel backend attached on each mock device, so `unbind` detaches them
/// before it destroys the selftest object: `iommufd_selftest_destroy` detaches only the RID,
/// and `iommufd_device_unbind` of a device that still holds PASID attachments cannot free it
/// (the kernel WARNs). A VFIO cdev's close detaches its PASIDs itself (`vfio_iommufd_physical_unbind`).
final class KernelPASIDTable: @unchecked Sendable {
    private let lock = NSLock()
    private var attached: [ObjectID: Set<UInt32>] = [:]

    func insert(_ deviceID: ObjectID, _ pasid: UInt32) { lock.withLock { _ = attached[deviceID, default: []].insert(pasid) } }
    func remove(_ deviceID: ObjectID, _ pasid: UInt32) { lock.withLock { _ = attached[deviceID]?.remove(pasid) } }
    func take(_ deviceID: ObjectID) -> [UInt32] { lock.withLock { (attached.removeValue(forKey: deviceID) ?? []).sorted() } }
}

extension KernelBackend: PASIDIommuBackend, PASIDTestHooks {
    public func attachPASID(deviceID: ObjectID, pasid: UInt32, to ptID: ObjectID) throws {
        switch try lookup(deviceID, "VFIO_DEVICE_ATTACH_IOMMUFD_PT") {
        case .vfio(let device): try device.attachPASID(pasid, ptID: ptID)
        case .mock(let stdevID):
            try iommufd.testPASIDAttach(stdevID: stdevID, pasid: pasid, ptID: ptID)
            mockPASIDs.insert(deviceID, pasid)
        }
    }

    public func replacePASID(deviceID: ObjectID, pasid: UInt32, with ptID: ObjectID) throws {
        switch try lookup(deviceID, "VFIO_DEVICE_ATTACH_IOMMUFD_PT") {
        // The VFIO glue replaces when the PASID is attached (the broker checks it is).
        case .vfio(let device): try device.attachPASID(pasid, ptID: ptID)
        case .mock(let stdevID): try iommufd.testPASIDReplace(stdevID: stdevID, pasid: pasid, ptID: ptID)
        }
    }

    public func detachPASID(deviceID: ObjectID, pasid: UInt32) throws {
        switch try lookup(deviceID, "VFIO_DEVICE_DETACH_IOMMUFD_PT") {
        case .vfio(let device): try device.detachPASID(pasid)
        case .mock(let stdevID):
            try iommufd.testPASIDDetach(stdevID: stdevID, pasid: pasid)
            mockPASIDs.remove(deviceID, pasid)
        }
    }

    /// Only mock devices have the selftest check (ENOTTY for a VFIO device, as for a kernel
    /// without CONFIG_IOMMUFD_TEST).
    public func checkPASID(deviceID: ObjectID, pasid: UInt32, hwpt: ObjectID?) throws {
        switch try lookup(deviceID, "IOMMU_TEST_OP_PASID_CHECK_HWPT") {
        case .vfio:
            throw IommuError(.ENOTTY, "IOMMU_TEST_OP_PASID_CHECK_HWPT", detail: "device \(deviceID) is a VFIO device, not a selftest mock device")
        case .mock(let stdevID): try iommufd.testPASIDCheck(stdevID: stdevID, pasid: pasid, hwpt: hwpt ?? 0)
        }
    }

    /// Before a mock device's selftest object is destroyed: detaches the PASIDs this backend
    /// attached on it.
    func detachMockPASIDs(_ deviceID: ObjectID, stdevID: ObjectID) {
        for pasid in mockPASIDs.take(deviceID) {
            try? iommufd.testPASIDDetach(stdevID: stdevID, pasid: pasid)
        }
    }
}
