import CIommufd
import Foundation
import IommufdCore
import Testing
@testable import IommufdKernel

@Suite struct FeatureProbeTests {
    static let noDev = "/nonexistent-\(UUID().uuidString)"

    @Test func knownCommandsAreSupportedUnknownAreNot() throws {
        // A 6.6-era kernel: no dirty tracking, MAP_FILE, vIOMMU, ... and no selftest.
        let kernel = FakeKernel(known: [
            IFD_IOMMU_DESTROY, IFD_IOMMU_IOAS_ALLOC, IFD_IOMMU_IOAS_MAP, IFD_IOMMU_HWPT_ALLOC, IFD_IOMMU_GET_HW_INFO,
        ])
        let iommufd = try Iommufd(path: "/dev/iommu", syscalls: kernel.syscalls)
        let report = FeatureProbe(sysfsRoot: Self.noDev, devRoot: Self.noDev).probe(iommufd)
        #expect(report.supported == [.iommufd, .hwptAlloc, .hwInfo])
        #expect(report.unexpected.isEmpty)
    }

    @Test func everyFeatureOnASelftestKernel() throws {
        let kernel = FakeKernel(known: FakeKernel.iommufdRequests.union([IFD_IOMMU_TEST_CMD]))
        let iommufd = try Iommufd(path: "/dev/iommu", syscalls: kernel.syscalls)
        let sysfs = try FakeSysfs()
        let report = FeatureProbe(sysfsRoot: sysfs.root, devRoot: Self.noDev, kernelRelease: (7, 3)).probe(iommufd)
        #expect(report.supported == Set(Feature.allCases))
    }

    // MARK: p2p
    /// dma-buf mapping is known by release (no ioctl tells without a dma-buf): 6.19 on, with
    /// IOMMU_IOAS_MAP_FILE.
    @Test func dmabufMapByReleaseAndMapFile() throws {
        let kernel = FakeKernel(known: FakeKernel.iommufdRequests)
        let iommufd = try Iommufd(path: "/dev/iommu", syscalls: kernel.syscalls)
        for (release, expected) in [((6, 18), false), ((6, 19), true), ((7, 3), true)] {
            let report = FeatureProbe(sysfsRoot: Self.noDev, devRoot: Self.noDev, kernelRelease: release).probe(iommufd)
            #expect(report.supported.contains(.dmabufMap) == expected, "Linux \(release)")
        }
        let noRelease = FeatureProbe(sysfsRoot: Self.noDev, devRoot: Self.noDev, kernelRelease: nil).probe(iommufd)
        #expect(!noRelease.supported.contains(.dmabufMap))
        let old = FakeKernel(known: [IFD_IOMMU_IOAS_ALLOC, IFD_IOMMU_IOAS_MAP])
        let oldReport = FeatureProbe(sysfsRoot: Self.noDev, devRoot: Self.noDev, kernelRelease: (7, 3)).probe(try Iommufd(path: "/dev/iommu", syscalls: old.syscalls))
        #expect(!oldReport.supported.contains(.dmabufMap), "without IOMMU_IOAS_MAP_FILE")
    }

    @Test func dirtyTrackingNeedsBothIoctls() throws {
        let kernel = FakeKernel(known: [IFD_IOMMU_IOAS_ALLOC, IFD_IOMMU_IOAS_MAP, IFD_IOMMU_HWPT_SET_DIRTY_TRACKING])
        let iommufd = try Iommufd(path: "/dev/iommu", syscalls: kernel.syscalls)
        let report = FeatureProbe(sysfsRoot: Self.noDev, devRoot: Self.noDev).probe(iommufd)
        #expect(!report.supported.contains(.dirtyTracking))
    }

    @Test func probesSendAZeroSize() throws {
        let sizes = LockedBox<[UInt32]>([])
        let syscalls = Syscalls(
            open: { _, _ in 3 }, close: { _ in 0 },
            ioctl: { _, _, argument in
                sizes.mutate { $0.append(argument!.load(as: UInt32.self)) }
                errno = Errno.ENOTTY.rawValue
                return -1
            })
        let iommufd = try Iommufd(path: "/dev/iommu", syscalls: syscalls)
        let report = FeatureProbe(sysfsRoot: Self.noDev, devRoot: Self.noDev).probe(iommufd)
        #expect(report.supported.isEmpty)
        #expect(!sizes.value.isEmpty)
        #expect(sizes.value.allSatisfy { $0 == 0 })
    }

    @Test func otherErrnosAreRecordedAndUnsupported() throws {
        let syscalls = Syscalls(
            open: { _, _ in 3 }, close: { _ in 0 },
            ioctl: { _, request, _ in
                errno = (request == IFD_IOMMU_VIOMMU_ALLOC ? Errno.EPERM : Errno.EINVAL).rawValue
                return -1
            })
        let iommufd = try Iommufd(path: "/dev/iommu", syscalls: syscalls)
        let report = FeatureProbe(sysfsRoot: Self.noDev, devRoot: Self.noDev).probe(iommufd)
        #expect(!report.supported.contains(.viommu))
        #expect(report.supported.contains(.vdevice))
        #expect(report.unexpected == [.viommu: .EPERM])
    }

    @Test func vfioCdevFromDevOrSysfs() throws {
        let sysfs = try FakeSysfs()  // has class/vfio-dev
        #expect(FeatureProbe(sysfsRoot: sysfs.root, devRoot: Self.noDev).hasVFIODeviceCdev())
        #expect(!FeatureProbe(sysfsRoot: Self.noDev, devRoot: Self.noDev).hasVFIODeviceCdev())
        let dev = try FakeSysfs()
        try dev.mkdir("vfio/devices")
        #expect(FeatureProbe(sysfsRoot: Self.noDev, devRoot: dev.root).hasVFIODeviceCdev())
    }
}

/// A value shared with a `@Sendable` fake.
final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: T
    init(_ value: T) { _value = value }
    var value: T { lock.withLock { _value } }
    func mutate(_ body: (inout T) -> Void) { lock.withLock { body(&_value) } }
}
