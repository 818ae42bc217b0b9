import Foundation
import IommufdContract
import IommufdCore

// The broker's bookkeeping of kernel objects. Reference types, only touched under the broker's
// lock (see the locking design at the top of Broker.swift); every kernel object is recorded with its owner, and each record links to what depends on it.

final class OwnerRecord {
    let name: String
    let identity: String
    let creatorUID: UInt32
    /// The creating identity's quota; follows the config on reload.
    var quotaBytes: UInt64?
    var policy: OwnerPolicy
    /// The charged bytes of the owner's mappings (under the broker's `lock`).
    var pinnedBytes: UInt64 = 0
    /// Bytes reserved against the quota by maps and copies in flight (charged, not yet mapped);
    /// 0 whenever no request of the owner runs. Under the broker's `lock`.
    var reservedBytes: UInt64 = 0
    // MARK: p2p
    /// Bytes of the owner's dma-buf mappings (P2P), kept apart from `pinnedBytes` and its quota.
    var p2pBytes: UInt64 = 0
    /// Serialises the owner's requests that work outside the broker's `lock` (`Broker.serialized`).
    /// Taken before `lock`, never while holding it.
    let gate = NSLock()
    /// The bitmap `dirty.read` fills, kept between the owner's reads; only used under `gate`.
    let dirtyScratch = DirtyScratch()
    var ioas = Set<ObjectID>()
    var hwpts = Set<ObjectID>()
    var viommus = Set<ObjectID>()
    var vdevices = Set<ObjectID>()
    var devices = Set<String>()

    init(name: String, identity: String, creatorUID: UInt32, quotaBytes: UInt64?, policy: OwnerPolicy) {
        self.name = name
        self.identity = identity
        self.creatorUID = creatorUID
        self.quotaBytes = quotaBytes
        self.policy = policy
    }
}

/// One mapping of an IOAS, keyed by its IOVA in the IOAS's index (`MappingIndex`, which keeps
/// it packed into 16 bytes and hands it back whole).
struct MappingRecord {
    enum Backing {
        /// `IOMMU_IOAS_MAP_FILE` from the broker's dup of a memory file.
        case file(MemoryFileTable.Key)
        /// `IOMMU_IOAS_MAP` of the broker's own `mmap` of a memory file.
        case mmap(MemoryFileTable.Key, address: UInt64)
        /// `IOMMU_IOAS_COPY` of another mapping's pages.
        case copy
        // MARK: p2p
        /// `IOMMU_IOAS_MAP_FILE` of a dma-buf (P2P: the exporter's memory, not pinned, charged 0).
        case dmabuf(MemoryFileTable.Key)
    }
    var length: UInt64
    /// Bytes counted against the owner's quota.
    var charged: UInt64
    var backing: Backing
    var flags: MapFlags

    var sourceName: String {
        switch backing {
        case .file: "file"
        case .mmap: "mmap"
        case .copy: "copy"
        case .dmabuf: "dmabuf"
        }
    }
}

final class IOASRecord {
    let id: ObjectID
    let owner: String
    var hugePages: Bool
    var mappings = MappingIndex()
    var pinnedBytes: UInt64 = 0
    var hwpts = IOASHWPTs()
    /// mdev-like devices attached to the IOAS itself.
    var directDevices = Set<String>()
    var dirtyEnabled = false
    // MARK: p2p
    /// Bytes of dma-buf mappings (not pinned: not in `pinnedBytes`).
    var p2pBytes: UInt64 = 0
    /// IOVAs of dma-buf mappings seen revoked by their exporter (they stay so until unmapped).
    var revokedMappings = Set<UInt64>()

    init(id: ObjectID, owner: String, hugePages: Bool) {
        self.id = id
        self.owner = owner
        self.hugePages = hugePages
    }
}

