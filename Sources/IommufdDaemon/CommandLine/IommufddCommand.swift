import ArgumentParser
import Foundation
import Logging

extension Backend: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// iommufdd's command line. Its definitions make `--help` and, with `DaemonManPages`,
/// iommufdd(8), so the two cannot disagree; `Sources/iommufdd/main.swift` runs it.
public struct IommufddCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "iommufdd",
        abstract: "Own the host's shared iommufd and serve IOAS, devices, HWPTs, vIOMMUs and dirty tracking to VM managers.",
        discussion: """
            iommufdd opens /dev/iommu once and serves JSON-RPC 2.0 on a Unix socket; clients never \
            receive the iommufd. Without /dev/iommu (or with --backend sim) it runs on a built-in \
            simulator of iommufd with the devices of the config's [sim] section.

            Flags override the config file. Under systemd it is Type=notify; SIGHUP reloads the \
            config (the old one stays in force when the new one is invalid), SIGTERM finishes \
            in-flight requests and exits. Talk to it with iommuctl.

            Exit codes: \(DaemonExitCode.allCases.map { "\($0.rawValue) \($0.shortMeaning)" }.joined(separator: ", ")).
            """)

    @Option(name: .long, help: ArgumentHelp("Config file (TOML).", discussion: "Default: \(DaemonConfig.defaultPath) if it exists, else built-in defaults.", valueName: "path"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Listening socket path.", discussion: "Default: /run/iommufdd/control.sock (as root), else $XDG_RUNTIME_DIR/iommufdd/control.sock. Ignored under socket activation.", valueName: "path"))
    var socket: String?

    @Option(name: .long, help: ArgumentHelp("Backend: auto, kernel or sim.", discussion: "Default: auto — the kernel when /dev/iommu exists, else the simulator.", valueName: "auto|kernel|sim"))
    var backend: Backend?

    @Option(name: .long, help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", discussion: "Default: info.", valueName: "level"))
    var logLevel: Logger.Level?

    public init() {}

    public mutating func run() throws {
        let overrides = ConfigOverrides(configPath: config, socketPath: socket, backend: backend, logLevel: logLevel)
        do {
            let daemon = try Daemon(overrides: overrides)
            daemon.run()
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(error.exitCode)
        }
    }
}

extension DaemonExitCode {
    /// The few words `--help` gives each code.
    var shortMeaning: String {
        switch self {
        case .stopped: "stopped cleanly"
        case .unavailable: "backend unavailable"
        case .software: "broker could not start"
        case .osError: "socket could not be created"
        case .config: "bad configuration"
        }
    }
}
