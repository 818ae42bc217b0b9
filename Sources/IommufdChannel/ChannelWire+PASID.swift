// MARK: pasidch

/// The channel ops of PASID attachments (docs/vmm-channel.md, "PASID attachments (ops 16-18)"),
/// version 1.2: what a VMM with a vIOMMU does when the guest changes an entry of a device's PASID
/// table — attach a PASID of a device to an HWPT (PASID_ATTACH), move it to another without a
/// window of blocked DMA (PASID_REPLACE), detach it (PASID_DETACH). Decoding only, as the rest of
/// `ChannelWire`: the checks of the device, the PASID and the HWPT are the broker's, those of
/// `device.attach_pasid`, `device.replace_pasid` and `device.detach_pasid`.
///
/// One 80-byte payload for the three ops (`pasid`):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | `pasid` (1 up to the device's width; 0 is the RID) |
/// | 4 | 4 | `hwpt`: an HWPT of the owner allocated with `pasid` (PASID_DETACH: 0) |
/// | 8 | 8 | reserved, 0 |
/// | 16 | 64 | the device name or PCI address, NUL-padded |
///
/// A nonzero reserved field (PASID_DETACH's `hwpt` included) is `InvalidParams` (`EINVAL`), as
/// the kernel answers a reserved field of its uAPI structs; a payload of another size is
/// `BadMessage`. The answer (`pasid_result`, 16 bytes): u32 device ID at 0, u32 pasid at 4, u32
/// the HWPT the PASID is on now at 8 (0 after PASID_DETACH), u32 the one it left at 12 (0 after
/// PASID_ATTACH).
extension ChannelWire {
    /// The request payload of ops 16-18.
    public static let pasidRequestBytes = 80
    /// The answer payload of ops 16-18.
    public static let pasidResultBytes = 16

    /// PASID_ATTACH, PASID_REPLACE, PASID_DETACH: `pasid` of `device` (leased to the channel's
    /// owner) onto `hwpt` (0 for PASID_DETACH).
    public struct PASID: Sendable, Hashable {
        public var device: String
        public var pasid: UInt32
        public var hwpt: UInt32
        public init(device: String, pasid: UInt32, hwpt: UInt32 = 0) {
            self.device = device
            self.pasid = pasid
            self.hwpt = hwpt
        }
    }

    static func decodePASID(_ op: Op, _ payload: UnsafeRawBufferPointer) throws(Refusal) -> Request {
        guard payload.count == pasidRequestBytes else {
            throw bad("\(op.name) has an \(pasidRequestBytes)-byte payload (u32 pasid, u32 hwpt, 8 reserved bytes, a 64-byte device name), not \(payload.count)")
        }
        var r = Reader(payload)
        let pasid = r.u32(), hwpt = r.u32(), reserved = r.u64()
        guard reserved == 0 else {
            throw invalidParams("\(op.name): bytes 8-15 are reserved and must be 0 (0x\(String(reserved, radix: 16)) given)")
        }
        let field = UnsafeRawBufferPointer(rebasing: payload[16..<16 + deviceNameBytes])
        let name = try fixedString(field, "\(op.name): the device name")
        guard !name.isEmpty else { throw bad("\(op.name): the device name is empty") }
        let p = PASID(device: name, pasid: pasid, hwpt: hwpt)
        switch op {
        case .pasidAttach: return .pasidAttach(p)
        case .pasidReplace: return .pasidReplace(p)
        default:
            guard hwpt == 0 else {
                throw invalidParams("PASID_DETACH: hwpt is reserved and must be 0 (\(hwpt) given): the PASID is detached from whatever HWPT it is on")
            }
            return .pasidDetach(p)
        }
    }

    /// Writes the payload of a PASID request; returns its op.
    static func encodePASID(_ request: Request, into w: inout Writer) -> Op {
        let (op, p): (Op, PASID)
        switch request {
        case .pasidAttach(let a): (op, p) = (.pasidAttach, a)
        case .pasidReplace(let a): (op, p) = (.pasidReplace, a)
        case .pasidDetach(let a): (op, p) = (.pasidDetach, a)
        default: preconditionFailure("encodePASID called for \(request)")
        }
        w.u32(p.pasid); w.u32(p.hwpt); w.u64(0)
        w.fixed(p.device, deviceNameBytes)
        return op
    }
}
