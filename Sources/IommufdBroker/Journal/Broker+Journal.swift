#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdCore

/// What a restarted broker found in its journal and the backend: counts of what it took back,
/// and every discrepancy in words (`daemon.info` `recovery`, and the log).
public struct JournalRecovery: Codable, Sendable, Equatable {
    /// The fd-store name of the journal read, nil when there was none (a first start).
    public var journal: String?
    public var records: Int = 0
    /// Bytes of a record the old daemon was killed while writing (dropped: that request had
    /// not been answered).
    public var tornBytes: Int = 0
    public var owners = 0, ioas = 0, hwpts = 0, mappings = 0, devices = 0, viommus = 0, vdevices = 0
    /// Memory files and device fds taken back from the fd store.
    public var memoryFiles = 0, deviceFDs = 0
    /// Delegated channels taken back from the fd store and served again.
    public var channels = 0
    /// Bytes the kernel had mapped outside every journaled mapping (a request cut off before
    /// its journal write), unmapped at start.
    public var unjournaledBytesUnmapped: UInt64 = 0
    /// Everything that did not check out. Nothing is dropped silently: objects the backend does
    /// not know any more keep their records (owner.release cleans them up) and are listed here.
    public var problems: [String] = []

    enum CodingKeys: String, CodingKey {
        case journal, records, owners, ioas, hwpts, mappings, devices, viommus, vdevices, problems
        case tornBytes = "torn_bytes"
        case memoryFiles = "memory_files"
        case deviceFDs = "device_fds"
        case channels
        case unjournaledBytesUnmapped = "unjournaled_bytes_unmapped"
    }
    public init() {}
}

/// The fd store holds an object journal in a newer format than this daemon knows: it refuses to
/// start rather than lose what it cannot read, and leaves the fd store as it is.
public struct JournalFormatTooNew: Error, Hashable, Sendable, CustomStringConvertible {
    /// The journal's fd-store name (`journal.N`).
    public var name: String
    public var found: RecordLogFormat
    public var known: RecordLogFormat

    public var description: String {
        "the object journal \(name) in the fd store is in journal format version \(found.version), newer than this daemon's version \(known.version): a newer iommufdd wrote it, and this one cannot take over its objects. Nothing was taken, closed or removed from the fd store (the devices keep their DMA); start the newer iommufdd again. Do not clear the fd store: that would release every device and mapping."
    }
}

extension Broker {
    // MARK: Start

