import IommufdCore

extension SimInventory {
    /// The parts restart recovery compares with the journal.
    public var backendInventory: BackendInventory {
        var b = BackendInventory()
        b.ioas = ioas.map { .init(id: $0.id, areas: $0.areas) }
        b.hwpts = hwpts.map { .init(id: $0.id, ioas: $0.ioas, dirtyTracking: $0.dirtyTracking) }
        b.devices = devices.map { .init(id: $0.id, name: $0.name, attached: $0.attached) }
        b.viommus = viommus.map { .init(id: $0.id) }
        b.vdevices = vdevices.map { .init(id: $0.id) }
        return b
    }
}

extension PersistentSimBackend: InventoryBackend {
    /// The simulator lists its objects, so restart recovery removes what a request cut off by a
    /// crash made and never journaled (the kernel backend cannot list them).
    public func backendInventory() -> BackendInventory { sim.inventory().backendInventory }
}

extension SimBackend: InventoryBackend {
    public func backendInventory() -> BackendInventory { inventory().backendInventory }
}
