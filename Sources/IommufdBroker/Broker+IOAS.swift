import IommufdContract
import IommufdCore

extension Broker {
    static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

    /// `ioas.create`, with huge IOPTEs on or off (`IOMMU_OPTION_HUGE_PAGES`).
    public func ioasCreate(_ caller: Caller, _ params: IOASCreateParams) throws -> IOASCreateResult {
        try locked {
            let owner = try writableOwner(caller, params.owner, "ioas.create")
            let hugePages = params.hugePages ?? owner.policy.hugePages
            let id = try kcall("allocating an IOAS for owner '\(owner.name)'") { try backend.allocIOAS() }
            if !hugePages {
                do {
                    try kcall("disabling huge pages on IOAS \(id)") { try backend.setOption(.hugePages, objectID: id, value: 0) }
                } catch {
                    try? backend.destroy(id)
                    throw error
                }
            }
            ioasTable[id] = IOASRecord(id: id, owner: owner.name, hugePages: hugePages)
            owner.ioas.insert(id)
            emit(.objectCreated(owner: owner.name, kind: .ioas, id: id))
            return IOASCreateResult(ioas: id, owner: owner.name, hugePages: hugePages)
        }
    }

    /// `ioas.destroy`: refused (Busy) while HWPTs or devices use it; its mappings go with it.
    public func ioasDestroy(_ caller: Caller, _ params: IOASDestroyParams) throws -> IOASDestroyResult {
        // Under the owner's gate: no map, unmap or dirty read of the owner is half done.
        try serialized({ try ownerOfIOAS(caller, params.ioas, write: "ioas.destroy") }) { _ in try locked {
            let ioas = try ioas(caller, params.ioas, write: "ioas.destroy")
            // An HWPT the daemon created is destroyed when its last user leaves; if the kernel
            // refused that then (the request that left still succeeded), it is retried here,
            // or the IOAS could never be destroyed.
            for id in ioas.hwpts.sorted() {
                if let hwpt = hwptTable[id], hwpt.auto, hwpt.isUnused { try destroyHWPT(hwpt) }
            }
            guard ioas.hwpts.isEmpty && ioas.directDevices.isEmpty else {
                throw BrokerError(.busy, "IOAS \(ioas.id) is in use by HWPTs \(ioas.hwpts.sorted()) and devices \(ioas.directDevices.sorted()); detach its devices and destroy its HWPTs first")
            }
            try destroyIOAS(ioas)
            return IOASDestroyResult(ioas: params.ioas)
        } }
    }

    /// `ioas.list`: summaries of the IOAS the caller may see.
    public func ioasList(_ caller: Caller, _ params: IOASListParams) throws -> IOASListResult {
        try reading {
            if let name = params.owner { _ = try readableOwner(caller, name) }
            let list = ioasTable.values
                .filter { (params.owner == nil || $0.owner == params.owner) && canSee(caller, owner: $0.owner) }
                .sorted { $0.id < $1.id }
                .map { checkRevocations($0); return ioasInfo($0, maxMappings: 0) }
            return IOASListResult(ioas: list)
        }
    }

    /// `ioas.info`: mappings (the first `max_mappings`, in IOVA order), HWPTs, devices, pinned bytes.
    public func ioasInfo(_ caller: Caller, _ params: IOASInfoParams) throws -> IOASInfo {
        try reading {
            let ioas = try ioas(caller, params.ioas)
            checkRevocations(ioas)  // MARK: p2p
            return ioasInfo(ioas, maxMappings: max(0, params.maxMappings ?? 1000))
        }
    }

