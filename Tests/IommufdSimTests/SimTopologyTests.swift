import Foundation
import IommufdCore
import Testing

@testable import IommufdSim

@Suite("SimTopology")
struct SimTopologyTests {
    @Test func defaultTopologyIsValidAndHasEveryRole() throws {
        let topology = SimTopology.default
        try topology.validate()
        #expect(topology.iommus.count == 2)
        #expect(topology.iommus.filter { $0.dirtyTracking && $0.nesting }.count == 1)
        #expect(topology.iommus.filter { !$0.dirtyTracking && !$0.nesting }.count == 1)
        let first = try #require(topology.iommus.first { $0.nesting })
        #expect(topology.devices.filter { $0.iommu == first.name }.count == 3)
        // One PASID-capable device, 20 bits like MOCK_FLAGS_DEVICE_PASID, behind the mock IOMMU.
        #expect(topology.devices.filter { ($0.pasidWidth ?? 0) > 0 }.map(\.name) == ["sim-pasid0"])
        #expect(topology.devices.first { $0.name == "sim-pasid0" }?.pasidWidth == 20)
        #expect(topology.devices.filter { $0.iommu == nil }.count == 1)
        #expect(first.reservedRanges.contains(IOVARange(start: 0xfee0_0000, last: 0xfeef_ffff)))
    }

    // MARK: pasid

    @Test func pasidWidthIsValidatedAndReported() throws {
        let mdev = SimTopology(iommus: [], devices: [.init(name: "m", iommu: nil, pasidWidth: 8)])
        #expect(throws: SimTopologyError.mdevCannotHavePASID(device: "m")) { try mdev.validate() }
        let wide = SimTopology(
            iommus: [.init(name: "dmar0", dirtyTracking: false, nesting: false)],
            devices: [.init(name: "nic", iommu: "dmar0", pasidWidth: 21)])
        #expect(throws: SimTopologyError.invalidPASIDWidth(device: "nic", width: 21)) { try wide.validate() }
        #expect(SimTopologyError.invalidPASIDWidth(device: "nic", width: 21).description.contains("at most 20 bits"))
        let ok = SimTopology(
            iommus: [.init(name: "dmar0", dirtyTracking: false, nesting: false)],
            devices: [.init(name: "nic", iommu: "dmar0", pasidWidth: 8), .init(name: "gpu", iommu: "dmar0")])
        let backend = try SimBackend(topology: ok)
        let devices = try backend.discoverDevices()
        let nic = try backend.bind(devices[0]), gpu = try backend.bind(devices[1])
        #expect(try backend.hwInfo(deviceID: nic.id).maxPasidLog2 == 8)
        #expect(try backend.hwInfo(deviceID: gpu.id).maxPasidLog2 == 0)
        let roundTrip = try JSONDecoder().decode(SimTopology.self, from: JSONEncoder().encode(ok))
        #expect(roundTrip == ok)
    }

    @Test func unknownIOMMUIsRejected() {
        let topology = SimTopology(
            iommus: [.init(name: "dmar0", dirtyTracking: true, nesting: true)],
            devices: [.init(name: "gpu", iommu: "dmar7")])
        #expect(throws: SimTopologyError.unknownIOMMU(device: "gpu", iommu: "dmar7")) { try topology.validate() }
        #expect(SimTopologyError.unknownIOMMU(device: "gpu", iommu: "dmar7").description.contains("dmar7"))
    }

    @Test func duplicateNamesAreRejected() {
        let devices = SimTopology(
            iommus: [.init(name: "dmar0", dirtyTracking: false, nesting: false)],
            devices: [.init(name: "nic", iommu: "dmar0"), .init(name: "nic", iommu: nil)])
        #expect(throws: SimTopologyError.duplicateDevice("nic")) { try devices.validate() }
        let iommus = SimTopology(
            iommus: [.init(name: "dmar0", dirtyTracking: false, nesting: false), .init(name: "dmar0", dirtyTracking: true, nesting: false)],
            devices: [])
        #expect(throws: SimTopologyError.duplicateIOMMU("dmar0")) { try iommus.validate() }
    }