    /// Starts journaling into `store`, called once, before the first request. On a first start
    /// (`storedFDs` empty) it stores a new journal; after a restart it rebuilds the broker from
    /// the journal and fds the fd store gave back (every stored fd the backend did not take:
    /// `journal.N`, `mem.*`, `device.*`), checks each object against the backend, and goes on
    /// journaling. Stored fds nothing refers to are released
    /// (closed and removed from the store) and reported.
    public func recover(storedFDs: [(name: String, fd: Int32)], store: any FileDescriptorStore) throws -> JournalRecovery {
        try locked {
            var report = JournalRecovery()
            var journals: [(generation: UInt64, name: String, fd: Int32)] = []
            var memory: [MemoryFileTable.Key: (name: String, fd: Int32)] = [:]
            var deviceFDs: [ObjectID: (name: String, fd: Int32)] = [:]
            var channelFDs: [UInt64: (name: String, fd: Int32)] = [:]
            var unused: [(name: String, fd: Int32)] = []
            var queueFDs: [String: Int32] = [:]  // queues: Broker+QueueJournal.swift
            for (name, fd) in storedFDs {
                if StoredFDName.parseQueue(name) != nil, queueFDs[name] == nil {
                    queueFDs[name] = fd
                } else if let id = StoredFDName.parseChannel(name), channelFDs[id] == nil {
                    channelFDs[id] = (name, fd)
                } else if let g = StoredFDName.parseJournal(name) {
                    journals.append((g, name, fd))
                } else if let key = StoredFDName.parseMemory(name), memory[.init(device: key.device, inode: key.inode)] == nil {
                    memory[.init(device: key.device, inode: key.inode)] = (name, fd)
                } else if let id = StoredFDName.parseDevice(name), deviceFDs[id] == nil {
                    deviceFDs[id] = (name, fd)
                } else {
                    unused.append((name, fd))
                }
            }
            journals.sort { $0.generation > $1.generation }
            // A journal of a newer format than this daemon's (a newer iommufdd ran before, and
            // this is a rollback) is refused before anything is taken, closed or removed: the fd
            // store keeps every fd, so the newer daemon started again finds all of it.
            for candidate in journals {
                if let found = RecordLogFormat.of(candidate.fd), found.kind == ObjectJournal.format.kind,
                    found.version > ObjectJournal.format.version
                {
                    throw JournalFormatTooNew(name: candidate.name, found: found, known: ObjectJournal.format)
                }
            }
            files.store = store
            dmabufFiles.store = store

            // The newest readable generation wins; older ones are what a compaction left behind.
            var adopted: (RecordLog, UInt64, [RecordLog.Record])?
            for candidate in journals {
                if adopted != nil {
                    unused.append((candidate.name, candidate.fd))
                    continue
                }
                var records: [RecordLog.Record] = []
                var torn = 0
                do {
                    let log = try RecordLog(adopting: candidate.fd, magics: ObjectJournal.readableMagics, records: &records, tornBytes: &torn)
                    adopted = (log, candidate.generation, records)
                    report.journal = candidate.name
                    report.tornBytes = torn
                } catch {
                    report.problems.append("\(candidate.name) in the fd store is not a readable journal (\(error)); ignored")
                    unused.append((candidate.name, candidate.fd))
                }
            }

            let journal: ObjectJournal
            if let (log, generation, records) = adopted {
                journal = ObjectJournal(store: store, log: log, generation: generation)
                let contents = ObjectJournal.read(records)
                journal.assumeRecorded(owners: contents.slices, global: contents.global)  // ownerjournal: what a replay gives
                report.records = contents.records
                report.problems += contents.problems
                rebuild(from: contents, memory: &memory, deviceFDs: &deviceFDs, journal: journal, report: &report)
                adoptChannels(contents.state.channels ?? [], stored: &channelFDs, report: &report)
                adoptQueues(contents.state.queues ?? [], stored: &queueFDs, problems: &report.problems)
                adoptPASIDs(contents.state.pasids ?? [], report: &report)  // pasid
                adoptHWQueues(contents.state.hwQueues ?? [], report: &report)  // hwqueue3
                let upgrading = RecordLogFormat(magic: log.magic).map { $0.version < ObjectJournal.format.version } ?? false
                if reconcileWithBackend(journal: journal, report: &report) || journal.log.hasPending {
                    // The corrected state is journaled before the first request (a journal of
                    // an earlier format gets it in its next generation, below).
                    if !upgrading {
                        journal.recordState(journalState())
                        if let error = journal.flush() { report.problems.append(error) }
                    }
                } else {
                    journal.assumeRecorded(journalState())
                }
                journal.storedDevices = Set(deviceFDs.keys).intersection(Set(devices.values.compactMap { $0.bound?.fd != nil ? $0.bound?.id : nil }))
                // A journal of an earlier format (an upgrade): rewritten at once in this one, as
                // the next generation, so this daemon never appends records of its format to a
                // log whose header names an older one (which an older daemon would misread).
                if upgrading, let found = RecordLogFormat(magic: log.magic) {
                    // A failure (no memfd) stops the start, the fd store left as it was.
                    try compact(journal)
                    logger.notice("recovery: the object journal was in format version \(found.version); rewritten in version \(ObjectJournal.format.version) as \(StoredFDName.journal(journal.generation))")
                }
            } else {
                let log = try RecordLog(memfdName: "iommufdd-journal", magic: ObjectJournal.magic)
                journal = ObjectJournal(store: store, log: log, generation: 1)
                journal.recordState(journalState())
                try log.flush()
                store.store(log.fd, name: StoredFDName.journal(1))
                if !storedFDs.isEmpty {
                    report.problems.append("the fd store held \(storedFDs.count) fds but no journal; they are released and the daemon starts empty")
                }
            }
            self.journal = journal

            // What nothing refers to: memory files no mapping uses, fds of devices not bound.
            for (_, file) in memory { unused.append(file) }
            for (_, channel) in channelFDs { unused.append(channel) }
            for (name, fd) in queueFDs { unused.append((name, fd)) }
            for (id, device) in deviceFDs where !journal.storedDevices.contains(id) { unused.append(device) }
            for (name, fd) in unused {
                report.problems.append("fd store entry \(name) is not referenced by the journal; released")
                store.remove(name: name)
                close(fd)
            }
            if report.tornBytes > 0 {
                report.problems.append("the journal ended in a torn record (\(report.tornBytes) bytes): the old daemon was killed while answering a request, whose change is not recorded; its client had no answer and must check and retry it")
            }
            for problem in report.problems {
                logger.warning("recovery: \(problem)")
            }
            return report
        }
    }

