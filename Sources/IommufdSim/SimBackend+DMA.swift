import Foundation
import IommufdCore

/// Why a simulated DMA did not reach memory: what a DMAR/SMMU fault record would say.
public struct SimDMAFault: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: String, Hashable, Sendable {
        /// The device is not bound (no such device ID).
        case unknownDevice = "unknown device"
        /// The device is bound but attached to no page table: DMA is blocked.
        case notAttached = "device not attached (DMA blocked)"
        /// No mapping translates this IOVA.
        case notMapped = "IOVA not mapped"
        /// The mapping is not writeable (write) or not readable (read).
        case notWriteable = "write to a read-only mapping"
        case notReadable = "read from a write-only mapping"
        /// The memory behind the mapping could not be accessed (I/O error on the file).
        case memoryError = "memory behind the mapping is not accessible"
    }
    public var reason: Reason
    public var deviceID: ObjectID
    /// The first IOVA that faulted.
    public var iova: UInt64
    public var write: Bool

    public var description: String {
        "simulated DMA fault: device \(deviceID) \(write ? "write" : "read") at IOVA 0x\(String(iova, radix: 16)): \(reason.rawValue)"
    }
}

/// The simulator's data path: a device's DMA, translated through the page table it is
/// attached to, lands in (or is read from) the memory behind the mapping.
extension SimBackend {
    /// The device writes `bytes` at `iova`. Marks the IOPTEs dirty when the HWPT tracks dirty
    /// pages. Throws `SimDMAFault` (and writes nothing) when any byte does not translate.
    public func simulateDMA(deviceID: ObjectID, iova: UInt64, write bytes: [UInt8]) throws(SimDMAFault) {
        lock.lock()
        defer { lock.unlock() }
        let (table, hwpt) = try translationTable(deviceID, iova: iova, write: true)
        let pieces = try translate(table, deviceID: deviceID, iova: iova, length: UInt64(bytes.count), write: true)
        var consumed = 0
        for piece in pieces {
            let count = Int(piece.length)
            let ok = bytes.withUnsafeBytes { raw in
                transfer(piece, buffer: UnsafeMutableRawPointer(mutating: raw.baseAddress! + consumed), count: count, write: true)
            }
            if !ok { throw SimDMAFault(reason: .memoryError, deviceID: deviceID, iova: piece.iova, write: true) }
            consumed += count
        }
        if let hwpt, hwpt.dirtyTrackingEnabled, !bytes.isEmpty {
            markDirty(hwpt, table, iova: iova, last: iova + UInt64(bytes.count) - 1)
        }
    }

    /// The device reads `length` bytes at `iova`.
    public func simulateDMA(deviceID: ObjectID, iova: UInt64, readLength length: Int) throws(SimDMAFault) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        let (table, _) = try translationTable(deviceID, iova: iova, write: false)
        let pieces = try translate(table, deviceID: deviceID, iova: iova, length: UInt64(max(0, length)), write: false)
        var result = [UInt8](repeating: 0, count: max(0, length))
        var filled = 0
        for piece in pieces {
            let count = Int(piece.length)
            let ok = result.withUnsafeMutableBytes { raw in
                transfer(piece, buffer: raw.baseAddress! + filled, count: count, write: false)
            }
            if !ok { throw SimDMAFault(reason: .memoryError, deviceID: deviceID, iova: piece.iova, write: false) }
            filled += count
        }
        return result
    }

    private struct Piece {
        var iova: UInt64
        var length: UInt64
        var pages: SimPages
        var offset: UInt64
    }

    /// The IOAS page table the device translates through, and its HWPT (nil for an access).
    private func translationTable(_ deviceID: ObjectID, iova: UInt64, write: Bool) throws(SimDMAFault) -> (IOPageTable, SimHWPT?) {
        guard case .device(let device) = objects[deviceID] else {
            throw SimDMAFault(reason: .unknownDevice, deviceID: deviceID, iova: iova, write: write)
        }
        guard let attached = device.attached else {
            throw SimDMAFault(reason: .notAttached, deviceID: deviceID, iova: iova, write: write)
        }
        switch objects[attached] {
        case .hwpt(let hwpt):
            guard case .ioas(let ioas) = objects[hwpt.ioas] else { break }
            return (ioas.table, hwpt)
        case .ioas(let ioas):
            return (ioas.table, nil)
        default:
            break
        }
        throw SimDMAFault(reason: .notAttached, deviceID: deviceID, iova: iova, write: write)
    }

    private func translate(_ table: IOPageTable, deviceID: ObjectID, iova: UInt64, length: UInt64, write: Bool) throws(SimDMAFault) -> [Piece] {
        var pieces: [Piece] = []
        var cursor = iova
        var remaining = length
        while remaining > 0 {
            guard let area = table.area(containing: cursor) else {
                throw SimDMAFault(reason: .notMapped, deviceID: deviceID, iova: cursor, write: write)
            }
            // iopt_revoke_notify unmapped a revoked dma-buf's IOPTEs from every domain.
            if area.pages.dmabuf?.revoked == true {
                throw SimDMAFault(reason: .notMapped, deviceID: deviceID, iova: cursor, write: write)
            }
            if write && !area.writeable { throw SimDMAFault(reason: .notWriteable, deviceID: deviceID, iova: cursor, write: write) }
            if !write && !area.readable { throw SimDMAFault(reason: .notReadable, deviceID: deviceID, iova: cursor, write: write) }
            let chunk = min(remaining, area.last - cursor + 1)
            pieces.append(Piece(iova: cursor, length: chunk, pages: area.pages, offset: cursor - area.iova))
            remaining -= chunk
            if remaining == 0 { break }
            let (next, overflow) = cursor.addingReportingOverflow(chunk)
            if overflow { throw SimDMAFault(reason: .notMapped, deviceID: deviceID, iova: cursor, write: write) }
            cursor = next
        }
        return pieces
    }

    /// Copies between `buffer` and the memory behind `piece`: pwrite/pread on our dup of the
    /// file, or this process's own memory for a user-address mapping.
    private func transfer(_ piece: Piece, buffer: UnsafeMutableRawPointer, count: Int, write: Bool) -> Bool {
        switch piece.pages.backing {
        case .file(let file, let fileOffset):
            let fd = file.fd
            var done = 0
            while done < count {
                let offset = off_t(Int64(bitPattern: fileOffset &+ piece.offset &+ UInt64(done)))
                let rc = write
                    ? pwrite(fd, buffer + done, count - done, offset)
                    : pread(fd, buffer + done, count - done, offset)
                if rc < 0 && errno == EINTR { continue }
                if rc <= 0 {
                    if !write && rc == 0 {
                        // Past the end of the file reads as zeros, as a fresh page would.
                        (buffer + done).initializeMemory(as: UInt8.self, repeating: 0, count: count - done)
                        return true
                    }
                    return false
                }
                done += rc
            }
            return true
        case .user(let address):
            guard let target = UnsafeMutableRawPointer(bitPattern: UInt(address &+ piece.offset)) else { return false }
            if write {
                target.copyMemory(from: buffer, byteCount: count)
            } else {
                buffer.copyMemory(from: target, byteCount: count)
            }
            return true
        }
    }
}
