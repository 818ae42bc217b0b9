import Foundation
import IommufdContract
import IommufdCore

// MARK: ownerjournal
/// Journal format 3: the `JournalState` split into one slice per owner and one global slice, so
/// a request that changed one owner's objects records (and builds, and compares) that owner's
/// slice only, not every owner's (issue 16 targets 1 and 5).
///
/// - `OwnerSlice`: an owner and everything keyed to it: the owner entry (policy, quota, leased
///   device names), its IOASes, HWPTs, vIOMMUs, vDevices, the nest parents of its IOASes, its
///   channels, fault queues and vEVENTQs, and HW queues. A slice with no owner and no objects is
///   the owner's tombstone (the owner was released).
/// - `GlobalSlice`: what is keyed to a device, not an owner: the device table (leases, bindings,
///   attachments) and the PASID attachments. Its size follows the host's devices, not the owners.
///
/// Replaying the slices in order and `assembled` gives back exactly the `JournalState` the
/// broker's `journalState()` builds (the same entries, in the same order): the owner-slice
/// property test checks that after every request of random sequences.
struct OwnerSlice: Codable, Equatable {
    var name: String
    var owner: JournalState.Owner?
    var ioas: [JournalState.IOAS] = []
    var hwpts: [JournalState.HWPT] = []
    var viommus: [JournalState.VIOMMU] = []
    var vdevices: [JournalState.VDevice] = []
    var nestParents: [JournalState.NestParent] = []
    var channels: [JournalState.Channel] = []
    var queues: [JournalState.Queue] = []
    var hwQueues: [JournalState.HWQueue] = []

    init(name: String) { self.name = name }

    /// A tombstone: nothing of this owner is left.
    var isEmpty: Bool {
        owner == nil && ioas.isEmpty && hwpts.isEmpty && viommus.isEmpty && vdevices.isEmpty && nestParents.isEmpty
            && channels.isEmpty && queues.isEmpty && hwQueues.isEmpty
    }

    enum CodingKeys: String, CodingKey {
        case name, owner, ioas, hwpts, viommus, vdevices, nestParents, channels, queues, hwQueues
    }
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        owner = try c.decodeIfPresent(JournalState.Owner.self, forKey: .owner)
        ioas = try c.decodeIfPresent([JournalState.IOAS].self, forKey: .ioas) ?? []
        hwpts = try c.decodeIfPresent([JournalState.HWPT].self, forKey: .hwpts) ?? []
        viommus = try c.decodeIfPresent([JournalState.VIOMMU].self, forKey: .viommus) ?? []
        vdevices = try c.decodeIfPresent([JournalState.VDevice].self, forKey: .vdevices) ?? []
        nestParents = try c.decodeIfPresent([JournalState.NestParent].self, forKey: .nestParents) ?? []
        channels = try c.decodeIfPresent([JournalState.Channel].self, forKey: .channels) ?? []
        queues = try c.decodeIfPresent([JournalState.Queue].self, forKey: .queues) ?? []
        hwQueues = try c.decodeIfPresent([JournalState.HWQueue].self, forKey: .hwQueues) ?? []
    }
    /// Empty lists are left out, so a small owner is a small record.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encodeIfPresent(owner, forKey: .owner)
        if !ioas.isEmpty { try c.encode(ioas, forKey: .ioas) }
        if !hwpts.isEmpty { try c.encode(hwpts, forKey: .hwpts) }
        if !viommus.isEmpty { try c.encode(viommus, forKey: .viommus) }
        if !vdevices.isEmpty { try c.encode(vdevices, forKey: .vdevices) }
        if !nestParents.isEmpty { try c.encode(nestParents, forKey: .nestParents) }
        if !channels.isEmpty { try c.encode(channels, forKey: .channels) }
        if !queues.isEmpty { try c.encode(queues, forKey: .queues) }
        if !hwQueues.isEmpty { try c.encode(hwQueues, forKey: .hwQueues) }
    }
}

struct GlobalSlice: Codable, Equatable {
    var devices: [JournalState.Device] = []
    var pasids: [JournalState.PASIDAttachment]?
}

