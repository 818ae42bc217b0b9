import IommufdCore

/// Attach, replace and detach, after drivers/iommu/iommufd/device.c and the VFIO cdev glue
/// (an attach of an attached device is a replace; a detach of a detached one does nothing).
extension SimBackend {
    /// `iommufd_device_change_pt` (physical) or `iommufd_access_attach/replace` (mdev-like).
    /// Returns the page table actually attached.
    func changePT(_ deviceID: ObjectID, _ ptID: ObjectID) throws -> ObjectID {
        let device = try anyDevice(deviceID)
        if device.isAccess { return try changeAccessIOAS(deviceID, device, ptID) }

        guard let target = objects[ptID] else { throw Errno.ENOENT }
        switch target {
        case .hwpt(let hwpt):
            if let current = device.attached {
                try replaceHWPT(deviceID, device, from: current, to: ptID, hwpt)
            } else {
                try attachHWPT(deviceID, device, ptID, hwpt)
            }
            return ptID
        case .ioas(let ioas):
            return try autoDomain(deviceID, device, ioasID: ptID, ioas)
        case .tombstone:
            throw Errno.ENOENT
        default:
            // iommufd_device_change_pt: any other object type.
            throw Errno.EINVAL
        }
    }

    /// `iommufd_device_auto_get_domain`: reuse the first automatic HWPT of the IOAS that
    /// accepts the device (EINVAL = incompatible, try the next), else allocate one.
    private func autoDomain(_ deviceID: ObjectID, _ device: SimDevice, ioasID: ObjectID, _ ioas: SimIOAS) throws -> ObjectID {
        for hwptID in ioas.hwpts {
            guard case .hwpt(let hwpt) = objects[hwptID], hwpt.autoDomain else { continue }
            do {
                if let current = device.attached {
                    try replaceHWPT(deviceID, device, from: current, to: hwptID, hwpt)
                } else {
                    try attachHWPT(deviceID, device, hwptID, hwpt)
                }
                return hwptID
            } catch let error as Errno where error == .EINVAL {
                continue
            }
        }
        guard let iommu = device.iommu else { throw Errno.ENODEV }
        let hwptID = try allocateID()
        let hwpt = SimHWPT(ioas: ioasID, iommu: iommu, flags: [], autoDomain: true)
        objects[hwptID] = .hwpt(hwpt)
        if let current = device.attached {
            // Replace path: the domain goes into the IOAS first, then the device moves.
            do {
                try ioas.table.addDomain(hwpt: hwptID, minPageSize: iommu.minPageSize, aperture: iommu.aperture)
            } catch {
                removeObject(hwptID)
                throw error
            }
            ioas.hwpts.append(hwptID)
            do {
                try replaceHWPT(deviceID, device, from: current, to: hwptID, hwpt)
            } catch {
                removeHWPT(hwptID, hwpt)
                throw error
            }
        } else {
            // Immediate attach (iommufd_hwpt_paging_alloc): attach, then iopt_table_add_domain.
            do {
                try attachHWPT(deviceID, device, hwptID, hwpt)
            } catch {
                removeObject(hwptID)
                throw error
            }
            do {
                try ioas.table.addDomain(hwpt: hwptID, minPageSize: iommu.minPageSize, aperture: iommu.aperture)
            } catch {
                detachHWPT(deviceID, device, hwptID, hwpt, freeAutoDomain: false)
                removeObject(hwptID)
                throw error
            }
            ioas.hwpts.append(hwptID)
        }
        return hwptID
    }

    /// `iommufd_hw_pagetable_attach`: the device's reserved regions go into the IOAS first
    /// (EADDRINUSE if a mapping is in the way), then the driver accepts or refuses the domain.
    private func attachHWPT(_ deviceID: ObjectID, _ device: SimDevice, _ hwptID: ObjectID, _ hwpt: SimHWPT) throws {
        let ioas = try ioas(hwpt.ioas)
        try reserveDeviceRegions(deviceID, device, in: ioas)
        do {
            try checkCompatible(device, hwpt)
        } catch {
            ioas.table.removeReserved(owner: .device(deviceID))
            throw error
        }
        hwpt.devices.insert(deviceID)
        device.attached = hwptID
    }

    /// `iommufd_device_do_replace`.
    private func replaceHWPT(
        _ deviceID: ObjectID, _ device: SimDevice, from oldID: ObjectID, to newID: ObjectID, _ new: SimHWPT
    ) throws {
        if oldID == newID { return }
        guard case .hwpt(let old) = objects[oldID] else { throw Errno.EINVAL }
        let newIOAS = try ioas(new.ioas)
        let movesIOAS = new.ioas != old.ioas
        if movesIOAS { try reserveDeviceRegions(deviceID, device, in: newIOAS) }
        do {
            try checkCompatible(device, new)
        } catch {
            if movesIOAS { newIOAS.table.removeReserved(owner: .device(deviceID)) }
            throw error
        }
        if movesIOAS, case .ioas(let oldIOAS) = objects[old.ioas] {
            oldIOAS.table.removeReserved(owner: .device(deviceID))
        }
        new.devices.insert(deviceID)
        device.attached = newID
        old.devices.remove(deviceID)
        freeIfUnusedAutoDomain(oldID, old)
    }

