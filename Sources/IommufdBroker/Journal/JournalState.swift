import IommufdContract
import IommufdCore

/// Everything the broker knows except the mappings: owners and their policies, IOAS, HWPTs,
/// device leases and attachments, vIOMMUs, vDevices, dirty-tracking state. Small (objects, not
/// pages), so the journal records it whole whenever it changes; mappings, which can be millions,
/// are recorded one by one.
struct JournalState: Codable, Equatable {
    struct Owner: Codable, Equatable {
        var name: String
        var identity: String
        var creatorUID: UInt32
        var quotaBytes: UInt64?
        var policy: OwnerPolicy
        var devices: [String]
    }
    struct IOAS: Codable, Equatable {
        var id: ObjectID
        var owner: String
        var hugePages: Bool
        var directDevices: [String]
        var dirtyEnabled: Bool
    }
    struct HWPT: Codable, Equatable {
        var id: ObjectID
        var owner: String
        var ioas: ObjectID
        var flags: UInt32
        /// Created by the daemon's policy (auto-domain, vIOMMU parent), destroyed with its last user.
        var auto: Bool
        var iommuInstance: String?
        var devices: [String]
        var tracking: Bool
        /// A nested HWPT's parent, vIOMMU and driver data. Absent for a paging HWPT, so a
        /// journal without nested HWPTs reads the same as before they existed.
        var nested: Nested?
    }
    struct Nested: Codable, Equatable {
        var parent: ObjectID
        var viommu: ObjectID?
        var dataType: UInt32
        var data: [UInt8]
    }
    struct Device: Codable, Equatable {
        var descriptor: DeviceDescriptor
        var owner: String?
        var boundID: ObjectID?
        /// Whether the bound device has a cdev fd (stored as `device.<id>`).
        var hasFD: Bool
        var hwInfo: HWInfo?
        var ioas: ObjectID?
        var pt: ObjectID?
        /// The backend's own objects behind the bound device, to take it back after a restart
        /// (`RestartableBackend.restartObjects(ofDevice:)`; a mock device's selftest object).
        var backendObjects: [String: ObjectID]?
    }
    struct VIOMMU: Codable, Equatable {
        var id: ObjectID
        var owner: String
        var ioas: ObjectID
        var hwpt: ObjectID
        var device: String
        var iommuInstance: String?
    }
    struct VDevice: Codable, Equatable {
        var id: ObjectID
        var owner: String
        var viommu: ObjectID
        var device: String
        var virtualID: UInt64
    }
    struct NestParent: Codable, Equatable {
        var ioas: ObjectID
        var iommuInstance: String
        var hwpt: ObjectID
    }

    var owners: [Owner] = []
    var ioas: [IOAS] = []
    var hwpts: [HWPT] = []
    var devices: [Device] = []
    var viommus: [VIOMMU] = []
    var vdevices: [VDevice] = []
    var nestParents: [NestParent] = []
    /// Delegated channels whose daemon end is in the fd store (`channel.<id>`), and the owner
    /// each acts as. Absent (nil) when there are none, so a journal without channels reads the same.
    struct Channel: Codable, Equatable {
        var id: UInt64
        var owner: String
    }
    var channels: [Channel]?
    // MARK: queues
    /// Fault queues and vEVENTQs (Broker+QueueJournal.swift); nil when there are none.
    var queues: [Queue]?
    // MARK: pasid
    /// PASID attachments (Broker+PASIDJournal.swift); nil when there are none, so a journal
    /// without them reads the same.
    var pasids: [PASIDAttachment]?
    // MARK: hwqueue3
    /// HW queues (Broker+HWQueueJournal.swift); nil when there are none, so a journal without
    /// them reads the same.
    var hwQueues: [HWQueue]?
}

extension Broker {
    /// The journal's view of the broker's tables (under the lock).
    func journalState() -> JournalState {
        var s = JournalState()
        s.owners = owners.values.sorted { $0.name < $1.name }.map {
            .init(name: $0.name, identity: $0.identity, creatorUID: $0.creatorUID, quotaBytes: $0.quotaBytes, policy: $0.policy, devices: $0.devices.sorted())
        }
        s.ioas = ioasTable.values.sorted { $0.id < $1.id }.map {
            .init(id: $0.id, owner: $0.owner, hugePages: $0.hugePages, directDevices: $0.directDevices.sorted(), dirtyEnabled: $0.dirtyEnabled)
        }
        s.hwpts = hwptTable.values.sorted { $0.id < $1.id }.map {
            .init(id: $0.id, owner: $0.owner, ioas: $0.ioas, flags: $0.flags.rawValue, auto: $0.auto, iommuInstance: $0.iommuInstance, devices: $0.devices.sorted(), tracking: $0.tracking,
                nested: $0.nested.map { .init(parent: $0.parent, viommu: $0.viommu, dataType: $0.data.type, data: $0.data.bytes) })
        }
        s.devices = journalDevices()
        s.viommus = viommuTable.values.sorted { $0.id < $1.id }.map {
            .init(id: $0.id, owner: $0.owner, ioas: $0.ioas, hwpt: $0.hwpt, device: $0.device, iommuInstance: $0.iommuInstance)
        }
        s.vdevices = vdeviceTable.values.sorted { $0.id < $1.id }.map {
            .init(id: $0.id, owner: $0.owner, viommu: $0.viommu, device: $0.device, virtualID: $0.virtualID)
        }
        s.nestParents = nestParents.map { .init(ioas: $0.key.ioas, iommuInstance: $0.key.iommuInstance, hwpt: $0.value) }
            .sorted { ($0.ioas, $0.iommuInstance) < ($1.ioas, $1.iommuInstance) }
        s.queues = journalQueues()  // queues
        s.pasids = journalPASIDs()  // pasid
        s.hwQueues = journalHWQueues()  // hwqueue3
        s.channels = channels.isEmpty ? nil : channels.sorted { $0.key < $1.key }.map { .init(id: $0.key, owner: $0.value) }
        return s
    }

    /// The leased or bound devices, by name (the global slice's device table).
    func journalDevices() -> [JournalState.Device] {
        devices.values.filter { $0.owner != nil || $0.bound != nil }.sorted { $0.name < $1.name }.map {
            .init(
                descriptor: $0.descriptor, owner: $0.owner, boundID: $0.bound?.id, hasFD: $0.bound?.fd != nil, hwInfo: $0.hwInfo,
                ioas: $0.ioas, pt: $0.pt, backendObjects: $0.bound.flatMap { restartObjects(ofDevice: $0.id) })
        }
    }

    /// What the backend needs besides the device ID to take the device back; nil when nothing.
    private func restartObjects(ofDevice id: ObjectID) -> [String: ObjectID]? {
        guard let objects = (backend as? any RestartableBackend)?.restartObjects(ofDevice: id), !objects.isEmpty else { return nil }
        return objects
    }
}
