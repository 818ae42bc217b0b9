import Glibc
import IommufdBroker
import IommufdContract
import IommufdChannel
import IommufdCore
import IommufdRPC

/// Who may call a method, before the broker's own per-object checks.
public enum MethodAccess: String, Sendable, CaseIterable {
    /// Every admitted identity, readers included (ping, info, listings, subscriptions).
    case read
    /// Managers and admins; the broker then checks the caller owns what it touches.
    case write
}

/// One JSON-RPC method: its name, what it does, who may call it, the JSON Schema of its params
/// (derived from the params type), and how to run it.
public struct MethodSpec: Sendable {
    public var name: String
    public var summary: String
    public var access: MethodAccess
    public var paramsSchema: JSONValue
    public var takesFD: Bool
    public var returnsFDs: Bool
    /// The Swift types the params decode into and the result encodes from
    /// (`String(reflecting:)`), to check against the contract's `MethodSignature`.
    public var paramsType: String
    public var resultType: String
    let run: @Sendable (Caller, RPCCall) throws -> RPCResult
}

/// Every method the daemon serves, in one table: the router, `rpc.discover` and the isolation
/// tests are all generated from it, so a method cannot exist without its row.
public struct MethodTable: Sendable {
    public private(set) var methods: [String: MethodSpec] = [:]
    public private(set) var order: [String] = []

    mutating func add<P: Decodable & Sendable, R: Encodable & Sendable>(
        _ name: String, _ summary: String, access: MethodAccess, takesFD: Bool = false, returnsFDs: Bool = false,
        params: P.Type, _ body: @escaping @Sendable (Caller, P, RPCCall) throws -> R
    ) {
        let schema = Self.schema(of: P.self, method: name)
        let spec = MethodSpec(
            name: name, summary: summary, access: access, paramsSchema: schema,
            takesFD: takesFD, returnsFDs: returnsFDs, paramsType: String(reflecting: P.self), resultType: String(reflecting: R.self),
            run: { caller, call in
                let p = try Self.decodeParams(P.self, call, schema: schema, method: name)
                return try RPCResult.encoding(try body(caller, p, call))
            })
        insert(spec)
    }

    /// A method whose result comes with fds to send back (the broker's duplicates).
    /// `sendsFDs` says whether a call with these params does; such a call is refused in a batch
    /// before it runs (a read-and-clear bitmap whose fd could not be sent would lose the bits).
    mutating func addWithFDs<P: Decodable & Sendable, R: Encodable & Sendable>(
        _ name: String, _ summary: String, access: MethodAccess, params: P.Type,
        sendsFDs: @escaping @Sendable (P) -> Bool = { _ in true },
        _ body: @escaping @Sendable (Caller, P, RPCCall) throws -> WithFDs<R>
    ) {
        let schema = Self.schema(of: P.self, method: name)
        let spec = MethodSpec(
            name: name, summary: summary, access: access, paramsSchema: schema,
            takesFD: false, returnsFDs: true, paramsType: String(reflecting: P.self), resultType: String(reflecting: R.self),
            run: { caller, call in
                let p = try Self.decodeParams(P.self, call, schema: schema, method: name)
                if call.isBatchMember && sendsFDs(p) {
                    throw RPCError.invalidRequest(
                        "\(name) returns file descriptors, which cannot travel in a batch; send it as a single request",
                        name: RPCError.Name.fileDescriptorsInBatch)
                }
                let out = try body(caller, p, call)
                do {
                    return try RPCResult.encoding(out.result, fds: out.fds)
                } catch {
                    for fd in out.fds { _ = close(fd) }
                    throw error
                }
            })
        insert(spec)
    }

    /// The params schema of a method. A params type the recorder cannot fully describe is a
    /// programming error: the daemon refuses to start rather than publish, and enforce, a schema
    /// that lacks some of the params.
    private static func schema<P: Decodable>(of type: P.Type, method: String) -> JSONValue {
        do {
            return try ParamsSchema.of(P.self)
        } catch {
            preconditionFailure("method \(method): \(error)")
        }
    }