    /// `iopt_table_enforce_dev_resv_regions`, all or nothing.
    private func reserveDeviceRegions(_ deviceID: ObjectID, _ device: SimDevice, in ioas: SimIOAS) throws {
        for range in device.iommu?.reservedRanges ?? [] {
            do {
                try ioas.table.reserve(range, owner: .device(deviceID))
            } catch {
                ioas.table.removeReserved(owner: .device(deviceID))
                throw error
            }
        }
    }

    /// The driver's attach_dev: a domain of another IOMMU instance (unless both share a
    /// `domainGroup` and the capabilities fit, as `paging_domain_compatible` checks on VT-d), or
    /// a dirty-tracking domain on a device that cannot track, is refused with EINVAL (selftest
    /// `mock_domain_nop_attach`, intel `paging_domain_compatible_second_stage`).
    private func checkCompatible(_ device: SimDevice, _ hwpt: SimHWPT) throws {
        try checkRIDPASIDCompat(device, hwpt)  // pasid: iommufd_hwpt_pasid_compat
        guard let iommu = device.iommu else { throw Errno.EINVAL }
        // nestedgaps: a shared nest parent of another instance of the same driver.
        if iommu.name != hwpt.iommu.name && !(hwpt.isNestParent && hwpt.nested == nil && iommu.nesting && iommu.acceptsNestParent(of: hwpt.iommu)) {
            guard let group = iommu.domainGroup, group == hwpt.iommu.domainGroup else { throw Errno.EINVAL }
            if hwpt.isNestParent && !iommu.nesting { throw Errno.EINVAL }
            if !Set(hwpt.iommu.pageSizes).isSubset(of: iommu.pageSizes) { throw Errno.EINVAL }
        }
        if hwpt.hasDirtyOps && !device.dirtyCapable { throw Errno.EINVAL }
        // mock_domain_nop_attach: a nested domain of a vIOMMU needs the device's vDevice on
        // that vIOMMU (iommufd_viommu_get_vdev_id: ENOENT).
        if let viommuID = hwpt.nested?.viommu {
            guard let vdevID = device.vdevice, case .vdevice(let vdev) = objects[vdevID], vdev.viommu == viommuID else {
                throw Errno.ENOENT
            }
        }
    }

    /// `iommufd_hw_pagetable_detach` + `iommufd_hw_pagetable_put`.
    private func detachHWPT(_ deviceID: ObjectID, _ device: SimDevice, _ hwptID: ObjectID, _ hwpt: SimHWPT, freeAutoDomain: Bool) {
        hwpt.devices.remove(deviceID)
        device.attached = nil
        if case .ioas(let ioas) = objects[hwpt.ioas] { ioas.table.removeReserved(owner: .device(deviceID)) }
        if freeAutoDomain { freeIfUnusedAutoDomain(hwptID, hwpt) }
    }

    /// An automatic HWPT lives only while devices use it (`iommufd_hw_pagetable_put`).
    private func freeIfUnusedAutoDomain(_ hwptID: ObjectID, _ hwpt: SimHWPT) {
        if hwpt.autoDomain && hwpt.devices.isEmpty && hwpt.viommuUsers == 0 { removeHWPT(hwptID, hwpt) }
    }

    /// Detaches a device of either kind if it is attached.
    func detachLocked(_ deviceID: ObjectID, _ device: SimDevice) {
        guard let attached = device.attached else { return }
        if device.isAccess {
            if case .ioas(let ioas) = objects[attached] {
                ioas.accessDevices.remove(deviceID)
                ioas.table.removeAccess()
            }
            device.attached = nil
        } else if case .hwpt(let hwpt) = objects[attached] {
            detachHWPT(deviceID, device, attached, hwpt, freeAutoDomain: true)
        } else {
            device.attached = nil
        }
    }

    /// `iommufd_access_attach` / `iommufd_access_replace`: an access attaches to an IOAS only
    /// (`iommufd_get_ioas`: any other object is ENOENT) and needs PAGE_SIZE alignment.
    private func changeAccessIOAS(_ deviceID: ObjectID, _ device: SimDevice, _ ioasID: ObjectID) throws -> ObjectID {
        let new = try ioas(ioasID)
        if device.attached == ioasID { return ioasID }
        try new.table.addAccess()
        new.accessDevices.insert(deviceID)
        if let old = device.attached, case .ioas(let oldIOAS) = objects[old] {
            oldIOAS.accessDevices.remove(deviceID)
            oldIOAS.table.removeAccess()
        }
        device.attached = ioasID
        return ioasID
    }
}
