#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdCore
import Logging

/// The daemon's brain: owners, roles, device leases and the policies, over one `IommuBackend`.
///
/// Every public method takes the `Caller` of the request, checks what it may do, validates the
/// params before touching the backend, and sees and leaves a consistent state (a failed request
/// undoes what it had done).
///
/// Locking design (owners do not wait for each other):
/// - `lock`, the broker's state lock, guards every table: owners and their quota counters,
///   objects, device leases, memory files, channels, subscribers and the journal. `locked {}`
///   runs a request (or one phase of one) under it, then writes the journal and delivers events;
///   most methods run wholly inside one `locked {}`: they are short.
/// - Each owner has a `gate` (`OwnerRecord.gate`), which `serialized` holds around a request
///   that does its slow part outside `lock`: `ioas.map` and `ioas.copy` (the backend call that
///   pins pages: seconds for a large VM), `ioas.unmap`, `dirty.read` (the kernel read of the
///   bitmaps and their encoding into runs or a memfd), `hwpt.invalidate` / `viommu.invalidate`
///   and the channel's INVALIDATE (the `IOMMU_HWPT_INVALIDATE`; `gatedInvalidation`, which has
///   no phase 3: it records nothing). Such a request runs in three phases:
///   1. under `lock`: look up and check everything, and reserve what it will use (a map's bytes
///      go into the owner's `reservedBytes`, checked against the quota with `pinnedBytes`; its
///      memory file is retained in the file table);
///   2. under the owner's `gate` only: the backend call, the copy or encoding;
///   3. under `lock`: commit (the mapping record, the counters, the journal record), or undo
///      exactly what phase 1 reserved when phase 2 failed.
///   Other owners' requests take `lock` between those phases and do not wait for phase 2.
/// - What a phase 2 relies on cannot change under it: every request that changes an owner's
///   mappings or pinned bytes, or frees what a dirty read uses, holds the owner's gate too
///   (`ioas.destroy`, `dirty.stop`, `owner.release` run under the gate and then `lock`; so do
///   `hwpt.destroy` and `viommu.destroy`, which end what an invalidation uses), so one
///   owner's gated requests run one at a time, in order, and their journal records are written
///   in that order. Methods that only take `lock` (devices, HWPTs, vIOMMUs, everything else)
///   never touch mappings, pinned bytes or the dirty scratch.
/// - Order: a gate before `lock`, never a gate while holding `lock`, never two gates.
/// - `lockWait` records every wait for `lock` (`iommufdd_broker_lock_wait_seconds`), `ownerWait`
///   every wait for a gate (`iommufdd_broker_owner_wait_seconds`).
///
/// Visibility rule: a manager acting on (or reading) another manager's owner or one of its
/// objects gets `NotFound` with the very message an owner or ID that does not exist gets, so
/// it cannot tell the two apart (nor probe which names and IDs are in use). A device leased to
/// another manager's owner is `NotFound` too ("not leased to an owner of this identity"): the
/// device itself is public (device.list), its owner is not. `PermissionDenied` is for what the
/// caller may see but not do: a reader's write, a device outside the allow-list, `device.fd`
/// without `trusted_vmm`. Admins see and do everything; readers see everything and change
/// nothing.
public final class Broker: @unchecked Sendable {
    public let backend: any IommuBackend
    let logger: Logger
    private let lock = NSLock()
    /// Held while events are delivered, so subscribers see them in order.
    private let deliveryLock = NSLock()