    func ioasInfo(_ ioas: IOASRecord, maxMappings: Int) -> IOASInfo {
        let mappings = ioas.mappings.prefix(maxMappings).map {
            var info = MappingInfo(iova: $0.key, length: $0.value.length, readable: $0.value.flags.contains(.readable), writeable: $0.value.flags.contains(.writeable), source: $0.value.sourceName)
            if case .dmabuf = $0.value.backing { info.revoked = ioas.revokedMappings.contains($0.key) }  // MARK: p2p
            return info
        }
        var devs = ioas.directDevices
        for id in ioas.hwpts { devs.formUnion(hwptTable[id]?.devices ?? []) }
        return IOASInfo(
            ioas: ioas.id, owner: ioas.owner, hugePages: ioas.hugePages, mappingCount: ioas.mappings.count,
            mappings: mappings, pinnedBytes: ioas.pinnedBytes, hwpts: ioas.hwpts.sorted(), devices: devs.sorted(),
            dirtyTracking: ioas.dirtyEnabled,
            p2pBytes: ioas.p2pBytes > 0 ? ioas.p2pBytes : nil, revokedMappings: ioas.revokedMappings.isEmpty ? nil : ioas.revokedMappings.count)
    }

    // MARK: Parameter checks

    /// The last byte of `[iova, iova+length)`, refusing empty, unaligned or overflowing ranges.
    @discardableResult
    static func checkRange(iova: UInt64, length: UInt64, alignment: UInt64, _ what: String) throws -> UInt64 {
        guard length > 0 else { throw BrokerError.invalid("\(what): length must be greater than 0") }
        guard iova % alignment == 0, length % alignment == 0 else {
            throw BrokerError.invalid("\(what): iova \(hex(iova)) and length \(hex(length)) must be multiples of \(hex(alignment))")
        }
        let (last, overflow) = iova.addingReportingOverflow(length - 1)
        guard !overflow else {
            throw BrokerError.invalid("\(what): iova \(hex(iova)) + length \(hex(length)) overflows the 64-bit IOVA space")
        }
        return last
    }

    static func mapFlags(readable: Bool?, writeable: Bool?) throws -> MapFlags {
        var flags: MapFlags = []
        if readable ?? true { flags.insert(.readable) }
        if writeable ?? true { flags.insert(.writeable) }
        guard !flags.isEmpty else {
            throw BrokerError.invalid("a mapping must be readable, writeable or both")
        }
        return flags
    }

    /// Refuses `bytes` more when the owner's mapped bytes, the bytes reserved by its maps in
    /// flight and `bytes` exceed its quota.
    func charge(_ owner: OwnerRecord, _ bytes: UInt64) throws {
        let (used, overflow1) = owner.pinnedBytes.addingReportingOverflow(owner.reservedBytes)
        let (total, overflow2) = used.addingReportingOverflow(bytes)
        if let quota = owner.quotaBytes, overflow1 || overflow2 || total > quota {
            let inFlight = owner.reservedBytes > 0 ? " + \(owner.reservedBytes) reserved by maps in flight" : ""
            throw BrokerError(.quotaExceeded, "pinned-memory quota of owner '\(owner.name)' exceeded: \(owner.pinnedBytes) bytes used\(inFlight) + \(bytes) requested > limit \(quota) (quota_bytes of identity '\(owner.identity)'); unmap memory or raise the quota in the config")
        }
    }

    // MARK: Map / unmap / copy

    /// `ioas.map`: maps `[offset, offset+length)` of the memory file `fd` (the caller's fd,
    /// resolved from `params.fd`; the broker keeps its own duplicate while mapped) at
    /// `params.iova`, or where the kernel chooses. Uses `IOMMU_IOAS_MAP_FILE` where the kernel
    /// has it, else maps the file into the daemon and uses `IOMMU_IOAS_MAP`.
    public func ioasMap(_ caller: Caller, _ params: IOASMapParams, fd: Int32) throws -> IOASMapResult {
        if let dmabuf = try dmabufInfo(fd) { return try ioasMapDmabuf(caller, params, fd: fd, dmabuf) }  // MARK: p2p
        let flags = try Self.mapChecks(params)
        return try serialized({ try ownerOfIOAS(caller, params.ioas, write: "ioas.map") }) { owner in
            try mapUnderGate(params, fd: fd, flags: flags, owner: owner) { try self.ioas(caller, params.ioas, write: "ioas.map") }
        }
    }

