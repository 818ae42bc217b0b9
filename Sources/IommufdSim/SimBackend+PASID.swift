import IommufdCore

// MARK: pasid

/// PASID attachments, after drivers/iommu/iommufd/device.c (`iommufd_device_attach`,
/// `iommufd_device_replace`, `iommufd_device_detach` with a pasid: `iommufd_device_change_pt`,
/// `iommufd_hw_pagetable_attach`, `iommufd_hwpt_pasid_compat`, `iommufd_device_do_replace`,
/// `iommufd_hw_pagetable_detach`), the iommu core's `iommu_attach_device_pasid` (a PASID beyond
/// the device's width, or a device without PASID, is EINVAL) and the selftest mock driver's
/// `mock_domain_set_dev_pasid_nop` (its PASID 1024 fake error). The checks come in the kernel's
/// order, so a request that breaks two rules gets the kernel's errno.
///
/// The semantics are the iommufd core's, which the selftest ops (`IOMMU_TEST_OP_PASID_*`) reach
/// on the kernel: attach of an attached PASID is EBUSY, replace of an unattached one EINVAL,
/// detach of an unattached one nothing. A simulated device has no VFIO glue in between.
extension SimBackend: PASIDIommuBackend, PASIDTestHooks {
    /// `IOMMU_NO_PASID`.
    static let noPASID: UInt32 = 0
    /// The selftest mock driver's PASID whose second `set_dev_pasid` fails with ENOMEM
    /// (`IOMMU_TEST_PASID_RESERVED`).
    static let mockReservedPASID: UInt32 = 1024

    public func attachPASID(deviceID: ObjectID, pasid: UInt32, to ptID: ObjectID) throws {
        try locked("VFIO_DEVICE_ATTACH_IOMMUFD_PT") {
            let device = try pasidDevice(deviceID)
            if pasid == Self.noPASID { throw Errno.EINVAL }
            guard let target = objects[ptID] else { throw Errno.ENOENT }
            switch target {
            case .hwpt(let hwpt):
                try attachPASIDLocked(device, pasid, ptID, hwpt)
            case .ioas(let ioas):
                // iommufd_device_auto_get_domain: each automatic HWPT of the IOAS is tried
                // (EBUSY if the PASID is taken, else EINVAL: no automatic domain is
                // PASID-compatible), then a new one allocated without IOMMU_HWPT_ALLOC_PASID is
                // attached at once and refused the same way.
                _ = ioas
                if device.pasids[pasid] != nil { throw Errno.EBUSY }
                throw Errno.EINVAL
            case .tombstone:
                throw Errno.ENOENT
            default:
                throw Errno.EINVAL
            }
        }
    }

    public func replacePASID(deviceID: ObjectID, pasid: UInt32, with ptID: ObjectID) throws {
        try locked("VFIO_DEVICE_ATTACH_IOMMUFD_PT") {
            let device = try pasidDevice(deviceID)
            if pasid == Self.noPASID { throw Errno.EINVAL }
            guard let target = objects[ptID] else { throw Errno.ENOENT }
            switch target {
            case .hwpt(let hwpt):
                try replacePASIDLocked(device, pasid, ptID, hwpt)
            case .ioas:
                // iommufd_device_do_replace on each automatic HWPT, then on a new one: EINVAL
                // (unattached PASID, or a domain without PASID compatibility).
                throw Errno.EINVAL
            case .tombstone:
                throw Errno.ENOENT
            default:
                throw Errno.EINVAL
            }
        }
    }

    public func detachPASID(deviceID: ObjectID, pasid: UInt32) throws {
        try locked("VFIO_DEVICE_DETACH_IOMMUFD_PT") {
            let device = try pasidDevice(deviceID)
            detachPASIDLocked(device, pasid)
        }
    }

    /// `iommufd_test_pasid_check_hwpt`.
    public func checkPASID(deviceID: ObjectID, pasid: UInt32, hwpt: ObjectID?) throws {
        try locked("IOMMU_TEST_OP_PASID_CHECK_HWPT") {
            let device = try physicalDevice(deviceID)
            let attached = device.pasids[pasid] ?? (pasid == Self.noPASID ? device.attached : nil)
            guard let hwpt else {
                if attached != nil { throw Errno.EINVAL }
                return
            }
            // iommufd_get_hwpt: a paging or nested HWPT, else ENOENT.
            guard case .hwpt = objects[hwpt] else { throw Errno.ENOENT }
            if attached != hwpt { throw Errno.EINVAL }
        }
    }

    // MARK: The rules

    /// The device a PASID call acts on: ENOENT for no device; an mdev-like device (an iommufd
    /// access) has no PASID ops in its VFIO driver: EOPNOTSUPP (`vfio_df_ioctl_attach_pt`).
    private func pasidDevice(_ id: ObjectID) throws(Errno) -> SimDevice {
        let device = try anyDevice(id)
        if device.isAccess { throw .EOPNOTSUPP }
        return device
    }

