import IommufdCore

// MARK: hwqueue3

// HW queues of a vIOMMU over RPC (issue 14 item 7): `hwqueue.alloc` and `hwqueue.destroy`.

/// A param that takes a name or a number (`"selftest"` or `3735928559`): its schema says
/// `"type": ["string", "integer"]`. `schemaPlaceholder` is what the daemon's schema recorder
/// decodes in its place.
public protocol StringOrIntegerParam: Decodable {
    static var schemaPlaceholder: Self { get }
}

/// `enum iommu_hw_queue_type`, by name (`selftest`, `tegra241_cmdqv`, `default`) or number.
/// Which names and numbers the daemon takes is the broker's to say (`hwqueue.alloc`), so an
/// unknown name is answered with the list, naming the field.
public enum HWQueueTypeParam: Codable, Hashable, Sendable, StringOrIntegerParam {
    case name(String)
    case number(UInt32)

    /// The names the daemon knows, and their numbers.
    public static let names: [(name: String, value: UInt32)] = [
        ("selftest", HWQueueType.selftest), ("tegra241_cmdqv", HWQueueType.tegra241CMDQV), ("default", HWQueueType.default),
    ]

    /// The number of a known name (`-` and `_` alike, any case), or the number given.
    public var value: UInt32? {
        switch self {
        case .number(let n): return n
        case .name(let s):
            let normal = String(s.lowercased().map { $0 == "-" ? "_" : $0 })
            return Self.names.first { $0.name == normal }?.value
        }
    }

    /// The name of a type number where the daemon knows one, else its number in hex.
    public static func name(of type: UInt32) -> String {
        names.first { $0.value == type }?.name ?? "0x" + String(type, radix: 16)
    }

    public static var schemaPlaceholder: HWQueueTypeParam { .name("selftest") }

    /// A string is a name; a number must fit `u32` (the decoder's range error says so);
    /// anything else is refused naming what the field takes.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            self = .name(s)
            return
        }
        do {
            self = .number(try c.decode(UInt32.self))
        } catch DecodingError.typeMismatch {
            throw DecodingError.typeMismatch(
                HWQueueTypeParam.self,
                .init(codingPath: decoder.codingPath, debugDescription: "expected a HW queue type: a name (selftest, tegra241_cmdqv) or a number of enum iommu_hw_queue_type"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .name(let s): try c.encode(s)
        case .number(let n): try c.encode(n)
        }
    }
}

/// `hwqueue.alloc`: `IOMMU_HW_QUEUE_ALLOC` on a vIOMMU of the caller's owner, over the
/// guest-physical range `[base_address, base_address + length)` (an IOVA of the vIOMMU's
/// nest-parent IOAS, which must be mapped there: the kernel pins it while the queue exists).
public struct HWQueueAllocParams: Codable, Hashable, Sendable {
    public var viommu: ObjectID
    /// `selftest` (the kernel's mock vIOMMU), `tegra241_cmdqv` (refused: see docs/nested.md),
    /// or the number of `enum iommu_hw_queue_type`.
    public var type: HWQueueTypeParam
    /// The queue's index on the vIOMMU (the mock takes 0 and 1, each after its predecessor).
    public var index: UInt32
    /// The queue's guest-physical base address (nest-parent IOVA).
    public var baseAddress: UInt64
    /// Bytes; not 0.
    public var length: UInt64
    /// Must be 0 or absent: the kernel defines no flags.
    public var flags: UInt32?
    public init(viommu: ObjectID, type: HWQueueTypeParam, index: UInt32, baseAddress: UInt64, length: UInt64, flags: UInt32? = nil) {
        self.viommu = viommu
        self.type = type
        self.index = index
        self.baseAddress = baseAddress
        self.length = length
        self.flags = flags
    }
    enum CodingKeys: String, CodingKey {
        case viommu, type, index, length, flags
        case baseAddress = "base_address"
    }
}

/// `hwqueue.destroy`: one HW queue by ID.
public struct HWQueueParams: Codable, Hashable, Sendable {
    public var hwQueue: ObjectID
    public init(hwQueue: ObjectID) { self.hwQueue = hwQueue }
    enum CodingKeys: String, CodingKey {
        case hwQueue = "hw_queue"
    }
}

/// A HW queue as `hwqueue.alloc` answers it and `viommu.list` lists it.
public struct HWQueueInfo: Codable, Hashable, Sendable {
    public var hwQueue: ObjectID
    public var owner: String
    public var viommu: ObjectID
    /// `enum iommu_hw_queue_type` and its name.
    public var type: UInt32
    public var typeName: String
    public var index: UInt32
    public var baseAddress: UInt64
    public var length: UInt64
    /// The IOAS whose mapping the queue pins (the vIOMMU's nest parent's).
    public var ioas: ObjectID
    public init(hwQueue: ObjectID, owner: String, viommu: ObjectID, type: UInt32, typeName: String, index: UInt32, baseAddress: UInt64, length: UInt64, ioas: ObjectID) {
        self.hwQueue = hwQueue
        self.owner = owner
        self.viommu = viommu
        self.type = type
        self.typeName = typeName
        self.index = index
        self.baseAddress = baseAddress
        self.length = length
        self.ioas = ioas
    }
    enum CodingKeys: String, CodingKey {
        case owner, viommu, type, index, length, ioas
        case hwQueue = "hw_queue"
        case typeName = "type_name"
        case baseAddress = "base_address"
    }
}

public struct HWQueueDestroyResult: Codable, Hashable, Sendable {
    public var hwQueue: ObjectID
    public init(hwQueue: ObjectID) { self.hwQueue = hwQueue }
    enum CodingKeys: String, CodingKey {
        case hwQueue = "hw_queue"
    }
}
