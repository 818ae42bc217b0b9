import ArgumentParser
import Foundation
import IommufdRPC

/// `iommuctl`: the command-line client of iommufdd.
public struct IommuCtl: ParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "iommuctl",
        abstract: "Inspect and drive iommufdd, the daemon that owns the host's iommufd.",
        discussion: """
            iommufdd holds the one /dev/iommu of the host and hands out IO address spaces (IOAS), \
            hardware page tables (HWPT), device attachments, dirty tracking and vIOMMUs to VM \
            managers, each under an owner (usually one per VM). iommuctl speaks its JSON-RPC \
            protocol on the daemon's Unix socket.

            A VM's life, from a shell:
              iommuctl owner create vm1 --dirty preferred
              iommuctl ioas create --owner vm1                 # IOAS 1 created ...
              iommuctl ioas map 1 --memfd 1G --iova 0          # guest memory at IOVA 0
              iommuctl device attach vfio0 --owner vm1 --ioas 1
              iommuctl dirty start 1
              iommuctl dirty read 1 --iova 0 --length 1G
              iommuctl owner release vm1                       # tears all of it down

            Every command takes --json for the daemon's answer as JSON (for scripts), and \
            --socket (default $IOMMUFDD_SOCKET, else \(GlobalOptions.defaultSocketPath)). \
            These global options (--socket, --json, --compact, --timeout) go before or after \
            the subcommand: iommuctl --socket /tmp/iommufdd.sock status.

            Numbers: sizes take K/M/G/T suffixes (binary: 4K = 4096) or 0x hex; IOVAs are hex \
            with 0x or decimal.

            Exit status:
            \(CtlExit.table)

            Shell completions: iommuctl --generate-completion-script bash|zsh|fish. \
            A man page: man iommuctl (scripts/install installs it with the completions).
            """,
        version: version,
        subcommands: [
            Status.self,
            Devices.self,
            DeviceCommand.self,
            OwnerCommand.self,
            IOASCommand.self,
            HWPTCommand.self,
            DirtyCommand.self,
            VIOMMUCommand.self,
            VDeviceCommand.self,
            FaultCommand.self,  // queues
            VEventQCommand.self,
            QueueCommand.self,
            HWQueueCommand.self,  // hwqueue3
            Watch.self,
            Metrics.self,
            Call.self,
        ]
    )

    /// The global options given before the subcommand (`iommuctl --socket PATH status`), as
    /// with `git -C` or `virsh -c`. The root parses them wherever they are on the line, and
    /// every subcommand's `@OptionGroup var global: GlobalOptions` inherits them: swift-argument-
    /// parser hands an option group a parent command decoded to the same group of its
    /// subcommand. So `iommuctl --json ioas list` and `iommuctl ioas list --json` are one command.
    @OptionGroup(title: "Global options") var global: GlobalOptions

    public init() {}

    /// Parses `arguments` (without the program name), runs the command and returns the exit
    /// status, printing results and errors to `terminal`. `iommuctl`'s `main` is this.
    public static func run(
        arguments: [String], terminal: Terminal = .standard,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> Int32 {
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            return reportParseError(error, terminal: terminal)
        }
        guard let daemonCommand = command as? any DaemonCommand else {
            // A command group without a subcommand: its run() asks for help.
            do {
                try command.run()
                return CtlExit.success.rawValue
            } catch {
                return reportParseError(error, terminal: terminal)
            }
        }
        let context = CommandContext(options: daemonCommand.global, terminal: terminal, environment: environment)
        do {
            try daemonCommand.execute(context)
            return CtlExit.success.rawValue
        } catch {
            let failure = CtlError(converting: error)
            report(failure, json: daemonCommand.global.jsonOutput, terminal: terminal)
            return failure.exit.rawValue
        }
    }

    /// Bad command lines, --help, --version, --generate-completion-script: what
    /// swift-argument-parser says, on stdout for success and stderr otherwise; usage errors exit 2.
    static func reportParseError(_ error: any Error, terminal: Terminal) -> Int32 {
        let code = exitCode(for: error)
        let message = fullMessage(for: error)
        if code == .success {
            if !message.isEmpty { terminal.print(message) }
            return CtlExit.success.rawValue
        }
        if !message.isEmpty { terminal.printError(message) }
        return code == .validationFailure ? CtlExit.usage.rawValue : code.rawValue
    }

    /// One line `iommuctl: error: ...` on stderr, then the details; with `--json`, the daemon's
    /// error object on stdout too.
    static func report(_ error: CtlError, json: Bool, terminal: Terminal) {
        terminal.printError("iommuctl: error: \(error.message)")
        for line in error.details { terminal.printError("  \(line)") }
        if json && error.printsJSON {
            var object: [String: JSONValue] = ["exit_code": .int(Int64(error.exit.rawValue))]
            if let rpc = error.json {
                object["error"] = rpc
            } else {
                object["error"] = ["message": .string(error.message)]
            }
            terminal.print(JSONValue.object(object).description)
        }
    }
}

/// A command that talks to the daemon: it has the global options and runs in a context.
public protocol DaemonCommand: ParsableCommand {
    var global: GlobalOptions { get }
    func execute(_ context: CommandContext) throws
}

extension DaemonCommand {
    public mutating func run() throws {
        try execute(CommandContext(options: global, terminal: .standard, environment: ProcessInfo.processInfo.environment))
    }
}
