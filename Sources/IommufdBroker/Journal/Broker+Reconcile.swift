import IommufdContract
import IommufdCore

// Restart recovery, second half: the journal against what the backend holds (issue 17 item 3).
//
// A request runs its backend calls first and journals its outcome last, before it answers. A
// daemon killed between the two leaves the backend ahead of the journal: objects, bindings,
// attachments or dirty tracking the journal does not have (a create or attach cut off), or
// journaled ones already gone from the backend (a destroy, detach or unmap cut off). The client
// had no answer and will retry. Recovery makes the two agree before READY:
// - what the backend has and the journal does not is undone (destroyed, detached, unbound,
//   dirty tracking set back), so the retry finds the range free and the device unbound, and no
//   pinned page or object is left that no quota counts;
// - what the journal has and the backend does not is dropped from the records (the cut-off
//   request's destroy is finished), so the retry answers NotFound or succeeds, never EEXIST;
// every step is reported in `recovery.problems`.
//
// The mappings are handled in Broker+Journal.swift (unjournaled ones are unmapped by gap);
// this needs a backend that lists its objects (`InventoryBackend`: the simulator). The kernel
// backend has no such call; its recovery checks each journaled object instead.
extension Broker {
    /// Makes the backend and the rebuilt records agree; returns whether the records changed
    /// (the journal then records the corrected state). Caller holds the lock.
    func reconcileWithBackend(journal: ObjectJournal, report: inout JournalRecovery) -> Bool {
        guard let lister = backend as? any InventoryBackend else { return false }
        var changed = false
        // Earlier notes (from rebuild) about objects this resolves are replaced by what it did.
        var resolvedNotes: [String] = []
        func resolve(_ prefix: String) { resolvedNotes.append(prefix) }
        let earlier = report.problems.count
        defer {
            let (old, new) = (report.problems[..<earlier], report.problems[earlier...])
            report.problems = old.filter { note in !resolvedNotes.contains { note.hasPrefix($0) } } + new
        }
        var inventory = lister.backendInventory()
        func note(_ text: String) { report.problems.append(text) }
        func attempt(_ what: String, _ body: () throws -> Void) {
            do { try body() } catch { note("could not \(what) (\(error)); owner.release cleans it up") }
        }

        // vDevices and vIOMMUs a cut-off request made.
        for v in inventory.vdevices where vdeviceTable[v.id] == nil {
            attempt("destroy vDevice \(v.id), which the journal does not have") { try backend.destroy(v.id) }
            note("vDevice \(v.id) was in the iommufd but not in the journal (made by a request the old daemon was killed in); destroyed")
        }
        for v in inventory.viommus where viommuTable[v.id] == nil {
            attempt("destroy vIOMMU \(v.id), which the journal does not have") { try backend.destroy(v.id) }
            note("vIOMMU \(v.id) was in the iommufd but not in the journal (made by a request the old daemon was killed in); destroyed")
        }
        // Journaled ones a cut-off request destroyed.
        let liveVDevices = Set(inventory.vdevices.map(\.id)), liveVIOMMUs = Set(inventory.viommus.map(\.id))
        for (id, v) in vdeviceTable where !liveVDevices.contains(id) {
            vdeviceTable[id] = nil
            viommuTable[v.viommu]?.vdevices.remove(id)
            owners[v.owner]?.vdevices.remove(id)
            devices[v.device]?.vdevices.remove(id)
            changed = true
            note("vDevice \(id) of owner '\(v.owner)' was journaled but is gone from the iommufd (its destroy was cut off by the old daemon's end); dropped from the records")
        }
        for (id, v) in viommuTable where !liveVIOMMUs.contains(id) {
            viommuTable[id] = nil
            hwptTable[v.hwpt]?.viommus.remove(id)
            owners[v.owner]?.viommus.remove(id)
            dropHWQueues(ofVIOMMU: id, report: &report)  // hwqueue3
            changed = true
            note("vIOMMU \(id) of owner '\(v.owner)' was journaled but is gone from the iommufd (its destroy was cut off); dropped from the records")
        }

        // Devices: bound and attached as the journal says, or not bound at all.
        let liveHWPTs = Set(inventory.hwpts.map(\.id)), liveIOAS = Set(inventory.ioas.map(\.id))
        var byID: [ObjectID: DeviceRecord] = [:]
        for record in devices.values { if let id = record.bound?.id { byID[id] = record } }
        for d in inventory.devices {
            guard let record = byID[d.id] else {
                if d.attached != nil { attempt("detach device \(d.id) (\(d.name))") { try backend.detach(deviceID: d.id) } }
                attempt("unbind device \(d.id) (\(d.name))") { try backend.unbind(deviceID: d.id) }
                note("device '\(d.name)' was bound in the iommufd as device \(d.id) but the journal does not have it bound (a request the old daemon was killed in); detached and unbound")
                continue
            }
            var want = record.pt
            if let pt = want, !liveHWPTs.contains(pt), !liveIOAS.contains(pt) {
                // Its HWPT (or IOAS) is gone: a detach cut off after the destroy. Finish it.
                forgetAttachment(record)
                changed = true
                want = nil
                note("device '\(record.name)' was journaled as attached to \(pt), which is gone from the iommufd (a detach cut off by the old daemon's end); recorded as detached")
            }
            guard d.attached != want else { continue }
            attempt("put device '\(record.name)' back on \(want.map { "\($0)" } ?? "nothing")") {
                switch (d.attached, want) {
                case (nil, let pt?): _ = try backend.attach(deviceID: d.id, to: pt)
                case (_?, let pt?): _ = try backend.replace(deviceID: d.id, with: pt)
                case (_?, nil): try backend.detach(deviceID: d.id)
                case (nil, nil): break
                }
            }
            note("device '\(record.name)' was attached to \(d.attached.map { "\($0)" } ?? "nothing") in the iommufd, the journal says \(want.map { "\($0)" } ?? "nothing") (a request cut off by the old daemon's end); put back as journaled")
        }
        for record in devices.values where record.bound == nil {
            // rebuild() found it not bound any more (an unbind cut off): finish the detach.
            guard let id = record.pt else { continue }
            forgetAttachment(record)
            changed = true
            note("device '\(record.name)' was journaled as attached to \(id) but is not bound in the iommufd any more; recorded as detached")
        }

        // HWPTs: destroy the unjournaled (their devices moved off above), drop the vanished,
        // and set dirty tracking back to what the journal says.
        inventory = lister.backendInventory()
        for h in inventory.hwpts where hwptTable[h.id] == nil {
            attempt("destroy HWPT \(h.id), which the journal does not have") { try backend.destroy(h.id) }
            note("HWPT \(h.id) was in the iommufd but not in the journal (made by a request the old daemon was killed in); destroyed")
        }
        let hwptsNow = Dictionary(inventory.hwpts.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for (id, h) in hwptTable {
            guard let live = hwptsNow[id] else {
                guard h.devices.isEmpty, h.viommus.isEmpty else {
                    note("HWPT \(id) of owner '\(h.owner)' is journaled with users but gone from the iommufd; its records are kept for owner.release to clean up")
                    continue
                }
                resolve("HWPT \(id) of owner '")
                hwptTable[id] = nil
                ioasTable[h.ioas]?.hwpts.remove(id)
                owners[h.owner]?.hwpts.remove(id)
                for (key, parent) in nestParents where parent == id { nestParents[key] = nil }
                changed = true
                note("HWPT \(id) of owner '\(h.owner)' was journaled but is gone from the iommufd (its destroy was cut off); dropped from the records")
                continue
            }
            if live.dirtyTracking != h.tracking {
                attempt("set dirty tracking of HWPT \(id) back to \(h.tracking ? "on" : "off")") {
                    try backend.setDirtyTracking(hwpt: id, enabled: h.tracking)
                }
                note("HWPT \(id): dirty tracking was \(live.dirtyTracking ? "on" : "off") in the iommufd, the journal says \(h.tracking ? "on" : "off") (dirty.start or dirty.stop cut off); set back as journaled")
            }
        }

        // IOAS: destroy the unjournaled, drop the vanished (when nothing of the journal uses them).
        for i in inventory.ioas where ioasTable[i.id] == nil {
            attempt("destroy IOAS \(i.id), which the journal does not have") { try backend.destroy(i.id) }
            note("IOAS \(i.id) was in the iommufd but not in the journal (made by a request the old daemon was killed in); destroyed")
        }
        let ioasNow = Dictionary(inventory.ioas.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for (id, ioas) in ioasTable {
            guard let live = ioasNow[id] else {
                guard ioas.hwpts.isEmpty, ioas.directDevices.isEmpty else {
                    note("IOAS \(id) of owner '\(ioas.owner)' is journaled with HWPTs or devices but gone from the iommufd; its records are kept for owner.release to clean up")
                    continue
                }
                resolve("IOAS \(id) of owner '")
                for entry in ioas.mappings.all { resolve("IOAS \(id) mapping at 0x\(String(entry.key, radix: 16)):") }
                dropMappings(of: ioas, where: { _, _ in true }, journal: journal)
                ioasTable[id] = nil
                owners[ioas.owner]?.ioas.remove(id)
                for (key, _) in nestParents where key.ioas == id { nestParents[key] = nil }
                changed = true
                note("IOAS \(id) of owner '\(ioas.owner)' was journaled but is gone from the iommufd (its destroy was cut off); dropped from the records")
                continue
            }
            // Journaled mappings the backend no longer has: an unmap cut off after the kernel call.
            let gone = dropMappings(of: ioas, where: { iova, length in
                let missing = !Self.covered(iova, length, by: live.areas)
                if missing { resolve("IOAS \(id) mapping at 0x\(String(iova, radix: 16)):") }
                return missing
            }, journal: journal)
            if gone > 0 {
                note("IOAS \(id): \(gone) journaled mappings were no longer mapped in the iommufd (an unmap cut off by the old daemon's end); dropped from the records and their pinned bytes refunded")
            }
        }
        return changed
    }

    /// Records `record` as attached to nothing.
    private func forgetAttachment(_ record: DeviceRecord) {
        if let pt = record.pt { hwptTable[pt]?.devices.remove(record.name) }
        if let ioas = record.ioas { ioasTable[ioas]?.directDevices.remove(record.name) }
        record.pt = nil
        record.ioas = nil
    }

    /// Drops the mappings of `ioas` that `predicate(iova, length)` selects from the records,
    /// refunding their pinned bytes and journaling each removal; returns how many.
    @discardableResult
    private func dropMappings(of ioas: IOASRecord, where predicate: (UInt64, UInt64) -> Bool, journal: ObjectJournal) -> Int {
        let doomed = ioas.mappings.all.filter { predicate($0.key, $0.value.length) }
        for entry in doomed {
            ioas.mappings.remove(at: entry.key)
            journal.unmapped(ioas: ioas.id, iova: entry.key)
            release(entry.value.backing, length: entry.value.length)
            ioas.pinnedBytes -= entry.value.charged
            owners[ioas.owner]?.pinnedBytes -= entry.value.charged
        }
        return doomed.count
    }

    /// Whether `[iova, +length)` lies inside one of `areas` (sorted, inclusive ranges).
    static func covered(_ iova: UInt64, _ length: UInt64, by areas: [IOVARange]) -> Bool {
        let last = iova &+ (length &- 1)
        var next = iova
        for area in areas where area.last >= next {
            if area.start > next { return false }
            if area.last >= last { return true }
            next = area.last &+ 1
        }
        return false
    }
}

// MARK: Destroys after the journal commit

extension Broker {
    /// Drops `hwpt` (auto, unused) from the records now and destroys it in the backend after
    /// this request's journal write. A request that *moves* a device off an HWPT (device.replace,
    /// viommu.create's move onto a nest parent) must keep the old HWPT alive until the move is
    /// journaled: killed before the journal write, the restarted daemon puts the device back on
    /// it ("before"); killed after, it finds the HWPT unjournaled and destroys it ("after").
    /// Without a journal (no fd store) it is destroyed at once. Caller holds the lock.
    func destroyAfterJournalCommit(_ hwpt: HWPTRecord) {
        hwptTable[hwpt.id] = nil
        ioasTable[hwpt.ioas]?.hwpts.remove(hwpt.id)
        owners[hwpt.owner]?.hwpts.remove(hwpt.id)
        for (key, id) in nestParents where id == hwpt.id { nestParents[key] = nil }
        if let journal {
            journal.destroyAfterCommit.append(hwpt)
        } else {
            destroyDeferred([hwpt])
        }
    }

    /// Runs the destroys `destroyAfterJournalCommit` queued; called after the journal write.
    func destroyDeferred(_ journal: ObjectJournal) {
        let hwpts = journal.destroyAfterCommit
        journal.destroyAfterCommit.removeAll()
        if !destroyDeferred(hwpts) {
            // What the kernel refused is back in the records: journal that too.
            journal.recordState(journalState())
            if let error = journal.flush() { logger.error("\(error)") }
        }
    }

    /// Destroys `hwpts` in the backend; one the backend refuses goes back into the records (as an
    /// unused auto HWPT, destroyed with its IOAS or owner later). Returns whether all went.
    private func destroyDeferred(_ hwpts: [HWPTRecord]) -> Bool {
        var all = true
        for hwpt in hwpts {
            do {
                try backend.destroy(hwpt.id)
                emit(.objectDestroyed(owner: hwpt.owner, kind: .hwpt, id: hwpt.id))
            } catch {
                logger.warning("could not destroy an HWPT no device uses any more; it stays until its IOAS or owner goes", metadata: ["hwpt": "\(hwpt.id)", "error": "\(error)"])
                hwptTable[hwpt.id] = hwpt
                ioasTable[hwpt.ioas]?.hwpts.insert(hwpt.id)
                owners[hwpt.owner]?.hwpts.insert(hwpt.id)
                all = false
            }
        }
        return all
    }
}
