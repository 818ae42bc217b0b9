import IommufdContract
import IommufdCore

extension Broker {
    static func validateOwnerName(_ name: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")
        guard (1...128).contains(name.count), name.allSatisfy({ allowed.contains($0) }),
            let first = name.first, first != ".", first != "-"
        else {
            throw BrokerError.invalid("owner name '\(echo(name))' is invalid: use 1 to 128 characters of A-Z a-z 0-9 . _ : - (not starting with . or -), e.g. the VM's UUID")
        }
    }

    /// `owner.create`: a new owner of the calling manager identity (admins may create too).
    /// Its pinned-byte quota is the creating identity's `quota_bytes`.
    public func ownerCreate(_ caller: Caller, _ params: OwnerCreateParams) throws -> OwnerInfo {
        try Self.validateOwnerName(params.name)
        return try locked {
            try requireWriter(caller, "owner.create")
            if owners[params.name] != nil {
                throw BrokerError(.conflict, "owner '\(params.name)' already exists; pick another name or release it first")
            }
            var policy = config.defaults
            if let v = params.tolerateMissing { policy.tolerateMissing = v }
            if let v = params.dirty { policy.dirty = v }
            if let v = params.hugePages { policy.hugePages = v }
            let owner = OwnerRecord(name: params.name, identity: caller.identity, creatorUID: caller.uid, quotaBytes: caller.quotaBytes, policy: policy)
            owners[params.name] = owner
            markOwnerChanged(params.name)  // ownerjournal
            emit(.ownerCreated(owner: params.name))
            logger.info("owner created", metadata: ["owner": "\(params.name)", "identity": "\(caller.identity)"])
            return info(owner)
        }
    }

    /// `owner.list`: the owners the caller may see.
    public func ownerList(_ caller: Caller, _ params: NoParams = NoParams()) throws -> OwnerListResult {
        try reading {
            OwnerListResult(owners: owners.values.filter { canSee(caller, owner: $0.name) }.sorted { $0.name < $1.name }.map(info))
        }
    }

    /// `owner.info`.
    public func ownerInfo(_ caller: Caller, _ params: OwnerInfoParams) throws -> OwnerInfo {
        try reading { info(try readableOwner(caller, params.name)) }
    }

    func info(_ owner: OwnerRecord) -> OwnerInfo {
        var info = OwnerInfo(
            name: owner.name, identity: owner.identity, creatorUID: owner.creatorUID, policy: owner.policy,
            ioas: owner.ioas.sorted(), hwpts: owner.hwpts.sorted(), viommus: owner.viommus.sorted(),
            vdevices: owner.vdevices.sorted(), devices: owner.devices.sorted(),
            mappings: owner.ioas.reduce(0) { $0 + (ioasTable[$1]?.mappings.count ?? 0) },
            pinnedBytes: owner.pinnedBytes, quotaBytes: owner.quotaBytes, p2pBytes: owner.p2pBytes > 0 ? owner.p2pBytes : nil)
        info.hwQueues = hwQueueIDs(of: owner.name)  // hwqueue3
        return info
    }

