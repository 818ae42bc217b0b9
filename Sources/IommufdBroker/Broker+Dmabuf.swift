#if canImport(Glibc)
import Glibc
#endif
import IommufdCore
import IommufdContract

// MARK: p2p

/// The dma-bufs behind mappings: the broker's own dup of each (one per dma-buf, by
/// `(st_dev, st_ino)`, reference counted), kept in systemd's fd store under the same name
/// scheme as memory files (`mem.<dev>.<ino>`) so a restarted daemon finds it. The kernel holds
/// its own reference to the dma-buf for as long as a mapping exists; the dup is what lets the
/// daemon check, after a restart too, whether the exporter has revoked it.
struct DmabufFileTable {
    private(set) var files: [MemoryFileTable.Key: (fd: Int32, references: Int)] = [:]
    var store: (any FileDescriptorStore)?

    mutating func retain(fd: Int32) throws -> (MemoryFileTable.Key, Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let err = Errno.current
            throw BrokerError.invalid("the dma-buf fd sent cannot be used: fstat failed with \(err.name) (\(err.message))")
        }
        let key = MemoryFileTable.Key(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        if let file = files[key] {
            files[key] = (file.fd, file.references + 1)
            return (key, file.fd)
        }
        let dup = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard dup >= 0 else {
            let err = Errno.current
            throw BrokerError(.io, "could not keep a reference to the dma-buf fd: dup failed with \(err.name) (\(err.message)); the daemon may be out of file descriptors (LimitNOFILE)")
        }
        files[key] = (dup, 1)
        store?.store(dup, name: StoredFDName.memory(device: key.device, inode: key.inode))
        return (key, dup)
    }

    mutating func release(_ key: MemoryFileTable.Key) {
        guard let file = files[key] else { return }
        if file.references <= 1 {
            store?.remove(name: StoredFDName.memory(device: key.device, inode: key.inode))
            close(file.fd)
            files[key] = nil
        } else {
            files[key] = (file.fd, file.references - 1)
        }
    }

    func fd(for key: MemoryFileTable.Key) -> Int32? { files[key]?.fd }

    /// One more reference on a dma-buf adopted from the fd store after a restart.
    mutating func adopt(_ key: MemoryFileTable.Key, fd: Int32) {
        files[key, default: (fd, 0)].references += 1
    }
}

extension Broker {
    /// Whether `fd` is a dma-buf `ioas.map` would map as P2P memory (for the VMM channel's
    /// `MEM_REGISTER`, which otherwise takes regular files only).
    public func isDmabuf(_ fd: Int32) -> Bool {
        ((try? dmabufInfo(fd)) ?? nil) != nil
    }

    /// What the client's fd is to the backend: a dma-buf (mapped as P2P memory) or nil.
    func dmabufInfo(_ fd: Int32) throws -> DmabufInfo? {
        guard let backend = backend.dmabuf else { return nil }
        do {
            return try backend.dmabufInfo(fd: fd)
        } catch let error as IommuError {
            throw BrokerError.invalid("the fd sent for memory cannot be inspected: \(error.errno.name) (\(error.errno.message))\(error.detail.map { " [\($0)]" } ?? ""); pass an open memfd or dma-buf")
        }
    }