    // State, only touched under `lock`.
    var config: BrokerConfig
    var owners: [String: OwnerRecord] = [:]
    var ioasTable: [ObjectID: IOASRecord] = [:]
    var hwptTable: [ObjectID: HWPTRecord] = [:]
    var viommuTable: [ObjectID: VIOMMURecord] = [:]
    var vdeviceTable: [ObjectID: VDeviceRecord] = [:]
    var devices: [String: DeviceRecord] = [:]
    /// PCI address (lower case) → device name.
    var devicesByPCI: [String: String] = [:]
    var nestParents: [NestParentKey: ObjectID] = [:]
    // MARK: queues
    /// Fault queues and vEVENTQs (Broker+Queues.swift), and the thread relaying their records.
    var queueTable: [ObjectID: QueueRecord] = [:]
    let queuePump = QueuePump()
    deinit { queuePump.stop() }
    /// Delegated channels (`owner.delegate`) by channel ID → the owner each acts as.
    var channels: [UInt64: String] = [:]
    var nextChannelID: UInt64 = 1
    /// Channels the fd store gave back at a restart, for the daemon to serve again.
    var recoveredChannels: [RecoveredChannel] = []
    var files = MemoryFileTable()
    // MARK: p2p
    /// The broker's dups of the dma-bufs behind mappings (Broker+Dmabuf.swift).
    var dmabufFiles = DmabufFileTable()
    // MARK: hwqueue3
    /// HW queues of vIOMMUs (Broker+HWQueues.swift).
    var hwQueueTable: [ObjectID: HWQueueRecord] = [:]
    /// The object journal in systemd's fd store (Journal/), nil without an fd store.
    var journal: ObjectJournal?
    private var subscribers: [UInt64: Subscription] = [:]
    private var nextSubscription: UInt64 = 1
    var pending: [(event: BrokerEvent, identity: String?)] = []
    /// How long each acquisition of `lock` waited for it (`locked` and `readLocked`), recorded
    /// under `lock` once acquired: `daemon.metrics`' `iommufdd_broker_lock_wait_seconds`.
    private var lockWait = LatencyHistogram()
    /// How long each gated request waited for its owner's gate (`serialized`), recorded under
    /// `lock`: `daemon.metrics`' `iommufdd_broker_owner_wait_seconds`.
    var ownerWait = LatencyHistogram()
    /// Test hook: runs after the wait's start time is read and before `lock` is taken, so a
    /// test knows a request is about to wait. Set only while no request runs.
    var lockWaitWillBlock: (() -> Void)?

    struct Subscription {
        var caller: Caller
        var owner: String?
        var handler: BrokerEventHandler
    }

    /// The system page size: the alignment of map/unmap parameters.
    public static let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    public init(backend: any IommuBackend, config: BrokerConfig, logger: Logger = Logger(label: "iommufdd.broker")) throws {
        self.backend = backend
        self.config = config
        self.logger = logger
        try refreshDevices()
    }

    // MARK: Serialisation

    /// Reads under the lock, without the journal commit and event delivery of `locked`: for
    /// look-ups that change nothing (the caller a channel acts as).
    func readLocked<T>(_ body: () throws -> T) rethrows -> T {
        acquire()
        defer { lock.unlock() }
        return try body()
    }

    /// Takes `lock`, recording how long that waited: two clock reads, no allocation.
    @inline(__always)
    private func acquire() {
        let start = monotonicNanoseconds()
        lockWaitWillBlock?()
        lock.lock()
        lockWait.record(monotonicNanoseconds() &- start)
    }

    /// The broker lock's wait histogram so far (every acquisition, this one's included).
    public func lockWaitHistogram() -> LatencyHistogram {
        readLocked { lockWait }
    }

    /// The owner gates' wait histogram so far (every request `serialized` ran).
    public func ownerWaitHistogram() -> LatencyHistogram {
        readLocked { ownerWait }
    }

    /// Runs `body` under the lock, then delivers the events it queued, in order, outside the
    /// lock. A handler must not make a call that changes state synchronously (it would wait for
    /// the delivery it is part of): it hands the event to its connection's queue.
    func locked<T>(_ body: () throws -> T) throws -> T {
        acquire()
        let result = Result { try body() }
        journalCommit()
        let events = pending
        pending.removeAll()
        if events.isEmpty {
            lock.unlock()
            return try result.get()
        }
        let subs = Array(subscribers.values)
        deliveryLock.lock()
        lock.unlock()
        defer { deliveryLock.unlock() }
        for (event, identity) in events {
            for sub in subs where Self.subscription(sub, sees: event, ownerIdentity: identity) {
                sub.handler(event)
            }
        }
        return try result.get()
    }

    func emit(_ event: BrokerEvent) {
        let identity = event.owner.flatMap { owners[$0]?.identity }
        pending.append((event, identity))
    }

    private static func subscription(_ sub: Subscription, sees event: BrokerEvent, ownerIdentity: String?) -> Bool {
        guard let owner = event.owner else { return true }
        if let wanted = sub.owner, wanted != owner { return false }
        if sub.caller.role != .manager { return true }
        return ownerIdentity == sub.caller.identity
    }

