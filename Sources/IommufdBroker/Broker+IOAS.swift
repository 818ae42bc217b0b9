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
        try locked {
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
        }
    }

    /// `ioas.list`: summaries of the IOAS the caller may see.
    public func ioasList(_ caller: Caller, _ params: IOASListParams) throws -> IOASListResult {
        try locked {
            if let name = params.owner { _ = try readableOwner(caller, name) }
            let list = ioasTable.values
                .filter { (params.owner == nil || $0.owner == params.owner) && canSee(caller, owner: $0.owner) }
                .sorted { $0.id < $1.id }
                .map { ioasInfo($0, maxMappings: 0) }
            return IOASListResult(ioas: list)
        }
    }

    /// `ioas.info`: mappings (the first `max_mappings`, in IOVA order), HWPTs, devices, pinned bytes.
    public func ioasInfo(_ caller: Caller, _ params: IOASInfoParams) throws -> IOASInfo {
        try locked { ioasInfo(try ioas(caller, params.ioas), maxMappings: max(0, params.maxMappings ?? 1000)) }
    }

    func ioasInfo(_ ioas: IOASRecord, maxMappings: Int) -> IOASInfo {
        let mappings = ioas.mappings.prefix(maxMappings).map {
            MappingInfo(iova: $0.key, length: $0.value.length, readable: $0.value.flags.contains(.readable), writeable: $0.value.flags.contains(.writeable), source: $0.value.sourceName)
        }
        var devs = ioas.directDevices
        for id in ioas.hwpts { devs.formUnion(hwptTable[id]?.devices ?? []) }
        return IOASInfo(
            ioas: ioas.id, owner: ioas.owner, hugePages: ioas.hugePages, mappingCount: ioas.mappings.count,
            mappings: mappings, pinnedBytes: ioas.pinnedBytes, hwpts: ioas.hwpts.sorted(), devices: devs.sorted(),
            dirtyTracking: ioas.dirtyEnabled)
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

    func charge(_ owner: OwnerRecord, _ bytes: UInt64) throws {
        let (total, overflow) = owner.pinnedBytes.addingReportingOverflow(bytes)
        if let quota = owner.quotaBytes, overflow || total > quota {
            throw BrokerError(.quotaExceeded, "pinned-memory quota of owner '\(owner.name)' exceeded: \(owner.pinnedBytes) bytes used + \(bytes) requested > limit \(quota) (quota_bytes of identity '\(owner.identity)'); unmap memory or raise the quota in the config")
        }
    }

    // MARK: Map / unmap / copy

    /// `ioas.map`: maps `[offset, offset+length)` of the memory file `fd` (the caller's fd,
    /// resolved from `params.fd`; the broker keeps its own duplicate while mapped) at
    /// `params.iova`, or where the kernel chooses. Uses `IOMMU_IOAS_MAP_FILE` where the kernel
    /// has it, else maps the file into the daemon and uses `IOMMU_IOAS_MAP`.
    public func ioasMap(_ caller: Caller, _ params: IOASMapParams, fd: Int32) throws -> IOASMapResult {
        let page = Self.pageSize
        try Self.checkRange(iova: params.iova ?? 0, length: params.length, alignment: page, "ioas.map")
        guard params.offset % page == 0 else {
            throw BrokerError.invalid("ioas.map: offset \(Self.hex(params.offset)) must be a multiple of the page size \(Self.hex(page))")
        }
        let flags = try Self.mapFlags(readable: params.readable, writeable: params.writeable)
        return try locked {
            journal?.stateUnchanged = true  // mappings only: the journal records them one by one
            let ioas = try ioas(caller, params.ioas, write: "ioas.map")
            guard let owner = owners[ioas.owner] else { throw BrokerError.notFound("owner of IOAS \(ioas.id) is gone") }
            try charge(owner, params.length)
            let (key, heldFD) = try files.retain(fd: fd, offset: params.offset, length: params.length)
            var kernelFlags = flags
            if params.iova != nil { kernelFlags.insert(.fixedIOVA) }
            let backing: MappingRecord.Backing
            let source: MemorySource
            if backend.features.contains(.ioasMapFile) {
                backing = .file(key)
                source = .file(fd: heldFD, offset: params.offset)
            } else {
                let address: UInt64
                do {
                    address = try mapShared(fd: heldFD, offset: params.offset, length: params.length, writable: flags.contains(.writeable))
                } catch {
                    files.release(key)
                    throw error
                }
                backing = .mmap(key, address: address)
                source = .userAddress(address)
            }
            let iova: UInt64
            do {
                iova = try kcall("mapping \(Self.hex(params.length)) bytes into IOAS \(ioas.id)") {
                    try backend.map(ioas: ioas.id, source: source, length: params.length, iova: params.iova ?? 0, flags: kernelFlags)
                }
            } catch {
                release(backing, length: params.length)
                throw error
            }
            let mapping = MappingRecord(length: params.length, charged: params.length, backing: backing, flags: flags)
            guard ioas.mappings.insert(mapping, at: iova) else {
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
        }
    }

    /// Forgets the mappings `entries` of `ioas` (already unmapped in the kernel) and refunds them.
    /// `all` says `entries` is every mapping: the index is then dropped at once, not entry by entry.
    private func forget(_ entries: [IOVAIndex<MappingRecord>.Entry], of ioas: IOASRecord, all: Bool = false) -> UInt64 {
        var bytes: UInt64 = 0
        if all {
            ioas.mappings = IOVAIndex()
            journal?.cleared(ioas: ioas.id)
        }
        for entry in entries {
            if !all {
                ioas.mappings.remove(at: entry.key)
                journal?.unmapped(ioas: ioas.id, iova: entry.key)
            }
            release(entry.value.backing, length: entry.value.length)
            ioas.pinnedBytes -= entry.value.charged
            owners[ioas.owner]?.pinnedBytes -= entry.value.charged
            bytes += entry.value.length
        }
        return bytes
    }

    /// `ioas.unmap`: removes whole mappings. A range that would cut a mapping is refused before
    /// anything is unmapped (the kernel would unmap the mappings before the cut and then fail).
    /// A range with no mapping is NotFound, or a 0-byte success under `tolerate_missing`.
    public func ioasUnmap(_ caller: Caller, _ params: IOASUnmapParams) throws -> IOASUnmapResult {
        try locked {
            journal?.stateUnchanged = true  // mappings only: the journal records them one by one
            let ioas = try ioas(caller, params.ioas, write: "ioas.unmap")
            guard let owner = owners[ioas.owner] else { throw BrokerError.notFound("owner of IOAS \(ioas.id) is gone") }
            let tolerate = params.tolerateMissing ?? owner.policy.tolerateMissing
            if params.all == true {
                let count = ioas.mappings.count
                let bytes = try unmapAll(ioas)
                return IOASUnmapResult(ioas: ioas.id, unmappedBytes: bytes, mappings: count, ownerPinnedBytes: owner.pinnedBytes)
            }
            guard let iova = params.iova, let length = params.length else {
                throw BrokerError.invalid("ioas.unmap needs 'iova' and 'length', or 'all': true")
            }
            let last = try Self.checkRange(iova: iova, length: length, alignment: Self.pageSize, "ioas.unmap")
            if let before = ioas.mappings.floor(iova), before.key < iova, before.key &+ (before.value.length - 1) >= iova {
                throw BrokerError.invalid("ioas.unmap: [\(Self.hex(iova)), \(Self.hex(last))] cuts the mapping at \(Self.hex(before.key)) (length \(Self.hex(before.value.length))); mappings are unmapped whole")
            }
            let inside = ioas.mappings.entries(from: iova, through: last)
            if let tail = inside.last, tail.key &+ (tail.value.length - 1) > last {
                throw BrokerError.invalid("ioas.unmap: [\(Self.hex(iova)), \(Self.hex(last))] cuts the mapping at \(Self.hex(tail.key)) (length \(Self.hex(tail.value.length))); mappings are unmapped whole")
            }
            if inside.isEmpty {
                if tolerate {
                    return IOASUnmapResult(ioas: ioas.id, unmappedBytes: 0, mappings: 0, ownerPinnedBytes: owner.pinnedBytes)
                }
                throw BrokerError.notFound("IOAS \(ioas.id) has no mapping in [\(Self.hex(iova)), \(Self.hex(last))]; with tolerate_missing (per request or owner policy) this is a 0-byte success")
            }
            let unmapped = try kcall("unmapping [\(Self.hex(iova)), \(Self.hex(last))] of IOAS \(ioas.id)") {
                try backend.unmap(ioas: ioas.id, iova: iova, length: length)
            }
            let bytes = forget(inside, of: ioas)
            if unmapped != bytes {
                logger.warning("kernel and records disagree on unmapped bytes", metadata: ["ioas": "\(ioas.id)", "kernel": "\(unmapped)", "records": "\(bytes)"])
            }
            return IOASUnmapResult(ioas: ioas.id, unmappedBytes: unmapped, mappings: inside.count, ownerPinnedBytes: owner.pinnedBytes)
        }
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
        return try locked {
            journal?.stateUnchanged = true  // mappings only: the journal records them one by one
            let src = try ioas(caller, params.srcIOAS, write: "ioas.copy")
            let dst = try ioas(caller, params.dstIOAS, write: "ioas.copy")
            guard src.owner == dst.owner, let owner = owners[dst.owner] else {
                throw BrokerError.invalid("ioas.copy: IOAS \(src.id) and IOAS \(dst.id) belong to different owners; copies stay within one owner")
            }
            let covered = src.mappings.floor(params.srcIOVA).map { $0.key &+ ($0.value.length - 1) >= params.srcIOVA } ?? false
            guard covered || src.mappings[params.srcIOVA] != nil || !src.mappings.entries(from: params.srcIOVA, through: last).isEmpty else {
                throw BrokerError.notFound("ioas.copy: IOAS \(src.id) has nothing mapped at \(Self.hex(params.srcIOVA)); copy from mapped IOVA")
            }
            try charge(owner, params.length)
            var kernelFlags = flags
            if params.dstIOVA != nil { kernelFlags.insert(.fixedIOVA) }
            let iova = try kcall("copying [\(Self.hex(params.srcIOVA)), \(Self.hex(last))] of IOAS \(src.id) into IOAS \(dst.id)") {
                try backend.copy(dst: dst.id, src: src.id, srcIOVA: params.srcIOVA, length: params.length, dstIOVA: params.dstIOVA ?? 0, flags: kernelFlags)
            }
            let mapping = MappingRecord(length: params.length, charged: params.length, backing: .copy, flags: flags)
            guard dst.mappings.insert(mapping, at: iova) else {
                _ = try? backend.unmap(ioas: dst.id, iova: iova, length: params.length)
                throw BrokerError(.conflict, "IOAS \(dst.id) already has a mapping at \(Self.hex(iova)) in the daemon's records; the copy was undone")
            }
            owner.pinnedBytes += params.length
            dst.pinnedBytes += params.length
            journal?.mapped(ioas: dst.id, iova: iova, mapping, offset: 0)
            return IOASCopyResult(dstIOAS: dst.id, dstIOVA: iova, length: params.length, ownerPinnedBytes: owner.pinnedBytes)
        }
    }

    /// `ioas.ranges`: the usable IOVA ranges and the alignment (`IOMMU_IOAS_IOVA_RANGES`).
    public func ioasRanges(_ caller: Caller, _ params: IOASRangesParams) throws -> IOASRangesResult {
        try locked {
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
