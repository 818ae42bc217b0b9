import IommufdCore

// MARK: hwqueue3

// HW queues across a restart: the kernel keeps them with the iommufd (in the fd store), and
// they have no fd of their own; the journal's state records each one, and a restarted broker
// takes them back on the journal's word (no uAPI call reads a HW queue without side effects,
// as for vIOMMUs and vDevices). A queue whose vIOMMU the journal or the iommufd no longer has
// is dropped and reported.

extension JournalState {
    struct HWQueue: Codable, Equatable {
        var id: ObjectID
        var owner: String
        var viommu: ObjectID
        var type: UInt32
        var index: UInt32
        var baseAddress: UInt64
        var length: UInt64
        var ioas: ObjectID
    }
}

extension Broker {
    /// The journal's HW queues, by ID; nil when there are none.
    func journalHWQueues() -> [JournalState.HWQueue]? {
        guard !hwQueueTable.isEmpty else { return nil }
        return hwQueueTable.values.sorted { $0.id < $1.id }.map { q in
            JournalState.HWQueue(id: q.id, owner: q.owner, viommu: q.viommu, type: q.type, index: q.index, baseAddress: q.baseAddress, length: q.length, ioas: q.ioas)
        }
    }

    /// Takes back the journaled HW queues (after the vIOMMUs were rebuilt).
    func adoptHWQueues(_ recorded: [JournalState.HWQueue], report: inout JournalRecovery) {
        for q in recorded {
            guard let v = viommuTable[q.viommu], v.owner == q.owner else {
                report.problems.append("HW queue \(q.id) (index \(q.index)) of owner '\(q.owner)' is journaled on vIOMMU \(q.viommu), which the journal does not have for that owner; dropped")
                continue
            }
            hwQueueTable[q.id] = HWQueueRecord(
                id: q.id, owner: q.owner, viommu: v.id, type: q.type, index: q.index, baseAddress: q.baseAddress, length: q.length, ioas: q.ioas)
        }
    }

    /// Drops the records of a vIOMMU's queues when the restart finds the vIOMMU gone from the
    /// iommufd (the kernel cannot destroy a vIOMMU with queues: they went before it).
    func dropHWQueues(ofVIOMMU id: ObjectID, report: inout JournalRecovery) {
        for q in hwQueues(ofVIOMMU: id) {
            hwQueueTable[q.id] = nil
            report.problems.append("HW queue \(q.id) (index \(q.index)) of owner '\(q.owner)' was journaled on vIOMMU \(id), which is gone from the iommufd; dropped from the records")
        }
    }
}
