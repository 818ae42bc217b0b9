import IommufdBroker
import IommufdContract
import IommufdCore

// MARK: pasidch

/// The PASID ops (docs/vmm-channel.md, "PASID attachments (ops 16-18)"): each is one call of the
/// broker method its JSON-RPC twin calls (`device.attach_pasid`, `device.replace_pasid`,
/// `device.detach_pasid`) with the channel's caller, scoped to its owner, so the checks (the
/// device leased to the owner, the HWPT the owner's and allocated with `pasid`, the PASID in
/// the device's width), the kernel call and the journal are the control plane's. Another owner's
/// device or HWPT answers `NotFound`, as an absent one does.
extension Channel {
    func runPASID(_ request: ChannelWire.Request, caller: Caller) throws -> (payload: [UInt8], fd: Int32) {
        let broker = server.broker
        let (op, method): (String, String)
        let call: () throws -> DevicePASIDResult
        switch request {
        case .pasidAttach(let p):
            (op, method) = ("PASID_ATTACH", "device.attach_pasid")
            call = { try broker.deviceAttachPASID(caller, DevicePASIDParams(device: p.device, pasid: p.pasid, hwpt: p.hwpt)) }
        case .pasidReplace(let p):
            (op, method) = ("PASID_REPLACE", "device.replace_pasid")
            call = { try broker.deviceReplacePASID(caller, DevicePASIDParams(device: p.device, pasid: p.pasid, hwpt: p.hwpt)) }
        case .pasidDetach(let p):
            (op, method) = ("PASID_DETACH", "device.detach_pasid")
            call = { try broker.deviceDetachPASID(caller, DevicePASIDDetachParams(device: p.device, pasid: p.pasid)) }
        default:
            preconditionFailure("runPASID called for \(request)")
        }
        let result: DevicePASIDResult
        do {
            result = try call()
        } catch let e as BrokerError {
            // The checks are the control plane's (same name, same errno); say which call the VMM made.
            throw Failure(e, op: op, replacing: [method])
        }
        var w = ChannelWire.Writer(reserving: ChannelWire.pasidResultBytes)
        w.u32(result.deviceID); w.u32(result.pasid); w.u32(result.hwpt ?? 0); w.u32(result.previousHWPT ?? 0)
        return (w.bytes, -1)
    }
}
