import IommufdCore

// MARK: pasidnest

/// NESTED_ALLOC_FLAGS (op 19, docs/vmm-channel.md "NESTED_ALLOC_FLAGS (op 19)"), version 1.2:
/// NESTED_ALLOC with a flags word, so a VMM can allocate a nested (stage-1) HWPT with
/// `IOMMU_HWPT_ALLOC_PASID` itself — what `hwpt.alloc` with `pasid: true` does on the control
/// plane — before it attaches a PASID to it with PASID_ATTACH. Decoding only, as the rest of
/// `ChannelWire`; the checks of the parent, the device, the fault queue and the driver data are
/// the broker's (`hwpt.alloc`'s), the same as for op 11.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | `parent`: a nest-parent HWPT or a vIOMMU of the owner |
/// | 4 | 4 | `fault_queue`: a fault queue of the owner (0: none) |
/// | 8 | 4 | `data_type` (`IOMMU_HWPT_DATA_*`) |
/// | 12 | 4 | `data_len`: the size of the data type's uAPI struct |
/// | 16 | 64 | the device name or PCI address, NUL-padded |
/// | 80 | 4 | `flags`: bit 0 `PASID` (`IOMMU_HWPT_ALLOC_PASID`); no other bit is defined |
/// | 84 | 4 | reserved, 0 |
/// | 88 | `data_len` | the driver data |
///
/// An undefined flag bit is `Unsupported` (`EOPNOTSUPP`), as the kernel's `IOMMU_HWPT_ALLOC`
/// answers a flag it does not know; a nonzero reserved word is `InvalidParams` (`EINVAL`), as a
/// reserved field of ops 16-18 is; a payload whose size is not 88 + the data type's struct is
/// `BadMessage`. The answer is op 11's (`nested_result`): u32 the HWPT, u32 its nest parent.
extension ChannelWire {
    /// NESTED_ALLOC_FLAGS's fixed part before the driver data.
    public static let nestedAllocFlagsFixedBytes = 88
    /// NESTED_ALLOC_FLAGS `flags` bit 0: the HWPT is allocated with `IOMMU_HWPT_ALLOC_PASID`
    /// (device PASIDs may attach to it: PASID_ATTACH, `device.attach_pasid`).
    public static let nestedAllocPASID: UInt32 = 0x1
    /// Every NESTED_ALLOC_FLAGS flag bit this version defines.
    public static let nestedAllocKnownFlags: UInt32 = nestedAllocPASID

    /// NESTED_ALLOC_FLAGS: op 11's request and `flags` (only `nestedAllocKnownFlags` bits).
    public struct NestedAllocFlags: Sendable, Hashable {
        public var alloc: NestedAlloc
        public var flags: UInt32
        public init(_ alloc: NestedAlloc, flags: UInt32) {
            self.alloc = alloc
            self.flags = flags
        }
        /// Whether the HWPT is to be allocated with `IOMMU_HWPT_ALLOC_PASID`.
        public var pasid: Bool { flags & ChannelWire.nestedAllocPASID != 0 }
    }

    static func decodeNestedAllocFlags(_ payload: UnsafeRawBufferPointer) throws(Refusal) -> Request {
        var flags: UInt32 = 0
        let alloc = try decodeNestedAllocParts(
            payload, name: "NESTED_ALLOC_FLAGS", fixed: nestedAllocFlagsFixedBytes, fixedPart: " (op 11's 80 bytes, u32 flags, u32 reserved)"
        ) { words throws(Refusal) in
            var tail = Reader(words)
            flags = tail.u32()
            let reserved = tail.u32()
            guard flags & ~nestedAllocKnownFlags == 0 else {
                // As the kernel's IOMMU_HWPT_ALLOC answers a flag it does not know: EOPNOTSUPP.
                throw Refusal(errno: EOPNOTSUPP, name: "iommufdd.Unsupported", message: "NESTED_ALLOC_FLAGS: flags 0x\(String(flags, radix: 16)) has bits 0x\(String(flags & ~nestedAllocKnownFlags, radix: 16)) this daemon does not support; channel version 1.2 defines bit 0 (PASID, IOMMU_HWPT_ALLOC_PASID) only, so clear the others")
            }
            guard reserved == 0 else {
                throw invalidParams("NESTED_ALLOC_FLAGS: bytes 84-87 are reserved and must be 0 (0x\(String(reserved, radix: 16)) given)")
            }
        }
        return .nestedAllocFlags(NestedAllocFlags(alloc, flags: flags))
    }

    /// Writes the payload of NESTED_ALLOC_FLAGS (the reserved word 0).
    static func encodeNestedAllocFlags(_ a: NestedAllocFlags, into p: inout Writer) -> Op {
        p.u32(a.alloc.parent); p.u32(a.alloc.faultQueue); p.u32(a.alloc.dataType); p.u32(UInt32(a.alloc.data.count))
        p.fixed(a.alloc.device, deviceNameBytes)
        p.u32(a.flags); p.u32(0)
        p.bytes.append(contentsOf: a.alloc.data)
        return .nestedAllocFlags
    }
}
