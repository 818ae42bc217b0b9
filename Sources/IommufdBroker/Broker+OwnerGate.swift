import IommufdContract
import IommufdCore

extension Broker {
    /// Runs `body` holding the gate of the owner `find` names (looked up under `lock`), so that
    /// `body` may do slow work outside `lock` while no other request of that owner changes what
    /// it relies on (the locking design at the top of Broker.swift). `body` takes `lock` itself,
    /// in short `locked {}` phases. Never call it while holding `lock`.
    ///
    /// The owner found is checked again once its gate is held: if it was released (and perhaps
    /// created again under its name) meanwhile, the look-up is made again, and answers
    /// NotFound when the owner is gone.
    func serialized<T>(_ find: () throws -> OwnerRecord, _ body: (OwnerRecord) throws -> T) throws -> T {
        while true {
            let owner = try readLocked(find)
            let start = monotonicNanoseconds()
            owner.gate.lock()
            let waited = monotonicNanoseconds() &- start
            let current = readLocked { () -> Bool in
                ownerWait.record(waited)
                return owners[owner.name] === owner
            }
            guard current else {
                owner.gate.unlock()
                continue
            }
            defer { owner.gate.unlock() }
            return try body(owner)
        }
    }

    /// The owner of the IOAS `id`, looked up with the caller's rights (`ioas(_:_:write:)`).
    func ownerOfIOAS(_ caller: Caller, _ id: ObjectID, write what: String? = nil) throws -> OwnerRecord {
        let ioas = try ioas(caller, id, write: what)
        guard let owner = owners[ioas.owner] else { throw BrokerError.notFound("owner of IOAS \(ioas.id) is gone") }
        markOwnerChanged(owner.name)  // ownerjournal
        return owner
    }

    /// Reserves `bytes` of `owner`'s quota for a map or copy in flight (phase 1), or refuses
    /// with QuotaExceeded when the mapped and reserved bytes leave no room.
    func reserve(_ owner: OwnerRecord, _ bytes: UInt64) throws {
        try charge(owner, bytes)
        owner.reservedBytes += bytes
    }

    /// The owner named `name` (under `lock`), for `serialized`'s look-up of an object's owner.
    func ownerRecord(_ name: String) throws -> OwnerRecord {
        guard let owner = owners[name] else { throw BrokerError.notFound("owner '\(Self.echo(name))' is gone") }
        markOwnerChanged(name)  // ownerjournal
        return owner
    }
}
