#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdRPC
import IommufdSim
import Logging

/// The daemon's layers in this process: a simulator, a broker over it and the JSON-RPC server
/// on a Unix socket, with the broker methods the benchmarks call routed as the daemon routes
/// them (params decoded from JSON, the caller resolved from SO_PEERCRED, fds taken from the
/// message). The simulator stays reachable for the in-process floors and the test hooks.
final class InProcessDaemon: @unchecked Sendable {
    let sim: SimBackend
    let broker: Broker
    let server: RPCServer
    let path: String

    /// `lingerMicroseconds`: the RPC worker's linger window (0: off), over IOMMUFDD_BENCH_LINGER.
    init(path: String, topology: SimTopology = .default, maxDirtyRuns: Int = 1 << 16, lingerMicroseconds: Int? = nil) throws {
        self.path = path
        sim = try SimBackend(topology: topology)
        let access = AccessControl(
            rules: [AccessRule(.uid(getuid()), role: .manager, name: "bench")], rootIsAdmin: false, groupsOf: { _, _ in [] })
        var config = BrokerConfig(access: access, allowList: .all, maxDirtyRuns: maxDirtyRuns)
        config.maxDirtyBitmapBytes = 256 << 20
        var brokerLogger = Logger(label: "bench.broker")
        brokerLogger.logLevel = .error
        broker = try Broker(backend: sim, config: config, logger: brokerLogger)
        let router = RPCRouter()
        var limits = RPCLimits()
        limits.maxClients = 1024
        limits.maxMessageBytes = 64 << 20
        limits.maxOutputBytes = 256 << 20
        // IOMMUFDD_BENCH_LINGER=0 turns the worker's linger off, to see what it buys.
        if let linger = ProcessInfo.processInfo.environment["IOMMUFDD_BENCH_LINGER"].flatMap(Int.init) { limits.lingerMicroseconds = linger }
        // IOMMUFDD_BENCH_LINGER_SPIN=N sets the spinning part of it (µs; 0: sleep only).
        if let spin = ProcessInfo.processInfo.environment["IOMMUFDD_BENCH_LINGER_SPIN"].flatMap(Int.init) { limits.lingerSpinMicroseconds = spin }
        if let lingerMicroseconds { limits.lingerMicroseconds = lingerMicroseconds }
        var logger = Logger(label: "bench.rpc")
        logger.logLevel = .error
        server = try RPCServer(listen: .path(path, mode: 0o600), limits: limits, logger: logger, handler: router)
        Self.route(router, broker)
        server.start()
    }

    func stop() { server.shutdown() }

    /// Makes the broker journal every request as the daemon's does (into a memfd; the fd store
    /// keeps nothing). Before the first request, or later: the first record is then the whole
    /// state so far (figure 8 makes its 10,000 owners first).
    func journalInMemfd() throws {
        _ = try broker.recover(storedFDs: [], store: DiscardingFDStore())
    }

    private static func caller(_ broker: Broker, _ call: RPCCall) throws -> Caller {
        guard let caller = broker.resolve(uid: call.peer.uid, gid: call.peer.gid, pid: call.peer.pid) else {
            throw RPCError(code: -32001, message: "permission denied")
        }
        return caller
    }

    private static func domain<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as RPCError { throw error } catch {
            throw RPCError(code: -32000, message: "\(error)")
        }
    }

    private static func route<P: Decodable & Sendable, R: Encodable & Sendable>(
        _ router: RPCRouter, _ broker: Broker, _ method: String, _ params: P.Type,
        _ body: @escaping @Sendable (Broker, Caller, P) throws -> R
    ) {
        router.register(method, params: P.self) { p, call in
            try domain { try body(broker, try caller(broker, call), p) }
        }
    }

    private static func route(_ router: RPCRouter, _ broker: Broker) {
        router.register("daemon.ping") { _ in RPCResult(.object(["pong": .bool(true)])) }
        route(router, broker, "owner.create", OwnerCreateParams.self) { try $0.ownerCreate($1, $2) }
        route(router, broker, "ioas.create", IOASCreateParams.self) { try $0.ioasCreate($1, $2) }
        route(router, broker, "ioas.info", IOASInfoParams.self) { try $0.ioasInfo($1, $2) }
        route(router, broker, "ioas.destroy", IOASDestroyParams.self) { try $0.ioasDestroy($1, $2) }
        route(router, broker, "ioas.unmap", IOASUnmapParams.self) { try $0.ioasUnmap($1, $2) }
        route(router, broker, "hwpt.alloc", HWPTAllocParams.self) { try $0.hwptAlloc($1, $2) }
        route(router, broker, "device.attach", DeviceAttachParams.self) { try $0.deviceAttach($1, $2) }
        route(router, broker, "device.detach", DeviceDetachParams.self) { try $0.deviceDetach($1, $2) }
        route(router, broker, "device.release", DeviceReleaseParams.self) { try $0.deviceRelease($1, $2) }
        route(router, broker, "dirty.start", DirtyParams.self) { try $0.dirtyStart($1, $2) }
        route(router, broker, "hwpt.invalidate", HWPTInvalidateParams.self) { try $0.hwptInvalidate($1, $2) }
        router.register("ioas.map") { call in
            let p = try call.decodeParams(IOASMapParams.self)
            let fd = try call.fds.take(p.fd.fd)
            defer { close(fd) }
            return try RPCResult.encoding(try domain { try broker.ioasMap(try caller(broker, call), p, fd: fd) })
        }
        router.register("dirty.read") { call in
            let p = try call.decodeParams(DirtyReadParams.self)
            if let into = p.into {  // as the daemon's method table does
                let fd = try call.fds.take(into.fd)
                defer { close(fd) }
                try domain { try Broker.checkBitmapMemfd(fd) }
                return try RPCResult.encoding(try domain { try broker.dirtyRead(try caller(broker, call), p, into: fd) }.result)
            }
            let answer = try domain { try broker.dirtyRead(try caller(broker, call), p) }
            return try RPCResult.encoding(answer.result, fds: answer.fds)
        }
    }
}

/// `memfd_create`, looked up once (Swift's Glibc module does not export it).
func makeMemfd(size: UInt64, sealable: Bool = false) throws -> Int32 {
    typealias Create = @convention(c) (UnsafePointer<CChar>, UInt32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "memfd_create") else { throw BenchError("no memfd_create") }
    let fd = unsafeBitCast(symbol, to: Create.self)("iommufdd-bench", sealable ? 1 | 2 /* MFD_ALLOW_SEALING */ : 1)
    guard fd >= 0 else { throw BenchError.errno("memfd_create") }
    guard ftruncate(fd, off_t(size)) == 0 else { throw BenchError.errno("ftruncate") }
    return fd
}

/// An fd store that keeps nothing (the journal still writes its memfd).
final class DiscardingFDStore: FileDescriptorStore, @unchecked Sendable {
    func store(_ fd: Int32, name: String) {}
    func remove(name: String) {}
}