    @Test func badPageSizesAndRangesAreRejected() {
        let noSizes = SimTopology(iommus: [.init(name: "a", dirtyTracking: false, nesting: false, pageSizes: [])], devices: [])
        #expect(throws: SimTopologyError.noPageSizes(iommu: "a")) { try noSizes.validate() }
        let oddSize = SimTopology(iommus: [.init(name: "a", dirtyTracking: false, nesting: false, pageSizes: [4096, 3000])], devices: [])
        #expect(throws: SimTopologyError.invalidPageSize(iommu: "a", size: 3000)) { try oddSize.validate() }
        let backwards = IOVARange(start: 10, last: 5)
        let badRange = SimTopology(iommus: [.init(name: "a", dirtyTracking: false, nesting: false, reservedRanges: [backwards])], devices: [])
        #expect(throws: SimTopologyError.invalidRange(iommu: "a", backwards)) { try badRange.validate() }
        let dirtyMdev = SimTopology(iommus: [], devices: [.init(name: "m", iommu: nil, dirtyTracking: true)])
        #expect(throws: SimTopologyError.mdevCannotTrackDirty(device: "m")) { try dirtyMdev.validate() }
    }

    @Test func backendRefusesInvalidTopology() {
        let topology = SimTopology(iommus: [], devices: [.init(name: "x", iommu: "missing")])
        #expect(throws: SimTopologyError.self) { try SimBackend(topology: topology) }
    }

    @Test func decodesWithDefaultsForOmittedKeys() throws {
        let json = """
            {"iommus": [{"name": "smmu0", "dirty_tracking": true, "page_sizes": [4096, 65536]}],
             "devices": [{"name": "nvme", "iommu": "smmu0", "pci_address": "0000:01:00.0", "dirty_tracking": false},
                         {"name": "vgpu"}]}
            """
        let topology = try JSONDecoder().decode(SimTopology.self, from: Data(json.utf8))
        try topology.validate()
        let iommu = try #require(topology.iommus.first)
        #expect(iommu.dirtyTracking && !iommu.nesting)
        #expect(iommu.pageSizes == [4096, 65536])
        #expect(iommu.aperture == IOVARange(start: 0, last: (1 << 48) - 1))
        #expect(topology.devices[0].dirtyTracking == false)
        #expect(topology.devices[1].iommu == nil)
        let roundTrip = try JSONDecoder().decode(SimTopology.self, from: JSONEncoder().encode(topology))
        #expect(roundTrip == topology)
    }

    @Test func devicesFollowTheTopology() throws {
        let backend = try SimBackend()
        let devices = try backend.discoverDevices()
        #expect(devices.map(\.name) == ["sim0", "sim1", "sim2", "mdev0", "sim-pasid0"])
        #expect(devices[3].isMdev && devices[3].iommuInstance == nil)
        let sim0 = try backend.bind(devices[0])
        let sim1 = try backend.bind(devices[1])
        #expect(try backend.hwInfo(deviceID: sim0.id).capabilities.contains(.dirtyTracking))
        #expect(try !backend.hwInfo(deviceID: sim1.id).capabilities.contains(.dirtyTracking))
        let again = #expect(throws: IommuError.self) { try backend.bind(devices[0]) }
        #expect(again?.errno == .EINVAL)
        let unknown = #expect(throws: IommuError.self) {
            try backend.bind(DeviceDescriptor(name: "nope", kind: .simulated))
        }
        #expect(unknown?.errno == .ENOENT)
    }

    /// A device's `dirty_tracking = true` cannot give it a capability its IOMMU lacks (the
    /// daemon's config passes true by default for every device): HWPT allocation with dirty
    /// tracking is EOPNOTSUPP, as device_iommu_capable() makes it in the kernel.
    @Test func deviceCannotTrackDirtyBehindAnIOMMUThatCannot() throws {
        let backend = try SimBackend(topology: SimTopology(
            iommus: [.init(name: "smmu0", dirtyTracking: false, nesting: false)],
            devices: [.init(name: "nic", iommu: "smmu0", dirtyTracking: true)]))
        let nic = try backend.bind(try #require(backend.discoverDevices().first))
        #expect(try !backend.hwInfo(deviceID: nic.id).capabilities.contains(.dirtyTracking))
        let ioas = try backend.allocIOAS()
        let alloc = #expect(throws: IommuError.self) { try backend.allocHWPT(deviceID: nic.id, ptID: ioas, flags: [.dirtyTracking]) }
        #expect(alloc?.errno == .EOPNOTSUPP)
    }
}