    // MARK: Events

    /// `events.subscribe`: `handler` receives the events the caller may see (managers: their own
    /// owners' and daemon-wide ones), optionally of one owner only.
    public func subscribe(_ caller: Caller, _ params: EventsSubscribeParams, handler: @escaping BrokerEventHandler) throws -> EventsSubscribeResult {
        try locked {
            if let name = params.owner { _ = try readableOwner(caller, name) }
            let id = nextSubscription
            nextSubscription += 1
            subscribers[id] = Subscription(caller: caller, owner: params.owner, handler: handler)
            return EventsSubscribeResult(subscription: id)
        }
    }

    /// Stops a subscription when its connection closes. Unknown IDs are ignored.
    public func unsubscribe(_ subscription: UInt64) {
        readLocked { subscribers[subscription] = nil }
    }

    /// `events.unsubscribe`: stops one of the caller's own subscriptions.
    public func unsubscribe(_ caller: Caller, _ params: EventsUnsubscribeParams) throws {
        try readLocked {
            guard let sub = subscribers[params.subscription], sub.caller == caller else {
                throw BrokerError.notFound("no subscription \(params.subscription) of this connection")
            }
            subscribers[params.subscription] = nil
        }
    }

    // MARK: Configuration

    /// Applies a reloaded config. Existing leases and objects stay (running VMs keep their DMA);
    /// the new allow-list and roles apply to what is asked from now on, and owners take their
    /// identity's new quota (an owner already above a lowered quota keeps its mappings but can
    /// map nothing more until it is below).
    public func reload(config newConfig: BrokerConfig) throws {
        try locked {
            config = newConfig
            for owner in owners.values {
                if let rule = newConfig.access.rule(forIdentity: owner.identity) { owner.quotaBytes = rule.quotaBytes }
            }
            try refreshDevices()
            markEveryOwnerChanged()  // ownerjournal: every owner's quota may have changed
            emit(.configReloaded)
        }
    }

    /// The current access control, for resolving new connections.
    public var accessControl: AccessControl {
        readLocked { config.access }
    }

    /// `resolve` through the current config: the caller for these credentials, or nil (refuse).
    public func resolve(uid: UInt32, gid: UInt32, pid: Int32) -> Caller? {
        accessControl.resolve(uid: uid, gid: gid, pid: pid)
    }

    /// Re-reads the backend's devices; devices that vanished but are leased are kept.
    private func refreshDevices() throws {
        let found = try kcall("discovering devices") { try backend.discoverDevices() }
        var seen = Set<String>()
        for descriptor in found {
            seen.insert(descriptor.name)
            if let record = devices[descriptor.name] {
                if record.bound == nil { record.descriptor = descriptor }
            } else {
                devices[descriptor.name] = DeviceRecord(descriptor: descriptor)
            }
        }
        for (name, record) in devices where !seen.contains(name) && record.owner == nil {
            devices[name] = nil
        }
        devicesByPCI = [:]
        for (name, record) in devices {
            if let pci = record.descriptor.pciAddress { devicesByPCI[pci.lowercased()] = name }
        }
    }

    // MARK: Counts

    /// Object counts for `daemon.info` / `daemon.metrics`.
    public func counts() -> BrokerCounts {
        readLocked {
            BrokerCounts(
                owners: owners.count, ioas: ioasTable.count, hwpts: hwptTable.count,
                viommus: viommuTable.count, vdevices: vdeviceTable.count,
                mappings: ioasTable.values.reduce(0) { $0 + $1.mappings.count },
                pinnedBytes: owners.values.reduce(0) { $0 + $1.pinnedBytes },
                devicesKnown: devices.count,
                devicesAllowed: devices.values.filter { config.allowList.allows($0.descriptor) }.count,
                devicesLeased: devices.values.filter { $0.owner != nil }.count,
                devicesAttached: devices.values.filter { $0.pt != nil }.count,
                dirtyTrackingIOAS: ioasTable.values.filter(\.dirtyEnabled).count,
                subscribers: subscribers.count)
        }
    }

    /// A client-supplied name for an error message: at most 128 characters.
    static func echo(_ name: String) -> String {
        name.count <= 128 ? name : name.prefix(128) + "..."
    }

