/// The method catalogue's types: for each method, what its params decode into and what its
/// result encodes from. The daemon's method table registers each method with exactly these
/// types (ContractTests checks it), and the golden file Tests/ContractTests/contract.golden
/// lists them with their fields, so any change of the wire shows up in review.
public struct MethodSignature {
    public var params: any Codable.Type
    /// Nil when the contract does not type the result: `daemon.info` (the daemon's state, its
    /// restart recovery included) and `rpc.discover` (an OpenRPC document) answer JSON objects
    /// that clients read by member.
    public var result: (any Codable.Type)?

    public init(_ params: any Codable.Type, _ result: (any Codable.Type)?) {
        self.params = params
        self.result = result
    }
}

/// The result of a method that answers nothing but success: `{}`.
public struct EmptyResult: Codable, Hashable, Sendable {
    public init() {}
}

/// `daemon.metrics`: the Prometheus text exposition.
public struct MetricsResult: Codable, Hashable, Sendable {
    public var contentType = "text/plain; version=0.0.4"
    public var text: String
    public init(text: String) { self.text = text }
    enum CodingKeys: String, CodingKey {
        case contentType = "content_type"
        case text
    }
}

/// The daemon's own methods, beside the broker's.
public enum DaemonMethod: String, CaseIterable, Sendable, Codable {
    case ping = "daemon.ping"
    case info = "daemon.info"
    case metrics = "daemon.metrics"
    case discover = "rpc.discover"

    /// One line for `rpc.discover` and `iommuctl --help`.
    public var summary: String {
        switch self {
        case .ping: "Liveness check; answers \"pong\""
        case .info: "Version, backend, kernel features, object counts, uptime"
        case .metrics: "Prometheus text exposition of the daemon's counters and latency histograms"
        case .discover: "OpenRPC document of every method"
        }
    }

    public var signature: MethodSignature {
        switch self {
        case .ping: MethodSignature(NoParams.self, String.self)
        case .info: MethodSignature(NoParams.self, nil)
        case .metrics: MethodSignature(NoParams.self, MetricsResult.self)
        case .discover: MethodSignature(NoParams.self, nil)
        }
    }
}

extension BrokerMethod {
    /// The params and result types of the method (for the methods that send fds back, the
    /// result that names them).
    public var signature: MethodSignature {
        switch self {
        case .ownerCreate: MethodSignature(OwnerCreateParams.self, OwnerInfo.self)
        case .ownerList: MethodSignature(NoParams.self, OwnerListResult.self)
        case .ownerInfo: MethodSignature(OwnerInfoParams.self, OwnerInfo.self)
        case .ownerRelease: MethodSignature(OwnerReleaseParams.self, OwnerReleaseResult.self)
        case .ownerDelegate: MethodSignature(OwnerDelegateParams.self, OwnerDelegateResult.self)
        case .ownerRevokeChannels: MethodSignature(OwnerRevokeChannelsParams.self, OwnerRevokeChannelsResult.self)
        case .deviceList: MethodSignature(DeviceListParams.self, DeviceListResult.self)
        case .deviceInfo: MethodSignature(DeviceInfoParams.self, DeviceInfo.self)
        case .deviceAttach: MethodSignature(DeviceAttachParams.self, DeviceAttachResult.self)
        case .deviceDetach: MethodSignature(DeviceDetachParams.self, DeviceDetachResult.self)
        case .deviceReplace: MethodSignature(DeviceReplaceParams.self, DeviceAttachResult.self)
        case .deviceRelease: MethodSignature(DeviceReleaseParams.self, DeviceReleaseResult.self)
        case .deviceFD: MethodSignature(DeviceFDParams.self, DeviceFDResult.self)
        case .ioasCreate: MethodSignature(IOASCreateParams.self, IOASCreateResult.self)
        case .ioasDestroy: MethodSignature(IOASDestroyParams.self, IOASDestroyResult.self)
        case .ioasList: MethodSignature(IOASListParams.self, IOASListResult.self)
        case .ioasInfo: MethodSignature(IOASInfoParams.self, IOASInfo.self)
        case .ioasMap: MethodSignature(IOASMapParams.self, IOASMapResult.self)
        case .ioasUnmap: MethodSignature(IOASUnmapParams.self, IOASUnmapResult.self)
        case .ioasCopy: MethodSignature(IOASCopyParams.self, IOASCopyResult.self)
        case .ioasRanges: MethodSignature(IOASRangesParams.self, IOASRangesResult.self)
        case .ioasSetOption: MethodSignature(IOASSetOptionParams.self, IOASSetOptionResult.self)
        case .hwptList: MethodSignature(HWPTListParams.self, HWPTListResult.self)
        case .hwptAlloc: MethodSignature(HWPTAllocParams.self, HWPTInfo.self)
        case .hwptDestroy: MethodSignature(HWPTDestroyParams.self, HWPTDestroyResult.self)
        case .dirtyStart: MethodSignature(DirtyParams.self, DirtyStatusResult.self)
        case .dirtyStop: MethodSignature(DirtyParams.self, DirtyStatusResult.self)
        case .dirtyStatus: MethodSignature(DirtyParams.self, DirtyStatusResult.self)
        case .dirtyRead: MethodSignature(DirtyReadParams.self, DirtyReadResult.self)
        case .viommuCreate: MethodSignature(VIOMMUCreateParams.self, VIOMMUCreateResult.self)
        case .viommuDestroy: MethodSignature(VIOMMUDestroyParams.self, VIOMMUDestroyResult.self)
        case .viommuList: MethodSignature(VIOMMUListParams.self, VIOMMUListResult.self)
        case .vdeviceCreate: MethodSignature(VDeviceCreateParams.self, VDeviceCreateResult.self)
        case .vdeviceDestroy: MethodSignature(VDeviceDestroyParams.self, VDeviceDestroyResult.self)
        case .faultCreate: MethodSignature(FaultCreateParams.self, QueueFDResult.self)
        case .faultDestroy: MethodSignature(QueueParams.self, QueueDestroyResult.self)
        case .veventqCreate: MethodSignature(VEventQCreateParams.self, QueueFDResult.self)
        case .veventqDestroy: MethodSignature(QueueParams.self, QueueDestroyResult.self)
        case .queueList: MethodSignature(QueueListParams.self, QueueListResult.self)
        case .queueFD: MethodSignature(QueueParams.self, QueueFDResult.self)
        case .eventsSubscribe: MethodSignature(EventsSubscribeParams.self, EventsSubscribeResult.self)
        case .eventsUnsubscribe: MethodSignature(EventsUnsubscribeParams.self, EmptyResult.self)
        case .hwptInvalidate: MethodSignature(HWPTInvalidateParams.self, InvalidateResult.self)
        case .viommuInvalidate: MethodSignature(VIOMMUInvalidateParams.self, InvalidateResult.self)
        // MARK: pasid
        case .deviceAttachPASID: MethodSignature(DevicePASIDParams.self, DevicePASIDResult.self)
        case .deviceReplacePASID: MethodSignature(DevicePASIDParams.self, DevicePASIDResult.self)
        case .deviceDetachPASID: MethodSignature(DevicePASIDDetachParams.self, DevicePASIDResult.self)
        // MARK: hwqueue3
        case .hwqueueAlloc: MethodSignature(HWQueueAllocParams.self, HWQueueInfo.self)
        case .hwqueueDestroy: MethodSignature(HWQueueParams.self, HWQueueDestroyResult.self)
        }
    }
}
