import IommufdBroker
import IommufdCore

/// `test.device_write`: a device wrote `[iova, iova+length)` — what a VM's device would do
/// between two dirty-bitmap reads, for testing dirty tracking end to end where no real device
/// can: the kernel's selftest mock devices (`IOMMU_TEST_OP_DIRTY`) or the simulator.
public struct TestDeviceWriteParams: Codable, Hashable, Sendable {
    /// A device of an owner the caller may act on, attached through an HWPT.
    public var device: String
    public var iova: UInt64
    public var length: UInt64
    /// Granularity of the write (default: the system page size).
    public var pageSize: UInt64?
    public init(device: String, iova: UInt64, length: UInt64, pageSize: UInt64? = nil) {
        self.device = device
        self.iova = iova
        self.length = length
        self.pageSize = pageSize
    }
    enum CodingKeys: String, CodingKey {
        case device, iova, length
        case pageSize = "page_size"
    }
}

public struct TestDeviceWriteResult: Codable, Hashable, Sendable {
    public var device: String
    /// The page table the write went through (the device's HWPT).
    public var hwpt: ObjectID
    public var iova: UInt64
    public var length: UInt64
    public var pageSize: UInt64
    enum CodingKeys: String, CodingKey {
        case device, hwpt, iova, length
        case pageSize = "page_size"
    }
}

/// The `test.*` methods: only served when the config asks for them (`[kernel] test_hooks` with
/// `allow_mock_devices`, or `[sim] test_hooks`), never on a production host. They exist so the
/// daemon's dirty-tracking path can be checked against the real kernel in the test VM.
enum TestHooks {
    static func register(in table: inout MethodTable, broker: Broker, backend: any IommuBackend) {
        table.add(
            "test.device_write",
            "Test hook: mark pages written by a device's DMA (IOMMU_TEST_OP_DIRTY on mock devices; simulator)",
            access: .write, params: TestDeviceWriteParams.self
        ) { caller, params, _ in
            try deviceWrite(caller, params, broker: broker, backend: backend)
        }
    }

    static func deviceWrite(_ caller: Caller, _ params: TestDeviceWriteParams, broker: Broker, backend: any IommuBackend) throws -> TestDeviceWriteResult {
        guard let hooks = backend as? any IommuTestHooks else {
            throw BrokerError(.unsupported, "the \(backend.kind.rawValue) backend has no test hooks")
        }
        // device.info applies the broker's visibility rules: the page table is only shown to
        // an identity that may see the device's owner.
        let info = try broker.deviceInfo(caller, DeviceInfoParams(device: params.device))
        guard let owner = info.owner, info.leased else {
            throw BrokerError(.conflict, "device '\(params.device)' is not leased to an owner you may see; attach it first")
        }
        guard let pt = info.pt, pt != info.ioas else {
            throw BrokerError(.conflict, "device '\(params.device)' of owner '\(owner)' is not attached through an HWPT, so no IOMMU page table sees its writes")
        }
        let pageSize = params.pageSize ?? Broker.pageSize
        // A kernel refusal (EINVAL: tracking off; bad geometry) reaches the client with its errno.
        try hooks.simulateDeviceWrite(hwpt: pt, iova: params.iova, length: params.length, pageSize: pageSize)
        return TestDeviceWriteResult(device: params.device, hwpt: pt, iova: params.iova, length: params.length, pageSize: pageSize)
    }
}
