import IommufdContract
import IommufdCore
import IommufdRPC
import Testing

// MARK: hwqueue3

/// `hwqueue.alloc`'s `type`: a name or a number, and what anything else is told.
@Suite("The HW queue type param: a name or a number")
struct HWQueueTypeParamTests {
    func decode(_ type: JSONValue) throws -> HWQueueTypeParam {
        try JSONValueDecoder().decode(HWQueueAllocParams.self, from: ["viommu": 1, "type": type, "index": 0, "base_address": 0, "length": 4096]).type
    }

    @Test func namesAndNumbers() throws {
        #expect(try decode("selftest") == .name("selftest") && HWQueueTypeParam.name("selftest").value == HWQueueType.selftest)
        #expect(HWQueueTypeParam.name("Tegra241-CMDQV").value == HWQueueType.tegra241CMDQV)
        #expect(try decode(.int(0xdead_beef)) == .number(HWQueueType.selftest))
        #expect(HWQueueTypeParam.name("cmdq").value == nil)
        #expect(HWQueueTypeParam.name(of: HWQueueType.selftest) == "selftest" && HWQueueTypeParam.name(of: 7) == "0x7")
        // It goes back on the wire as it came.
        #expect(try JSONValueEncoder().encode(HWQueueTypeParam.number(1)) == .int(1))
        #expect(try JSONValueEncoder().encode(HWQueueTypeParam.name("selftest")) == "selftest")
    }

    @Test func anythingElseIsRefusedSayingWhatTheFieldTakes() {
        do {
            _ = try decode(true)
            Issue.record("a boolean type decoded")
        } catch {
            #expect("\(error)".contains("a name (selftest, tegra241_cmdqv) or a number"), "\(error)")
        }
        do {
            _ = try decode(.int(1 << 32))
            Issue.record("a type past u32 decoded")
        } catch {
            #expect("\(error)".contains("range 0...4294967295"), "\(error)")
        }
    }
}