    /// Every method's params pass here: params the schema does not have are refused (-32602,
    /// naming each and the nearest known one), then the rest is decoded.
    private static func decodeParams<P: Decodable>(_ type: P.Type, _ call: RPCCall, schema: JSONValue, method: String) throws(RPCError) -> P {
        try ParamsSchema.refuseUnknownParams(call.params, schema: schema, method: method)
        return try call.decodeParams(P.self)
    }

    private mutating func insert(_ spec: MethodSpec) {
        precondition(methods[spec.name] == nil, "method \(spec.name) registered twice")
        methods[spec.name] = spec
        order.append(spec.name)
    }

    public var specs: [MethodSpec] { order.compactMap { methods[$0] } }
}

extension MethodTable {
    /// The broker's methods. Each row names the `BrokerMethod` so the summary and the
    /// fd flags come from the broker's own table.
    static func broker(_ broker: Broker, channels: ChannelServer) -> MethodTable {
        var t = MethodTable()
        func access(_ m: BrokerMethod) -> MethodAccess { m.changesState ? .write : .read }
        func add<P: Decodable & Sendable, R: Encodable & Sendable>(
            _ m: BrokerMethod, _ p: P.Type, _ body: @escaping @Sendable (Caller, P) throws -> R
        ) {
            t.add(m.rawValue, m.summary, access: access(m), takesFD: m.takesFD, params: p) { c, params, _ in try body(c, params) }
        }
        add(.ownerCreate, OwnerCreateParams.self, broker.ownerCreate)
        add(.ownerList, NoParams.self, broker.ownerList)
        add(.ownerInfo, OwnerInfoParams.self, broker.ownerInfo)
        // owner.release closes the owner's channels too (after the release: a VMM mid-request
        // gets its answer, then end of file).
        add(.ownerRelease, OwnerReleaseParams.self) { c, p in
            let result = try broker.ownerRelease(c, p)
            channels.revoke(owner: p.name)
            return result
        }
        t.addWithFDs(BrokerMethod.ownerDelegate.rawValue, BrokerMethod.ownerDelegate.summary, access: .write, params: OwnerDelegateParams.self) { c, p, _ in
            let (id, fd) = try channels.delegate(c, owner: p.name)
            return WithFDs(result: OwnerDelegateResult(name: p.name, channel: id, fd: FDRef(fd: 0)), fds: [fd])
        }
        add(.ownerRevokeChannels, OwnerRevokeChannelsParams.self) { c, p in
            let ids = try broker.channelsToRevoke(c, owner: p.name)
            return OwnerRevokeChannelsResult(name: p.name, revoked: channels.revoke(ids: ids))
        }
        add(.deviceList, DeviceListParams.self, broker.deviceList)
        add(.deviceInfo, DeviceInfoParams.self, broker.deviceInfo)
        add(.deviceAttach, DeviceAttachParams.self, broker.deviceAttach)
        add(.deviceDetach, DeviceDetachParams.self, broker.deviceDetach)
        add(.deviceReplace, DeviceReplaceParams.self, broker.deviceReplace)
        add(.deviceRelease, DeviceReleaseParams.self, broker.deviceRelease)
        t.addWithFDs(BrokerMethod.deviceFD.rawValue, BrokerMethod.deviceFD.summary, access: .write, params: DeviceFDParams.self) { c, p, _ in
            try broker.deviceFD(c, p)
        }
        add(.ioasCreate, IOASCreateParams.self, broker.ioasCreate)
        add(.ioasDestroy, IOASDestroyParams.self, broker.ioasDestroy)
        add(.ioasList, IOASListParams.self, broker.ioasList)
        add(.ioasInfo, IOASInfoParams.self, broker.ioasInfo)
        t.add(BrokerMethod.ioasMap.rawValue, BrokerMethod.ioasMap.summary, access: .write, takesFD: true, params: IOASMapParams.self) { c, p, call in
            let fd = try call.fds.take(p.fd.fd)
            defer { _ = close(fd) }  // the broker keeps its own duplicate
            return try broker.ioasMap(c, p, fd: fd)
        }
        add(.ioasUnmap, IOASUnmapParams.self, broker.ioasUnmap)
        add(.ioasCopy, IOASCopyParams.self, broker.ioasCopy)
        add(.ioasRanges, IOASRangesParams.self, broker.ioasRanges)
        add(.ioasSetOption, IOASSetOptionParams.self, broker.ioasSetOption)
        add(.hwptList, HWPTListParams.self, broker.hwptList)
        add(.hwptAlloc, HWPTAllocParams.self, broker.hwptAlloc)
        add(.hwptDestroy, HWPTDestroyParams.self, broker.hwptDestroy)
        add(.dirtyStart, DirtyParams.self, broker.dirtyStart)
        add(.dirtyStop, DirtyParams.self, broker.dirtyStop)
        add(.dirtyStatus, DirtyParams.self, broker.dirtyStatus)
        // dirty.read: readers may read with clear=false; the broker checks that.
        t.addWithFDs(
            BrokerMethod.dirtyRead.rawValue, BrokerMethod.dirtyRead.summary, access: .read, params: DirtyReadParams.self,
            sendsFDs: { $0.format == .bitmap && $0.into == nil }
        ) { c, p, call in
            guard let into = p.into else { return try broker.dirtyRead(c, p) }
            guard p.format == .bitmap else {
                throw BrokerError(.invalidParams, "dirty.read: 'into' names the memfd a bitmap is written into; it needs \"format\": \"bitmap\" (runs are answered in the reply)")
            }
            let fd = try call.fds.take(into.fd)
            defer { _ = close(fd) }
            try Broker.checkBitmapMemfd(fd)
            return try broker.dirtyRead(c, p, into: fd)
        }
        add(.viommuCreate, VIOMMUCreateParams.self, broker.viommuCreate)
        add(.viommuDestroy, VIOMMUDestroyParams.self, broker.viommuDestroy)
        add(.viommuList, VIOMMUListParams.self, broker.viommuList)
        add(.vdeviceCreate, VDeviceCreateParams.self, broker.vdeviceCreate)
        add(.vdeviceDestroy, VDeviceDestroyParams.self, broker.vdeviceDestroy)
        // MARK: nested
        add(.hwptInvalidate, HWPTInvalidateParams.self, broker.hwptInvalidate)
        add(.viommuInvalidate, VIOMMUInvalidateParams.self, broker.viommuInvalidate)
        // MARK: pasid
        add(.deviceAttachPASID, DevicePASIDParams.self, broker.deviceAttachPASID)
        add(.deviceReplacePASID, DevicePASIDParams.self, broker.deviceReplacePASID)
        add(.deviceDetachPASID, DevicePASIDDetachParams.self, broker.deviceDetachPASID)
        // MARK: queues
        t.addWithFDs(BrokerMethod.faultCreate.rawValue, BrokerMethod.faultCreate.summary, access: .write, params: FaultCreateParams.self) { c, p, _ in
            try broker.faultCreate(c, p)
        }
        t.addWithFDs(BrokerMethod.veventqCreate.rawValue, BrokerMethod.veventqCreate.summary, access: .write, params: VEventQCreateParams.self) { c, p, _ in
            try broker.veventqCreate(c, p)
        }
        add(.faultDestroy, QueueParams.self, broker.faultDestroy)
        add(.veventqDestroy, QueueParams.self, broker.veventqDestroy)
        add(.queueList, QueueListParams.self, broker.queueList)
        t.addWithFDs(BrokerMethod.queueFD.rawValue, BrokerMethod.queueFD.summary, access: .write, params: QueueParams.self) { c, p, _ in
            try broker.queueFD(c, p)
        }
        // MARK: hwqueue3
        add(.hwqueueAlloc, HWQueueAllocParams.self, broker.hwqueueAlloc)
        add(.hwqueueDestroy, HWQueueParams.self, broker.hwqueueDestroy)
        return t
    }
}

extension RPCError {
    /// The wire form of a broker error: its stable name, the errno and ioctl for kernel
    /// failures, and the JSON-RPC code of its kind.
    init(_ error: BrokerError) {
        let data = error.wireData
        self = .domain(
            data.name, error.message, code: error.rpcCode,
            errno: error.kernel?.errno, ioctl: error.kernel?.operation)
        if error.rpcCode == RPCError.Code.invalidParams {
            self.code = RPCError.Code.invalidParams
        }
    }
}
