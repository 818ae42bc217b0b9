import IommufdCore
import Testing

@testable import IommufdDaemon

// MARK: nestedgaps

extension DefaultTopologyTests {
    /// sim-iommu2 answers like the kernel's selftest mock driver: hw_info SELFTEST with dirty
    /// tracking, a dirty-tracking nest parent, a selftest vIOMMU, and nested HWPTs with selftest
    /// data on the parent and on the vIOMMU (the README's nested walkthrough runs on it).
    @Test func mockInstanceNestsWithSelftestData() throws {
        var config = DaemonConfig.defaults
        config.daemon.backend = .sim
        let backend = try BackendFactory.open(config)
        let descriptor = try #require(try backend.discoverDevices().first { $0.name == "sim-pci3" }, "no sim-pci3 in the default topology")
        #expect(descriptor.iommuInstance == "sim-iommu2" && descriptor.pciAddress == "0000:01:00.0")
        let device = try backend.bind(descriptor)
        let info = try backend.hwInfo(deviceID: device.id)
        #expect(info.type == HWInfoType.selftest && info.capabilities.contains(.dirtyTracking))
        let ioas = try backend.allocIOAS()
        let parent = try backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: [.nestParent, .dirtyTracking])
        let viommu = try backend.allocVIOMMU(deviceID: device.id, hwpt: parent, type: VIOMMUType.selftest)
        let nested = try #require(backend.nested)
        let data = NestedHWPTData.selftest(iotlb: 0, pagetableType: 0).userData
        _ = try nested.allocNestedHWPT(deviceID: device.id, parentID: parent, flags: [], data: data)
        _ = try nested.allocNestedHWPT(deviceID: device.id, parentID: viommu, flags: [], data: data)
        let vtd = NestedHWPTData.vtdS1(flags: 0, pgtblAddr: 0x1000, addrWidth: 48).userData
        #expect(errno { _ = try nested.allocNestedHWPT(deviceID: device.id, parentID: parent, flags: [], data: vtd) } == .EOPNOTSUPP)
    }
}
