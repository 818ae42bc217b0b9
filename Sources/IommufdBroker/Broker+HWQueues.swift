import IommufdContract
import IommufdCore

// MARK: hwqueue3

// HW queues of a vIOMMU over RPC (issue 14 item 7; the backends' half is HWQueueIommuBackend).
//
// A HW queue is a vIOMMU's child like a vDevice or vEVENTQ: its vIOMMU must be one of the
// caller's owners' (another manager's answers NotFound, word for word like an absent ID), and
// the kernel keeps it with the iommufd across a daemon restart (journaled, taken back). While
// it exists the kernel pins the guest-physical range it was allocated over (an IOVA range of
// the vIOMMU's IOAS): an unmap of a mapping it pins is refused Busy here, before the kernel
// (which would unmap the mappings before it in the range and then answer EBUSY), and
// `viommu.destroy` is refused Busy while the vIOMMU has queues, as for its vEVENTQs.
// `owner.release` destroys them highest index first (the mock driver's queue n holds queue
// n-1), before the vIOMMUs.
//
// Tegra241 CMDQV queues are refused Unsupported: their guest drives the queues through an mmap
// of the iommufd itself (the VINTF page at `out_vintf_mmap_offset`), and the daemon never hands
// the iommufd out (docs/nested.md).

/// One HW queue of an owner. Only touched under the broker's lock.
final class HWQueueRecord {
    let id: ObjectID
    let owner: String
    let viommu: ObjectID
    let type: UInt32
    let index: UInt32
    let baseAddress: UInt64
    let length: UInt64
    /// The vIOMMU's IOAS, whose mappings over `pinned` the kernel pins.
    let ioas: ObjectID

    init(id: ObjectID, owner: String, viommu: ObjectID, type: UInt32, index: UInt32, baseAddress: UInt64, length: UInt64, ioas: ObjectID) {
        self.id = id
        self.owner = owner
        self.viommu = viommu
        self.type = type
        self.index = index
        self.baseAddress = baseAddress
        self.length = length
        self.ioas = ioas
    }

    /// What `iommufd_hw_queue_alloc_phys` pins: `[PAGE_ALIGN_DOWN(base), PAGE_ALIGN(base +
    /// length) - 1]` (inclusive), clamped at the top of the address space.
    var pinned: (first: UInt64, last: UInt64) {
        let page = Broker.pageSize
        let first = baseAddress - baseAddress % page
        let last = baseAddress &+ (length &- 1)
        let (end, overflow) = (last - last % page).addingReportingOverflow(page - 1)
        return (first, overflow ? .max : end)
    }
}

extension Broker {
    /// `hwqueue.alloc`, under the owner's gate (the pin must not race an `ioas.unmap` of the
    /// owner, whose kernel call runs outside `lock`).
    public func hwqueueAlloc(_ caller: Caller, _ params: HWQueueAllocParams) throws -> HWQueueInfo {
        try serialized({ try ownerRecord(try viommu(caller, params.viommu, write: "hwqueue.alloc").owner) }) { _ in try locked {
            let v = try viommu(caller, params.viommu, write: "hwqueue.alloc")
            guard backend.features.contains(.hwQueue), let hw = backend.hwQueues else {
                throw BrokerError(.unsupported, "this kernel has no HW queues (IOMMU_HW_QUEUE_ALLOC, Linux >= 6.17); a vIOMMU's guest queues are then emulated by the VMM")
            }
            let type = try Self.hwQueueType(params.type)
            if type == HWQueueType.tegra241CMDQV {
                throw BrokerError(.unsupported, Self.tegra241Refusal)
            }
            if let flags = params.flags, flags != 0 {
                throw BrokerError.invalid("hwqueue.alloc: flags 0x\(String(flags, radix: 16)) is not allowed: the kernel defines no HW queue flags (IOMMU_HW_QUEUE_ALLOC answers EOPNOTSUPP); omit 'flags' or pass 0")
            }
            guard params.length > 0 else {
                throw BrokerError.invalid("hwqueue.alloc: length must be greater than 0 (the kernel answers EINVAL); pass the queue's size in bytes")
            }
            let (last, overflow) = params.baseAddress.addingReportingOverflow(params.length - 1)
            if overflow {
                throw BrokerError.invalid("hwqueue.alloc: base_address \(Self.hex(params.baseAddress)) + length \(Self.hex(params.length)) runs past the end of the 64-bit address space (the kernel answers EOVERFLOW)")
            }
            // The mock vIOMMU's index range is known (IOMMU_TEST_HW_QUEUE_MAX); other drivers
            // say theirs themselves (EINVAL).
            if type == HWQueueType.selftest, devices[v.device]?.hwInfo?.type == HWInfoType.selftest,
                params.index >= HWQueueType.selftestMaxQueues
            {
                throw BrokerError.invalid("hwqueue.alloc: index \(params.index) is out of range: the selftest mock vIOMMU takes indexes 0 ... \(HWQueueType.selftestMaxQueues - 1) (IOMMU_TEST_HW_QUEUE_MAX), each after the one before it")
            }
            let id: ObjectID
            do {
                id = try hw.allocHWQueue(viommu: v.id, type: type, index: params.index, baseAddress: params.baseAddress, length: params.length, flags: 0)
            } catch let error as IommuError {
                throw hwQueueAllocError(error, v, type: type, index: params.index, first: params.baseAddress, last: last)
            }
            let record = HWQueueRecord(
                id: id, owner: v.owner, viommu: v.id, type: type, index: params.index, baseAddress: params.baseAddress,
                length: params.length, ioas: v.ioas)
            hwQueueTable[id] = record
            emit(.objectCreated(owner: v.owner, kind: .hwQueue, id: id))
            return hwQueueInfo(record)
        } }
    }

