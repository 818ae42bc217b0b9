import ArgumentParser
import Foundation

/// iommufdd(8) and iommufdd.toml(5) in mdoc, generated from the definitions the daemon runs
/// with: the options of `IommufddCommand` (what `--help` prints), `DaemonSignal`,
/// `DaemonExitCode` and `ConfigSchema`. docs/man holds the generated copies; a test fails when
/// they differ from what this renders (IOMMUFDD_UPDATE_DOCS=1 swift test --filter ManPageTests
/// writes them again).
public enum ManPages {
    /// The `.Dd` date of a page, so a regenerated page keeps its date unless its text changed.
    public static func date(of page: String) -> String? {
        page.split(separator: "\n").first { $0.hasPrefix(".Dd ") }.map { String($0.dropFirst(4)) }
    }

    // MARK: iommufdd(8)

    /// One option of the command line, as ArgumentParser describes it (`--experimental-dump-help`).
    public struct Option: Decodable, Sendable {
        public struct Name: Decodable, Sendable {
            public var kind: String
            public var name: String
        }
        public var kind: String
        public var names: [Name]?
        public var valueName: String?
        public var abstract: String?
        public var discussion: String?
        public var shouldDisplay: Bool

        /// `--config`, `-h`: each name as typed.
        public var flags: [String] {
            (names ?? []).map { $0.kind == "short" ? "-" + $0.name : "--" + $0.name }
        }
    }

    private struct ToolInfo: Decodable {
        struct Command: Decodable {
            var arguments: [Option]?
        }
        var command: Command
    }

    /// The options `--help` shows, from ArgumentParser's own description of the command.
    public static func options() -> [Option] {
        let json = IommufddCommand._dumpHelp()
        guard let info = try? JSONDecoder().decode(ToolInfo.self, from: Data(json.utf8)) else { return [] }
        return (info.command.arguments ?? []).filter { $0.shouldDisplay && !$0.flags.isEmpty }
    }

    public static func daemon(date: String) -> String {
        let command = IommufddCommand.configuration
        var out = header(title: "IOMMUFDD", section: 8, date: date)
        out += ".Sh NAME\n.Nm iommufdd\n.Nd \(text(command.abstract))\n"
        out += ".Sh SYNOPSIS\n.Nm\n"
        let options = options()
        for option in options where !option.flags.contains("--help") {
            let flag = option.flags.first { $0.hasPrefix("--") } ?? option.flags[0]
            out += ".Op Fl \(flagText(flag))" + (option.valueName.map { " Ar \(text($0))" } ?? "") + "\n"
        }
        out += ".Sh DESCRIPTION\n"
        out += paragraphs(command.discussion.components(separatedBy: "\n\n").filter { !$0.hasPrefix("Exit codes:") })
        out += ".Pp\nThe daemon is meant to run under systemd, socket-activated by iommufdd.socket "
            + "(the control socket, named \"control\") with iommufdd.service: Type=notify (READY=1 once the socket is "
            + "served and state is restored, STATUS= with the object counts every 10 s, STOPPING=1, RELOADING=1), "
            + "WATCHDOG=1 at half of WatchdogSec= from the main queue, and the fd store (below). Started by hand it "
            + "creates its socket itself.\n"
        out += ".Sh OPTIONS\n.Bl -tag -width Ds\n"
        for option in options {
            let flags = option.flags.map { "Fl \(flagText($0))" }.joined(separator: " , ")
            out += ".It \(flags)" + (option.kind == "option" ? option.valueName.map { " Ar \(text($0))" } ?? "" : "") + "\n"
            out += [option.abstract, option.discussion].compactMap { $0 }.filter { !$0.isEmpty }.map(text).joined(separator: "\n") + "\n"
        }
        out += ".El\n"
        out += ".Sh SIGNALS\n.Bl -tag -width Ds\n"
        for signal in DaemonSignal.allCases {
            out += ".It Dv \(signal.rawValue)\n\(text(signal.meaning))\n"
        }
        out += ".El\n"
        out += ".Sh RESTARTS\n"
        out += paragraphs(restartText)
        out += ".Sh ENVIRONMENT\n.Bl -tag -width Ds\n"
        for (name, meaning) in environment {
            out += ".It Ev \(name)\n\(text(meaning))\n"
        }
        out += ".El\n"
        out += ".Sh FILES\n.Bl -tag -width Ds\n"
        for (path, meaning) in files {
            out += ".It Pa \(path)\n\(text(meaning))\n"
        }
        out += ".El\n"
        out += ".Sh EXIT STATUS\n.Bl -tag -width Ds\n"
        for code in DaemonExitCode.allCases {
            out += ".It \(code.rawValue)\n\(text(code.meaning))\n"
        }
        out += ".El\n"
        out += ".Sh SEE ALSO\n.Xr iommuctl 1 ,\n.Xr iommufdd.toml 5 ,\n.Xr sd_notify 3 ,\n.Xr systemd.service 5 ,\n.Xr systemd.socket 5\n"
        return out
    }

