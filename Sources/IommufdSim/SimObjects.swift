import IommufdCore

/// `struct iommufd_ioas`.
final class SimIOAS {
    var table: IOPageTable
    /// `ioas->hwpt_list`: HWPTs whose domain is in this IOAS, in creation order (the order
    /// `iommufd_device_auto_get_domain` tries them in).
    var hwpts: [ObjectID] = []
    /// mdev-like devices (iommufd accesses) attached to this IOAS.
    var accessDevices: Set<ObjectID> = []

    init(table: IOPageTable) { self.table = table }
}

/// `struct iommufd_hwpt_paging`.
final class SimHWPT {
    let ioas: ObjectID
    let iommu: SimTopology.IOMMU
    let flags: HWPTAllocFlags
    /// Created by attaching a device to an IOAS; freed when its last device leaves.
    var autoDomain: Bool
    var devices: Set<ObjectID> = []
    /// vIOMMUs built on this nest parent (each holds a users reference).
    var viommuUsers = 0
    var dirtyTrackingEnabled = false
    /// Dirty IOPTEs: start IOVA → IOPTE size.
    var dirty: [UInt64: UInt64] = [:]
    /// Set for an `IOMMUFD_OBJ_HWPT_NESTED` (then `ioas` is its parent's IOAS).
    var nested: SimNested?
    /// Nested HWPTs allocated on this nest parent (each holds a users reference).
    var nestedUsers = 0
    // MARK: queues
    /// `hwpt->fault`: the fault queue its I/O page faults go to (it holds a users reference).
    var faultQueue: ObjectID?
    // MARK: pasid
    /// PASID attachments of devices to it (each holds a users reference: EBUSY to destroy).
    var pasidUsers = 0

    init(ioas: ObjectID, iommu: SimTopology.IOMMU, flags: HWPTAllocFlags, autoDomain: Bool) {
        self.ioas = ioas
        self.iommu = iommu
        self.flags = flags
        self.autoDomain = autoDomain
    }

    /// Whether the domain has dirty ops (`IOMMU_HWPT_ALLOC_DIRTY_TRACKING` at allocation).
    var hasDirtyOps: Bool { flags.contains(.dirtyTracking) }
    var isNestParent: Bool { flags.contains(.nestParent) }
}

/// A bound device: `struct iommufd_device` (behind an IOMMU) or, for an mdev-like device, the
/// `struct iommufd_access` a VFIO emulated device binds as.
final class SimDevice {
    let descriptor: DeviceDescriptor
    /// nil for mdev-like devices.
    let iommu: SimTopology.IOMMU?
    let dirtyCapable: Bool
    /// The HWPT (or, for an access, the IOAS) it is attached to.
    var attached: ObjectID?
    /// `idev->vdev`.
    var vdevice: ObjectID?
    /// `mock_dev->cache`: what the selftest vIOMMU's invalidation clears.
    var cache = [UInt32](repeating: SimNested.deviceCacheDefault, count: 4)
    // MARK: pasid
    /// `out_max_pasid_log2`: the PASID width (0: no PASID; `dev->iommu->max_pasids` is 1 << it).
    var pasidWidth: UInt8 = 0
    /// `igroup->pasid_attach` of the device's PASIDs (not `IOMMU_NO_PASID`): PASID → HWPT.
    var pasids: [UInt32: ObjectID] = [:]
    /// `mock_dev->pasid_1024_fake_error` (selftest mock IOMMU only).
    var pasid1024FakeError = false

    init(descriptor: DeviceDescriptor, iommu: SimTopology.IOMMU?, dirtyCapable: Bool) {
        self.descriptor = descriptor
        self.iommu = iommu
        self.dirtyCapable = dirtyCapable
    }

    /// An mdev-like device is an iommufd access, not an `IOMMUFD_OBJ_DEVICE`.
    var isAccess: Bool { iommu == nil }
}

/// `struct iommufd_viommu`.
final class SimVIOMMU {
    let hwpt: ObjectID
    let iommuName: String
    let type: UInt32
    /// `viommu->vdevs`: virtual ID → vDevice.
    var vdevices: [UInt64: ObjectID] = [:]
    // MARK: queues
    /// `viommu->veventqs`: type → vEVENTQ (each holds a users reference on the vIOMMU).
    var veventqs: [UInt32: ObjectID] = [:]
    /// Nested HWPTs allocated on this vIOMMU (each holds a users reference).
    var nestedUsers = 0
    // MARK: hwqueue
    /// `mock_viommu->hw_queue`: index → HW queue (each holds a users reference on the vIOMMU).
    var hwQueues: [UInt32: ObjectID] = [:]

    init(hwpt: ObjectID, iommuName: String, type: UInt32) {
        self.hwpt = hwpt
        self.iommuName = iommuName
        self.type = type
    }
}

/// `struct iommufd_vdevice`.
final class SimVDevice {
    let viommu: ObjectID
    let device: ObjectID
    let virtualID: UInt64

    init(viommu: ObjectID, device: ObjectID, virtualID: UInt64) {
        self.viommu = viommu
        self.device = device
        self.virtualID = virtualID
    }
}

// MARK: hwqueue

/// `struct mock_hw_queue` (drivers/iommu/iommufd/selftest.c) with its `struct iommufd_hw_queue`.
final class SimHWQueue {
    let viommu: ObjectID
    let type: UInt32
    let index: UInt32
    /// The IOAS of the vIOMMU's nest parent, and the page-aligned range the queue's internal
    /// access pinned in it (`iommufd_hw_queue_alloc_phys`).
    let ioas: ObjectID
    let pinned: IOVARange
    /// The queue at `index + 1`, which depends on this one (`iommufd_hw_queue_depend`): EBUSY to
    /// destroy this one first.
    var dependents = 0

    init(viommu: ObjectID, type: UInt32, index: UInt32, ioas: ObjectID, pinned: IOVARange) {
        self.viommu = viommu
        self.type = type
        self.index = index
        self.ioas = ioas
        self.pinned = pinned
    }
}

/// An entry of the iommufd's object xarray.
enum SimObject {
    case ioas(SimIOAS)
    case hwpt(SimHWPT)
    case device(SimDevice)
    case viommu(SimVIOMMU)
    case vdevice(SimVDevice)
    // MARK: queues
    /// `IOMMUFD_OBJ_FAULT` or `IOMMUFD_OBJ_VEVENTQ` (SimBackend+Queues.swift).
    case eventQueue(SimEventQueue)
    // MARK: hwqueue
    /// `IOMMUFD_OBJ_HW_QUEUE` (SimBackend+HWQueue.swift).
    case hwQueue(SimHWQueue)
    /// `XA_ZERO_ENTRY` left by `iommufd_object_tombstone_user`: the ID stays taken, every
    /// lookup answers ENOENT.
    case tombstone
}