    /// `owner.release`: tears down everything of one owner in a safe order — dirty tracking
    /// off, vDevices, vIOMMUs, device detach, HWPTs, mappings, IOAS, device unbind and lease —
    /// continuing past failures. What could not be undone stays recorded under the owner (and
    /// the owner with it) so that a second `owner.release` retries exactly that.
    public func ownerRelease(_ caller: Caller, _ params: OwnerReleaseParams) throws -> OwnerReleaseResult {
        // Under the owner's gate: no map, unmap or dirty read of the owner is half done.
        try serialized({ try writableOwner(caller, params.name, "owner.release") }) { _ in try locked {
            let owner = try writableOwner(caller, params.name, "owner.release")
            var failures: [String] = []
            var destroyed: [String: Int] = [:]
            let pinnedBefore = owner.pinnedBytes

            // 1. Dirty tracking.
            for id in owner.ioas.sorted() {
                guard let ioas = ioasTable[id] else { continue }
                for hid in ioas.hwpts.sorted() {
                    guard let hwpt = hwptTable[hid], hwpt.tracking else { continue }
                    do {
                        try kcall("stopping dirty tracking on HWPT \(hid)") { try backend.setDirtyTracking(hwpt: hid, enabled: false) }
                        hwpt.tracking = false
                    } catch { failures.append("\(error)") }
                }
                if ioas.dirtyEnabled && !ioas.hwpts.contains(where: { hwptTable[$0]?.tracking == true }) {
                    ioas.dirtyEnabled = false
                    emit(.dirtyTrackingStopped(owner: owner.name, ioas: id))
                }
            }
            // 1a. PASID attachments (before the HWPTs, nested or paging, they hold; Broker+PASID.swift).
            releasePASIDs(owner, destroyed: &destroyed, failures: &failures)
            // 1b. vEVENTQs (before the vIOMMUs they hold; Broker+Queues.swift).
            releaseVEventQueues(of: owner.name, destroyed: &destroyed, failures: &failures)
            // 1b'. HW queues, highest index first (before the vIOMMUs they hold; Broker+HWQueues.swift).
            releaseHWQueues(of: owner.name, destroyed: &destroyed, failures: &failures)
            // 1c. Nested HWPTs (their devices move onto the nest parent first).
            releaseNestedHWPTs(owner, failures: &failures, destroyed: &destroyed)
            // 2. vDevices, 3. vIOMMUs.
            for id in owner.vdevices.sorted() {
                do {
                    try destroyVDevice(id)
                    destroyed["vdevice", default: 0] += 1
                } catch { failures.append("\(error)") }
            }
            for id in owner.viommus.sorted() {
                do {
                    try destroyVIOMMU(id, cleanup: false)
                    destroyed["viommu", default: 0] += 1
                } catch { failures.append("\(error)") }
            }
            // 4. Detach devices.
            for name in owner.devices.sorted() {
                guard let dev = devices[name], dev.pt != nil else { continue }
                do {
                    try detachDevice(dev, cleanup: false)
                } catch { failures.append("\(error)") }
            }
            // 5. HWPTs (every one of the owner: auto or explicit).
            for id in owner.hwpts.sorted() {
                guard let hwpt = hwptTable[id] else { continue }
                guard hwpt.isUnused else {
                    failures.append("HWPT \(id) is still used by \(hwpt.devices.sorted()) \(hwpt.viommus.sorted()); not destroyed")
                    continue
                }
                do {
                    try destroyHWPT(hwpt)
                    destroyed["hwpt", default: 0] += 1
                } catch { failures.append("\(error)") }
            }
            // 5b. Fault queues (after the HWPTs that hold them; Broker+Queues.swift).
            releaseFaultQueues(of: owner.name, destroyed: &destroyed, failures: &failures)
            // 6. Mappings, 7. IOAS.
            for id in owner.ioas.sorted() {
                guard let ioas = ioasTable[id] else { continue }
                if !ioas.mappings.isEmpty {
                    let count = ioas.mappings.count
                    do {
                        try unmapAll(ioas)
                        destroyed["mapping", default: 0] += count
                    } catch {
                        failures.append("\(error)")
                        continue
                    }
                }
                guard ioas.hwpts.isEmpty && ioas.directDevices.isEmpty else {
                    failures.append("IOAS \(id) still has HWPTs \(ioas.hwpts.sorted()) or devices \(ioas.directDevices.sorted()); not destroyed")
                    continue
                }
                do {
                    try destroyIOAS(ioas)
                    destroyed["ioas", default: 0] += 1
                } catch { failures.append("\(error)") }
            }
            // 8. Devices: unbind and end the lease.
            for name in owner.devices.sorted() {
                guard let dev = devices[name] else { continue }
                do {
                    try releaseDevice(dev, owner: owner)
                    destroyed["device", default: 0] += 1
                } catch { failures.append("\(error)") }
            }

            let complete = failures.isEmpty && owner.ioas.isEmpty && owner.hwpts.isEmpty && owner.viommus.isEmpty
                && owner.vdevices.isEmpty && owner.devices.isEmpty && hwQueueIDs(of: owner.name) == nil
            if complete {
                owners[owner.name] = nil
            }
            // The record may be gone from `owners` now: tag the event with its identity directly.
            pending.append((.ownerReleased(owner: owner.name, complete: complete), owner.identity))
            if !failures.isEmpty {
                logger.warning("owner release incomplete", metadata: ["owner": "\(owner.name)", "failures": "\(failures)"])
            }
            return OwnerReleaseResult(
                name: owner.name, released: complete, destroyed: destroyed,
                refundedBytes: pinnedBefore - owner.pinnedBytes, failures: failures)
        } }
    }
}
