import IommufdBroker
import IommufdCore
import IommufdContract

// MARK: pasidnest

/// NESTED_ALLOC_FLAGS (op 19): one call of the broker method `hwpt.alloc` calls for a nested
/// HWPT (`Broker.channelNestedAlloc`, which builds `HWPTAllocParams` with `parent` or `viommu`,
/// the typed driver data and `pasid`), with the channel's caller: the same checks, errors and
/// journal record as `hwpt.alloc` with `pasid: true`.
extension Channel {
    func runNestedAllocFlags(_ request: ChannelWire.NestedAllocFlags, caller: Caller) throws -> (payload: [UInt8], fd: Int32) {
        let a = request.alloc
        let info: HWPTInfo
        do {
            info = try server.broker.channelNestedAlloc(
                caller, parent: a.parent, faultQueue: a.faultQueue == 0 ? nil : a.faultQueue, dataType: a.dataType, device: a.device, data: a.data,
                pasid: request.pasid)
        } catch let e as BrokerError {
            // The checks are hwpt.alloc's (and the data's, worded for op 11); say which call the
            // VMM made, in every message.
            throw Failure(e, op: "NESTED_ALLOC_FLAGS", replacing: ["hwpt.alloc", "NESTED_ALLOC"])
        }
        var w = ChannelWire.Writer(reserving: 8)
        w.u32(info.hwpt); w.u32(info.nested?.parent ?? 0)
        return (w.bytes, -1)
    }
}
