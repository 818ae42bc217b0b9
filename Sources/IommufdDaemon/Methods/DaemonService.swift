import Foundation
import IommufdBroker
import IommufdContract
import IommufdChannel
import IommufdCore
import IommufdRPC
import Logging

public enum IommufddVersion {
    public static let string = "0.1.0"
}

/// The daemon's RPC handler: admits peers by their credentials, routes methods through the
/// `MethodTable`, converts errors to wire errors (only here, at the boundary), and ties event
/// subscriptions to connections.
public final class DaemonService: RPCHandler, @unchecked Sendable {
    public let broker: Broker
    public let backend: any IommuBackend
    /// The VMM channels (`owner.delegate`, docs/vmm-channel.md).
    public let channels: ChannelServer
    public internal(set) var table: MethodTable
    let logger: Logger
    let started = Date()
    let startedMonotonic = DispatchTime.now()
    /// Filled by the daemon: the socket path, config file, and anything an operator should know.
    let status: DaemonStatus
    weak var server: RPCServer?

    private let lock = NSLock()
    private var callers: [UInt64: Caller] = [:]          // connection id → resolved identity
    private var subscriptions: [UInt64: Set<UInt64>] = [:]  // connection id → subscription ids
    /// Per method: how long `handle` took to run it (from after the access check to the result
    /// or error), for `daemon.metrics`' `iommufdd_request_duration_seconds`.
    private var latencyByMethod: [String: LatencyHistogram] = [:]

    init(broker: Broker, backend: any IommuBackend, status: DaemonStatus, logger: Logger) {
        self.broker = broker
        self.backend = backend
        self.status = status
        self.logger = logger
        let channels = ChannelServer(broker: broker, logger: logger)
        self.channels = channels
        self.table = MethodTable.broker(broker, channels: channels)
        addDaemonMethods()
    }

    // MARK: RPCHandler

    public func accept(peer: RPCPeer) -> RPCError? {
        guard broker.resolve(uid: peer.uid, gid: peer.gid, pid: peer.pid) != nil else {
            logger.warning("refused a connection from an identity with no role", metadata: [
                "rpc.peer.uid": "\(peer.uid)", "rpc.peer.gid": "\(peer.gid)", "rpc.peer.pid": "\(peer.pid)",
            ])
            return .domain(
                ErrorName.permissionDenied.wireName,
                "uid \(peer.uid) (gid \(peer.gid)) has no role in iommufdd: add it to an [[access]] entry of the config (role = \"reader\", \"manager\" or \"admin\") and reload the daemon",
                code: BrokerError.rpcCode(.permissionDenied))
        }
        return nil
    }

    public func connectionClosed(_ connection: RPCConnection) {
        let ids: Set<UInt64> = lock.withLock {
            callers[connection.id] = nil
            return subscriptions.removeValue(forKey: connection.id) ?? []
        }
        for id in ids { broker.unsubscribe(id) }
    }

    public func handle(_ call: RPCCall) throws -> RPCResult {
        guard let spec = table.methods[call.method] else { throw RPCError.methodNotFound(call.method) }
        let caller = try caller(for: call)
        if spec.access == .write && caller.role == .reader {
            throw RPCError.domain(
                ErrorName.permissionDenied.wireName,
                "\(call.method) changes state, and \(caller.identity) is a reader: ask an admin to give this identity the manager role in the config",
                code: BrokerError.rpcCode(.permissionDenied))
        }
        let start = monotonicNanoseconds()
        defer {
            let elapsed = monotonicNanoseconds() &- start
            lock.withLock { latencyByMethod[spec.name, default: LatencyHistogram()].record(elapsed) }
        }
        do {
            return try spec.run(caller, call)
        } catch let error as BrokerError {
            throw RPCError(error)
        } catch let error as RPCError {
            throw error
        } catch let error as IommuError {
            throw RPCError(error)
        } catch {
            logger.error("unexpected error", metadata: ["rpc.method": "\(call.method)", "error": "\(error)"])
            throw RPCError.internalError("\(call.method) failed unexpectedly: \(error)")
        }
    }

    /// The identity behind a connection, resolved once per connection (and again after a
    /// config reload, which clears the cache).
    private func caller(for call: RPCCall) throws -> Caller {
        if let c = lock.withLock({ callers[call.connection.id] }) { return c }
        let peer = call.peer
        guard let c = broker.resolve(uid: peer.uid, gid: peer.gid, pid: peer.pid) else {
            call.connection.close()
            throw RPCError.domain(
                ErrorName.permissionDenied.wireName,
                "uid \(peer.uid) lost its role in a config reload; the connection is closed",
                code: BrokerError.rpcCode(.permissionDenied))
        }
        lock.withLock { callers[call.connection.id] = c }
        return c
    }

    /// Forget resolved identities (after a config reload changed roles).
    func forgetCallers() { lock.withLock { callers.removeAll() } }

    func methodCallCounts() -> [String: UInt64] { lock.withLock { latencyByMethod.mapValues(\.count) } }

    /// The latency histogram of each method called so far.
    func methodLatencies() -> [String: LatencyHistogram] { lock.withLock { latencyByMethod } }

    // MARK: daemon.*, rpc.*, events.*

