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

    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: the devices a hot reset of this one resets, with
    /// their iommufd device IDs (a cdev reports devids: `VFIO_PCI_HOT_RESET_FLAG_DEV_ID`).
    public func hotResetInfo() throws -> [(segment: UInt16, bus: UInt8, devfn: UInt8, devid: Int32)] {
        let header = MemoryLayout<ifd_vfio_pci_hot_reset_info>.size
        let entry = MemoryLayout<ifd_vfio_pci_dependent_device>.size
        var capacity = 16
        while true {
            let size = header + capacity * entry
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
            defer { buffer.deallocate() }
            buffer.initializeMemory(as: UInt8.self, repeating: 0, count: size)
            buffer.storeBytes(of: UInt32(size), as: UInt32.self)
            let rc = retryOnInterruptRaw { syscalls.ioctl(fd, IFD_VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buffer) }
            let info = buffer.load(as: ifd_vfio_pci_hot_reset_info.self)
            if case .failure(let err) = rc {
                // ENOSPC: the kernel wrote how many there are; ask again with room for them.
                if err == .ENOSPC, Int(info.count) > capacity, info.count <= 4096 {
                    capacity = Int(info.count)
                    continue
                }
                throw IommuError(err, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", detail: path)
            }
            guard info.flags & IFD_VFIO_PCI_HOT_RESET_FLAG_DEV_ID != 0 else {
                throw IommuError(.EINVAL, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", detail: "\(path): the kernel reported group IDs, not device IDs; the device is not opened as a cdev")
            }
            return (0..<min(Int(info.count), capacity)).map { i in
                let d = buffer.load(fromByteOffset: header + i * entry, as: ifd_vfio_pci_dependent_device.self)
                return (d.segment, d.bus, d.devfn, d.devid)
            }
        }
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET` with no group fds: the kernel checks that every device it
    /// resets is this iommufd's.
    public func hotReset() throws {
        var cmd = ifd_vfio_pci_hot_reset()
        cmd.argsz = UInt32(MemoryLayout<ifd_vfio_pci_hot_reset>.size)
        try syscalls.ioctl(fd, IFD_VFIO_DEVICE_PCI_HOT_RESET, &cmd).orThrow("VFIO_DEVICE_PCI_HOT_RESET", detail: path)
    }

    private func retryOnInterruptRaw(_ call: () -> Int32) -> Result<Void, Errno> {
        while true {
            if call() >= 0 { return .success(()) }
            let err = Errno.current
            if err != .EINTR { return .failure(err) }
        }
    }
}
