import Foundation
import IommufdCore
import Testing

@testable import IommufdBroker
import IommufdContract

@Suite("API types and errors on the wire")
struct APITests {
    func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(json.utf8))
    }

    func keys<T: Encodable>(_ value: T) throws -> Set<String> {
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(value))
        return Set((object as? [String: Any])?.keys.map { $0 } ?? [])
    }

    @Test func paramsDecodeFromSnakeCase() throws {
        let map = try decode(IOASMapParams.self, #"{"ioas": 3, "fd": {"fd": 0}, "offset": 4096, "length": 8192, "iova": 65536, "writeable": false}"#)
        #expect(map == IOASMapParams(ioas: 3, fd: FDRef(fd: 0), offset: 4096, length: 8192, iova: 65536, writeable: false))
        let read = try decode(DirtyReadParams.self, #"{"ioas": 1, "iova": 0, "length": 4096, "page_size": 4096, "clear": false, "format": "bitmap", "max_runs": 10}"#)
        #expect(read.pageSize == 4096 && read.clear == false && read.format == .bitmap && read.maxRuns == 10)
        let owner = try decode(OwnerCreateParams.self, #"{"name": "vm-1", "tolerate_missing": true, "dirty": "required", "huge_pages": false}"#)
        #expect(owner == OwnerCreateParams(name: "vm-1", tolerateMissing: true, dirty: .required, hugePages: false))
        let copy = try decode(IOASCopyParams.self, #"{"dst_ioas": 2, "src_ioas": 1, "src_iova": 0, "length": 4096}"#)
        #expect(copy.dstIOAS == 2 && copy.srcIOAS == 1 && copy.dstIOVA == nil)
        let vdev = try decode(VDeviceCreateParams.self, #"{"viommu": 5, "device": "sim0", "virtual_id": 256}"#)
        #expect(vdev.virtualID == 256)
        #expect(try decode(DeviceAttachParams.self, #"{"owner": "vm", "device": "sim0", "ioas": 1}"#).dirty == nil)
        #expect(throws: DecodingError.self) { try decode(DeviceAttachParams.self, #"{"owner": "vm"}"#) }
        #expect(throws: DecodingError.self) { try decode(DirtyReadParams.self, #"{"ioas": 1, "iova": -1, "length": 1}"#) }
        #expect(throws: DecodingError.self) { try decode(OwnerCreateParams.self, #"{"name": "vm", "dirty": "sometimes"}"#) }
    }

    @Test func resultsEncodeSnakeCaseKeys() throws {
        let r = DeviceAttachResult(device: "sim0", deviceID: 1, ioas: 2, pt: 3, hwptCreated: true, dirtyTracking: true, previousPT: nil, destroyedHWPTs: [])
        #expect(try keys(r) == ["device", "device_id", "ioas", "pt", "hwpt_created", "dirty_tracking", "destroyed_hwpts"])
        let m = IOASMapResult(ioas: 1, iova: 0, length: 4096, ownerPinnedBytes: 4096)
        #expect(try keys(m) == ["ioas", "iova", "length", "owner_pinned_bytes"])
    }

    @Test func errorsCarryStableNamesCodesAndErrno() throws {
        let kinds = BrokerError.Kind.allCases.filter { $0.origin == .broker }
        #expect(kinds.map(\.wireName).allSatisfy { $0.hasPrefix("iommufdd.") })
        #expect(Set(kinds.map { BrokerError($0, "x").rpcCode }).count == kinds.count)
        #expect(kinds.filter { $0 != .invalidParams }.allSatisfy { (-32099 ... -32000).contains(BrokerError($0, "x").rpcCode) })
        #expect(BrokerError(.invalidParams, "x").rpcCode == -32602)
        let kernel = BrokerError.kernel(IommuError(.EBUSY, "IOMMU_DESTROY"), "destroying IOAS 3")
        #expect(kernel.wireData == BrokerError.WireData(name: "iommufdd.Kernel", errno: "EBUSY", errnoValue: 16, ioctl: "IOMMU_DESTROY"))
        #expect(kernel.message.contains("destroying IOAS 3") && kernel.message.contains("EBUSY"))
        #expect(BrokerError(.busy, "x").wireData.errno == nil)
    }

    @Test("the broker's error names are the contract's, with the contract's wire names and codes, as they were when the broker had its own list")
    func kindsAreTheContractsNames() throws {
        // The eleven names and codes the broker's own Kind enum had, before it became ErrorName.
        let before: [(BrokerError.Kind, String, Int)] = [
            (.notFound, "iommufdd.NotFound", -32001), (.permissionDenied, "iommufdd.PermissionDenied", -32002),
            (.busy, "iommufdd.Busy", -32003), (.quotaExceeded, "iommufdd.QuotaExceeded", -32004),
            (.unsupported, "iommufdd.Unsupported", -32005), (.kernel, "iommufdd.Kernel", -32006),
            (.invalidParams, "iommufdd.InvalidParams", -32602), (.conflict, "iommufdd.Conflict", -32007),
            (.policyRefused, "iommufdd.PolicyRefused", -32008), (.limitExceeded, "iommufdd.LimitExceeded", -32009),
            (.io, "iommufdd.IO", -32010),
        ]
        #expect(Set(before.map(\.0)) == Set(ErrorName.allCases.filter { $0.origin == .broker }))
        for (kind, wire, code) in before {
            let error = BrokerError(kind, "x")
            #expect(error.wireName == wire && error.wireData.name == wire && error.rpcCode == code, "\(kind)")
            // The JSON form of a kind is its raw name, as it was.
            #expect(String(decoding: try JSONEncoder().encode(kind), as: UTF8.self) == "\"\(wire.dropFirst("iommufdd.".count))\"")
        }
    }

    @Test func everyMethodHasASummaryAndReadersOnlyRead() {
        #expect(BrokerMethod.allCases.allSatisfy { !$0.summary.isEmpty })
        #expect(BrokerMethod.ioasMap.takesFD && BrokerMethod.dirtyRead.returnsFDs)
        #expect(!BrokerMethod.ownerList.changesState && BrokerMethod.ownerRelease.changesState)
    }

    @Test func longNamesAreNotEchoedWhole() throws {
        let f = try Fixture()
        let name = String(repeating: "x", count: 100_000)
        let e = expectBrokerError(.notFound) { try f.broker.deviceInfo(f.a, DeviceInfoParams(device: name)) }
        #expect((e?.message.count ?? .max) < 400)
    }
}