    /// `ioas.map`'s checks of the parameters alone (before the IOAS is looked up): the range,
    /// the offset and the flags, which it returns.
    static func mapChecks(_ params: IOASMapParams) throws -> MapFlags {
        let page = Self.pageSize
        try Self.checkRange(iova: params.iova ?? 0, length: params.length, alignment: page, "ioas.map")
        guard params.offset % page == 0 else {
            throw BrokerError.invalid("ioas.map: offset \(Self.hex(params.offset)) must be a multiple of the page size \(Self.hex(page))")
        }
        return try Self.mapFlags(readable: params.readable, writeable: params.writeable)
    }

    /// `ioas.map`'s phases 1-3 of a memory file (not a dma-buf), under `owner`'s gate, after
    /// `mapChecks` gave `flags`. `lookup` (under `lock`) finds the IOAS, or throws.
    func mapUnderGate(
        _ params: IOASMapParams, fd: Int32, flags: MapFlags, owner: OwnerRecord, lookup: () throws -> IOASRecord
    ) throws -> IOASMapResult {
        var kernelFlags = flags
        if params.iova != nil { kernelFlags.insert(.fixedIOVA) }
        let byFile = backend.features.contains(.ioasMapFile)
        // 1. Under `lock`: check, reserve the quota, hold the memory file.
        let (ioas, key, heldFD) = try locked { () throws -> (IOASRecord, MemoryFileTable.Key, Int32) in
            journal?.stateUnchanged = true  // mappings only: the journal records them one by one
            let ioas = try lookup()
            try reserve(owner, params.length)
            do {
                let (key, heldFD) = try files.retain(fd: fd, offset: params.offset, length: params.length)
                return (ioas, key, heldFD)
            } catch {
                owner.reservedBytes -= params.length
                throw error
            }
        }
        // 2. Under the owner's gate only: the backend call, which pins the pages.
        var backing: MappingRecord.Backing = .file(key)
        let mapped = Result { () throws -> UInt64 in
            let source: MemorySource
            if byFile {
                source = .file(fd: heldFD, offset: params.offset)
            } else {
                let address = try mapShared(fd: heldFD, offset: params.offset, length: params.length, writable: flags.contains(.writeable))
                backing = .mmap(key, address: address)
                source = .userAddress(address)
            }
            return try kcall("mapping \(Self.hex(params.length)) bytes into IOAS \(ioas.id)") {
                try backend.map(ioas: ioas.id, source: source, length: params.length, iova: params.iova ?? 0, flags: kernelFlags)
            }
        }
        // 3. Under `lock`: record and journal the mapping, or give back what 1 reserved.
        return try locked {
            journal?.stateUnchanged = true
            owner.reservedBytes -= params.length
            let iova: UInt64
            do {
                iova = try mapped.get()
            } catch {
                release(backing, length: params.length)
                throw error
            }
            let mapping = MappingRecord(length: params.length, charged: params.length, backing: backing, flags: flags)
            guard ioasTable[ioas.id] === ioas, ioas.mappings.insert(mapping, at: iova) else {
                // The kernel accepted a mapping the records say overlaps: trust neither, undo it.
                _ = try? backend.unmap(ioas: ioas.id, iova: iova, length: params.length)
                release(backing, length: params.length)
                throw BrokerError(.conflict, "IOAS \(ioas.id) already has a mapping at \(Self.hex(iova)) in the daemon's records; the new mapping was undone")
            }
            owner.pinnedBytes += params.length
            ioas.pinnedBytes += params.length
            journal?.mapped(ioas: ioas.id, iova: iova, mapping, offset: params.offset)
            return IOASMapResult(ioas: ioas.id, iova: iova, length: params.length, ownerPinnedBytes: owner.pinnedBytes)
        }
    }

    func release(_ backing: MappingRecord.Backing, length: UInt64) {
        switch backing {
        case .file(let key):
            files.release(key)
        case .mmap(let key, let address):
            unmapShared(address: address, length: length)
            files.release(key)
        case .copy:
            break
        case .dmabuf(let key):
            dmabufFiles.release(key)
        }
    }