    /// `ioas.map` of a dma-buf: `IOMMU_IOAS_MAP_FILE` with the dma-buf fd (Linux >= 6.19). The
    /// exporter's memory is not pinned (`IOPT_PAGES_ACCOUNT_NONE`), so the mapping is charged
    /// nothing against the pinned-memory quota and counted in the owner's `p2p_bytes` instead.
    func ioasMapDmabuf(_ caller: Caller, _ params: IOASMapParams, fd: Int32, _ dmabuf: DmabufInfo) throws -> IOASMapResult {
        let page = Self.pageSize
        try Self.checkRange(iova: params.iova ?? 0, length: params.length, alignment: page, "ioas.map of a dma-buf")
        guard params.offset % page == 0 else {
            throw BrokerError.invalid("ioas.map: offset \(Self.hex(params.offset)) must be a multiple of the page size \(Self.hex(page))")
        }
        let (end, overflow) = params.offset.addingReportingOverflow(params.length)
        guard !overflow, end <= dmabuf.size else {
            throw BrokerError.invalid("ioas.map: offset \(Self.hex(params.offset)) + length \(Self.hex(params.length)) is beyond the end of the dma-buf (size \(Self.hex(dmabuf.size)), exporter '\(dmabuf.exporter)'); map less")
        }
        guard backend.features.contains(.dmabufMap) else {
            throw BrokerError(.unsupported, "the fd sent is a dma-buf (exporter '\(dmabuf.exporter)'), and this kernel's IOMMU_IOAS_MAP_FILE cannot map dma-bufs (Linux 6.19 or later can); map guest RAM from a memfd instead")
        }
        let flags = try Self.mapFlags(readable: params.readable, writeable: params.writeable)
        var kernelFlags = flags
        if params.iova != nil { kernelFlags.insert(.fixedIOVA) }
        return try serialized({ try ownerOfIOAS(caller, params.ioas, write: "ioas.map") }) { owner in
            let (ioas, key, heldFD) = try locked { () throws -> (IOASRecord, MemoryFileTable.Key, Int32) in
                journal?.stateUnchanged = true
                let ioas = try self.ioas(caller, params.ioas, write: "ioas.map")
                let (key, heldFD) = try dmabufFiles.retain(fd: fd)
                return (ioas, key, heldFD)
            }
            let mapped = Result { () throws -> UInt64 in
                do {
                    return try backend.map(ioas: ioas.id, source: .file(fd: heldFD, offset: params.offset), length: params.length, iova: params.iova ?? 0, flags: kernelFlags)
                } catch let error as IommuError where error.errno == .ENODEV {
                    throw BrokerError(.kernel, "mapping \(Self.hex(params.length)) bytes of a dma-buf (exporter '\(dmabuf.exporter)') into IOAS \(ioas.id) failed: IOMMU_IOAS_MAP_FILE returned ENODEV: its exporter has revoked the dma-buf (for a VFIO PCI BAR: the device was reset, its memory decoding disabled, or its fd closed); map it again once the exporter restores it", kernel: error)
                } catch let error as IommuError {
                    throw BrokerError.kernel(error, "mapping \(Self.hex(params.length)) bytes of a dma-buf (exporter '\(dmabuf.exporter)') into IOAS \(ioas.id)")
                }
            }
            return try locked {
                journal?.stateUnchanged = true
                let iova: UInt64
                do {
                    iova = try mapped.get()
                } catch {
                    dmabufFiles.release(key)
                    throw error
                }
                let mapping = MappingRecord(length: params.length, charged: 0, backing: .dmabuf(key), flags: flags)
                guard ioasTable[ioas.id] === ioas, ioas.mappings.insert(mapping, at: iova) else {
                    _ = try? backend.unmap(ioas: ioas.id, iova: iova, length: params.length)
                    dmabufFiles.release(key)
                    throw BrokerError(.conflict, "IOAS \(ioas.id) already has a mapping at \(Self.hex(iova)) in the daemon's records; the new mapping was undone")
                }
                owner.p2pBytes += params.length
                ioas.p2pBytes += params.length
                journal?.mapped(ioas: ioas.id, iova: iova, mapping, offset: params.offset)
                return IOASMapResult(ioas: ioas.id, iova: iova, length: params.length, ownerPinnedBytes: owner.pinnedBytes, ownerP2PBytes: owner.p2pBytes)
            }
        }
    }

    /// Takes a dma-buf mapping out of the P2P counts (under `lock`; `forget` does the rest).
    func forgetDmabufMapping(_ iova: UInt64, length: UInt64, of ioas: IOASRecord) {
        ioas.p2pBytes -= length
        owners[ioas.owner]?.p2pBytes -= length
        ioas.revokedMappings.remove(iova)
    }

    /// Asks the backend, once per dma-buf, whether the exporter revoked the dma-bufs behind
    /// `ioas`'s mappings not yet seen revoked; marks those mappings revoked and emits
    /// `event.dmabuf_revoked` for each (under `lock`). A revoked mapping stays revoked (the
    /// kernel never maps it again) until it is unmapped.
    func checkRevocations(_ ioas: IOASRecord) {
        guard ioas.p2pBytes > 0, let backend = backend.dmabuf else { return }
        var answers: [MemoryFileTable.Key: Bool] = [:]
        var newlyRevoked: [(UInt64, UInt64)] = []
        for entry in ioas.mappings.all {
            guard case .dmabuf(let key) = entry.value.backing, !ioas.revokedMappings.contains(entry.key) else { continue }
            let revoked: Bool
            if let known = answers[key] {
                revoked = known
            } else {
                guard let fd = dmabufFiles.fd(for: key) else { continue }
                do {
                    revoked = try backend.dmabufRevoked(fd: fd)
                } catch {
                    logger.warning("could not check a dma-buf for revocation", metadata: ["ioas": "\(ioas.id)", "error": "\(error)"])
                    revoked = false
                }
                answers[key] = revoked
            }
            if revoked { newlyRevoked.append((entry.key, entry.value.length)) }
        }
        for (iova, length) in newlyRevoked {
            ioas.revokedMappings.insert(iova)
            emit(.dmabufRevoked(owner: ioas.owner, ioas: ioas.id, iova: iova, length: length))
        }
    }

    /// `ioas.copy` of a range holding dma-buf mappings is refused: the copy would be P2P memory
    /// the records could not tell from pinned memory. Map the dma-buf into the other IOAS.
    func refuseDmabufCopy(_ src: IOASRecord, srcIOVA: UInt64, last: UInt64) throws {
        guard src.p2pBytes > 0 else { return }
        var entries = src.mappings.entries(from: srcIOVA, through: last)
        if let before = src.mappings.floor(srcIOVA), before.key < srcIOVA { entries.append(before) }
        if let hit = entries.first(where: { if case .dmabuf = $0.value.backing { true } else { false } }) {
            throw BrokerError(.unsupported, "ioas.copy: [\(Self.hex(srcIOVA)), \(Self.hex(last))] of IOAS \(src.id) includes the dma-buf mapping at \(Self.hex(hit.key)); copying P2P memory is not supported: map the dma-buf into the other IOAS with ioas.map")
        }
    }
}
