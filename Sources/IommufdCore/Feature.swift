/// An iommufd capability the daemon depends on, with the first Linux version that has it.
/// The kernel backend probes each (an unknown ioctl answers ENOTTY); the simulator advertises
/// only those it implements (`SimBackend.implementedFeatures`), each exercised on it by a
/// conformance case.
public enum Feature: String, CaseIterable, Hashable, Sendable, Codable {
    case iommufd            // /dev/iommu itself, IOMMU_IOAS_ALLOC ...      6.2
    case vfioDeviceCdev     // VFIO_DEVICE_BIND_IOMMUFD on /dev/vfio/devices 6.6
    case hwptAlloc          // IOMMU_HWPT_ALLOC                              6.6
    case hwInfo             // IOMMU_GET_HW_INFO                             6.6
    case dirtyTracking      // IOMMU_HWPT_SET_DIRTY_TRACKING / GET_DIRTY_BITMAP 6.7
    case hwptInvalidate     // IOMMU_HWPT_INVALIDATE                          6.8
    case faultQueue         // IOMMU_FAULT_QUEUE_ALLOC                        6.11
    case ioasMapFile        // IOMMU_IOAS_MAP_FILE                           6.13
    case viommu             // IOMMU_VIOMMU_ALLOC                            6.13
    case vdevice            // IOMMU_VDEVICE_ALLOC                           6.13
    case ioasChangeProcess  // IOMMU_IOAS_CHANGE_PROCESS                     6.13
    case veventq            // IOMMU_VEVENTQ_ALLOC                           6.15
    case hwQueue            // IOMMU_HW_QUEUE_ALLOC                          6.17
    case dmabufMap          // IOMMU_IOAS_MAP_FILE of a dma-buf (P2P)         6.19
    case selftest           // IOMMU_TEST_CMD (CONFIG_IOMMUFD_TEST kernels only)
    // MARK: pasid
    case pasid              // VFIO_DEVICE_ATTACH_PASID, IOMMU_HWPT_ALLOC_PASID  6.15

    /// The first mainline Linux release with this feature.
    public var sinceKernel: String {
        switch self {
        case .iommufd: "6.2"
        case .vfioDeviceCdev, .hwptAlloc, .hwInfo: "6.6"
        case .dirtyTracking: "6.7"
        case .hwptInvalidate: "6.8"
        case .faultQueue: "6.11"
        case .ioasMapFile, .viommu, .vdevice, .ioasChangeProcess: "6.13"
        case .veventq: "6.15"
        case .hwQueue: "6.17"
        case .dmabufMap: "6.19"
        case .selftest: "CONFIG_IOMMUFD_TEST"
        case .pasid: "6.15"
        }
    }
}
