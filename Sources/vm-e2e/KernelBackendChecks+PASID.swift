import IommufdCore
import IommufdKernel

// MARK: pasid

extension KernelBackendChecks {
    /// `VFIO_DEVICE_ATTACH/DETACH_IOMMUFD_PT` with the PASID flag on a real vfio-pci cdev (the
    /// conformance suite covers the rules on the selftest's PASID mock device). QEMU's emulated
    /// VT-d gives the edu device no PASID (`out_max_pasid_log2` 0); vfio-pci has the PASID ops, so
    /// the flag and the argument size reach the iommufd core: a detach of a PASID never attached
    /// succeeds (`vfio_iommufd_physical_pasid_detach_ioas` does nothing), and an attach to the
    /// device's automatic HWPT, allocated without IOMMU_HWPT_ALLOC_PASID, is EINVAL
    /// (`iommufd_hwpt_pasid_compat`), leaving nothing attached.
    func vfioPASIDOnADeviceWithoutPASID() throws {
        try withAttachedEdu(0) { edu, ioas in
            let info = try backend.hwInfo(deviceID: edu.deviceID)
            try expect(info.maxPasidLog2 == 0, "the edu device behind QEMU's VT-d reports PASID width \(info.maxPasidLog2)")
            let hwpt = try backend.attach(deviceID: edu.deviceID, to: ioas)
            do {
                try backend.detachPASID(deviceID: edu.deviceID, pasid: 5)
            } catch let error as IommuError {
                throw CheckFailure(description: "VFIO_DEVICE_DETACH_PASID of an unattached PASID: expected success, got \(error)")
            }
            try expectErrno(.EINVAL, "VFIO_DEVICE_ATTACH_PASID onto automatic HWPT \(hwpt) (not PASID-compatible)") {
                try backend.attachPASID(deviceID: edu.deviceID, pasid: 5, to: hwpt)
            }
            // The RID's DMA still works after the refusal.
            let memory = try GuestMemory(size: Self.mib)
            _ = try backend.map(ioas: ioas, source: .file(fd: memory.fd, offset: 0), length: Self.mib, iova: Self.iova, flags: [.fixedIOVA, .readWrite])
            try expectRoundTrip(edu, memory, iova: Self.iova, seed: 0x3c)
        }
    }
}
