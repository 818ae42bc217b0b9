/// A failed iommufd/VFIO operation: the errno the kernel (or the simulator) answered, and the
/// ioctl it answered for. This is the only error type a backend throws.
public struct IommuError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The errno, unchanged.
    public var errno: Errno
    /// The ioctl (or syscall) that failed, by its uAPI name: `"IOMMU_IOAS_UNMAP"`, `"open"`.
    public var operation: String
    /// Extra context a person needs ("device vfio3", "iova 0x1000 length 0x2000").
    public var detail: String?
    /// For EMSGSIZE from `IOMMU_IOAS_IOVA_RANGES`: how many ranges the kernel has.
    public var requiredCount: UInt32?

    public init(_ errno: Errno, _ operation: String, detail: String? = nil, requiredCount: UInt32? = nil) {
        self.errno = errno
        self.operation = operation
        self.detail = detail
        self.requiredCount = requiredCount
    }

    public var description: String {
        var s = "\(operation) failed: \(errno.name) (\(errno.message))"
        if let detail { s += " [\(detail)]" }
        return s
    }
}
