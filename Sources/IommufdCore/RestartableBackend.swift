/// A backend whose objects outlive the daemon process: they live as long as some fds stay open
/// (the kernel keeps an iommufd's objects while the iommufd fd is held), and systemd's fd store
/// holds those fds across a restart.
public protocol RestartableBackend: IommuBackend {
    /// The fds that keep this backend's objects alive, by fd-store name, to hand to the fd store
    /// at start. The backend keeps ownership; the store receives duplicates.
    func fdsToStore() -> [(name: String, fd: Int32)]

    /// Takes back a device bound before the restart: `fd` is its VFIO cdev from the fd store
    /// (nil for simulated and mock devices), `id` its device ID. Fails when the backend does not
    /// know the device under that ID any more.
    func adoptBoundDevice(_ descriptor: DeviceDescriptor, id: ObjectID, fd: Int32?) throws -> BoundDevice
}
