import IommufdCore

// MARK: pasidch

/// Typed calls of the PASID ops (docs/vmm-channel.md, "PASID attachments (ops 16-18)").
extension ChannelClient {
    /// The answer of PASID_ATTACH, PASID_REPLACE and PASID_DETACH.
    public struct PASIDReply: Sendable, Hashable {
        public var deviceID: UInt32
        public var pasid: UInt32
        /// The HWPT the PASID is on now (0 after PASID_DETACH).
        public var hwpt: UInt32
        /// The HWPT it left (0 after PASID_ATTACH).
        public var previous: UInt32
        public init(deviceID: UInt32, pasid: UInt32, hwpt: UInt32, previous: UInt32) {
            self.deviceID = deviceID
            self.pasid = pasid
            self.hwpt = hwpt
            self.previous = previous
        }
    }

    /// PASID_ATTACH: `pasid` of `device` onto `hwpt` (an HWPT of the owner allocated with `pasid`).
    public func pasidAttach(device: String, pasid: UInt32, hwpt: UInt32) throws -> PASIDReply {
        try pasidCall(.pasidAttach(.init(device: device, pasid: pasid, hwpt: hwpt)))
    }

    /// PASID_REPLACE: an attached `pasid` of `device` moved onto `hwpt` without a window of
    /// blocked DMA.
    public func pasidReplace(device: String, pasid: UInt32, hwpt: UInt32) throws -> PASIDReply {
        try pasidCall(.pasidReplace(.init(device: device, pasid: pasid, hwpt: hwpt)))
    }

    /// PASID_DETACH: `pasid` of `device` detached (its DMA is blocked).
    public func pasidDetach(device: String, pasid: UInt32) throws -> PASIDReply {
        try pasidCall(.pasidDetach(.init(device: device, pasid: pasid)))
    }

    /// The 80-byte request payload of a PASID op.
    public static func pasidPayload(pasid: UInt32, hwpt: UInt32, reserved: UInt64 = 0, device: String) -> [UInt8] {
        var w = ChannelWire.Writer()
        w.u32(pasid); w.u32(hwpt); w.u64(reserved)
        w.fixed(device, ChannelWire.deviceNameBytes)
        return w.bytes
    }

    private func pasidCall(_ request: ChannelWire.Request) throws -> PASIDReply {
        var w = ChannelWire.Writer()
        let op = ChannelWire.encodePASID(request, into: &w)
        let r = try call(op, w.bytes)
        guard r.payload.count == ChannelWire.pasidResultBytes else {
            throw Closed(description: "a \(op.name) answer of \(r.payload.count) bytes, not \(ChannelWire.pasidResultBytes)")
        }
        return r.payload.withUnsafeBytes { b in
            var rd = ChannelWire.Reader(b)
            return PASIDReply(deviceID: rd.u32(), pasid: rd.u32(), hwpt: rd.u32(), previous: rd.u32())
        }
    }
}