final class HWPTRecord {
    let id: ObjectID
    let owner: String
    let ioas: ObjectID
    let flags: HWPTAllocFlags
    /// Created by the auto-domain or vIOMMU policy: destroyed when its last user leaves.
    let auto: Bool
    let iommuInstance: String?
    /// The hw_info type (IOMMU driver) of the device it was allocated for, when known. The
    /// auto-domain policy never offers it to a device of another driver: on Linux 7.3, replacing
    /// a selftest mock device onto a VT-d domain reaches intel_iommu_attach_device with a
    /// device VT-d does not own and oopses (NULL dereference in device_block_translation)
    /// instead of failing with EINVAL.
    var hwInfoType: UInt32?
    var devices = Set<String>()
    var viommus = Set<ObjectID>()
    var tracking = false
    /// Set for a nested HWPT (then `ioas` is its parent's IOAS, and it is not in the IOAS's
    /// `hwpts`: the auto-domain policy and dirty tracking work on paging HWPTs only).
    var nested: NestedRecord?
    /// Nested HWPTs on this nest parent (each holds it in the kernel).
    var nestedChildren = Set<ObjectID>()
    /// The fault queue its I/O page faults go to (`hwpt.alloc fault_queue`).
    var faultQueue: ObjectID?
    // MARK: pasid
    /// Device PASIDs attached to it (each holds it in the kernel).
    var pasids = Set<PASIDKey>()

    init(id: ObjectID, owner: String, ioas: ObjectID, flags: HWPTAllocFlags, auto: Bool, iommuInstance: String?) {
        self.id = id
        self.owner = owner
        self.ioas = ioas
        self.flags = flags
        self.auto = auto
        self.iommuInstance = iommuInstance
    }

    var isUnused: Bool { devices.isEmpty && viommus.isEmpty && nestedChildren.isEmpty && pasids.isEmpty }
}

final class DeviceRecord {
    var descriptor: DeviceDescriptor
    /// The owner holding the lease.
    var owner: String?
    var bound: BoundDevice?
    var hwInfo: HWInfo?
    var ioas: ObjectID?
    /// The attached page table: an HWPT, or the IOAS for mdevs.
    var pt: ObjectID?
    var vdevices = Set<ObjectID>()
    // MARK: pasid
    /// Attached PASIDs → their HWPT.
    var pasids: [UInt32: ObjectID] = [:]

    init(descriptor: DeviceDescriptor) { self.descriptor = descriptor }

    var name: String { descriptor.name }
    var dirtyCapable: Bool { hwInfo?.capabilities.contains(.dirtyTracking) ?? false }
}

final class VIOMMURecord {
    let id: ObjectID
    let owner: String
    let ioas: ObjectID
    let hwpt: ObjectID
    let device: String
    let iommuInstance: String?
    var vdevices = Set<ObjectID>()
    /// Nested HWPTs allocated on this vIOMMU (each holds it in the kernel).
    var nestedHWPTs = Set<ObjectID>()

    init(id: ObjectID, owner: String, ioas: ObjectID, hwpt: ObjectID, device: String, iommuInstance: String?) {
        self.id = id
        self.owner = owner
        self.ioas = ioas
        self.hwpt = hwpt
        self.device = device
        self.iommuInstance = iommuInstance
    }
}

struct VDeviceRecord {
    let id: ObjectID
    let owner: String
    let viommu: ObjectID
    let device: String
    let virtualID: UInt64
}

/// The nest-parent HWPT of one physical IOMMU instance in one IOAS.
struct NestParentKey: Hashable {
    var ioas: ObjectID
    var iommuInstance: String
}

/// What makes an HWPT nested: its stage-2 parent, the vIOMMU it was allocated on, and the
/// driver data it was allocated with (journaled, for `hwpt.list` and the restart).
struct NestedRecord: Equatable {
    var parent: ObjectID
    var viommu: ObjectID?
    var data: HWPTUserData
}

// MARK: pasid

/// One PASID of one device, as an HWPT's record lists what is attached to it.
struct PASIDKey: Hashable, Comparable {
    var device: String
    var pasid: UInt32
    static func < (a: PASIDKey, b: PASIDKey) -> Bool { (a.device, a.pasid) < (b.device, b.pasid) }
}