extension JournalState {
    /// The state cut into the slices journal format 3 records. Every entry goes to exactly one
    /// slice: an object to its owner's (also when that owner has no entry, as after a recovery
    /// that kept orphaned records), a nest parent to its IOAS's owner's.
    func slices() -> (owners: [String: OwnerSlice], global: GlobalSlice) {
        var out: [String: OwnerSlice] = [:]
        func edit(_ name: String, _ body: (inout OwnerSlice) -> Void) {
            body(&out[name, default: OwnerSlice(name: name)])
        }
        for o in owners { edit(o.name) { $0.owner = o } }
        var ioasOwner: [ObjectID: String] = [:]
        for i in ioas {
            ioasOwner[i.id] = i.owner
            edit(i.owner) { $0.ioas.append(i) }
        }
        for h in hwpts { edit(h.owner) { $0.hwpts.append(h) } }
        for v in viommus { edit(v.owner) { $0.viommus.append(v) } }
        for v in vdevices { edit(v.owner) { $0.vdevices.append(v) } }
        // A nest parent whose IOAS is not in the state belongs to no owner: it goes with "".
        for n in nestParents { edit(ioasOwner[n.ioas] ?? "") { $0.nestParents.append(n) } }
        for c in channels ?? [] { edit(c.owner) { $0.channels.append(c) } }
        for q in queues ?? [] { edit(q.owner) { $0.queues.append(q) } }
        for q in hwQueues ?? [] { edit(q.owner) { $0.hwQueues.append(q) } }
        return (out, GlobalSlice(devices: devices, pasids: pasids))
    }

    /// The state the slices describe, in `journalState()`'s order.
    static func assembled(owners slices: [String: OwnerSlice], global: GlobalSlice) -> JournalState {
        var s = JournalState()
        for slice in slices.values {
            if let o = slice.owner { s.owners.append(o) }
            s.ioas += slice.ioas
            s.hwpts += slice.hwpts
            s.viommus += slice.viommus
            s.vdevices += slice.vdevices
            s.nestParents += slice.nestParents
            if !slice.channels.isEmpty { s.channels = (s.channels ?? []) + slice.channels }
            if !slice.queues.isEmpty { s.queues = (s.queues ?? []) + slice.queues }
            if !slice.hwQueues.isEmpty { s.hwQueues = (s.hwQueues ?? []) + slice.hwQueues }
        }
        s.owners.sort { $0.name < $1.name }
        s.ioas.sort { $0.id < $1.id }
        s.hwpts.sort { $0.id < $1.id }
        s.viommus.sort { $0.id < $1.id }
        s.vdevices.sort { $0.id < $1.id }
        s.nestParents.sort { ($0.ioas, $0.iommuInstance) < ($1.ioas, $1.iommuInstance) }
        s.channels?.sort { $0.id < $1.id }
        s.queues?.sort { $0.id < $1.id }
        s.hwQueues?.sort { $0.id < $1.id }
        s.devices = global.devices
        s.pasids = global.pasids
        return s
    }
}

extension Broker {
    /// Notes that the request under way may have changed `owner`'s slice of the journal's
    /// state: the commit builds and compares that slice (and the global one) only. Marked by
    /// every look-up of an owner or of one of its objects (`readableOwner`, `visibleObject`,
    /// `leasedDevice`, `queue`, `ownerRecord`), where owners are created, and by the changes
    /// made without a look-up (a queue's fault relay, a channel closed, a reload's quotas).
    @inline(__always)
    func markOwnerChanged(_ owner: String) {
        journal?.changedOwners.insert(owner)
    }

    /// Every owner's slice is built at the next commit (a reload changes every owner's quota).
    func markEveryOwnerChanged() {
        guard let journal else { return }
        journal.changedOwners.formUnion(owners.keys)
    }