    /// Takes back the delegated channels the journal records and the fd store holds, for the
    /// daemon to serve again (`takeRecoveredChannels`); what is taken leaves `stored`. A channel
    /// of an owner that is gone, or whose fd the store lost, is dropped and reported.
    private func adoptChannels(_ recorded: [JournalState.Channel], stored: inout [UInt64: (name: String, fd: Int32)], report: inout JournalRecovery) {
        for channel in recorded {
            guard let fd = stored[channel.id]?.fd else {
                report.problems.append("channel \(channel.id) of owner '\(channel.owner)' is not in the fd store; its VMM saw it close and needs a new one (owner.delegate)")
                continue
            }
            guard owners[channel.owner] != nil else {
                report.problems.append("channel \(channel.id) names owner '\(channel.owner)', which the journal does not have; closed")
                continue  // left in `stored`: released with the other unused fds
            }
            stored[channel.id] = nil
            channels[channel.id] = channel.owner
            recoveredChannels.append(RecoveredChannel(id: channel.id, owner: channel.owner, fd: fd))
            report.channels += 1
        }
        nextChannelID = (channels.keys.max() ?? 0) + 1
    }

    /// Fills the tables from the journal's contents and checks each object against the backend.
    private func rebuild(
        from contents: ObjectJournal.Contents, memory: inout [MemoryFileTable.Key: (name: String, fd: Int32)],
        deviceFDs: inout [ObjectID: (name: String, fd: Int32)], journal: ObjectJournal, report: inout JournalRecovery
    ) {
        let s = contents.state
        for o in s.owners {
            let owner = OwnerRecord(name: o.name, identity: o.identity, creatorUID: o.creatorUID, quotaBytes: o.quotaBytes, policy: o.policy)
            // The current config's quota applies, as after a reload.
            if let rule = config.access.rule(forIdentity: o.identity) { owner.quotaBytes = rule.quotaBytes }
            owner.devices = Set(o.devices)
            owners[o.name] = owner
        }
        func ownerRecord(_ name: String, _ what: String) -> OwnerRecord? {
            if let owner = owners[name] { return owner }
            report.problems.append("\(what) names owner '\(name)', which the journal does not have")
            return nil
        }
        var answeringIOAS: [ObjectID] = []
        for i in s.ioas {
            let record = IOASRecord(id: i.id, owner: i.owner, hugePages: i.hugePages)
            record.directDevices = Set(i.directDevices)
            record.dirtyEnabled = i.dirtyEnabled
            ioasTable[i.id] = record
            ownerRecord(i.owner, "IOAS \(i.id)")?.ioas.insert(i.id)
            // IOMMU_OPTION(HUGE_PAGES) GET: side-effect free, ENOENT when the IOAS is gone.
            do {
                let huge = try backend.getOption(.hugePages, objectID: i.id) != 0
                answeringIOAS.append(i.id)
                if huge != i.hugePages {
                    report.problems.append("IOAS \(i.id): the journal says huge_pages=\(i.hugePages) but the iommufd has \(huge); the iommufd's value is kept")
                    record.hugePages = huge
                }
            } catch {
                report.problems.append("IOAS \(i.id) of owner '\(i.owner)' does not answer IOMMU_OPTION GET (\(error)); its records are kept for owner.release to clean up")
            }
        }
        for h in s.hwpts {
            let record = HWPTRecord(id: h.id, owner: h.owner, ioas: h.ioas, flags: HWPTAllocFlags(rawValue: h.flags), auto: h.auto, iommuInstance: h.iommuInstance)
            record.devices = Set(h.devices)
            record.tracking = h.tracking
            hwptTable[h.id] = record
            ownerRecord(h.owner, "HWPT \(h.id)")?.hwpts.insert(h.id)
            if let n = h.nested {
                adoptNestedHWPT(record, n, report: &report)
                continue
            }
            ioasTable[h.ioas]?.hwpts.insert(h.id)
            // IOMMU_HWPT_GET_DIRTY_BITMAP with NO_CLEAR and length 0: ENOENT for a missing
            // paging HWPT, EINVAL (the empty range) for a live one; nothing is read or cleared.
            do {
                try backend.readDirtyBitmap(hwpt: h.id, iova: 0, length: 0, pageSize: Self.pageSize, clear: false, into: UnsafeMutableRawBufferPointer(start: nil, count: 0))
            } catch let error as IommuError where error.errno == .ENOENT {
                report.problems.append("HWPT \(h.id) of owner '\(h.owner)' is not in the iommufd (\(error)); its records are kept for owner.release to clean up")
            } catch {}
        }
        for v in s.viommus {
            viommuTable[v.id] = VIOMMURecord(id: v.id, owner: v.owner, ioas: v.ioas, hwpt: v.hwpt, device: v.device, iommuInstance: v.iommuInstance)
            hwptTable[v.hwpt]?.viommus.insert(v.id)
            ownerRecord(v.owner, "vIOMMU \(v.id)")?.viommus.insert(v.id)
        }
        for v in s.vdevices {
            vdeviceTable[v.id] = VDeviceRecord(id: v.id, owner: v.owner, viommu: v.viommu, device: v.device, virtualID: v.virtualID)
            viommuTable[v.viommu]?.vdevices.insert(v.id)
            ownerRecord(v.owner, "vDevice \(v.id)")?.vdevices.insert(v.id)
        }
        for h in hwptTable.values where h.nested != nil { linkNested(h) }
        for n in s.nestParents { nestParents[NestParentKey(ioas: n.ioas, iommuInstance: n.iommuInstance)] = n.hwpt }
        for d in s.devices {
            let record = devices[d.descriptor.name] ?? DeviceRecord(descriptor: d.descriptor)
            if devices[d.descriptor.name] == nil {
                devices[d.descriptor.name] = record
                if let pci = d.descriptor.pciAddress { devicesByPCI[pci.lowercased()] = d.descriptor.name }
                report.problems.append("device '\(d.descriptor.name)' is leased but no longer discovered; its lease is kept")
            }
            if record.descriptor != d.descriptor, d.boundID != nil { record.descriptor = d.descriptor }
            record.owner = d.owner
            record.hwInfo = d.hwInfo
            record.ioas = d.ioas
            record.pt = d.pt
            for v in s.vdevices where v.device == d.descriptor.name { record.vdevices.insert(v.id) }
            guard let id = d.boundID else { continue }
            let fd = deviceFDs[id]?.fd
            if d.hasFD && fd == nil {
                report.problems.append("device '\(d.descriptor.name)' (device ID \(id)) was bound but its fd is not in the fd store, so the kernel has unbound it; release it (device.release) and attach it again")
                continue
            }
            do {
                let bound: BoundDevice
                if let restartable = backend as? any RestartableBackend {
                    bound = try restartable.adoptBoundDevice(d.descriptor, id: id, fd: fd, objects: d.backendObjects ?? [:])
                } else {
                    bound = BoundDevice(descriptor: d.descriptor, id: id, fd: fd)
                }
                // IOMMU_GET_HW_INFO on the device ID: answers only for a device still bound. An
                // mdev-like device is an iommufd access, not a device object: it has no hw_info
                // (ENOENT, as at lease) and adoptBoundDevice alone checks it.
                if !d.descriptor.isMdev {
                    let info = try backend.hwInfo(deviceID: id)
                    if let known = d.hwInfo, known.type != info.type {
                        report.problems.append("device '\(d.descriptor.name)': GET_HW_INFO type \(info.type) differs from the journal's \(known.type)")
                    } else {
                        // The kernel's answer now: a journal of format 01 holds no vendor data.
                        record.hwInfo = info
                    }
                }
                record.bound = bound
                if fd != nil { report.deviceFDs += 1 }
            } catch {
                report.problems.append("device '\(d.descriptor.name)' (device ID \(id)) does not check out as bound (\(error)); release it (device.release) and attach it again")
                if let fd { close(fd) }
                deviceFDs[id] = nil
            }
        }

        // Mappings, with the memory files behind them.
        var referenced = Set<MemoryFileTable.Key>()
        for (ioasID, entries) in contents.mappings {
            guard let ioas = ioasTable[ioasID] else {
                report.problems.append("\(entries.count) mappings of IOAS \(ioasID), which the journal's state does not have; not restored")
                continue
            }
            for (iova, m) in entries.sorted(by: { $0.key < $1.key }) {
                let backing: MappingRecord.Backing
                switch m.backing {
                case .copy:
                    backing = .copy
                case .dmabuf:  // MARK: p2p
                    guard let file = memory[m.file] else {
                        report.problems.append("IOAS \(ioasID) dma-buf mapping at 0x\(String(iova, radix: 16)): its dma-buf (\(StoredFDName.memory(device: m.file.device, inode: m.file.inode))) is not in the fd store; the mapping is kept, but its revocation can no longer be checked (unmap it)")
                        backing = .copy
                        break
                    }
                    referenced.insert(m.file)
                    backing = .dmabuf(m.file)
                    dmabufFiles.adopt(m.file, fd: file.fd)
                case .file, .mmap:
                    guard let file = memory[m.file] else {
                        report.problems.append("IOAS \(ioasID) mapping at 0x\(String(iova, radix: 16)): its memory file (\(StoredFDName.memory(device: m.file.device, inode: m.file.inode))) is not in the fd store; the mapping is kept without it (unmap it)")
                        backing = .copy
                        break
                    }
                    referenced.insert(m.file)
                    if m.backing == .file {
                        backing = .file(m.file)
                        files.adopt(m.file, fd: file.fd)
                    } else {
                        do {
                            let address = try mapShared(fd: file.fd, offset: m.offset, length: m.length, writable: m.flags.contains(.writeable))
                            backing = .mmap(m.file, address: address)
                            files.adopt(m.file, fd: file.fd)
                            journal.mmapOffsets[ioasID, default: [:]][iova] = m.offset
                        } catch {
                            report.problems.append("IOAS \(ioasID) mapping at 0x\(String(iova, radix: 16)): \(error)")
                            backing = .copy
                        }
                    }
                }
                _ = ioas.mappings.insert(MappingRecord(length: m.length, charged: m.charged, backing: backing, flags: m.flags), at: iova)
                ioas.pinnedBytes += m.charged
                owners[ioas.owner]?.pinnedBytes += m.charged
                if m.backing == .dmabuf {  // MARK: p2p
                    ioas.p2pBytes += m.length
                    owners[ioas.owner]?.p2pBytes += m.length
                }
                report.mappings += 1
            }
        }
        for key in referenced { memory[key] = nil }
        for id in answeringIOAS { if let ioas = ioasTable[id] { unmapUnjournaled(ioas, report: &report) } }
        report.memoryFiles = referenced.count
        report.owners = owners.count
        report.ioas = ioasTable.count
        report.hwpts = hwptTable.count
        report.viommus = viommuTable.count
        report.vdevices = vdeviceTable.count
        report.devices = devices.values.filter { $0.owner != nil }.count
        // No uAPI call reads a vIOMMU or vDevice without side effects: their device and parent
        // HWPT were checked above.
    }

