/// A backend whose objects outlive the daemon process: they live as long as some fds stay open
/// (the kernel keeps an iommufd's objects while the iommufd fd is held), and systemd's fd store
/// holds those fds across a restart.
public protocol RestartableBackend: IommuBackend {
    /// The fds that keep this backend's objects alive, by fd-store name, to hand to the fd store
    /// at start. The backend keeps ownership; the store receives duplicates.
    func fdsToStore() -> [(name: String, fd: Int32)]

    /// The backend's own kernel objects behind bound device `id`, beyond the device ID and its
    /// fd, by name (a selftest mock device: its selftest object and the IOAS it was created
    /// on). The broker journals them with the device and gives them back to `adoptBoundDevice`.
    /// Empty when the backend needs nothing more (the default).
    func restartObjects(ofDevice id: ObjectID) -> [String: ObjectID]

    /// Takes back a device bound before the restart: `fd` is its VFIO cdev from the fd store
    /// (nil for simulated and mock devices), `id` its device ID, `objects` what
    /// `restartObjects(ofDevice:)` said before the restart. Fails when the backend does not
    /// know the device under that ID any more.
    func adoptBoundDevice(_ descriptor: DeviceDescriptor, id: ObjectID, fd: Int32?, objects: [String: ObjectID]) throws -> BoundDevice
}

extension RestartableBackend {
    public func restartObjects(ofDevice id: ObjectID) -> [String: ObjectID] { [:] }
}
