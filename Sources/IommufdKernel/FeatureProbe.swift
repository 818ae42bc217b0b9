import CIommufd
import Foundation
import IommufdCore

/// Which iommufd features the running kernel has.
///
/// Each ioctl is issued with its leading `size` field 0. `iommufd_fops_ioctl` (main.c) answers
/// a command it knows with EINVAL (0 is below every command's `min_size`) before doing
/// anything, and one it does not know with ENOTTY (-ENOIOCTLCMD: a hole in its op table, or a
/// number past its end that falls through to the VFIO compat layer, which knows none of ours).
/// So the probe has no side effect, and works the same on every kernel since 6.2.
public struct FeatureProbe: Sendable {
    /// The outcome of probing one kernel.
    public struct Report: Hashable, Sendable {
        public var supported: Set<Feature>
        /// Probes answered with something other than EINVAL or ENOTTY, counted as unsupported:
        /// worth logging, since they mean the kernel did not behave as main.c does.
        public var unexpected: [Feature: Errno]
    }

    /// The ioctls whose presence marks each feature (several: all must be known).
    public static func requests(for feature: Feature) -> [(name: String, request: UInt)] {
        switch feature {
        case .iommufd: [("IOMMU_IOAS_ALLOC", IFD_IOMMU_IOAS_ALLOC), ("IOMMU_IOAS_MAP", IFD_IOMMU_IOAS_MAP)]
        case .vfioDeviceCdev: []
        case .hwptAlloc: [("IOMMU_HWPT_ALLOC", IFD_IOMMU_HWPT_ALLOC)]
        case .hwInfo: [("IOMMU_GET_HW_INFO", IFD_IOMMU_GET_HW_INFO)]
        case .dirtyTracking:
            [("IOMMU_HWPT_SET_DIRTY_TRACKING", IFD_IOMMU_HWPT_SET_DIRTY_TRACKING),
             ("IOMMU_HWPT_GET_DIRTY_BITMAP", IFD_IOMMU_HWPT_GET_DIRTY_BITMAP)]
        case .hwptInvalidate: [("IOMMU_HWPT_INVALIDATE", IFD_IOMMU_HWPT_INVALIDATE)]
        case .faultQueue: [("IOMMU_FAULT_QUEUE_ALLOC", IFD_IOMMU_FAULT_QUEUE_ALLOC)]
        case .ioasMapFile: [("IOMMU_IOAS_MAP_FILE", IFD_IOMMU_IOAS_MAP_FILE)]
        case .viommu: [("IOMMU_VIOMMU_ALLOC", IFD_IOMMU_VIOMMU_ALLOC)]
        case .vdevice: [("IOMMU_VDEVICE_ALLOC", IFD_IOMMU_VDEVICE_ALLOC)]
        case .ioasChangeProcess: [("IOMMU_IOAS_CHANGE_PROCESS", IFD_IOMMU_IOAS_CHANGE_PROCESS)]
        case .veventq: [("IOMMU_VEVENTQ_ALLOC", IFD_IOMMU_VEVENTQ_ALLOC)]
        case .hwQueue: [("IOMMU_HW_QUEUE_ALLOC", IFD_IOMMU_HW_QUEUE_ALLOC)]
        case .dmabufMap: []
        case .selftest: [("IOMMU_TEST_CMD", IFD_IOMMU_TEST_CMD)]
        // PASID attach is a flag of VFIO_DEVICE_ATTACH_IOMMUFD_PT and IOMMU_HWPT_ALLOC, which
        // no size-0 probe can see without a device: it is marked by IOMMU_VEVENTQ_ALLOC, new
        // in the same release (6.15) as VFIO_DEVICE_ATTACH_PASID and IOMMU_HWPT_ALLOC_PASID.
        case .pasid: [("IOMMU_VEVENTQ_ALLOC", IFD_IOMMU_VEVENTQ_ALLOC)]
        }
    }

    public var sysfsRoot: String
    public var devRoot: String
    /// The running kernel's (major, minor): `dmabufMap` is known by release only.
    public var kernelRelease: (Int, Int)?

    public init(sysfsRoot: String = "/sys", devRoot: String = "/dev", kernelRelease: (Int, Int)? = FeatureProbe.kernelRelease()) {
        self.sysfsRoot = sysfsRoot
        self.devRoot = devRoot
        self.kernelRelease = kernelRelease
    }

    /// Probes every `Feature` on `iommufd`.
    public func probe(_ iommufd: Iommufd) -> Report {
        var report = Report(supported: [], unexpected: [:])
        for feature in Feature.allCases {
            if feature == .vfioDeviceCdev {
                if hasVFIODeviceCdev() { report.supported.insert(feature) }
                continue
            }
            if feature == .dmabufMap {
                // No ioctl tells without a dma-buf in hand: IOMMU_IOAS_MAP_FILE (known since
                // 6.13) takes dma-bufs from 6.19 on.
                if report.supported.contains(.ioasMapFile), kernelRelease.map({ $0 >= (6, 19) }) ?? false {
                    report.supported.insert(feature)
                }
                continue
            }
            var known = true
            for (_, request) in Self.requests(for: feature) {
                switch Self.probe(iommufd, request: request) {
                case .EINVAL: continue
                case .ENOTTY: known = false
                case let other:
                    known = false
                    report.unexpected[feature] = other
                }
                if !known { break }
            }
            if known { report.supported.insert(feature) }
        }
        return report
    }

    /// The running kernel's (major, minor) from uname(2), nil when it cannot be parsed.
    public static func kernelRelease() -> (Int, Int)? {
        var name = utsname()
        guard uname(&name) == 0 else { return nil }
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return numbers.count == 2 ? (numbers[0], numbers[1]) : nil
    }

    /// The errno the kernel answers for `request` with a zero `size`.
    static func probe(_ iommufd: Iommufd, request: UInt) -> Errno {
        // 8-byte aligned, larger than any command's leading size field.
        var argument: (UInt64, UInt64) = (0, 0)
        switch iommufd.ioctl(request, &argument) {
        case .success: return Errno(0)
        case .failure(let errno): return errno
        }
    }

    /// VFIO device cdevs (Linux >= 6.6, CONFIG_VFIO_DEVICE_CDEV): the `vfio-dev` class exists
    /// in sysfs, or `/dev/vfio/devices` does.
    public func hasVFIODeviceCdev() -> Bool {
        let files = FileManager.default
        return files.fileExists(atPath: devRoot + "/vfio/devices") || files.fileExists(atPath: sysfsRoot + "/class/vfio-dev")
    }
}