    /// The restart guarantee and what it takes, per systemd version.
    static let restartText = [
        "Restarting iommufdd does not interrupt the DMA of running VMs, and every object comes back under the same ID. "
            + "The daemon hands systemd's fd store (FDSTORE=1, FDPOLL=0) the iommufd, every bound device fd, every memory file "
            + "mapped for DMA and a journal of its objects; the kernel objects live in those fds, so they outlive the process. "
            + "On the next start systemd passes the fds back (LISTEN_FDS, LISTEN_FDNAMES), the daemon checks every object "
            + "against the kernel and only then sends READY=1. This holds for systemctl restart, for a crash, for "
            + "systemctl kill -s KILL and for a watchdog kill (Restart=on-failure): the store is kept while a restart is pending.",
        "The daemon uses the fd store only when $FDSTORE gives its size (FileDescriptorStoreMax=). systemd 254 and later "
            + "set it; systemd 252 and 253 keep the store all the same but do not say so, and the unit gets it from the drop-in "
            + "iommufdd.service.d/fdstore-variable.conf that scripts/install-units writes for them. Without it, daemon.info and "
            + "the log say that a restart drops every object.",
        "A stop is not a restart. With systemd 254 and later the drop-in iommufdd.service.d/fdstore-preserve.conf "
            + "(FileDescriptorStorePreserve=yes) keeps the store, and every object, while the service is stopped. "
            + "systemd 252 and 253 close the store when the service stops: systemctl stop iommufdd destroys every object the "
            + "daemon held, and the next start begins empty. systemctl clean --what=fdstore iommufdd (254 and later) empties "
            + "the store on purpose.",
    ]

    static let environment: [(String, String)] = [
        ("NOTIFY_SOCKET", "Where READY=1, STATUS=, WATCHDOG=1 and the fd store's FDSTORE=1 go (sd_notify(3)). Unset: no systemd, no fd store."),
        ("LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID", "The fds systemd passes: the control socket (named \"control\") and the fd store's contents."),
        ("FDSTORE", "The fd store's size (FileDescriptorStoreMax=); the daemon stores fds only when it is a positive number."),
        ("WATCHDOG_USEC, WATCHDOG_PID", "WatchdogSec=: the daemon pings at half of it."),
        ("XDG_RUNTIME_DIR", "Where a daemon not run as root puts its socket by default (iommufdd/control.sock)."),
    ]

    static let files: [(String, String)] = [
        (DaemonConfig.defaultPath, "The configuration, iommufdd.toml(5). Read at start and on SIGHUP."),
        (DaemonConfig.defaults.daemon.socketPath, "The control socket (iommufdd.socket creates it under systemd)."),
        ("/dev/iommu", "The iommufd the daemon opens once and shares among its clients."),
        ("/dev/vfio/devices/vfioN", "VFIO device cdevs of devices bound to vfio-pci; the kernel backend binds them to the iommufd."),
        ("/usr/local/lib/systemd/system/iommufdd.service, iommufdd.socket", "The units (scripts/install; under PREFIX/lib/systemd/system for another prefix)."),
    ]