    /// Unmaps what the kernel has mapped in `ioas` and the journal does not: the work of a
    /// request cut off between its kernel call and its journal write (or whose record is the
    /// torn last one). Its client had no answer and will retry, and the range would otherwise
    /// stay taken (EEXIST) with pages pinned that no quota counts. Only this daemon maps into
    /// its iommufd, and such a mapping cannot overlap a journaled one, so it lies wholly inside a
    /// gap between journaled mappings: one `IOMMU_IOAS_UNMAP` per gap frees it, and answers
    /// ENOENT (nothing there) otherwise — no uAPI call lists an IOAS's mappings.
    private func unmapUnjournaled(_ ioas: IOASRecord, report: inout JournalRecovery) {
        var gaps: [(iova: UInt64, length: UInt64)] = []
        var next: UInt64? = 0
        for entry in ioas.mappings.all {
            guard let start = next else { break }
            if entry.key > start { gaps.append((start, entry.key - start)) }
            let (end, overflow) = entry.key.addingReportingOverflow(entry.value.length)
            next = overflow ? nil : end
        }
        if let start = next {
            // The kernel reads iova 0 with length U64_MAX as "unmap all"; any other gap to the
            // top of the address space is [start, U64_MAX].
            gaps.append(start == 0 ? (0, UInt64.max) : (start, UInt64.max - start + 1))
        }
        for gap in gaps {
            do {
                let unmapped = try backend.unmap(ioas: ioas.id, iova: gap.iova, length: gap.length)
                if unmapped > 0 {
                    report.unjournaledBytesUnmapped += unmapped
                    report.problems.append("IOAS \(ioas.id): \(unmapped) bytes mapped in [\(Self.hex(gap.iova)), \(Self.hex(gap.iova &+ (gap.length &- 1)))] by a request the old daemon did not finish (killed between its kernel call and its journal write) were unmapped; that request's client had no answer and can map again")
                }
            } catch let error as IommuError where error.errno == .ENOENT {
                continue
            } catch {
                report.problems.append("IOAS \(ioas.id): could not clear [\(Self.hex(gap.iova)), \(Self.hex(gap.iova &+ (gap.length &- 1)))] of mappings the journal does not have (\(error)); a map there may fail with EEXIST until owner.release")
            }
        }
    }