    private func addDaemonMethods() {
        table.add(DaemonMethod.ping.rawValue, DaemonMethod.ping.summary, access: .read, params: NoParams.self) { _, _, _ in
            "pong"
        }
        table.add(DaemonMethod.info.rawValue, DaemonMethod.info.summary, access: .read, params: NoParams.self) {
            [unowned self] _, _, _ in self.info()
        }
        table.add(DaemonMethod.metrics.rawValue, DaemonMethod.metrics.summary, access: .read, params: NoParams.self) {
            [unowned self] _, _, _ in MetricsResult(text: Metrics.exposition(self))
        }
        table.add(DaemonMethod.discover.rawValue, DaemonMethod.discover.summary, access: .read, params: NoParams.self) {
            [unowned self] _, _, _ in OpenRPC.document(self.table)
        }
        table.add(BrokerMethod.eventsSubscribe.rawValue, BrokerMethod.eventsSubscribe.summary, access: .read, params: EventsSubscribeParams.self) {
            [unowned self] caller, params, call in
            let connection = call.connection
            let result = try self.broker.subscribe(caller, params) { event in
                let payload = (try? JSONValueEncoder().encode(event)) ?? .null
                _ = connection.notify(method: event.method, params: payload)
            }
            connection.exemptFromIdleTimeout = true
            self.lock.withLock { _ = self.subscriptions[connection.id, default: []].insert(result.subscription) }
            if !connection.isOpen { self.connectionClosed(connection) }
            return result
        }
        table.add(BrokerMethod.eventsUnsubscribe.rawValue, BrokerMethod.eventsUnsubscribe.summary, access: .read, params: EventsUnsubscribeParams.self) {
            [unowned self] caller, params, call in
            try self.broker.unsubscribe(caller, params)
            _ = self.lock.withLock { self.subscriptions[call.connection.id]?.remove(params.subscription) }
            return EmptyResult()
        }
    }

    func info() -> DaemonInfo {
        let uptime = Double(DispatchTime.now().uptimeNanoseconds - startedMonotonic.uptimeNanoseconds) / 1e9
        let features = Feature.allCases.map {
            DaemonInfo.FeatureState(name: $0.rawValue, supported: backend.features.contains($0), since: $0.sinceKernel)
        }
        return DaemonInfo(
            version: IommufddVersion.string, backend: backend.kind.rawValue, pid: getpid(),
            startedAt: ISO8601DateFormatter().string(from: started), uptimeSeconds: uptime,
            socket: status.socketPath, configFile: status.configFile, features: features,
            counts: broker.counts(), connections: server?.metrics.connectionsOpen ?? 0,
            restartKeepsObjects: status.restartKeepsObjects, warnings: status.warnings + (status.fdStore?.warnings ?? []),
            recovery: status.recovery, fdStore: status.fdStore.map { store in
                let journal = broker.journalStatus
                return DaemonInfo.FDStoreState(
                    limit: store.limit, stored: store.count, journalGeneration: journal?.generation ?? 0, journalBytes: journal?.bytes ?? 0,
                    journalError: journal?.writeError)
            })
    }
}

/// Facts about the running daemon that `daemon.info` reports.
final class DaemonStatus: @unchecked Sendable {
    let socketPath: String
    let configFile: String?
    private let lock = NSLock()
    private var _warnings: [String] = []
    private var _restartKeepsObjects = false

    init(socketPath: String, configFile: String?) {
        self.socketPath = socketPath
        self.configFile = configFile
    }

    var warnings: [String] { lock.withLock { _warnings } }
    func warn(_ text: String) { lock.withLock { _warnings.append(text) } }
    /// Restart recovery (Recovery/): the fd store in use and what the start took over.
    var fdStore: SystemdFDStore?
    var recovery: RecoveryInfo?
    var restartKeepsObjects: Bool {
        get { lock.withLock { _restartKeepsObjects } }
        set { lock.withLock { _restartKeepsObjects = newValue } }
    }
}

public struct DaemonInfo: Codable, Sendable {
    public struct FeatureState: Codable, Sendable {
        public var name: String
        public var supported: Bool
        /// The first Linux version with it, so an operator knows what to upgrade to.
        public var since: String
    }
    public var version: String
    public var backend: String
    public var pid: Int32
    public var startedAt: String
    public var uptimeSeconds: Double
    public var socket: String
    public var configFile: String?
    public var features: [FeatureState]
    public var counts: BrokerCounts
    public var connections: Int
    /// Whether a restart of the daemon keeps every object (fd store available).
    public var restartKeepsObjects: Bool
    public var warnings: [String]
    /// What this start took over from a previous daemon (nil without an fd store).
    public var recovery: RecoveryInfo?
    /// systemd's fd store as the daemon uses it (nil without one).
    public var fdStore: FDStoreState?

    public struct FDStoreState: Codable, Sendable {
        /// `FileDescriptorStoreMax=` and the fds the daemon has stored.
        public var limit: Int
        public var stored: Int
        public var journalGeneration: UInt64
        public var journalBytes: Int
        public var journalError: String?
        enum CodingKeys: String, CodingKey {
            case limit, stored
            case journalGeneration = "journal_generation"
            case journalBytes = "journal_bytes"
            case journalError = "journal_error"
        }
    }

    enum CodingKeys: String, CodingKey {
        case version, backend, pid, socket, features, counts, connections, warnings
        case startedAt = "started_at"
        case uptimeSeconds = "uptime_seconds"
        case configFile = "config_file"
        case restartKeepsObjects = "restart_keeps_objects"
        case recovery
        case fdStore = "fd_store"
    }
}