    /// Forgets the mappings `entries` of `ioas` (already unmapped in the kernel) and refunds them.
    /// `all` says `entries` is every mapping: the index is then dropped at once, not entry by entry.
    func forget(_ entries: [MappingIndex.Entry], of ioas: IOASRecord, all: Bool = false, owner: OwnerRecord? = nil) -> UInt64 {
        let owner = owner ?? owners[ioas.owner]
        var bytes: UInt64 = 0
        if all {
            ioas.mappings = MappingIndex()
            ioas.revokedMappings = []
            journal?.cleared(ioas: ioas.id)
        }
        for entry in entries {
            if !all {
                ioas.mappings.remove(at: entry.key)
                journal?.unmapped(ioas: ioas.id, iova: entry.key)
            }
            if case .dmabuf = entry.value.backing { forgetDmabufMapping(entry.key, length: entry.value.length, of: ioas) }
            release(entry.value.backing, length: entry.value.length)
            ioas.pinnedBytes -= entry.value.charged
            owner?.pinnedBytes -= entry.value.charged
            bytes += entry.value.length
        }
        return bytes
    }

    /// `ioas.unmap`: removes whole mappings. A range that would cut a mapping is refused before
    /// anything is unmapped (the kernel would unmap the mappings before the cut and then fail).
    /// A range with no mapping is NotFound, or a 0-byte success under `tolerate_missing`.
    public func ioasUnmap(_ caller: Caller, _ params: IOASUnmapParams) throws -> IOASUnmapResult {
        try serialized({ try ownerOfIOAS(caller, params.ioas, write: "ioas.unmap") }) { owner in
            // 1. Under `lock`: what to unmap. The owner's gate keeps it so until 3.
            let plan = try locked { () throws -> UnmapPlan in
                journal?.stateUnchanged = true  // mappings only: the journal records them one by one
                return try unmapPlan(caller, params, owner)
            }
            let ioas: IOASRecord, iova: UInt64, length: UInt64, inside: [MappingIndex.Entry], all: Bool
            switch plan {
            case .done(let result): return result
            case .unmap(let i, let v, let l, let e, let a): (ioas, iova, length, inside, all) = (i, v, l, e, a)
            }
            // 2. Under the owner's gate only: the backend call.
            let unmapped = backendUnmap(ioas, iova: iova, length: length, all: all)
            // 3. Under `lock`: forget and refund what the kernel unmapped.
            return try locked {
                journal?.stateUnchanged = true
                return try finishUnmap(ioas, inside: inside, all: all, unmapped, owner)
            }
        }
    }

    enum UnmapPlan {
        case done(IOASUnmapResult)
        case unmap(IOASRecord, iova: UInt64, length: UInt64, inside: [MappingIndex.Entry], all: Bool)
    }

    /// Phase 1 of `ioas.unmap` (under `lock`): the checks, and the mappings to unmap.
    func unmapPlan(_ caller: Caller, _ params: IOASUnmapParams, _ owner: OwnerRecord) throws -> UnmapPlan {
        try unmapPlan(try ioas(caller, params.ioas, write: "ioas.unmap"), params, owner)
    }

    /// `unmapPlan` for an IOAS of `owner` the caller was found to be allowed to change.
    func unmapPlan(_ ioas: IOASRecord, _ params: IOASUnmapParams, _ owner: OwnerRecord) throws -> UnmapPlan {
        var inside: [MappingIndex.Entry] = []
        guard let range = try unmapChecks(ioas, params, owner, appendingTo: &inside) else {
            return .done(IOASUnmapResult(ioas: ioas.id, unmappedBytes: 0, mappings: 0, ownerPinnedBytes: owner.pinnedBytes))
        }
        return .unmap(ioas, iova: range.iova, length: range.length, inside: inside, all: range.all)
    }

