import IommufdCore

/// Everything a `SimBackend` holds, by object ID: what a test compares with the broker's records
/// to prove that neither side has an object, mapping, attachment or dirty-tracking state the
/// other does not know. Read-only: taking it changes nothing (no uAPI call lists an iommufd's
/// objects, so this is the simulator's own view, for tests).
public struct SimInventory: Equatable, Sendable, Codable, CustomStringConvertible {
    public struct IOAS: Equatable, Sendable, Codable {
        public var id: ObjectID
        /// Mapped areas in IOVA order (one `IOMMU_IOAS_MAP` can make several, one per slice).
        public var areas: [IOVARange]
        /// HWPTs whose domain is in this IOAS, in creation order.
        public var hwpts: [ObjectID]
        /// mdev-like devices (accesses) attached to the IOAS itself.
        public var accessDevices: [ObjectID]
        public var hugePages: Bool
    }
    public struct HWPT: Equatable, Sendable, Codable {
        public var id: ObjectID
        public var ioas: ObjectID
        public var iommu: String
        public var flags: HWPTAllocFlags
        public var devices: [ObjectID]
        public var viommuUsers: Int
        public var dirtyTracking: Bool
        /// Dirty IOPTEs: start IOVA → IOPTE size.
        public var dirty: [UInt64: UInt64]
    }
    public struct Device: Equatable, Sendable, Codable {
        public var id: ObjectID
        public var name: String
        /// The HWPT (or, for an mdev-like device, the IOAS) it is attached to.
        public var attached: ObjectID?
        public var vdevice: ObjectID?
    }
    public struct VIOMMU: Equatable, Sendable, Codable {
        public var id: ObjectID
        public var hwpt: ObjectID
        public var type: UInt32
        public var vdevices: [ObjectID]
    }
    public struct VDevice: Equatable, Sendable, Codable {
        public var id: ObjectID
        public var viommu: ObjectID
        public var device: ObjectID
        public var virtualID: UInt64
    }

    public var ioas: [IOAS] = []
    public var hwpts: [HWPT] = []
    public var devices: [Device] = []
    public var viommus: [VIOMMU] = []
    public var vdevices: [VDevice] = []
    /// IDs left taken by a destroyed vDevice (`iommufd_object_tombstone_user`).
    public var tombstones: [ObjectID] = []

    /// Whether the simulator holds nothing but tombstones.
    public var isEmpty: Bool { ioas.isEmpty && hwpts.isEmpty && devices.isEmpty && viommus.isEmpty && vdevices.isEmpty }

    public var description: String {
        var lines: [String] = []
        for i in ioas { lines.append("IOAS \(i.id): areas \(i.areas) hwpts \(i.hwpts) accesses \(i.accessDevices) huge \(i.hugePages)") }
        for h in hwpts {
            lines.append("HWPT \(h.id) (IOAS \(h.ioas), \(h.iommu), flags \(h.flags.rawValue)): devices \(h.devices) viommus \(h.viommuUsers) tracking \(h.dirtyTracking) dirty \(h.dirty.count)")
        }
        for d in devices { lines.append("device \(d.id) \(d.name): attached \(d.attached.map(String.init) ?? "-") vdevice \(d.vdevice.map(String.init) ?? "-")") }
        for v in viommus { lines.append("vIOMMU \(v.id) on HWPT \(v.hwpt) type \(v.type): vdevices \(v.vdevices)") }
        for v in vdevices { lines.append("vDevice \(v.id) on vIOMMU \(v.viommu): device \(v.device) virtual ID \(v.virtualID)") }
        if !tombstones.isEmpty { lines.append("tombstones \(tombstones)") }
        return lines.isEmpty ? "(empty)" : lines.joined(separator: "\n")
    }
}

extension SimBackend {
    /// What the simulator holds now, in one critical section.
    public func inventory() -> SimInventory {
        lock.withLock {
            var inventory = SimInventory()
            for (id, object) in objects.sorted(by: { $0.key < $1.key }) {
                switch object {
                case .ioas(let ioas):
                    var areas: [IOVARange] = []
                    ioas.table.areas.forEach { area in
                        areas.append(IOVARange(start: area.iova, last: area.last))
                        return true
                    }
                    inventory.ioas.append(
                        .init(id: id, areas: areas, hwpts: ioas.hwpts, accessDevices: ioas.accessDevices.sorted(), hugePages: !ioas.table.disableLargePages))
                case .hwpt(let hwpt):
                    inventory.hwpts.append(
                        .init(
                            id: id, ioas: hwpt.ioas, iommu: hwpt.iommu.name, flags: hwpt.flags, devices: hwpt.devices.sorted(),
                            viommuUsers: hwpt.viommuUsers, dirtyTracking: hwpt.dirtyTrackingEnabled, dirty: hwpt.dirty))
                case .device(let device):
                    inventory.devices.append(.init(id: id, name: device.descriptor.name, attached: device.attached, vdevice: device.vdevice))
                case .viommu(let viommu):
                    inventory.viommus.append(.init(id: id, hwpt: viommu.hwpt, type: viommu.type, vdevices: viommu.vdevices.values.sorted()))
                case .vdevice(let vdev):
                    inventory.vdevices.append(.init(id: id, viommu: vdev.viommu, device: vdev.device, virtualID: vdev.virtualID))
                case .eventQueue:
                    break  // queues are not part of the inventory (SimBackend+Queues.swift)
                case .hwQueue:
                    break  // nor are HW queues (SimBackend+HWQueue.swift)
                case .tombstone:
                    inventory.tombstones.append(id)
                }
            }
            return inventory
        }
    }
}