    /// `iommufd_hw_pagetable_attach` with a pasid.
    private func attachPASIDLocked(_ device: SimDevice, _ pasid: UInt32, _ hwptID: ObjectID, _ hwpt: SimHWPT) throws {
        // xa_insert into the PASID's device_array: the device is there already.
        if device.pasids[pasid] != nil { throw Errno.EBUSY }
        // iommufd_hwpt_attach_device → iommufd_hwpt_pasid_compat, then the iommu core.
        try checkPASIDCompat(device, hwpt)
        try checkPASIDDomain(device, pasid, hwpt)
        try mockSetDevPASID(device, pasid, blocked: false)
        device.pasids[pasid] = hwptID
        hwpt.pasidUsers += 1
    }

    /// `iommufd_device_do_replace` with a pasid.
    private func replacePASIDLocked(_ device: SimDevice, _ pasid: UInt32, _ hwptID: ObjectID, _ hwpt: SimHWPT) throws {
        guard let oldID = device.pasids[pasid] else { throw Errno.EINVAL }
        if oldID == hwptID { return }
        // iommufd_hwpt_replace_device → iommufd_hwpt_pasid_compat, then
        // iommu_replace_device_pasid (the driver; on its failure the core puts the old domain back).
        try checkPASIDCompat(device, hwpt)
        try checkPASIDDomain(device, pasid, hwpt)
        do {
            try mockSetDevPASID(device, pasid, blocked: false)
        } catch {
            try? mockSetDevPASID(device, pasid, blocked: false)  // the core's rollback to the old domain
            throw error
        }
        device.pasids[pasid] = hwptID
        hwpt.pasidUsers += 1
        if case .hwpt(let old) = objects[oldID] { old.pasidUsers -= 1 }
    }

    /// `iommufd_hw_pagetable_detach` with a pasid: nothing when it is not attached.
    func detachPASIDLocked(_ device: SimDevice, _ pasid: UInt32) {
        guard let hwptID = device.pasids.removeValue(forKey: pasid) else { return }
        try? mockSetDevPASID(device, pasid, blocked: true)
        if case .hwpt(let hwpt) = objects[hwptID] { hwpt.pasidUsers -= 1 }
    }

    /// Every PASID of the device, lowest first (a VFIO cdev's close).
    func detachPASIDsLocked(_ device: SimDevice) {
        for pasid in device.pasids.keys.sorted() { detachPASIDLocked(device, pasid) }
    }

    /// `iommufd_hwpt_pasid_compat` for a PASID: the HWPT was allocated with
    /// IOMMU_HWPT_ALLOC_PASID, and the RID is not attached to a domain without it.
    private func checkPASIDCompat(_ device: SimDevice, _ hwpt: SimHWPT) throws {
        if !hwpt.flags.contains(.pasid) { throw Errno.EINVAL }
        if let rid = device.attached, case .hwpt(let ridHWPT) = objects[rid], !ridHWPT.flags.contains(.pasid) {
            throw Errno.EINVAL
        }
    }

    /// `iommufd_hwpt_pasid_compat` for the RID (`IOMMU_NO_PASID`): a domain without
    /// IOMMU_HWPT_ALLOC_PASID while any PASID of the device is attached is EINVAL.
    func checkRIDPASIDCompat(_ device: SimDevice, _ hwpt: SimHWPT) throws {
        if !hwpt.flags.contains(.pasid) && !device.pasids.isEmpty { throw Errno.EINVAL }
    }

    /// `iommu_attach_device_pasid` / `iommu_replace_device_pasid`: a domain of another IOMMU
    /// (ops not compatible), or a PASID the device cannot issue (beyond `max_pasids`, which is 0
    /// without PASID support), is EINVAL.
    private func checkPASIDDomain(_ device: SimDevice, _ pasid: UInt32, _ hwpt: SimHWPT) throws {
        guard let iommu = device.iommu else { throw Errno.EINVAL }
        if iommu.name != hwpt.iommu.name {
            guard let group = iommu.domainGroup, group == hwpt.iommu.domainGroup else { throw Errno.EINVAL }
        }
        let maxPASIDs: UInt64 = device.pasidWidth == 0 ? 0 : 1 << UInt64(device.pasidWidth)
        if UInt64(pasid) >= maxPASIDs { throw Errno.EINVAL }
    }

    /// `mock_domain_set_dev_pasid_nop` on the selftest mock IOMMU: PASID 1024's first
    /// `set_dev_pasid` arms a fake error that the next one (a replace) returns as ENOMEM; a
    /// detach (the blocked domain) disarms it.
    private func mockSetDevPASID(_ device: SimDevice, _ pasid: UInt32, blocked: Bool) throws {
        guard device.iommu?.hwInfoType == HWInfoType.selftest, pasid == Self.mockReservedPASID else { return }
        if blocked {
            device.pasid1024FakeError = false
        } else if device.pasid1024FakeError {
            device.pasid1024FakeError = false
            throw Errno.ENOMEM
        } else {
            device.pasid1024FakeError = true
        }
    }
}
