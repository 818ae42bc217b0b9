import IommufdCore
import Testing

@testable import IommufdSim

/// The simulator's `IOMMU_GET_HW_INFO` vendor data: each instance answers its driver's struct,
/// with registers that agree with how the instance behaves.
@Suite("Sim hw_info vendor data")
struct SimHWInfoTests {
    static let topology = SimTopology(
        iommus: [
            .intelVTd(name: "dmar0", dirtyTracking: true, nesting: true),
            IOMMU(name: "dmar1", dirtyTracking: false, nesting: false,
                  pageSizes: [4096, 2 << 20], aperture: IOVARange(start: 0, last: (1 << 39) - 1)),
            .armSMMUv3(name: "smmu0", dirtyTracking: true, nesting: true),
            .armSMMUv3(name: "smmu1", dirtyTracking: false, nesting: false),
            .selftestMock(name: "mock0", dirtyTracking: true, nesting: true),
            IOMMU(name: "plain", dirtyTracking: false, nesting: false, hwInfoType: HWInfoType.none),
        ],
        devices: ["dmar0", "dmar1", "smmu0", "smmu1", "mock0", "plain"].map { (name: String) in SimTopology.Device(name: "d-" + name, iommu: name) }
            + [SimTopology.Device(name: "mdev", iommu: nil)])
    typealias IOMMU = SimTopology.IOMMU

    func bound() throws -> (SimBackend, [String: ObjectID]) {
        let backend = try SimBackend(topology: Self.topology)
        var ids: [String: ObjectID] = [:]
        for d in try backend.discoverDevices() { ids[d.name] = try backend.bind(d).id }
        return (backend, ids)
    }

    func id(_ ids: [String: ObjectID], _ name: String) throws -> ObjectID { try #require(ids[name], "device \(name) among \(ids)") }

    @Test func vtdRegistersFollowTheInstance() throws {
        let (backend, ids) = try bound()
        let full = try backend.hwInfo(deviceID: try id(ids, "d-dmar0"))
        #expect(full.type == HWInfoType.intelVTd && full.dataLength == 24 && full.data.count == 24)
        guard case .intelVTd(let a) = full.vendor else { Issue.record("no VT-d data: \(full)"); return }
        #expect(a.ecapReg >> 45 & 1 == 1)                          // SLADS: dirty tracking
        #expect(a.ecapReg >> 26 & 1 == 1 && a.ecapReg >> 47 & 1 == 1)  // NEST, FLTS
        #expect(a.capReg >> 16 & 0x3f == 47 && a.capReg >> 8 & 0x1f == 0b100)  // MGAW 48 bits, 4-level
        #expect(a.capReg >> 34 & 0xf == 0b11)                      // 2 MiB and 1 GiB second-level pages
        guard case .intelVTd(let b) = try backend.hwInfo(deviceID: try id(ids, "d-dmar1")).vendor else { Issue.record("no VT-d data"); return }
        #expect(b.ecapReg >> 45 & 1 == 0 && b.ecapReg >> 26 & 1 == 0)
        #expect(b.capReg >> 16 & 0x3f == 38 && b.capReg >> 8 & 0x1f == 0b010)   // 39 bits, 3-level
        #expect(b.capReg >> 34 & 0xf == 0b01)                      // 2 MiB only
    }

    @Test func smmuv3RegistersFollowTheInstance() throws {
        let (backend, ids) = try bound()
        let info = try backend.hwInfo(deviceID: try id(ids, "d-smmu0"))
        #expect(info.type == HWInfoType.armSMMUv3 && info.dataLength == 40)
        guard case .armSMMUv3(let a) = info.vendor,
              case .armSMMUv3(let b) = try backend.hwInfo(deviceID: try id(ids, "d-smmu1")).vendor
        else { Issue.record("no SMMUv3 data"); return }
        #expect(a.idr.count == 6 && a.idr[0] & 0b11 == 0b11)      // S1P, S2P
        #expect(a.idr[0] >> 6 & 0b11 == 2)                         // HTTU: access + dirty
        #expect(b.idr[0] & 0b11 == 0b10 && b.idr[0] >> 6 & 0b11 == 0)
        #expect(a.idr[5] >> 4 & 1 == 1)                            // GRAN4K
        #expect(a.iidr & 0xfff == 0x43b && a.aidr == 2)
    }

    @Test func selftestMockAnswersAsTheKernelsMock() throws {
        let (backend, ids) = try bound()
        let info = try backend.hwInfo(deviceID: try id(ids, "d-mock0"))
        #expect(info.vendor == .selftest(.init(flags: 0, testReg: 0xdead_beef)))
        #expect(info.capabilities == [.dirtyTracking, .pciATSNotSupported] && info.maxPasidLog2 == 0)
    }

    @Test func bufferAndRequestedType() throws {
        let (backend, ids) = try bound()
        let smmu = try id(ids, "d-smmu0")
        let full = try backend.hwInfo(deviceID: smmu)
        let short = try backend.hwInfo(deviceID: smmu, request: HWInfoRequest(dataLength: 10))
        #expect(short.data == Array(full.data.prefix(10)) && short.dataLength == 40 && short.vendor == nil)
        #expect(try backend.hwInfo(deviceID: smmu, request: HWInfoRequest(dataType: HWInfoType.armSMMUv3)) == full)
        // No Tegra241 CMDQV implementation behind this SMMUv3.
        let other = #expect(throws: IommuError.self) {
            try backend.hwInfo(deviceID: smmu, request: HWInfoRequest(dataType: HWInfoType.tegra241CMDQV))
        }
        #expect(other?.errno == .EOPNOTSUPP)
        // A driver without hw_info answers type NONE whatever was asked, with no data.
        let plain = try backend.hwInfo(deviceID: try id(ids, "d-plain"), request: HWInfoRequest(dataType: HWInfoType.intelVTd))
        #expect(plain.type == HWInfoType.none && plain.data.isEmpty && plain.dataLength == 0)
        // An mdev-like device is an access, not a device object.
        let access = #expect(throws: IommuError.self) { try backend.hwInfo(deviceID: try id(ids, "mdev")) }
        #expect(access?.errno == .ENOENT)
    }
}