    // MARK: Access checks (under the lock)

    func requireWriter(_ caller: Caller, _ what: String) throws {
        if caller.role == .reader {
            throw BrokerError.denied("\(what) changes state, and identity '\(caller.identity)' has the reader role (list/info/subscribe only); ask for the manager role in the config")
        }
    }

    /// An owner the caller may read. Another manager's owner is answered as if it did not exist.
    func readableOwner(_ caller: Caller, _ name: String) throws -> OwnerRecord {
        guard let owner = owners[name], canSee(caller, owner: owner.name) else {
            throw BrokerError.notFound("no owner '\(Self.echo(name))'; create it with owner.create, or see owner.list")
        }
        markOwnerChanged(owner.name)  // ownerjournal: the commit records this owner's slice
        return owner
    }

    /// An owner the caller may change.
    func writableOwner(_ caller: Caller, _ name: String, _ what: String) throws -> OwnerRecord {
        try requireWriter(caller, what)
        return try readableOwner(caller, name)
    }

    func canSee(_ caller: Caller, owner name: String) -> Bool {
        if let scope = caller.scopeOwner { return name == scope && owners[name] != nil }
        return caller.role != .manager || owners[name]?.identity == caller.identity
    }

    /// An IOAS the caller may see (and, with `write`, change). Absent and another manager's
    /// IOAS get the same `NotFound`; a reader's write is `PermissionDenied`.
    func ioas(_ caller: Caller, _ id: ObjectID, write what: String? = nil) throws -> IOASRecord {
        try visibleObject(caller, ioasTable[id], \.owner, write: what, absent: "no IOAS \(id); see ioas.list")
    }

    func hwpt(_ caller: Caller, _ id: ObjectID, write what: String? = nil) throws -> HWPTRecord {
        try visibleObject(caller, hwptTable[id], \.owner, write: what, absent: "no HWPT \(id); see hwpt.list")
    }

    func viommu(_ caller: Caller, _ id: ObjectID, write what: String? = nil) throws -> VIOMMURecord {
        try visibleObject(caller, viommuTable[id], \.owner, write: what, absent: "no vIOMMU \(id); see viommu.list")
    }

    func vdevice(_ caller: Caller, _ id: ObjectID, write what: String? = nil) throws -> VDeviceRecord {
        try visibleObject(caller, vdeviceTable[id], \.owner, write: what, absent: "no vDevice \(id); see viommu.list")
    }

    /// `record` when it exists and the caller may see its owner, else `NotFound` with `absent`
    /// (one message for both, so another manager's objects are indistinguishable from missing
    /// ones); with `what`, the caller must also be a writer.
    private func visibleObject<Record>(
        _ caller: Caller, _ record: Record?, _ owner: KeyPath<Record, String>, write what: String?, absent: @autoclosure () -> String
    ) throws -> Record {
        guard let record, canSee(caller, owner: record[keyPath: owner]) else {
            throw BrokerError.notFound(absent())
        }
        markOwnerChanged(record[keyPath: owner])  // ownerjournal
        if let what { try requireWriter(caller, what) }
        return record
    }

    /// A known device by name or PCI address.
    func device(_ name: String) throws -> DeviceRecord {
        if let record = devices[name] { return record }
        if let alias = devicesByPCI[name.lowercased()], let record = devices[alias] { return record }
        throw BrokerError.notFound("no device '\(Self.echo(name))'; see device.list for the names and PCI addresses the daemon knows")
    }

    /// A device leased to an owner the caller may change.
    func leasedDevice(_ caller: Caller, _ name: String, _ what: String) throws -> (DeviceRecord, OwnerRecord) {
        try requireWriter(caller, what)
        let record = try device(name)
        guard let ownerName = record.owner, let owner = owners[ownerName] else {
            throw BrokerError(.conflict, "device '\(record.name)' is not leased to any owner; attach it with device.attach first")
        }
        if !canSee(caller, owner: owner.name) {
            throw BrokerError.notFound("device '\(record.name)' is not leased to an owner of identity '\(caller.identity)'; attach it to one of them with device.attach first (device.list names the owner of every device leased to yours)")
        }
        markOwnerChanged(owner.name)  // ownerjournal
        return (record, owner)
    }
}
