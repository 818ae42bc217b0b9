import CIommufd
import IommufdCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An open VFIO device cdev (`/dev/vfio/devices/vfioN`), owned: closing it (releasing the
/// handle) unbinds the device from its iommufd, detaching it first.
public final class VFIODevice: Sendable {
    public let path: String
    public let fd: Int32
    let syscalls: Syscalls

    /// Opens the cdev read-write and close-on-exec.
    public init(path: String, syscalls: Syscalls = .live) throws {
        self.path = path
        self.syscalls = syscalls
        self.fd = try syscalls.openFile(path, flags: O_RDWR | O_CLOEXEC)
            .orThrow("open", detail: "\(path): is the device bound to vfio-pci and is the daemon allowed to open it?")
    }

    /// Takes ownership of a cdev fd opened and bound by a previous daemon (from the fd store).
    public init(adopting fd: Int32, path: String, syscalls: Syscalls = .live) {
        self.path = path
        self.syscalls = syscalls
        self.fd = fd
    }

    deinit {
        syscalls.closeFile(fd)
    }

    /// `VFIO_DEVICE_BIND_IOMMUFD`. Returns the iommufd device ID.
    public func bind(to iommufd: Iommufd) throws -> ObjectID {
        var cmd = ifd_vfio_device_bind_iommufd()
        cmd.argsz = UInt32(MemoryLayout<ifd_vfio_device_bind_iommufd>.size)
        cmd.iommufd = iommufd.fd
        try syscalls.ioctl(fd, IFD_VFIO_DEVICE_BIND_IOMMUFD, &cmd).orThrow("VFIO_DEVICE_BIND_IOMMUFD", detail: path)
        return cmd.out_devid
    }

    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`: attaches (or, when attached, replaces) to `ptID`.
    /// Returns the ID the kernel writes back: for an IOAS, the auto-domain HWPT it found or
    /// created (an emulated device such as an mdev keeps the IOAS ID).
    public func attach(ptID: ObjectID) throws -> ObjectID {
        var cmd = ifd_vfio_device_attach_iommufd_pt()
        cmd.argsz = UInt32(MemoryLayout<ifd_vfio_device_attach_iommufd_pt>.size)
        cmd.pt_id = ptID
        try syscalls.ioctl(fd, IFD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &cmd)
            .orThrow("VFIO_DEVICE_ATTACH_IOMMUFD_PT", detail: "\(path) to \(ptID)")
        return cmd.pt_id
    }

    /// `VFIO_DEVICE_DETACH_IOMMUFD_PT`.
    public func detach() throws {
        var cmd = ifd_vfio_device_detach_iommufd_pt()
        cmd.argsz = UInt32(MemoryLayout<ifd_vfio_device_detach_iommufd_pt>.size)
        try syscalls.ioctl(fd, IFD_VFIO_DEVICE_DETACH_IOMMUFD_PT, &cmd).orThrow("VFIO_DEVICE_DETACH_IOMMUFD_PT", detail: path)
    }
}
