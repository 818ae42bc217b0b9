import IommufdCore

// MARK: pasid

extension JournalState {
    /// One PASID of one device attached to an HWPT.
    struct PASIDAttachment: Codable, Equatable {
        var device: String
        var pasid: UInt32
        var hwpt: ObjectID
    }
}

extension Broker {
    /// The journal's PASID attachments, by device then PASID; nil when there are none.
    func journalPASIDs() -> [JournalState.PASIDAttachment]? {
        let all = devices.values.sorted { $0.name < $1.name }.flatMap { dev in
            dev.pasids.sorted { $0.key < $1.key }.map { JournalState.PASIDAttachment(device: dev.name, pasid: $0.key, hwpt: $0.value) }
        }
        return all.isEmpty ? nil : all
    }

    /// Takes back the journaled PASID attachments after a restart (the kernel keeps them with the
    /// iommufd and the device fds). Where the backend can check one (the simulator, and the
    /// kernel's selftest mock devices: `IOMMU_TEST_OP_PASID_CHECK_HWPT`) it is checked; a VFIO
    /// cdev has no uAPI call that reads a PASID's domain, so its attachment is taken on the
    /// journal's word, like its RID's. An attachment that does not check out keeps its record,
    /// for `device.detach_pasid` or `owner.release` to clean up, and is reported.
    func adoptPASIDs(_ recorded: [JournalState.PASIDAttachment], report: inout JournalRecovery) {
        for a in recorded {
            guard let dev = devices[a.device], let hwpt = hwptTable[a.hwpt] else {
                report.problems.append("PASID \(a.pasid) of device '\(a.device)' is journaled on HWPT \(a.hwpt), but the journal has no such \(devices[a.device] == nil ? "device" : "HWPT"); dropped")
                continue
            }
            dev.pasids[a.pasid] = hwpt.id
            hwpt.pasids.insert(PASIDKey(device: dev.name, pasid: a.pasid))
            guard let bound = dev.bound, let hooks = backend as? any PASIDTestHooks else { continue }
            do {
                try hooks.checkPASID(deviceID: bound.id, pasid: a.pasid, hwpt: hwpt.id)
            } catch let error as IommuError where error.errno == .ENOTTY {
                continue  // a VFIO device: nothing to read it with
            } catch {
                report.problems.append("PASID \(a.pasid) of device '\(a.device)' is journaled on HWPT \(a.hwpt) but the iommufd does not say so (\(error)); its record is kept for device.detach_pasid or owner.release")
            }
        }
    }
}
