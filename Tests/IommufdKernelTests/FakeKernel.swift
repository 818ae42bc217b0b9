import CIommufd
import Foundation
import IommufdCore
@testable import IommufdKernel

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for the kernel behind the `Syscalls` layer.
///
/// Like `iommufd_fops_ioctl`, it answers an ioctl whose leading size field is 0 with EINVAL
/// when the request is in `known`, ENOTTY otherwise; a real call goes to `respond`, which may
/// fill in the argument struct and returns the errno to fail with (nil: success).
final class FakeKernel: @unchecked Sendable {
    typealias Responder = (_ request: UInt, _ argument: UnsafeMutableRawPointer) -> Errno?

    private let lock = NSLock()
    private var _known: Set<UInt>
    private var _respond: Responder
    private var _requests: [UInt] = []
    private var _opened: [String] = []
    private var _closed: [Int32] = []
    private var nextFD: Int32 = 100
    /// Paths whose open fails, with the errno.
    var openFailures: [String: Errno] = [:]

    static let iommufdRequests: Set<UInt> = [
        IFD_IOMMU_DESTROY, IFD_IOMMU_IOAS_ALLOC, IFD_IOMMU_IOAS_ALLOW_IOVAS, IFD_IOMMU_IOAS_COPY,
        IFD_IOMMU_IOAS_IOVA_RANGES, IFD_IOMMU_IOAS_MAP, IFD_IOMMU_IOAS_UNMAP, IFD_IOMMU_OPTION,
        IFD_IOMMU_VFIO_IOAS, IFD_IOMMU_HWPT_ALLOC, IFD_IOMMU_GET_HW_INFO,
        IFD_IOMMU_HWPT_SET_DIRTY_TRACKING, IFD_IOMMU_HWPT_GET_DIRTY_BITMAP,
        IFD_IOMMU_HWPT_INVALIDATE, IFD_IOMMU_FAULT_QUEUE_ALLOC, IFD_IOMMU_IOAS_MAP_FILE,
        IFD_IOMMU_VIOMMU_ALLOC, IFD_IOMMU_VDEVICE_ALLOC, IFD_IOMMU_IOAS_CHANGE_PROCESS,
        IFD_IOMMU_VEVENTQ_ALLOC, IFD_IOMMU_HW_QUEUE_ALLOC,
    ]

    init(known: Set<UInt> = FakeKernel.iommufdRequests, respond: @escaping Responder = { _, _ in nil }) {
        _known = known
        _respond = respond
    }

    var requests: [UInt] { lock.withLock { _requests } }
    var opened: [String] { lock.withLock { _opened } }
    var closed: [Int32] { lock.withLock { _closed } }
    func setRespond(_ respond: @escaping Responder) { lock.withLock { _respond = respond } }

    var syscalls: Syscalls {
        Syscalls(
            open: { [self] path, _ in
                lock.withLock {
                    if let failure = openFailures[path] {
                        errno = failure.rawValue
                        return -1
                    }
                    _opened.append(path)
                    nextFD += 1
                    return nextFD
                }
            },
            close: { [self] fd in
                lock.withLock { _closed.append(fd) }
                return 0
            },
            ioctl: { [self] _, request, argument in
                guard let argument else {
                    errno = Errno.EFAULT.rawValue
                    return -1
                }
                let (known, respond) = lock.withLock {
                    _requests.append(request)
                    return (_known, _respond)
                }
                let size = argument.load(as: UInt32.self)
                let failure: Errno? =
                    if !known.contains(request) { .ENOTTY }
                    else if size == 0 { .EINVAL }
                    else { respond(request, argument) }
                if let failure {
                    errno = failure.rawValue
                    return -1
                }
                return 0
            }
        )
    }
}

/// Typed access to the argument struct an ioctl received.
func withArgument<T, R>(_ argument: UnsafeMutableRawPointer, as type: T.Type, _ body: (inout T) -> R) -> R {
    body(&argument.assumingMemoryBound(to: T.self).pointee)
}
