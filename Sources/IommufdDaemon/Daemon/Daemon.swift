import Dispatch
import Foundation
import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdRPC
import Logging

/// Why the daemon could not start: printed as is, then the process exits with `exitCode`.
public struct DaemonStartError: Error, CustomStringConvertible {
    public var description: String
    /// `DaemonExitCode` (sysexits(3)): 78 = EX_CONFIG for a bad config, 69 = EX_UNAVAILABLE for a
    /// missing backend, 70 = EX_SOFTWARE for a broker that cannot start, 71 = EX_OSERR for a
    /// socket that cannot be made.
    public var exitCode: Int32
}

/// The daemon: config, backend, broker, RPC server and systemd, wired together. Everything that
/// touches its lifecycle (signals, watchdog, status) runs on the main queue.
public final class Daemon: @unchecked Sendable {
    public let config: ConfigStore
    public let service: DaemonService
    let server: RPCServer
    let logger: Logger
    let notifier = SystemdNotifier()
    private var signals: SignalWatcher?
    private var watchdog: WatchdogTimer?
    private var statusTimer: DispatchSourceTimer?
    private var stopping = false

    /// Loads the config, opens the backend and the socket. Nothing is served until `run()`.
    public init(overrides: ConfigOverrides) throws(DaemonStartError) {
        let loaded: DaemonConfig
        switch DaemonConfig.load(overrides: overrides) {
        case .success(let c): loaded = c
        case .failure(let e):
            throw DaemonStartError(description: "iommufdd: refusing to start with this configuration:\n\(e)", exitCode: DaemonExitCode.config.rawValue)
        }
        var initial = loaded
        if overrides.socketPath == nil, getuid() != 0, initial.daemon.socketPath == DaemonConfig.defaults.daemon.socketPath {
            // /run/iommufdd is root's; an unprivileged run (a demo on the simulator) uses the
            // user's runtime directory, where iommuctl looks too.
            initial.daemon.socketPath = Daemon.unprivilegedSocketPath()
        }
        config = ConfigStore(initial: initial, overrides: overrides)
        DaemonLogging.bootstrap(level: initial.daemon.logLevel)
        var logger = Logger(label: "iommufdd")
        logger.logLevel = initial.daemon.logLevel
        self.logger = logger

        let activation: SocketActivation?
        do {
            activation = try SocketActivation.inherited()
        } catch {
            throw DaemonStartError(description: "iommufdd: \(error)", exitCode: DaemonExitCode.osError.rawValue)
        }
        // Restart recovery (Recovery/): the fd store gives back the iommufd, the journal, memory
        // files and device fds; the backend and the broker take them over before READY.
        let recoveryStart = DispatchTime.now()
        let storeState = SystemdFDStore.availability(environment: ProcessInfo.processInfo.environment)
        let stored = activation?.storedFDs ?? []
        let backend: any IommuBackend
        let restOfStore: [SocketActivation.PassedFD]
        let backendNotes: [String]
        do {
            (backend, restOfStore, backendNotes, _) = try RestartRecovery.openBackend(initial, stored: stored, useStore: storeState.limit != nil, logger: logger)
        } catch {
            throw DaemonStartError(description: "iommufdd: \(error)", exitCode: DaemonExitCode.unavailable.rawValue)
        }
        let broker: Broker
        var fdStore: SystemdFDStore?
        var recovery: RecoveryInfo?
        do {
            broker = try Broker(backend: backend, config: BrokerSettings.make(initial, backend: backend.kind), logger: logger)
            if let limit = storeState.limit {
                let store = SystemdFDStore(notifier: SystemdNotifier(), limit: limit, logger: logger, adopted: stored.map(\.name))
                fdStore = store
                let journal = try broker.recover(storedFDs: restOfStore.map { ($0.name, $0.fd) }, store: store)
                // The backend's own fds (the iommufd), unless they came from the store.
                for (name, fd) in (backend as? any RestartableBackend)?.fdsToStore() ?? [] { store.store(fd, name: name) }
                recovery = RecoveryInfo(
                    restarted: journal.journal != nil, seconds: Double(DispatchTime.now().uptimeNanoseconds - recoveryStart.uptimeNanoseconds) / 1e9, journal: journal, backendProblems: backendNotes)
                if journal.journal != nil {
                    logger.info("objects taken over from the previous daemon", metadata: [
                        "recovery.owners": "\(journal.owners)", "recovery.ioas": "\(journal.ioas)", "recovery.mappings": "\(journal.mappings)",
                        "recovery.devices": "\(journal.devices)", "recovery.problems": "\(journal.problems.count + backendNotes.count)",
                    ])
                }
                for note in backendNotes { logger.warning("recovery: \(note)") }
            } else if !stored.isEmpty {
                logger.warning("fds were passed besides the control socket but there is no fd store to keep using; they are ignored", metadata: ["fds": "\(stored.map(\.name))"])
            }
        } catch {
            throw DaemonStartError(description: "iommufdd: cannot start the broker: \(error)", exitCode: DaemonExitCode.software.rawValue)
        }

        let listen: RPCListenAddress
        let socketPath: String
        do {
            if let fd = try activation?.controlSocket() {
                listen = .adopted(fd)
                socketPath = Daemon.boundPath(of: fd) ?? "(socket activation)"
            } else {
                socketPath = initial.daemon.socketPath
                try Daemon.makeParentDirectory(of: socketPath)
                listen = .path(socketPath, mode: UInt32(initial.daemon.socketMode), group: initial.daemon.socketGroup.map { UInt32($0.gid) })
            }
        } catch let error as DaemonStartError {
            throw error
        } catch {
            throw DaemonStartError(description: "iommufdd: \(error)", exitCode: DaemonExitCode.osError.rawValue)
        }
        let status = DaemonStatus(socketPath: socketPath, configFile: overrides.configPath ?? (FileManager.default.fileExists(atPath: DaemonConfig.defaultPath) ? DaemonConfig.defaultPath : nil))
        let service = DaemonService(broker: broker, backend: backend, status: status, logger: logger)
        self.service = service
        service.channels.busyPollMicroseconds = initial.limits.channelBusyPollMicroseconds  // kinval
        do {
            server = try RPCServer(listen: listen, limits: Daemon.limits(initial), logger: logger, handler: service)
        } catch {
            throw DaemonStartError(description: "iommufdd: cannot listen on \(socketPath): \(error)", exitCode: DaemonExitCode.osError.rawValue)
        }
        service.server = server
        // Channels the fd store gave back: their VMMs carry on over the same fd.
        for channel in broker.takeRecoveredChannels() {
            service.channels.serve(id: channel.id, owner: channel.owner, fd: channel.fd)
        }
        status.fdStore = fdStore
        status.recovery = recovery
        if let recovery, !(recovery.journal.problems.isEmpty && recovery.backendProblems.isEmpty) {
            status.warn("restart recovery found \(recovery.journal.problems.count + recovery.backendProblems.count) problems; see recovery in daemon.info")
        }
        if backend.kind == .sim, initial.sim.testHooks {
            service.addTestHooks()
            service.addWatchdogStallHook()
            status.warn("[sim] test_hooks is on: sim.dma and test.stall_main_queue are served (test-only)")
        }
        if backend.kind == .kernel, initial.kernel.testHooks {
            service.addTestHooks()
            service.addWatchdogStallHook()
            status.warn("[kernel] test_hooks is on: sim.dma marks pages written by the selftest mock devices (IOMMU_TEST_OP_DIRTY), test.stall_main_queue stalls the main queue (test-only)")
        }
        if backend.kind == .sim, initial.sim.testHooks { service.addSimInventoryHook() }
        if (backend.kind == .sim && initial.sim.testHooks) || (backend.kind == .kernel && initial.kernel.testHooks) {
            service.addDmabufTestHooks()  // MARK: p2p
            service.addQueueTestHooks()  // MARK: i14audit
        }
        let testHooks = (backend.kind == .sim && initial.sim.testHooks) || (backend.kind == .kernel && initial.kernel.testHooks)
        try Daemon.armCrashPoints(testHooks: testHooks, environment: ProcessInfo.processInfo.environment, status: status, logger: logger)
        if fdStore != nil {
            status.restartKeepsObjects = true
            if backend.kind == .sim {
                status.warn("simulator backend: no device does real DMA; its objects survive restarts through its operation log in the fd store")
            }
        } else {
            if backend.kind == .sim {
                status.warn("simulator backend: no device does real DMA; objects live in this process only")
            }
            let reason = storeState.reason ?? "no fd store"
            status.warn("no fd store (\(reason)): a restart of iommufdd destroys every IOAS, HWPT and mapping (and the DMA of running VMs)")
            logger.warning("a restart of iommufdd will drop every object: there is no fd store to keep them", metadata: ["reason": "\(reason)"])
        }
    }