    // MARK: Per request

    /// After each request, under the lock and before it answers: records a changed state,
    /// stores or removes device fds, writes the request's records, compacts when due.
    func journalCommit() {
        guard let journal else { return }
        if journal.stateUnchanged {
            journal.stateUnchanged = false
        } else {
            // ownerjournal: the slices of the owners the request looked up (or changed without
            // a look-up), and the global slice; not every owner's.
            journal.statesBuilt &+= 1  // scale10k
            let global = journalGlobal()
            if global != journal.lastGlobal {
                syncDeviceFDs(global.devices, journal)
                journal.recordGlobal(global)
            }
            for name in journal.changedOwners { journal.recordSlice(journalSlice(name)) }
            journal.changedOwners.removeAll(keepingCapacity: true)
            // One record when the request changed more than one slice: all of it or none after a crash.
            journal.endSlices()
        }
        // A batch's group whose batch goes on writes with the batch's next hold.
        let later = journal.flushLater && journal.destroyAfterCommit.isEmpty
        journal.flushLater = false
        if later { return }
        if journal.log.hasPending, let error = journal.flush() {
            logger.error("\(error)")
        }
        destroyDeferred(journal)
        if journal.needsCompaction {
            do {
                try compact(journal)
            } catch {
                logger.error("journal compaction failed; the journal keeps growing", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Writes the next generation of the journal: the state, then every mapping in `mapBatch`
    /// records of `ObjectJournal.compactionBatch` (the batch records of the old generation
    /// folded into them like every other record).
    func compact(_ journal: ObjectJournal) throws(IommuError) {
        try journal.compact(state: journalState()) { j in
            var inRecord = 0
            for (id, ioas) in ioasTable.sorted(by: { $0.key < $1.key }) {
                for entry in ioas.mappings.all {
                    j.groupMapped(ioas: id, iova: entry.key, entry.value, offset: j.mmapOffsets[id]?[entry.key] ?? 0)
                    inRecord += 1
                    if inRecord == ObjectJournal.compactionBatch {
                        j.endGroup()
                        inRecord = 0
                    }
                }
            }
        }
    }

    /// Stores the cdev fd of each newly bound device and removes those of unbound ones.
    private func syncDeviceFDs(_ recorded: [JournalState.Device], _ journal: ObjectJournal) {
        var now = Set<ObjectID>()
        for d in recorded {
            guard let id = d.boundID, d.hasFD, let fd = devices[d.descriptor.name]?.bound?.fd else { continue }
            now.insert(id)
            if !journal.storedDevices.contains(id) { journal.store.store(fd, name: StoredFDName.device(id)) }
        }
        for id in journal.storedDevices.subtracting(now) { journal.store.remove(name: StoredFDName.device(id)) }
        journal.storedDevices = now
    }

    /// What the journal says about itself, for `daemon.info`.
    public var journalStatus: (generation: UInt64, bytes: Int, writeError: String?)? {
        (try? locked { journal.map { ($0.generation, $0.log.size, $0.writeError) } }) ?? nil
    }
}