    /// The checks of an unmap of `ioas` (under `lock`): appends the mappings it unmaps to
    /// `inside` and returns the range for the backend, or nil when there is nothing to unmap
    /// (a 0-byte success); throws what `ioas.unmap` refuses. `inside` is left as it was unless
    /// it returns a range. (A batch collects every entry's mappings in one array this way.)
    func unmapChecks(
        _ ioas: IOASRecord, _ params: IOASUnmapParams, _ owner: OwnerRecord, appendingTo inside: inout [MappingIndex.Entry]
    ) throws -> (iova: UInt64, length: UInt64, all: Bool)? {
        if params.all == true {
            if ioas.mappings.isEmpty { return nil }
            let all = ioas.mappings.all
            try checkNoHWQueuePin(ioas, all)  // hwqueue3
            inside.append(contentsOf: all)
            return (0, .max, true)
        }
        guard let iova = params.iova, let length = params.length else {
            throw BrokerError.invalid("ioas.unmap needs 'iova' and 'length', or 'all': true")
        }
        let last = try Self.checkRange(iova: iova, length: length, alignment: Self.pageSize, "ioas.unmap")
        let start = inside.count
        if let before = ioas.mappings.unmapLookup(from: iova, through: last, appendingTo: &inside) {
            throw BrokerError.invalid("ioas.unmap: [\(Self.hex(iova)), \(Self.hex(last))] cuts the mapping at \(Self.hex(before.key)) (length \(Self.hex(before.value.length))); mappings are unmapped whole")
        }
        if inside.count > start, let tail = inside.last, tail.key &+ (tail.value.length - 1) > last {
            inside.removeSubrange(start...)
            throw BrokerError.invalid("ioas.unmap: [\(Self.hex(iova)), \(Self.hex(last))] cuts the mapping at \(Self.hex(tail.key)) (length \(Self.hex(tail.value.length))); mappings are unmapped whole")
        }
        if inside.count == start {
            if params.tolerateMissing ?? owner.policy.tolerateMissing { return nil }
            throw BrokerError.notFound("IOAS \(ioas.id) has no mapping in [\(Self.hex(iova)), \(Self.hex(last))]; with tolerate_missing (per request or owner policy) this is a 0-byte success")
        }
        do {
            try checkNoHWQueuePin(ioas, inside[start...])  // hwqueue3
        } catch {
            inside.removeSubrange(start...)
            throw error
        }
        return (iova, length, false)
    }

    /// Unmaps every mapping of `ioas` in the kernel and the records; returns the bytes.
    @discardableResult
    func unmapAll(_ ioas: IOASRecord) throws -> UInt64 {
        guard !ioas.mappings.isEmpty else { return 0 }
        _ = try kcall("unmapping everything of IOAS \(ioas.id)") { try backend.unmap(ioas: ioas.id, iova: 0, length: .max) }
        return forget(ioas.mappings.all, of: ioas, all: true)
    }

    func destroyIOAS(_ ioas: IOASRecord) throws {
        try kcall("destroying IOAS \(ioas.id)") { try backend.destroy(ioas.id) }
        _ = forget(ioas.mappings.all, of: ioas, all: true)  // the kernel dropped them with the IOAS
        ioasTable[ioas.id] = nil
        owners[ioas.owner]?.ioas.remove(ioas.id)
        for (key, _) in nestParents where key.ioas == ioas.id { nestParents[key] = nil }
        emit(.objectDestroyed(owner: ioas.owner, kind: .ioas, id: ioas.id))
    }

