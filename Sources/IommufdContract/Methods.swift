/// The broker's methods by their JSON-RPC names, with what the RPC layer needs to route them
/// and describe them (`rpc.discover`). Each maps to one `Broker` method of the same name in
/// camel case (`ioas.set_option` → `ioasSetOption`).
public enum BrokerMethod: String, CaseIterable, Sendable, Codable {
    case ownerCreate = "owner.create"
    case ownerList = "owner.list"
    case ownerInfo = "owner.info"
    case ownerRelease = "owner.release"
    case ownerDelegate = "owner.delegate"
    case ownerRevokeChannels = "owner.revoke_channels"
    case deviceList = "device.list"
    case deviceInfo = "device.info"
    case deviceAttach = "device.attach"
    case deviceDetach = "device.detach"
    case deviceReplace = "device.replace"
    case deviceRelease = "device.release"
    case deviceFD = "device.fd"
    case ioasCreate = "ioas.create"
    case ioasDestroy = "ioas.destroy"
    case ioasList = "ioas.list"
    case ioasInfo = "ioas.info"
    case ioasMap = "ioas.map"
    case ioasUnmap = "ioas.unmap"
    case ioasCopy = "ioas.copy"
    case ioasRanges = "ioas.ranges"
    case ioasSetOption = "ioas.set_option"
    case hwptList = "hwpt.list"
    case hwptAlloc = "hwpt.alloc"
    case hwptDestroy = "hwpt.destroy"
    case dirtyStart = "dirty.start"
    case dirtyStop = "dirty.stop"
    case dirtyStatus = "dirty.status"
    case dirtyRead = "dirty.read"
    case viommuCreate = "viommu.create"
    case viommuDestroy = "viommu.destroy"
    case viommuList = "viommu.list"
    case vdeviceCreate = "vdevice.create"
    case vdeviceDestroy = "vdevice.destroy"
    // MARK: queues
    case faultCreate = "fault.create"
    case faultDestroy = "fault.destroy"
    case veventqCreate = "veventq.create"
    case veventqDestroy = "veventq.destroy"
    case queueList = "queue.list"
    case queueFD = "queue.fd"
    case eventsSubscribe = "events.subscribe"
    case eventsUnsubscribe = "events.unsubscribe"
    // MARK: nested
    case hwptInvalidate = "hwpt.invalidate"
    case viommuInvalidate = "viommu.invalidate"
    // MARK: pasid
    case deviceAttachPASID = "device.attach_pasid"
    case deviceReplacePASID = "device.replace_pasid"
    case deviceDetachPASID = "device.detach_pasid"
    // MARK: hwqueue3
    case hwqueueAlloc = "hwqueue.alloc"
    case hwqueueDestroy = "hwqueue.destroy"

    /// False for methods a reader may call (`dirty.read` changes state unless `clear` is false).
    public var changesState: Bool {
        switch self {
        case .ownerList, .ownerInfo, .deviceList, .deviceInfo, .ioasList, .ioasInfo, .ioasRanges,
            .hwptList, .viommuList, .dirtyStatus, .eventsSubscribe, .eventsUnsubscribe, .queueList:
            false
        default:
            true
        }
    }

    /// Takes a file descriptor with the request (`{"fd": N}` in params).
    public var takesFD: Bool { self == .ioasMap }

    /// May send file descriptors back with the reply.
    public var returnsFDs: Bool {
        self == .deviceFD || self == .dirtyRead || self == .ownerDelegate || self == .faultCreate || self == .veventqCreate || self == .queueFD
    }

