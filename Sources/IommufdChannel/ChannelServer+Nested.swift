#if canImport(Glibc)
import Glibc
#endif
import IommufdBroker
import IommufdCore
import IommufdContract

// MARK: chnested

/// The nested-translation ops and QUEUE_FD (docs/vmm-channel.md, "Nested translation"): each is
/// one call of the broker method its JSON-RPC twin calls (`hwpt.alloc`, `device.replace`,
/// `hwpt.destroy`, `hwpt.invalidate` / `viommu.invalidate`, `queue.fd`) with the channel's
/// caller, scoped to its owner.
extension Channel {
    func runNested(_ request: ChannelWire.Request, caller: Caller) throws -> (payload: [UInt8], fd: Int32) {
        let broker = server.broker
        var w = ChannelWire.Writer(reserving: 16)
        switch request {
        case .nestedAlloc(let a):
            let info: HWPTInfo
            do {
                info = try broker.channelNestedAlloc(
                    caller, parent: a.parent, faultQueue: a.faultQueue == 0 ? nil : a.faultQueue, dataType: a.dataType, device: a.device, data: a.data)
            } catch let e as BrokerError {
                // The checks are hwpt.alloc's; say which call the VMM made.
                var f = Failure(e)
                if f.message.hasPrefix("hwpt.alloc: ") { f.message = "NESTED_ALLOC: " + f.message.dropFirst("hwpt.alloc: ".count) }
                throw f
            }
            w.u32(info.hwpt); w.u32(info.nested?.parent ?? 0)
            return (w.bytes, -1)

        case .replace(let r):
            let result = try broker.channelReplace(caller, device: r.device, pt: r.pt)
            w.u32(result.pt); w.u32(result.previousPT ?? 0)
            return (w.bytes, -1)

        case .hwptDestroy(let id):
            _ = try broker.hwptDestroy(caller, HWPTDestroyParams(hwpt: id))
            return ([], -1)

        case .invalidate(let i):
            let result = try broker.channelInvalidate(
                caller, target: i.target, dataType: i.dataType, entryLength: i.entryLength, entryCount: i.entryCount, entries: i.entries)
            w.u32(UInt32(result.requested)); w.u32(UInt32(result.done))
            w.i32(result.stopped.flatMap { Errno(name: $0.errno)?.rawValue } ?? 0); w.u32(0)
            return (w.bytes, -1)

        case .queueFD(let id):
            let out = try broker.queueFD(caller, QueueParams(queue: id))
            for extra in out.fds.dropFirst() { Glibc.close(extra) }
            w.u32(out.result.queue.queue); w.u32(out.result.queue.kind == "fault" ? 1 : 2)
            return (w.bytes, out.fds.first ?? -1)

        default:
            preconditionFailure("runNested called for \(request)")
        }
    }
}