    /// `ioas.copy`: maps the pages behind `[src_iova, +length)` of one IOAS into another of the
    /// same owner. The copy counts against the owner's quota like any mapping (an upper bound:
    /// the kernel pins shared pages once).
    public func ioasCopy(_ caller: Caller, _ params: IOASCopyParams) throws -> IOASCopyResult {
        let last = try Self.checkRange(iova: params.srcIOVA, length: params.length, alignment: Self.pageSize, "ioas.copy")
        if let dst = params.dstIOVA { try Self.checkRange(iova: dst, length: params.length, alignment: Self.pageSize, "ioas.copy destination") }
        let flags = try Self.mapFlags(readable: params.readable, writeable: params.writeable)
        var kernelFlags = flags
        if params.dstIOVA != nil { kernelFlags.insert(.fixedIOVA) }
        return try serialized({ try ownerOfIOAS(caller, params.dstIOAS, write: "ioas.copy") }) { owner in
            // 1. Under `lock`: check, reserve the quota.
            let (src, dst) = try locked { () throws -> (IOASRecord, IOASRecord) in
                journal?.stateUnchanged = true  // mappings only: the journal records them one by one
                let src = try self.ioas(caller, params.srcIOAS, write: "ioas.copy")
                let dst = try self.ioas(caller, params.dstIOAS, write: "ioas.copy")
                guard src.owner == dst.owner, dst.owner == owner.name else {
                    throw BrokerError.invalid("ioas.copy: IOAS \(src.id) and IOAS \(dst.id) belong to different owners; copies stay within one owner")
                }
                let covered = src.mappings.floor(params.srcIOVA).map { $0.key &+ ($0.value.length - 1) >= params.srcIOVA } ?? false
                guard covered || src.mappings[params.srcIOVA] != nil || !src.mappings.entries(from: params.srcIOVA, through: last).isEmpty else {
                    throw BrokerError.notFound("ioas.copy: IOAS \(src.id) has nothing mapped at \(Self.hex(params.srcIOVA)); copy from mapped IOVA")
                }
                try refuseDmabufCopy(src, srcIOVA: params.srcIOVA, last: last)  // MARK: p2p
                try reserve(owner, params.length)
                return (src, dst)
            }
            // 2. Under the owner's gate only: the backend call, which may pin the pages.
            let copied = Result {
                try kcall("copying [\(Self.hex(params.srcIOVA)), \(Self.hex(last))] of IOAS \(src.id) into IOAS \(dst.id)") {
                    try backend.copy(dst: dst.id, src: src.id, srcIOVA: params.srcIOVA, length: params.length, dstIOVA: params.dstIOVA ?? 0, flags: kernelFlags)
                }
            }
            // 3. Under `lock`: record and journal the mapping, or give back the reservation.
            return try locked {
                journal?.stateUnchanged = true
                owner.reservedBytes -= params.length
                let iova = try copied.get()
                let mapping = MappingRecord(length: params.length, charged: params.length, backing: .copy, flags: flags)
                guard ioasTable[dst.id] === dst, dst.mappings.insert(mapping, at: iova) else {
                    _ = try? backend.unmap(ioas: dst.id, iova: iova, length: params.length)
                    throw BrokerError(.conflict, "IOAS \(dst.id) already has a mapping at \(Self.hex(iova)) in the daemon's records; the copy was undone")
                }
                owner.pinnedBytes += params.length
                dst.pinnedBytes += params.length
                journal?.mapped(ioas: dst.id, iova: iova, mapping, offset: 0)
                return IOASCopyResult(dstIOAS: dst.id, dstIOVA: iova, length: params.length, ownerPinnedBytes: owner.pinnedBytes)
            }
        }
    }

    /// `ioas.ranges`: the usable IOVA ranges and the alignment (`IOMMU_IOAS_IOVA_RANGES`).
    public func ioasRanges(_ caller: Caller, _ params: IOASRangesParams) throws -> IOASRangesResult {
        try reading {
            let ioas = try ioas(caller, params.ioas)
            var capacity: UInt32 = 16
            while true {
                do {
                    let answer = try backend.iovaRanges(ioas: ioas.id, capacity: capacity)
                    return IOASRangesResult(ioas: ioas.id, ranges: answer.ranges, alignment: answer.alignment)
                } catch let error as IommuError where error.errno == .EMSGSIZE && (error.requiredCount ?? 0) > capacity {
                    capacity = error.requiredCount ?? capacity
                } catch let error as IommuError {
                    throw BrokerError.kernel(error, "reading the IOVA ranges of IOAS \(ioas.id)")
                }
            }
        }
    }

    /// `ioas.set_option`: huge IOPTEs on or off. The kernel refuses changes it cannot apply
    /// (with domains attached) with its errno.
    public func ioasSetOption(_ caller: Caller, _ params: IOASSetOptionParams) throws -> IOASSetOptionResult {
        try locked {
            let ioas = try ioas(caller, params.ioas, write: "ioas.set_option")
            try kcall("setting huge_pages=\(params.hugePages) on IOAS \(ioas.id)") {
                try backend.setOption(.hugePages, objectID: ioas.id, value: params.hugePages ? 1 : 0)
            }
            ioas.hugePages = params.hugePages
            return IOASSetOptionResult(ioas: ioas.id, hugePages: params.hugePages)
        }
    }
}