    /// `hwqueue.destroy`, under the owner's gate (it unpins what an unmap of the owner checks).
    public func hwqueueDestroy(_ caller: Caller, _ params: HWQueueParams) throws -> HWQueueDestroyResult {
        try serialized({ try ownerRecord(try hwQueue(caller, params.hwQueue, write: "hwqueue.destroy").owner) }) { _ in try locked {
            let record = try hwQueue(caller, params.hwQueue, write: "hwqueue.destroy")
            try destroyHWQueue(record)
            return HWQueueDestroyResult(hwQueue: record.id)
        } }
    }

    /// Why `tegra241_cmdqv` is refused, and what to do instead.
    static let tegra241Refusal =
        "hwqueue.alloc: type tegra241_cmdqv is not offered: a Tegra241 CMDQV guest drives its HW queues through an mmap of the iommufd itself (the VINTF page at the vIOMMU's out_vintf_mmap_offset), and iommufdd never hands the iommufd out (a client holding it could destroy or re-attach any object of every VM). Give the guest an emulated command queue instead: create the vIOMMU with type arm-smmuv3 and pass the guest's invalidation commands with viommu.invalidate"

    /// The number of a `type` param, or InvalidParams naming the field.
    static func hwQueueType(_ param: HWQueueTypeParam) throws -> UInt32 {
        guard let type = param.value else {
            let known = HWQueueTypeParam.names.filter { $0.value != HWQueueType.default }.map(\.name).joined(separator: ", ")
            var given = ""
            if case .name(let s) = param { given = s }
            throw BrokerError.invalid("hwqueue.alloc: type '\(echo(given))' is not a HW queue type; pass one of \(known), or a number of enum iommu_hw_queue_type")
        }
        if type == HWQueueType.default {
            throw BrokerError.invalid("hwqueue.alloc: type 0 (default) is IOMMU_HW_QUEUE_TYPE_DEFAULT, which is reserved (the kernel answers EOPNOTSUPP); pass the vIOMMU driver's type: selftest for the mock vIOMMU")
        }
        return type
    }

    /// A kernel refusal of `IOMMU_HW_QUEUE_ALLOC`, its errno kept, in the kernel's meaning.
    func hwQueueAllocError(_ error: IommuError, _ v: VIOMMURecord, type: UInt32, index: UInt32, first: UInt64, last: UInt64) -> BrokerError {
        let range = "[\(Self.hex(first)), \(Self.hex(last))]"
        let what = "allocating HW queue index \(index) (type \(HWQueueTypeParam.name(of: type))) of vIOMMU \(v.id) over \(range)"
        let meaning: String
        switch error.errno {
        case .ENOENT:
            meaning = "\(range) is not wholly mapped in IOAS \(v.ioas), the IOAS of the vIOMMU's nest parent; map the queue's memory there first (ioas.map), then allocate the queue over it"
        case .EFAULT:
            meaning = "the pages behind \(range) are not physically contiguous, as a HW queue's memory must be; keep the queue within one page, or back it with huge pages"
        case .EOPNOTSUPP:
            meaning = "the IOMMU driver of vIOMMU \(v.id) has no HW queues of type \(HWQueueTypeParam.name(of: type)) (the mock vIOMMU takes selftest)"
        case .EEXIST:
            let holder = hwQueueTable.values.first { $0.viommu == v.id && $0.index == index }
            meaning = "index \(index) of vIOMMU \(v.id) is in use\(holder.map { " by HW queue \($0.id)" } ?? ""); use another index, or destroy that queue first"
        case .EIO:
            meaning = "index \(index) depends on index \(index &- 1), which vIOMMU \(v.id) does not have: the driver's queues are allocated in index order; allocate index \(index &- 1) first"
        case .EINVAL:
            meaning = "the IOMMU driver of vIOMMU \(v.id) refuses index \(index) or this range (out of its range, or misaligned for it)"
        default:
            return BrokerError.kernel(error, what)
        }
        return BrokerError(.kernel, "\(what) failed: IOMMU_HW_QUEUE_ALLOC returned \(error.errno.name): \(meaning)", kernel: error)
    }

    func hwQueueInfo(_ q: HWQueueRecord) -> HWQueueInfo {
        HWQueueInfo(
            hwQueue: q.id, owner: q.owner, viommu: q.viommu, type: q.type, typeName: HWQueueTypeParam.name(of: q.type), index: q.index,
            baseAddress: q.baseAddress, length: q.length, ioas: q.ioas)
    }

