import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdRPC

/// `sim.dma {device, iova, length, page_size?}`: the simulated device writes `[iova, +length)`
/// through the page table it is attached to, as a real device's DMA would, so end-to-end tests
/// can see dirty tracking report pages. TEST ONLY: served only on the simulator backend with
/// `[sim] test_hooks = true`, or on the kernel backend with `[kernel] test_hooks = true` (and
/// mock devices: `IOMMU_TEST_OP_DIRTY` on a selftest mock device's HWPT, on a
/// CONFIG_IOMMUFD_TEST kernel); absent from `rpc.discover` otherwise.
public struct SimDMAParams: Codable, Hashable, Sendable {
    public var device: String
    public var iova: UInt64
    public var length: UInt64
    /// Granularity of the write; default 4096.
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

public struct SimDMAResult: Codable, Hashable, Sendable {
    public var device: String
    /// The paging HWPT whose dirty bits the write set: the one the device is attached to, or
    /// the nest parent (stage 2) of the nested HWPT it is attached to.
    public var hwpt: ObjectID
    public var iova: UInt64
    public var length: UInt64
}

extension DaemonService {
    /// Registers `sim.dma` on a backend with test hooks (the simulator; the kernel backend,
    /// whose hooks answer ENOTTY without mock devices). The daemon calls this only when the
    /// config enables test hooks for the backend in use.
    func addTestHooks() {
        guard let hooks = backend as? any IommuTestHooks else { return }
        let broker = self.broker
        table.add(
            "sim.dma", "TEST ONLY ([sim] or [kernel] test_hooks): a device writes an IOVA range, dirtying pages",
            access: .write, params: SimDMAParams.self
        ) { caller, p, _ in
            let info = try broker.deviceInfo(caller, DeviceInfoParams(device: p.device))
            guard info.owner != nil else {
                throw BrokerError(.notFound, "device '\(p.device)' is not leased to an owner visible to \(caller.identity)")
            }
            guard let pt = info.pt, info.pt != info.ioas else {
                throw BrokerError(.conflict, "device '\(p.device)' is not attached to an HWPT, so no IOMMU sees its DMA; attach it to an IOAS first")
            }
            // Through a nested HWPT, the write sets the dirty bits of its nest parent (stage 2),
            // as the IOMMU does; IOMMU_TEST_OP_DIRTY takes a paging HWPT only.
            let target = broker.dirtyWriteTarget(pt)
            do {
                try hooks.simulateDeviceWrite(hwpt: target, iova: p.iova, length: p.length, pageSize: p.pageSize ?? 4096)
            } catch let error as IommuError {
                var hint = ""
                if error.errno == .EINVAL { hint = " (the HWPT must have dirty tracking started: dirty.start; iova and length must be multiples of page_size)" }
                throw BrokerError(.kernel, "simulated DMA of device '\(p.device)' through HWPT \(target) failed: \(error.operation) returned \(error.errno.name)\(hint)", kernel: error)
            }
            return SimDMAResult(device: p.device, hwpt: target, iova: p.iova, length: p.length)
        }
    }
}
