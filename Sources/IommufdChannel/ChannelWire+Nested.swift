import IommufdCore

// MARK: chnested

/// The channel ops of nested translation (docs/vmm-channel.md, "Nested translation"): what a VMM
/// with a vIOMMU does per guest STE / PASID-table change (NESTED_ALLOC, REPLACE, HWPT_DESTROY)
/// and per guest TLB command (INVALIDATE), and fetching a queue's fd (QUEUE_FD). Decoding only,
/// as the rest of `ChannelWire`: the typed checks of the driver data and of the entries are the
/// broker's, the same as on the control plane.
extension ChannelWire {
    /// NESTED_ALLOC's fixed part before the driver data.
    public static let nestedAllocFixedBytes = 80
    /// INVALIDATE's fixed part before the entries.
    public static let invalidateFixedBytes = 16

    /// NESTED_ALLOC: a nested HWPT for `device` on `parent` (a nest-parent HWPT or a vIOMMU of
    /// the owner), with the IOMMU driver's data: `data` is the uAPI struct of `dataType`
    /// (`IOMMU_HWPT_DATA_*`) exactly, little-endian.
    public struct NestedAlloc: Sendable, Hashable {
        public var parent: UInt32
        /// A fault queue of the owner (0: none).
        public var faultQueue: UInt32
        public var dataType: UInt32
        public var device: String
        public var data: [UInt8]
        public init(parent: UInt32, faultQueue: UInt32 = 0, dataType: UInt32, device: String, data: [UInt8]) {
            self.parent = parent
            self.faultQueue = faultQueue
            self.dataType = dataType
            self.device = device
            self.data = data
        }
    }

    /// REPLACE: moves an attached device of the owner onto `pt` (an HWPT, or an IOAS: the
    /// auto-domain policy picks its HWPT), without a window of blocked DMA.
    public struct Replace: Sendable, Hashable {
        public var pt: UInt32
        public var device: String
        public init(pt: UInt32, device: String) {
            self.pt = pt
            self.device = device
        }
    }

    /// INVALIDATE: `entries` (entry count × `entryLength` bytes, the uAPI structs of
    /// `dataType`) to one nested HWPT or vIOMMU, in one `IOMMU_HWPT_INVALIDATE`.
    public struct Invalidate: Sendable, Hashable {
        public var target: UInt32
        public var dataType: UInt32
        public var entryLength: UInt32
        public var entryCount: UInt32
        public var entries: [UInt8]
        public init(target: UInt32, dataType: UInt32, entryLength: UInt32, entryCount: UInt32, entries: [UInt8]) {
            self.target = target
            self.dataType = dataType
            self.entryLength = entryLength
            self.entryCount = entryCount
            self.entries = entries
        }
    }

    /// The size of the driver data struct of a nested data type (`IOMMU_HWPT_DATA_*`), nil for
    /// a type Linux 7.3 has no nested HWPTs of.
    public static func nestedDataSize(_ type: UInt32) -> Int? {
        switch type {
        case HWPTDataType.selftest: 8  // struct iommu_hwpt_selftest
        case HWPTDataType.vtdS1: 24  // struct iommu_hwpt_vtd_s1
        case HWPTDataType.armSMMUv3: 16  // struct iommu_hwpt_arm_smmuv3
        case HWPTDataType.amdGuest: 32  // struct iommu_hwpt_amd_guest
        default: nil
        }
    }

    /// The entry sizes of an invalidation data type: the selftest type is one value for a mock
    /// nested HWPT (8-byte entries) and a mock vIOMMU (12-byte entries).
    public static func invalidationEntrySizes(_ type: UInt32) -> [Int]? {
        switch type {
        case InvalidateDataType.vtdS1: [InvalidationEntry.vtdS1Size]
        case InvalidateDataType.armSMMUv3: [InvalidationEntry.armSMMUv3Size]
        case InvalidateDataType.selftest: [InvalidationEntry.selftestHWPTSize, InvalidationEntry.selftestVIOMMUSize]
        default: nil
        }
    }

    static func invalidParams(_ message: String) -> Refusal {
        Refusal(errno: EINVAL, name: "iommufdd.InvalidParams", message: message)
    }

    /// What NESTED_ALLOC (op 11) and NESTED_ALLOC_FLAGS (op 19) decode alike: the 80-byte header
    /// (parent, fault queue, data type, data length, device) and the driver data at `fixed`, in
    /// the same order of checks and with the same messages (named `name`). `tail` checks what lies
    /// between the header and the data (op 19's flags), before the data type is looked at.
    static func decodeNestedAllocParts(
        _ payload: UnsafeRawBufferPointer, name: String, fixed: Int, fixedPart: String,
        tail: (UnsafeRawBufferPointer) throws(Refusal) -> Void
    ) throws(Refusal) -> NestedAlloc {
        guard payload.count >= fixed else {
            throw bad("\(name) has an \(fixed)-byte fixed part\(fixedPart) before the driver data; the payload has \(payload.count) bytes")
        }
        var r = Reader(payload)
        let parent = r.u32(), faultQueue = r.u32(), type = r.u32(), length = r.u32()
        let device = try fixedString(UnsafeRawBufferPointer(rebasing: payload[16..<16 + deviceNameBytes]), "\(name): the device name")
        guard !device.isEmpty else { throw bad("\(name): the device name is empty") }
        try tail(UnsafeRawBufferPointer(rebasing: payload[nestedAllocFixedBytes..<fixed]))
        guard let size = nestedDataSize(type) else {
            throw invalidParams("\(name): data_type 0x\(String(type, radix: 16)) is not a nested data type; use 1 (vtd_s1), 2 (arm_smmuv3), 3 (amd_guest) or 0xdead (selftest)")
        }
        guard length == size else {
            throw bad("\(name): data_len is \(length) but '\(HWPTDataType.name(type))' data is the \(size)-byte uAPI struct")
        }
        guard payload.count == fixed + size else {
            throw bad("\(name) with \(size) bytes of data has a \(fixed + size)-byte payload, not \(payload.count)")
        }
        return NestedAlloc(parent: parent, faultQueue: faultQueue, dataType: type, device: device, data: Array(payload[fixed...]))
    }

