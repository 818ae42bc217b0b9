#if canImport(Glibc)
import Glibc
#endif
import IommufdContract
import IommufdCore

// Queues across a restart (branch `queues`): the journal's state records each queue (and which
// HWPTs deliver to a fault queue, and the fault cookies awaiting an answer); the fd store keeps
// the backend's queue fd (`queue.<id>`: the kernel's, which is the only way to read the queue)
// and the daemon's end of the holder's socket (`queuerelay.<id>`: the holder keeps reading
// across the restart).

extension JournalState {
    struct Queue: Codable, Equatable {
        var id: ObjectID
        var owner: String
        var kind: String
        var viommu: ObjectID?
        var type: UInt32?
        var depth: UInt32?
        var hwpts: [ObjectID]
        var awaiting: [UInt32]
    }
}

extension StoredFDName {
    /// A queue's backend fd (the kernel's vEVENTQ or fault-queue fd), by object ID.
    public static func queue(_ id: UInt32) -> String { "queue.\(id)" }
    /// The daemon's end of the socket whose other end a queue's holder has, by object ID.
    public static func queueRelay(_ id: UInt32) -> String { "queuerelay.\(id)" }

    /// `(id, relay?)` of a queue entry's name.
    static func parseQueue(_ name: String) -> (id: UInt32, relay: Bool)? {
        if name.hasPrefix("queue."), let id = UInt32(name.dropFirst(6)) { return (id, false) }
        if name.hasPrefix("queuerelay."), let id = UInt32(name.dropFirst(11)) { return (id, true) }
        return nil
    }
}

extension Broker {
    func journalQueues() -> [JournalState.Queue]? {
        guard !queueTable.isEmpty else { return nil }
        return queueTable.values.sorted { $0.id < $1.id }.map { q in
            JournalState.Queue(
                id: q.id, owner: q.owner, kind: q.kind.rawValue, viommu: q.viommu, type: q.type, depth: q.depth,
                hwpts: hwptTable.values.filter { $0.faultQueue == q.id }.map(\.id).sorted(), awaiting: q.awaiting.sorted())
        }
    }

    /// Puts a new queue's fds in the fd store (nothing without one).
    func storeQueueFDs(_ record: QueueRecord) {
        guard let store = journal?.store else { return }
        if let fd = (backend as? any RestartableQueueBackend)?.queueFDToStore(record.id) {
            // i14audit: in a capsule of its own inode, so the store cannot take it for another
            // queue's fd (systemd 256 without kcmp would: FDCapsule); stored as it is if no
            // capsule can be made.
            if let capsule = FDCapsule.wrap(fd) {
                store.store(capsule, name: StoredFDName.queue(record.id))
                close(capsule)
            } else {
                store.store(fd, name: StoredFDName.queue(record.id))
            }
        }
        if let relay = record.relayFD { store.store(relay, name: StoredFDName.queueRelay(record.id)) }
    }

    /// Drops a queue's relay end from the fd store (a new holder, or the holder left).
    func forgetQueueRelay(_ id: ObjectID) {
        journal?.store.remove(name: StoredFDName.queueRelay(id))
    }

    func forgetQueueFDs(_ id: ObjectID) {
        journal?.store.remove(name: StoredFDName.queue(id))
        journal?.store.remove(name: StoredFDName.queueRelay(id))
    }

    /// Takes back the queues the journal records, with their fds from the store (what is taken
    /// leaves `stored`); a queue the backend cannot take back is reported and dropped from the
    /// tables (its kernel object, if any, is released with the iommufd).
    func adoptQueues(_ recorded: [JournalState.Queue], stored: inout [String: Int32], problems: inout [String]) {
        for q in recorded {
            guard let kind = QueueRecord.Kind(rawValue: q.kind), owners[q.owner] != nil else {
                problems.append("queue \(q.id) (\(q.kind)) of owner '\(q.owner)' is not of a known kind or owner; not taken back")
                continue
            }
            var backendFD = stored.removeValue(forKey: StoredFDName.queue(q.id))
            // i14audit: a capsule gives a copy of the queue fd it holds (and keeps it there for
            // the next restart); a raw fd (an older daemon's) is used as it is.
            if let capsule = backendFD, let inner = FDCapsule.unwrap(capsule) {
                close(capsule)
                backendFD = inner
            }
            let pollFD: Int32
            do {
                guard let restartable = backend as? any RestartableQueueBackend else {
                    throw IommuError(.EOPNOTSUPP, "adopt", detail: "this backend cannot take queues back")
                }
                pollFD = try restartable.adoptEventQueue(q.id, fd: backendFD)
            } catch {
                problems.append("\(kind == .fault ? "fault queue" : "vEVENTQ") \(q.id) of owner '\(q.owner)' could not be taken back (\(error)); destroy what uses it and create it again")
                if let backendFD { close(backendFD) }
                continue
            }
            let record = QueueRecord(id: q.id, owner: q.owner, kind: kind, viommu: q.viommu, type: q.type, depth: q.depth, pollFD: pollFD)
            record.awaiting = Set(q.awaiting)
            if let relay = stored.removeValue(forKey: StoredFDName.queueRelay(q.id)) {
                _ = fcntl(relay, F_SETFL, fcntl(relay, F_GETFL) | O_NONBLOCK)
                record.relayFD = relay
            }
            for h in q.hwpts { hwptTable[h]?.faultQueue = q.id }
            queueTable[q.id] = record
            queuePump.watch(self, queue: q.id, fds: [pollFD], relay: record.relayFD)
        }
    }
}
