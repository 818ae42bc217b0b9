#if canImport(Glibc)
import Glibc
#endif
import IommufdCore

// MARK: chnested

/// Typed calls of the nested-translation ops and QUEUE_FD (docs/vmm-channel.md).
extension ChannelClient {
    /// NESTED_ALLOC: the new HWPT and its nest parent (stage 2).
    public func nestedAlloc(parent: UInt32, dataType: UInt32, device: String, data: [UInt8], faultQueue: UInt32 = 0) throws -> (hwpt: UInt32, nestParent: UInt32) {
        var w = ChannelWire.Writer()
        w.u32(parent); w.u32(faultQueue); w.u32(dataType); w.u32(UInt32(data.count))
        w.fixed(device, ChannelWire.deviceNameBytes)
        w.bytes += data
        let r = try call(.nestedAlloc, w.bytes)
        return r.payload.withUnsafeBytes { b in var rd = ChannelWire.Reader(b); return (rd.u32(), rd.u32()) }
    }

    /// NESTED_ALLOC with selftest data (`struct iommu_hwpt_selftest`: iotlb, pagetable_type 0).
    public func nestedAllocSelftest(parent: UInt32, device: String, iotlb: UInt32) throws -> UInt32 {
        var d = ChannelWire.Writer()
        d.u32(iotlb); d.u32(0)
        return try nestedAlloc(parent: parent, dataType: HWPTDataType.selftest, device: device, data: d.bytes).hwpt
    }

    /// REPLACE: the page table the device is on now, and the one it left.
    public func replace(device: String, pt: UInt32) throws -> (pt: UInt32, previous: UInt32) {
        var w = ChannelWire.Writer()
        w.u32(pt); w.u32(0)
        w.fixed(device, ChannelWire.deviceNameBytes)
        let r = try call(.replace, w.bytes)
        return r.payload.withUnsafeBytes { b in var rd = ChannelWire.Reader(b); return (rd.u32(), rd.u32()) }
    }

    public func hwptDestroy(_ hwpt: UInt32) throws {
        var w = ChannelWire.Writer()
        w.u32(hwpt); w.u32(0)
        _ = try call(.hwptDestroy, w.bytes)
    }

    /// An INVALIDATE answer: entries requested and done; `errno` is why entry `done` was
    /// refused when it is less than `requested` (0 otherwise).
    public struct InvalidateReply: Sendable, Hashable {
        public var requested: UInt32
        public var done: UInt32
        public var errno: Int32
        public init(requested: UInt32, done: UInt32, errno: Int32) {
            self.requested = requested
            self.done = done
            self.errno = errno
        }
    }

    /// The INVALIDATE request message (header included) for `entries` (count × entryLength).
    public static func invalidateMessage(id: UInt64, target: UInt32, dataType: UInt32, entryLength: UInt32, entries: [UInt8]) -> [UInt8] {
        ChannelWire.encode(id: id, .invalidate(.init(
            target: target, dataType: dataType, entryLength: entryLength,
            entryCount: entryLength == 0 ? 0 : UInt32(entries.count) / entryLength, entries: entries)))
    }

    public func invalidate(target: UInt32, dataType: UInt32, entryLength: UInt32, entries: [UInt8]) throws -> InvalidateReply {
        var w = ChannelWire.Writer()
        w.u32(target); w.u32(dataType); w.u32(entryLength); w.u32(entryLength == 0 ? 0 : UInt32(entries.count) / entryLength)
        w.bytes += entries
        let r = try call(.invalidate, w.bytes)
        return r.payload.withUnsafeBytes { b in
            var rd = ChannelWire.Reader(b)
            return InvalidateReply(requested: rd.u32(), done: rd.u32(), errno: rd.i32())
        }
    }

    /// Selftest nested-HWPT entries (`struct iommu_hwpt_invalidate_selftest`): (flags, iotlb_id).
    public static func selftestHWPTEntries(_ entries: [(flags: UInt32, iotlbID: UInt32)]) -> [UInt8] {
        var w = ChannelWire.Writer()
        for e in entries { w.u32(e.flags); w.u32(e.iotlbID) }
        return w.bytes
    }

    /// Selftest vIOMMU entries (`struct iommu_viommu_invalidate_selftest`).
    public static func selftestVIOMMUEntries(_ entries: [(flags: UInt32, vdevID: UInt32, cacheID: UInt32)]) -> [UInt8] {
        var w = ChannelWire.Writer()
        for e in entries { w.u32(e.flags); w.u32(e.vdevID); w.u32(e.cacheID) }
        return w.bytes
    }

    /// QUEUE_FD: the queue, its kind (1 fault queue, 2 vEVENTQ) and the relay fd (the caller
    /// owns it).
    public func queueFD(_ queue: UInt32) throws -> (queue: UInt32, kind: UInt32, fd: Int32?) {
        var w = ChannelWire.Writer()
        w.u32(queue); w.u32(0)
        let r = try call(.queueFD, w.bytes)
        let (q, k) = r.payload.withUnsafeBytes { b in var rd = ChannelWire.Reader(b); return (rd.u32(), rd.u32()) }
        return (q, k, r.fd)
    }
}