    /// The owner `name`'s slice of `journalState()`, built from its own records (its object
    /// sets) without walking the other owners' objects. The tables that have no per-owner
    /// index (queues, HW queues, channels, nest parents) are scanned, each small.
    ///
    /// An owner gone (released) is usually a tombstone; but what the broker still keeps under
    /// its name (a channel the daemon has not closed yet, records an incomplete release left)
    /// is found by walking the tables, as `journalState()` would: once per release.
    func journalSlice(_ name: String) -> OwnerSlice {
        var s = OwnerSlice(name: name)
        let o: OwnerRecord
        if let found = owners[name] {
            o = found
            s.owner = .init(name: o.name, identity: o.identity, creatorUID: o.creatorUID, quotaBytes: o.quotaBytes, policy: o.policy, devices: o.devices.sorted())
        } else {
            // A stand-in holding the name's objects found in the tables (no entry of its own).
            o = OwnerRecord(name: name, identity: "", creatorUID: 0, quotaBytes: nil, policy: OwnerPolicy())
            o.ioas = Set(ioasTable.values.filter { $0.owner == name }.map(\.id))
            o.hwpts = Set(hwptTable.values.filter { $0.owner == name }.map(\.id))
            o.viommus = Set(viommuTable.values.filter { $0.owner == name }.map(\.id))
            o.vdevices = Set(vdeviceTable.values.filter { $0.owner == name }.map(\.id))
        }
        s.ioas = o.ioas.sorted().compactMap { ioasTable[$0] }.map {
            .init(id: $0.id, owner: $0.owner, hugePages: $0.hugePages, directDevices: $0.directDevices.sorted(), dirtyEnabled: $0.dirtyEnabled)
        }
        s.hwpts = o.hwpts.sorted().compactMap { hwptTable[$0] }.map {
            .init(id: $0.id, owner: $0.owner, ioas: $0.ioas, flags: $0.flags.rawValue, auto: $0.auto, iommuInstance: $0.iommuInstance, devices: $0.devices.sorted(), tracking: $0.tracking,
                nested: $0.nested.map { .init(parent: $0.parent, viommu: $0.viommu, dataType: $0.data.type, data: $0.data.bytes) })
        }
        s.viommus = o.viommus.sorted().compactMap { viommuTable[$0] }.map {
            .init(id: $0.id, owner: $0.owner, ioas: $0.ioas, hwpt: $0.hwpt, device: $0.device, iommuInstance: $0.iommuInstance)
        }
        s.vdevices = o.vdevices.sorted().compactMap { vdeviceTable[$0] }.map {
            .init(id: $0.id, owner: $0.owner, viommu: $0.viommu, device: $0.device, virtualID: $0.virtualID)
        }
        if !nestParents.isEmpty {
            s.nestParents = nestParents.filter { o.ioas.contains($0.key.ioas) }.map { .init(ioas: $0.key.ioas, iommuInstance: $0.key.iommuInstance, hwpt: $0.value) }
                .sorted { ($0.ioas, $0.iommuInstance) < ($1.ioas, $1.iommuInstance) }
        }
        if !channels.isEmpty {
            s.channels = channels.filter { $0.value == name }.sorted { $0.key < $1.key }.map { .init(id: $0.key, owner: $0.value) }
        }
        if !queueTable.isEmpty {
            s.queues = queueTable.values.filter { $0.owner == name }.sorted { $0.id < $1.id }.map { q in
                JournalState.Queue(
                    id: q.id, owner: q.owner, kind: q.kind.rawValue, viommu: q.viommu, type: q.type, depth: q.depth,
                    hwpts: o.hwpts.filter { hwptTable[$0]?.faultQueue == q.id }.sorted(), awaiting: q.awaiting.sorted())
            }
        }
        if !hwQueueTable.isEmpty {
            s.hwQueues = hwQueueTable.values.filter { $0.owner == name }.sorted { $0.id < $1.id }.map { q in
                JournalState.HWQueue(id: q.id, owner: q.owner, viommu: q.viommu, type: q.type, index: q.index, baseAddress: q.baseAddress, length: q.length, ioas: q.ioas)
            }
        }
        return s
    }

    /// The global slice: the device table and the PASID attachments (bounded by the devices).
    func journalGlobal() -> GlobalSlice {
        GlobalSlice(devices: journalDevices(), pasids: journalPASIDs())
    }
}
