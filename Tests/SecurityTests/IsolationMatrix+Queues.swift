import IommufdRPC

// Fixtures of the queue rows (branch `queues`).
extension Clients {
    /// A fault queue of owner A's (its fd closed: nobody holds it).
    func newFaultQueue(_ f: Fixture) throws -> Int64 {
        guard let id = try a.value("fault.create", ["owner": .string(f.owner)])["queue"]?["queue"]?.int64Value else {
            throw DaemonTestError("fault.create returned no queue id")
        }
        return id
    }

    /// A vEVENTQ on a new vIOMMU of owner A's.
    func newVEventQ(_ f: Fixture) throws -> Int64 {
        let v = try newVIOMMU(f)
        guard let id = try a.value("veventq.create", ["viommu": .id(v)])["queue"]?["queue"]?.int64Value else {
            throw DaemonTestError("veventq.create returned no queue id")
        }
        return id
    }
}