    /// Starts serving and runs the main queue forever (exit happens from the SIGTERM path).
    ///
    /// The timers are made before the signal handlers are set: `terminate` reads them on the
    /// main queue, which after `dispatchMain()` runs on a libdispatch worker thread, and the
    /// handler's registration is what orders these writes before that read (ThreadSanitizer sees
    /// that edge; the hand-over of the main queue inside libdispatch it cannot see). Nothing on
    /// the main queue runs before `dispatchMain()`, so no ping or status precedes READY=1.
    public func run() -> Never {
        watchdog = WatchdogTimer.startIfEnabled(notifier: notifier, queue: .main)
        let timer = DispatchSource.makeTimerSource(queue: .main)
        timer.schedule(deadline: .now() + 10, repeating: 10)
        timer.setEventHandler { [self] in _ = try? notifier.status(statusLine()) }
        timer.resume()
        statusTimer = timer
        signals = SignalWatcher.daemonSignals(
            queue: .main,
            terminate: { [self] signo in terminate(signo) },
            reload: { [self] in reload() })
        server.start()
        let info = service.info()
        logger.info("serving", metadata: [
            "daemon.socket": "\(info.socket)", "daemon.backend": "\(info.backend)", "daemon.version": "\(info.version)",
            "daemon.devices": "\(info.counts.devicesKnown)",
        ])
        _ = try? notifier.ready(status: statusLine())
        dispatchMain()
    }