    // MARK: iommufdd.toml(5)

    public static func config(date: String) -> String {
        var out = header(title: "IOMMUFDD.TOML", section: 5, date: date)
        out += ".Sh NAME\n.Nm iommufdd.toml\n.Nd configuration of iommufdd\n"
        out += ".Sh SYNOPSIS\n.Pa \(DaemonConfig.defaultPath)\n"
        out += ".Sh DESCRIPTION\n"
        out += paragraphs([
            "iommufdd(8) reads this TOML file at start (or the one --config names) and again on SIGHUP (systemctl reload iommufdd). "
                + "Every key has a default, so an empty file, or no file, is a valid configuration; config/iommufdd.toml in the sources "
                + "shows every key at its default. The flags --socket, --backend and --log-level override the file.",
            "Unknown keys are errors, so a typo never falls back to a default silently: the daemon refuses to start on a bad file "
                + "(exit status 78) and reports each problem as file:line:column: key: reason, with the nearest known key for a typo. "
                + "On SIGHUP a bad file is logged and the configuration in force stays in force.",
        ])
        for table in ConfigSchema.tables {
            let keys = ConfigSchema.keys.filter { $0.table == table.name }
            let heading = ConfigSchema.arraysOfTables.contains(table.name) ? "[[\(table.name)]]" : "[\(table.name)]"
            out += ".Ss \(heading)\n\(text(table.meaning))\n"
            guard !keys.isEmpty else { continue }
            out += ".Bl -tag -width Ds\n"
            for key in keys {
                out += ".It Sy \(key.key) No = Ar \(quoted(key.type))\n"
                out += "\(text(key.meaning))\n.Pp\nDefault: \(text(key.defaultText)).\n"
            }
            out += ".El\n"
        }
        out += ".Sh EXAMPLES\nA host whose VM manager runs in the group libvirt, with two devices for VMs:\n.Bd -literal -offset indent\n"
        out += """
            [devices]
            allow = ["0000:03:00.0", "0000:04:00.0"]

            [[access]]
            user = 0
            role = "admin"

            [[access]]
            group = "libvirt"
            role = "manager"
            pinned_bytes_quota = "256GiB"

            """
        out += ".Ed\n"
        out += ".Sh SEE ALSO\n.Xr iommuctl 1 ,\n.Xr iommufdd 8\n"
        return out
    }

    // MARK: mdoc

    static func header(title: String, section: Int, date: String) -> String {
        ".\\\" Generated by ManPages.swift (IommufdDaemon) from the daemon's definitions; do not edit.\n"
            + ".Dd \(date)\n.Dt \(title) \(section)\n.Os\n"
    }

    /// Text for an mdoc line: backslashes escaped, and no line may start with a dot or quote.
    static func text(_ s: String) -> String {
        let escaped = s.replacingOccurrences(of: "\\", with: "\\e").replacingOccurrences(of: "—", with: "\\(em")
        return escaped.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            let l = line.trimmingCharacters(in: .whitespaces)
            return l.hasPrefix(".") || l.hasPrefix("'") ? "\\&" + l : l
        }.joined(separator: "\n")
    }

    /// A macro argument with spaces kept together.
    static func quoted(_ s: String) -> String {
        "\"" + text(s).replacingOccurrences(of: "\"", with: "\\(dq") + "\""
    }

    /// `--config` as mdoc's `Fl` wants it (it adds one dash).
    static func flagText(_ flag: String) -> String { String(flag.dropFirst()) }

    static func paragraphs(_ list: [String]) -> String {
        list.map { text($0.replacingOccurrences(of: "\n", with: " ")) }.joined(separator: "\n.Pp\n") + "\n"
    }
}