@Suite("Instances answer like their drivers")
struct SimDriverTests {
    /// arm_smmu_domain_finalise: dirty tracking (HTTU) is for stage-1 domains; a nest parent is
    /// stage 2, so NEST_PARENT | DIRTY_TRACKING is EOPNOTSUPP. Intel VT-d tracks dirty pages on
    /// its second stage, nest parents included.
    @Test func dirtyNestParentOnlyWhereTheDriverHasOne() throws {
        let backend = try SimBackend(topology: SimTopology(
            iommus: [
                .armSMMUv3(name: "smmu0", dirtyTracking: true, nesting: true),
                .intelVTd(name: "dmar0", dirtyTracking: true, nesting: true),
            ],
            devices: [.init(name: "arm", iommu: "smmu0"), .init(name: "x86", iommu: "dmar0")]))
        let devices = try backend.discoverDevices().map { try backend.bind($0) }
        let ioas = try backend.allocIOAS()
        _ = try backend.allocHWPT(deviceID: devices[0].id, ptID: ioas, flags: [.dirtyTracking])
        _ = try backend.allocHWPT(deviceID: devices[0].id, ptID: ioas, flags: [.nestParent])
        let refused = #expect(throws: IommuError.self) {
            try backend.allocHWPT(deviceID: devices[0].id, ptID: ioas, flags: [.nestParent, .dirtyTracking])
        }
        #expect(refused?.errno == .EOPNOTSUPP)
        _ = try backend.allocHWPT(deviceID: devices[1].id, ptID: ioas, flags: [.nestParent, .dirtyTracking])
    }

    /// The vIOMMU types each driver's get_viommu_size accepts: none on VT-d, ARM_SMMUV3 on
    /// SMMUv3, the selftest's on the mock.
    @Test func viommuTypesFollowTheDriver() {
        #expect(SimTopology.IOMMU.intelVTd(name: "d", dirtyTracking: true, nesting: true).viommuTypes.isEmpty)
        #expect(SimTopology.IOMMU.armSMMUv3(name: "s", dirtyTracking: false, nesting: true).viommuTypes == [VIOMMUType.armSMMUv3])
        #expect(SimTopology.IOMMU.selftestMock(name: "m", dirtyTracking: true, nesting: true).viommuTypes == [VIOMMUType.selftest])
        #expect(SimTopology.default.iommus.allSatisfy { $0.hwInfoType != HWInfoType.intelVTd || $0.viommuTypes.isEmpty })
    }
}

@Suite("Domain sharing across IOMMU instances")
struct DomainGroupTests {
    func topology(group: String?) -> SimTopology {
        SimTopology(
            iommus: [
                .init(name: "dmar0", dirtyTracking: true, nesting: false, domainGroup: group),
                .init(name: "dmar1", dirtyTracking: true, nesting: false, domainGroup: group),
            ],
            devices: [.init(name: "a", iommu: "dmar0"), .init(name: "b", iommu: "dmar1")])
    }

    @Test(arguments: [nil, "vtd"] as [String?])
    func autoDomainIsSharedOnlyWithinAGroup(group: String?) throws {
        let backend = try SimBackend(topology: topology(group: group))
        let devices = try backend.discoverDevices().map { try backend.bind($0) }
        let ioas = try backend.allocIOAS()
        let first = try backend.attach(deviceID: devices[0].id, to: ioas)
        let second = try backend.attach(deviceID: devices[1].id, to: ioas)
        #expect((first == second) == (group != nil))
    }
}
