import Foundation
import IommufdCore
import Testing

/// The vendor structs of include/uapi/linux/iommufd.h (7.3) and iommufd_test.h, byte for byte.
@Suite("HWInfo vendor data")
struct HWInfoVendorDataTests {
    @Test func vtdLayout() throws {
        let vtd = HWInfoVendorData.intelVTd(.init(flags: 1, capReg: 0x0102_0304_0506_0708, ecapReg: 0x1112_1314_1516_1718))
        let bytes = vtd.bytes
        #expect(bytes.count == 24)
        #expect(bytes[0..<4] == [1, 0, 0, 0])        // flags
        #expect(bytes[4..<8] == [0, 0, 0, 0])        // __reserved
        #expect(bytes[8..<16] == [8, 7, 6, 5, 4, 3, 2, 1])          // cap_reg, little-endian
        #expect(bytes[16..<24] == [0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11])  // ecap_reg
        #expect(HWInfoVendorData(type: HWInfoType.intelVTd, data: bytes) == vtd)
    }

    @Test func smmuv3Layout() throws {
        let smmu = HWInfoVendorData.armSMMUv3(.init(flags: 1, idr: [10, 11, 12, 13, 14, 15], iidr: 0x43b, aidr: 2))
        let bytes = smmu.bytes
        #expect(bytes.count == 40)
        #expect(bytes[8] == 10 && bytes[28] == 15)   // idr[0] at 8, idr[5] at 28
        #expect(bytes[32..<36] == [0x3b, 0x04, 0, 0])  // iidr
        #expect(bytes[36] == 2)                        // aidr
        #expect(HWInfoVendorData(type: HWInfoType.armSMMUv3, data: bytes) == smmu)
    }

    @Test func otherLayouts() throws {
        let mock = HWInfoVendorData.selftest(.init())
        #expect(mock.bytes == [0, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde])
        #expect(HWInfoVendorData(type: HWInfoType.selftest, data: mock.bytes) == mock)
        let amd = HWInfoVendorData.amd(.init(efr: 1, efr2: 2))
        #expect(amd.bytes.count == 16 && amd.bytes[8] == 2)
        #expect(HWInfoVendorData(type: HWInfoType.amd, data: amd.bytes) == amd)
        let cmdqv = HWInfoVendorData.tegra241CMDQV(.init(version: 1, log2vcmdqs: 2, log2vsids: 3))
        #expect(cmdqv.bytes == [0, 0, 0, 0, 1, 2, 3, 0])
        #expect(HWInfoVendorData(type: HWInfoType.tegra241CMDQV, data: cmdqv.bytes) == cmdqv)
        #expect(HWInfoVendorData(type: 77, data: [1, 2]) == .unknown(type: 77, data: [1, 2]))
    }

    /// A buffer smaller than the struct (a caller's choice) decodes to nothing rather than to
    /// made-up zeros; type NONE has no data.
    @Test func shortDataDoesNotDecode() {
        #expect(HWInfoVendorData(type: HWInfoType.intelVTd, data: Array(repeating: 0, count: 23)) == nil)
        #expect(HWInfoVendorData(type: HWInfoType.selftest, data: [0, 0, 0, 0]) == nil)
        #expect(HWInfoVendorData(type: HWInfoType.none, data: []) == nil)
    }

    /// Journal format 01 stored HWInfo before it had vendor data: it still decodes.
    @Test func hwInfoWithoutVendorDataDecodes() throws {
        let old = #"{"type":4276993775,"capabilities":1,"maxPasidLog2":0}"#
        let info = try JSONDecoder().decode(HWInfo.self, from: Data(old.utf8))
        #expect(info == HWInfo(type: HWInfoType.selftest, capabilities: .dirtyTracking))
        #expect(info.data.isEmpty && info.dataLength == 0 && info.vendor == nil)
        let full = HWInfo(type: HWInfoType.selftest, capabilities: [], data: HWInfoVendorData.selftest(.init()).bytes)
        #expect(try JSONDecoder().decode(HWInfo.self, from: JSONEncoder().encode(full)) == full)
        #expect(full.dataLength == 8)
    }
}
