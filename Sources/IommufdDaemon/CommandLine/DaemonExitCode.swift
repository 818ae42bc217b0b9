/// How iommufdd exits (sysexits(3) numbers): one table for the code, `--help` and iommufdd(8).
public enum DaemonExitCode: Int32, CaseIterable, Sendable {
    case stopped = 0
    case unavailable = 69
    case software = 70
    case osError = 71
    case config = 78

    /// What it means, for `--help` and the man page.
    public var meaning: String {
        switch self {
        case .stopped: "stopped cleanly (SIGTERM or SIGINT)"
        case .unavailable: "the backend is unavailable (no /dev/iommu with --backend kernel, or the fd store's iommufd cannot be taken over)"
        case .software: "the broker could not start (restart recovery failed)"
        case .osError: "the control socket could not be created, or socket activation passed unusable fds"
        case .config: "the configuration is invalid (every problem is printed as file:line:column: key: reason)"
        }
    }
}

/// The signals iommufdd handles (`SignalWatcher.daemonSignals`), for `--help` and the man page.
public enum DaemonSignal: String, CaseIterable, Sendable {
    case SIGTERM, SIGINT, SIGHUP, SIGPIPE

    public var meaning: String {
        switch self {
        case .SIGTERM: "stop: send STOPPING=1, finish in-flight requests (up to 10 s) and exit 0. The kernel objects stay in systemd's fd store for the next start when the service manager keeps it (a restart; a stop only with FileDescriptorStorePreserve=yes, systemd >= 254)."
        case .SIGINT: "as SIGTERM."
        case .SIGHUP: "reload /etc/iommufdd/iommufdd.toml (systemctl reload): RELOADING=1, then READY=1. An invalid file is logged and the configuration in force stays in force; settings that need a restart are named in the log."
        case .SIGPIPE: "ignored (a client that disconnects mid-answer gives EPIPE)."
        }
    }
}