    /// A HW queue the caller may see (and, with `write`, change); absent and another manager's
    /// get the same NotFound.
    func hwQueue(_ caller: Caller, _ id: ObjectID, write what: String? = nil) throws -> HWQueueRecord {
        guard let record = hwQueueTable[id], canSee(caller, owner: record.owner) else {
            throw BrokerError.notFound("no HW queue \(id); see viommu.list (each vIOMMU's hw_queues)")
        }
        // replay: the commit records this owner's slice. `hwqueue.destroy` looks its queue up
        // again under its owner's gate; the gate's look-up marked the owner too, but another
        // request's commit in between takes that mark (OwnerJournalMoreTests).
        markOwnerChanged(record.owner)
        if let what { try requireWriter(caller, what) }
        return record
    }

    /// The queues of a vIOMMU, by index.
    func hwQueues(ofVIOMMU id: ObjectID) -> [HWQueueRecord] {
        hwQueueTable.values.filter { $0.viommu == id }.sorted { $0.index < $1.index }
    }

    /// Destroys one queue: Busy while the next index holds it (the kernel's EBUSY, said first).
    func destroyHWQueue(_ record: HWQueueRecord) throws {
        if let next = hwQueueTable.values.first(where: { $0.viommu == record.viommu && $0.index == record.index &+ 1 }) {
            throw BrokerError(.busy, "HW queue \(record.id) (index \(record.index) of vIOMMU \(record.viommu)) is held by HW queue \(next.id) (index \(next.index)): the driver's queue n holds queue n-1 (the kernel answers EBUSY); destroy HW queue \(next.id) first")
        }
        try kcall("destroying HW queue \(record.id) (index \(record.index) of vIOMMU \(record.viommu))") { try backend.destroy(record.id) }
        hwQueueTable[record.id] = nil
        emit(.objectDestroyed(owner: record.owner, kind: .hwQueue, id: record.id))
    }

    // MARK: Policy hooks

    /// `viommu.destroy` refuses a vIOMMU with HW queues (the kernel would answer EBUSY), as it
    /// refuses one with vEVENTQs.
    func checkNoHWQueues(viommu id: ObjectID) throws {
        let queues = hwQueues(ofVIOMMU: id)
        guard queues.isEmpty else {
            throw BrokerError(.busy, "vIOMMU \(id) still has HW queues \(queues.map(\.id)) (indexes \(queues.map(\.index))), which hold it (the kernel answers EBUSY); destroy them first, highest index first (hwqueue.destroy)")
        }
    }

    /// `ioas.unmap` (and the channel's UNMAP) of mappings a HW queue pins: Busy, naming the
    /// queue, before the kernel call (which would unmap the mappings before the pinned one in
    /// the range, then answer EBUSY).
    func checkNoHWQueuePin(_ ioas: IOASRecord, _ mappings: some Collection<MappingIndex.Entry>) throws {
        guard !hwQueueTable.isEmpty else { return }
        for q in hwQueueTable.values where q.ioas == ioas.id {
            let (first, last) = q.pinned
            for m in mappings where m.key <= last && m.key &+ (m.value.length &- 1) >= first {
                throw BrokerError(.busy, "the mapping at \(Self.hex(m.key)) (length \(Self.hex(m.value.length))) of IOAS \(ioas.id) is pinned by HW queue \(q.id) (index \(q.index) of vIOMMU \(q.viommu), over [\(Self.hex(q.baseAddress)), \(Self.hex(q.baseAddress &+ (q.length &- 1)))]): the kernel refuses to unmap it (EBUSY) while the queue exists; destroy the queue first (hwqueue.destroy), then unmap")
            }
        }
    }

    /// `owner.release`, before the vIOMMUs: the owner's HW queues, highest index first on each
    /// vIOMMU (queue n holds queue n-1; each holds its vIOMMU).
    func releaseHWQueues(of owner: String, destroyed: inout [String: Int], failures: inout [String]) {
        let queues = hwQueueTable.values.filter { $0.owner == owner }.sorted { ($0.viommu, $1.index) < ($1.viommu, $0.index) }
        for q in queues {
            do {
                try destroyHWQueue(q)
                destroyed["hw_queue", default: 0] += 1
            } catch { failures.append("\(error)") }
        }
    }

    /// The owner's HW queue IDs for `owner.info`; nil when it has none.
    func hwQueueIDs(of owner: String) -> [ObjectID]? {
        let ids = hwQueueTable.values.filter { $0.owner == owner }.map(\.id).sorted()
        return ids.isEmpty ? nil : ids
    }

    /// A vIOMMU's queues for `viommu.list`; nil when it has none.
    func hwQueueInfos(ofVIOMMU id: ObjectID) -> [HWQueueInfo]? {
        let queues = hwQueues(ofVIOMMU: id)
        return queues.isEmpty ? nil : queues.map(hwQueueInfo)
    }
}