    /// One line for `rpc.discover` and `iommuctl --help`.
    public var summary: String {
        switch self {
        case .ownerCreate: "Create an owner (e.g. a VM's UUID) of the calling manager identity"
        case .ownerList: "List the owners the caller may see"
        case .ownerInfo: "An owner's objects, devices, pinned bytes and quota"
        case .ownerRelease: "Tear down everything of an owner in a safe order (its channels close)"
        case .ownerDelegate: "A VMM channel acting as this owner only: one end of a SOCK_SEQPACKET pair (docs/vmm-channel.md)"
        case .ownerRevokeChannels: "Close every channel of an owner"
        case .deviceList: "Devices with allow-list, lease, attachment and capabilities"
        case .deviceInfo: "One device by name or PCI address; a bound one with its IOMMU capabilities and vendor hw_info (VT-d CAP/ECAP, SMMUv3 IDRs, ...)"
        case .deviceAttach: "Lease and attach a device to an IOAS (auto-domain policy) or an HWPT"
        case .deviceDetach: "Detach a device (an HWPT the daemon created goes with its last device)"
        case .deviceReplace: "Move an attached device to another IOAS or HWPT without a DMA gap"
        case .deviceRelease: "Detach, unbind and end the lease of a device"
        case .deviceFD: "Hand the bound device fd to a trusted_vmm identity"
        case .ioasCreate: "Create an IO address space (huge pages on or off)"
        case .ioasDestroy: "Destroy an IOAS that no HWPT or device uses"
        case .ioasList: "List IOAS"
        case .ioasInfo: "An IOAS's mappings, HWPTs, devices and pinned bytes"
        case .ioasMap: "Map a memfd range into an IOAS (counted against the owner's quota), or a dma-buf range (P2P: counted in p2p_bytes, not pinned)"
        case .ioasUnmap: "Unmap whole mappings in a range (tolerate_missing: a hole is 0 bytes)"
        case .ioasCopy: "Map the pages behind one IOAS range into another IOAS"
        case .ioasRanges: "The usable IOVA ranges and alignment of an IOAS"
        case .ioasSetOption: "Turn huge IOPTEs on or off for an IOAS"
        case .hwptList: "List HWPTs"
        case .hwptAlloc: "Allocate an HWPT with explicit flags (dirty tracking, nest parent), or a nested HWPT on a nest parent or vIOMMU with driver data"
        case .hwptDestroy: "Destroy an HWPT no device or vIOMMU uses"
        case .dirtyStart: "Start dirty tracking on every HWPT of an IOAS (all or none)"
        case .dirtyStop: "Stop dirty tracking on an IOAS"
        case .dirtyStatus: "Dirty-tracking state of an IOAS and what it cannot see"
        case .dirtyRead: "Read (and clear) dirty pages as runs or as a bitmap memfd"
        case .viommuCreate: "Create a vIOMMU over the IOAS's nest parent of the device's IOMMU"
        case .viommuDestroy: "Destroy a vIOMMU without vDevices"
        case .viommuList: "List vIOMMUs with their nest parent, IOMMU instance and vDevices"
        case .vdeviceCreate: "Give a device its guest-visible ID on a vIOMMU"
        case .vdeviceDestroy: "Destroy a vDevice"
        case .faultCreate: "Create a fault queue of an owner; its records come on the returned fd (a socket), faults are answered there"
        case .faultDestroy: "Destroy a fault queue no HWPT delivers to"
        case .veventqCreate: "Create a vEVENTQ on a vIOMMU; its events come on the returned fd (a socket) and as event.queue notifications"
        case .veventqDestroy: "Destroy a vEVENTQ"
        case .queueList: "List fault queues and vEVENTQs with their holders and counters"
        case .queueFD: "A new fd for a queue's records (the previous holder's reaches end of file)"
        case .eventsSubscribe: "Receive object, device and dirty-tracking events as notifications"
        case .eventsUnsubscribe: "Stop a subscription"
        case .hwptInvalidate: "Invalidate a nested HWPT's caches: an array of driver entries in one IOMMU_HWPT_INVALIDATE"
        case .viommuInvalidate: "Invalidate a vIOMMU's caches: an array of driver entries in one IOMMU_HWPT_INVALIDATE"
        case .deviceAttachPASID: "Attach a PASID of a leased device to a PASID-capable HWPT (hwpt.alloc pasid) of its owner"
        case .deviceReplacePASID: "Move an attached PASID to another PASID-capable HWPT without a DMA gap"
        case .deviceDetachPASID: "Detach a PASID of a device"
        // MARK: hwqueue3
        case .hwqueueAlloc: "Allocate a HW queue (IOMMU_HW_QUEUE_ALLOC) of a vIOMMU over a mapped guest-physical range, which it pins (selftest mock type; Tegra241 CMDQV is refused)"
        case .hwqueueDestroy: "Destroy a HW queue (highest index first on the mock vIOMMU)"
        }
    }
}

/// `events.unsubscribe`.
public struct EventsUnsubscribeParams: Codable, Hashable, Sendable {
    public var subscription: UInt64
    public init(subscription: UInt64) { self.subscription = subscription }
}
