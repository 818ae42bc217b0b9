import IommufdCore
import Testing

@testable import IommufdDaemon

/// The daemon's default simulated topology (what `iommufdd` runs on without /dev/iommu) answers
/// like the real drivers it names: sim-iommu0 like Intel VT-d, sim-iommu1 like ARM SMMUv3, on
/// Linux 7.3, errno for errno.
@Suite("The default simulated topology is faithful to its drivers")
struct DefaultTopologyTests {
    struct Devices {
        let backend: any IommuBackend
        let vtd: BoundDevice  // sim-pci0, behind sim-iommu0
        let smmu: BoundDevice  // sim-pci2, behind sim-iommu1
    }

    func open() throws -> Devices {
        var config = DaemonConfig.defaults
        config.daemon.backend = .sim
        let backend = try BackendFactory.open(config)
        let devices = try backend.discoverDevices()
        func bind(_ name: String) throws -> BoundDevice {
            try backend.bind(try #require(devices.first { $0.name == name }, "no \(name) in the default topology"))
        }
        return Devices(backend: backend, vtd: try bind("sim-pci0"), smmu: try bind("sim-pci2"))
    }

    func errno(_ body: () throws -> Void) -> Errno? {
        do {
            try body()
            return nil
        } catch let error as IommuError {
            return error.errno
        } catch {
            return Errno(-1)
        }
    }

    /// intel_iommu_ops has no viommu ops: IOMMU_VIOMMU_ALLOC is EOPNOTSUPP for every type
    /// (iommufd_viommu_alloc_ioctl), though the unit has nest parents and dirty tracking.
    @Test func vtdInstanceNestsButHasNoVIOMMU() throws {
        let d = try open()
        #expect(d.vtd.descriptor.iommuInstance == "sim-iommu0")
        let info = try d.backend.hwInfo(deviceID: d.vtd.id)
        #expect(info.type == HWInfoType.intelVTd && info.capabilities.contains(.dirtyTracking))
        let ioas = try d.backend.allocIOAS()
        let parent = try d.backend.allocHWPT(deviceID: d.vtd.id, ptID: ioas, flags: [.nestParent, .dirtyTracking])
        for type in [VIOMMUType.armSMMUv3, VIOMMUType.tegra241CMDQV, VIOMMUType.selftest] {
            #expect(
                errno { _ = try d.backend.allocVIOMMU(deviceID: d.vtd.id, hwpt: parent, type: type) } == .EOPNOTSUPP,
                "IOMMU_VIOMMU_ALLOC of type \(type) on the VT-d-like instance")
        }
    }

    /// arm_smmu_get_viommu_size / arm_vsmmu_init: a vIOMMU of type ARM_SMMUV3 over a stage-2
    /// nest parent, vDevices for its own devices only; no HTTU here, so no dirty tracking.
    @Test func smmuInstanceHasVIOMMUsOfItsOwnType() throws {
        let d = try open()
        #expect(d.smmu.descriptor.iommuInstance == "sim-iommu1")
        let info = try d.backend.hwInfo(deviceID: d.smmu.id)
        #expect(info.type == HWInfoType.armSMMUv3 && !info.capabilities.contains(.dirtyTracking))
        let ioas = try d.backend.allocIOAS()
        #expect(errno { _ = try d.backend.allocHWPT(deviceID: d.smmu.id, ptID: ioas, flags: [.dirtyTracking]) } == .EOPNOTSUPP)
        let parent = try d.backend.allocHWPT(deviceID: d.smmu.id, ptID: ioas, flags: .nestParent)
        #expect(errno { _ = try d.backend.allocVIOMMU(deviceID: d.smmu.id, hwpt: parent, type: VIOMMUType.selftest) } == .EOPNOTSUPP)
        let viommu = try d.backend.allocVIOMMU(deviceID: d.smmu.id, hwpt: parent, type: VIOMMUType.armSMMUv3)
        _ = try d.backend.allocVDevice(viommu: viommu, deviceID: d.smmu.id, virtualID: 0x10)
        #expect(errno { _ = try d.backend.allocVDevice(viommu: viommu, deviceID: d.vtd.id, virtualID: 0x11) } == .EINVAL)
    }

    /// Each instance reserves its own MSI window (`iommu_get_resv_regions`): the x86 one behind
    /// VT-d, MSI_IOVA_BASE behind SMMUv3.
    @Test func eachInstanceReservesItsMSIWindow() throws {
        let d = try open()
        let x86 = IOVARange(start: 0xfee0_0000, last: 0xfeef_ffff)
        let arm = IOVARange(start: 0x800_0000, last: 0x80f_ffff)
        func usable(_ device: BoundDevice) throws -> [IOVARange] {
            let ioas = try d.backend.allocIOAS()
            try d.backend.attach(deviceID: device.id, to: ioas)
            return try d.backend.iovaRanges(ioas: ioas, capacity: 16).ranges
        }
        func covers(_ ranges: [IOVARange], _ address: UInt64) -> Bool {
            ranges.contains { $0.start <= address && address <= $0.last }
        }
        let vtd = try usable(d.vtd)
        #expect(!covers(vtd, x86.start) && covers(vtd, arm.start), "\(vtd)")
        let smmu = try usable(d.smmu)
        #expect(!covers(smmu, arm.start) && !covers(smmu, arm.last) && covers(smmu, x86.start), "\(smmu)")
    }
}