    /// One line for systemd's STATUS=.
    func statusLine() -> String {
        let i = service.info()
        let c = i.counts
        return "\(i.backend) backend; \(i.connections) clients; \(c.owners) owners, \(c.ioas) IOAS, \(c.mappings) mappings, \(c.devicesAttached) devices attached"
    }

    private func terminate(_ signo: Int32) {
        guard !stopping else { return }
        stopping = true
        logger.info("stopping: finishing in-flight requests", metadata: ["daemon.signal": "\(signo)"])
        _ = try? notifier.stopping(status: "stopping: finishing in-flight requests")
        watchdog?.cancel()
        statusTimer?.cancel()
        // Off the main queue: shutdown waits for handlers, which may need nothing from main.
        DispatchQueue.global().async { [self] in
            server.shutdown(gracePeriod: .seconds(10))
            logger.info("stopped")
            exit(0)
        }
    }

    private func reload() {
        guard !stopping else { return }
        _ = try? notifier.reloading(status: "reloading configuration")
        switch config.reload() {
        case .success(let (old, new)):
            do {
                try service.broker.reload(config: BrokerSettings.make(new, backend: service.backend.kind))
                service.forgetCallers()
                service.channels.busyPollMicroseconds = new.limits.channelBusyPollMicroseconds  // kinval
                DaemonLogging.levels.level = new.daemon.logLevel
                let restart = new.changesNeedingRestart(from: old)
                if !restart.isEmpty {
                    logger.warning("these settings take effect at the next start", metadata: ["config.keys": "\(restart.joined(separator: ", "))"])
                }
                logger.info("configuration reloaded")
            } catch {
                logger.error("reload refused by the broker; the old configuration stays in force", metadata: ["error": "\(error)"])
            }
        case .failure(let error):
            logger.error("reload failed; the old configuration stays in force", metadata: ["config.error": "\(error)"])
        }
        _ = try? notifier.ready(status: statusLine())
    }

    static func limits(_ c: DaemonConfig) -> RPCLimits {
        var l = RPCLimits()
        l.maxMessageBytes = c.limits.maxMessageBytes
        l.maxClients = c.limits.maxClients
        l.maxFileDescriptorsPerMessage = c.limits.maxFDsPerMessage
        l.idleTimeout = c.limits.idleTimeout
        l.partialMessageTimeout = c.limits.partialMessageTimeout
        l.maxOutputBytes = c.limits.maxOutputBufferBytes
        l.lingerMicroseconds = c.limits.rpcLingerMicroseconds
        l.lingerSpinMicroseconds = min(c.limits.rpcSpinMicroseconds, c.limits.rpcLingerMicroseconds)
        return l
    }

    /// `$XDG_RUNTIME_DIR/iommufdd/control.sock`, else `/tmp/iommufdd-UID/control.sock`.
    public static func unprivilegedSocketPath() -> String {
        if let dir = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !dir.isEmpty {
            return dir + "/iommufdd/control.sock"
        }
        return "/tmp/iommufdd-\(getuid())/control.sock"
    }

    static func makeParentDirectory(of path: String) throws(DaemonStartError) {
        let dir = (path as NSString).deletingLastPathComponent
        guard !dir.isEmpty, !FileManager.default.fileExists(atPath: dir) else { return }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw DaemonStartError(description: "iommufdd: cannot create the socket directory \(dir): \(error.localizedDescription); pass --socket PATH in a writable directory", exitCode: DaemonExitCode.osError.rawValue)
        }
    }

    static func boundPath(of fd: Int32) -> String? {
        var addr = sockaddr_un()
        var len = socklen_t(MemoryLayout<sockaddr_un>.size)
        let rc = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard rc == 0 else { return nil }
        return withUnsafeBytes(of: addr.sun_path) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
        }
    }
}