    static func decodeNested(_ op: Op, _ payload: UnsafeRawBufferPointer) throws(Refusal) -> Request {
        var r = Reader(payload)
        func fixed(_ size: Int) throws(Refusal) {
            guard payload.count == size else { throw bad("\(op.name) has a \(size)-byte payload, not \(payload.count)") }
        }
        func reserved(_ value: UInt32, _ what: String) throws(Refusal) {
            guard value == 0 else { throw bad("\(op.name): \(what) is reserved and must be 0") }
        }
        func device(at offset: Int) throws(Refusal) -> String {
            let name = try fixedString(UnsafeRawBufferPointer(rebasing: payload[offset..<offset + deviceNameBytes]), "\(op.name): the device name")
            guard !name.isEmpty else { throw bad("\(op.name): the device name is empty") }
            return name
        }
        switch op {
        case .nestedAlloc:
            return .nestedAlloc(try decodeNestedAllocParts(payload, name: "NESTED_ALLOC", fixed: nestedAllocFixedBytes, fixedPart: "") { _ throws(Refusal) in })
        case .replace:
            try fixed(8 + deviceNameBytes)
            let pt = r.u32()
            try reserved(r.u32(), "the word after pt")
            return .replace(Replace(pt: pt, device: try device(at: 8)))
        case .hwptDestroy, .queueFD:
            try fixed(8)
            let id = r.u32()
            try reserved(r.u32(), "the word after the ID")
            return op == .hwptDestroy ? .hwptDestroy(hwpt: id) : .queueFD(queue: id)
        case .invalidate:
            guard payload.count >= invalidateFixedBytes else {
                throw bad("INVALIDATE has a \(invalidateFixedBytes)-byte fixed part before the entries; the payload has \(payload.count) bytes")
            }
            let target = r.u32(), type = r.u32(), length = r.u32(), count = r.u32()
            guard (1...UInt32(maxEntries)).contains(count) else {
                throw bad("INVALIDATE holds \(count) entries; a batch has 1 to \(maxEntries)")
            }
            guard let sizes = invalidationEntrySizes(type) else {
                throw invalidParams("INVALIDATE: data_type 0x\(String(type, radix: 16)) is not an invalidation data type; use 0 (vtd_s1, a nested HWPT), 1 (arm_smmuv3, a vIOMMU) or 0xdeadbeef (selftest)")
            }
            guard sizes.contains(Int(length)) else {
                throw bad("INVALIDATE: entry_len is \(length) but a '\(invalidationTypeName(type))' entry is \(sizes.map(String.init).joined(separator: " or ")) bytes")
            }
            guard payload.count == invalidateFixedBytes + Int(count) * Int(length) else {
                throw bad("INVALIDATE with \(count) entries of \(length) bytes has a \(invalidateFixedBytes + Int(count) * Int(length))-byte payload, not \(payload.count)")
            }
            let entries = Array(payload[invalidateFixedBytes...])
            return .invalidate(Invalidate(target: target, dataType: type, entryLength: length, entryCount: count, entries: entries))
        default:
            throw bad("\(op.name) is not a nested-translation op")
        }
    }

    public static func invalidationTypeName(_ type: UInt32) -> String {
        switch type {
        case InvalidateDataType.vtdS1: "vtd_s1"
        case InvalidateDataType.armSMMUv3: "arm_smmuv3"
        case InvalidateDataType.selftest: "selftest"
        default: "0x\(String(type, radix: 16))"
        }
    }

    /// Writes the payload of a nested-translation request; returns its op.
    static func encodeNested(_ request: Request, into p: inout Writer) -> Op {
        switch request {
        case .nestedAlloc(let a):
            p.u32(a.parent); p.u32(a.faultQueue); p.u32(a.dataType); p.u32(UInt32(a.data.count))
            p.fixed(a.device, deviceNameBytes)
            p.bytes.append(contentsOf: a.data)
            return .nestedAlloc
        case .replace(let r):
            p.u32(r.pt); p.u32(0)
            p.fixed(r.device, deviceNameBytes)
            return .replace
        case .hwptDestroy(let id):
            p.u32(id); p.u32(0)
            return .hwptDestroy
        case .queueFD(let id):
            p.u32(id); p.u32(0)
            return .queueFD
        case .invalidate(let i):
            p.u32(i.target); p.u32(i.dataType); p.u32(i.entryLength); p.u32(i.entryCount)
            p.bytes.append(contentsOf: i.entries)
            return .invalidate
        default:
            preconditionFailure("encodeNested called for \(request)")
        }
    }
}
