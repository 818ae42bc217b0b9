import IommufdContract
import IommufdCore
import IommufdRPC

/// iommuctl's exit status: one per kind of failure, so scripts can branch on `$?` without
/// parsing messages. The table is part of the CLI's interface (`iommuctl --help` shows it).
public enum CtlExit: Int32, CaseIterable, Sendable {
    case success = 0
    /// Anything not covered below: an internal daemon error, a dropped connection, a reply that
    /// is not JSON-RPC.
    case failure = 1
    /// The command line is wrong (unknown option, missing argument, malformed number).
    case usage = 2
    /// No daemon: the socket does not exist, nothing listens on it, or the daemon is stopping.
    case noDaemon = 3
    /// The socket is not accessible to this user, or the daemon refused the caller's role.
    case permissionDenied = 4
    /// The named owner, device, IOAS, HWPT, vIOMMU or vDevice does not exist (or is not visible).
    case notFound = 5
    /// The object is in use or leased elsewhere, or the request conflicts with existing state.
    case busy = 6
    /// A quota or limit: pinned bytes, clients, message size, fds per message.
    case quota = 7
    /// Refused by policy, not supported by the kernel/IOMMU, or an unknown method.
    case unsupported = 8
    /// The kernel (or simulator) failed the ioctl: errno and ioctl are printed.
    case kernel = 9
    /// The daemon rejected the params (bad alignment, bad range, wrong type).
    case invalidParams = 10
    /// A local file named on the command line could not be opened, read or written.
    case localIO = 11

    /// One line per code, for `--help` and the man page.
    public static var table: String {
        let rows: [(CtlExit, String)] = [
            (.success, "success"),
            (.failure, "other failure (internal daemon error, connection lost, protocol error)"),
            (.usage, "usage error on the command line"),
            (.noDaemon, "daemon not running: socket missing or stale, or daemon shutting down"),
            (.permissionDenied, "permission denied: socket not accessible, or the role (or trusted_vmm) refuses it"),
            (.notFound, "not found: no such owner, device, IOAS, HWPT, vIOMMU or vDevice (or another manager's)"),
            (.busy, "busy or conflict: object in use, leased elsewhere, IOVA overlap"),
            (.quota, "quota or limit exceeded: pinned bytes, clients, message size"),
            (.unsupported, "unsupported or refused by policy (or unknown method)"),
            (.kernel, "kernel error: an ioctl failed (errno and ioctl printed)"),
            (.invalidParams, "invalid params: the daemon rejected a value (alignment, range, type)"),
            (.localIO, "a local file could not be opened, read or written"),
        ]
        return rows.map { "  \(String($0.0.rawValue).leftPadded(to: 2))  \($0.1)" }.joined(separator: "\n")
    }

    /// The exit code for an error the daemon answered with: by `error.data.name` first (stable,
    /// one of the contract's `ErrorName`s), then by the JSON-RPC code.
    public static func forRPCError(_ error: RPCError) -> CtlExit {
        if let name = error.name.flatMap(ErrorName.init(wireName:)) {
            switch name {
            case .notFound: return .notFound
            case .permissionDenied: return .permissionDenied
            case .busy, .conflict: return .busy
            case .quotaExceeded, .limitExceeded, .tooManyClients, .messageTooLarge, .tooManyFileDescriptors, .fileDescriptorsLost:
                return .quota
            case .unsupported, .policyRefused: return .unsupported
            case .kernel, .io: return .kernel
            case .invalidParams, .fileDescriptorsInBatch: return .invalidParams
            case .shuttingDown: return .noDaemon
            // The channel's and libiommufdd's names never come on the control socket.
            case .badMessage, .unknownOp, .badFD, .notRegistered, .noBitmap, .ownerGone, .transport, .confine: break
            }
        }
        switch error.code {
        case RPCError.Code.invalidParams, RPCError.Code.invalidRequest, RPCError.Code.parseError:
            return .invalidParams
        case RPCError.Code.methodNotFound:
            return .unsupported
        default:
            return .failure
        }
    }

    /// The exit code for a transport failure (connecting, sending, receiving).
    public static func forTransportError(_ error: RPCTransportError) -> CtlExit {
        switch error.kind {
        case .noDaemon, .connectionRefused: return .noDaemon
        case .permissionDenied: return .permissionDenied
        case .addressInUse, .disconnected, .timedOut, .protocolViolation, .system: return .failure
        }
    }
}

/// A failure iommuctl reports: one line for people (`message`), the daemon's stable error name
/// when there is one, optional further lines (hint, errno/ioctl), the exit code, and for `--json`
/// the error object as the daemon sent it.
public struct CtlError: Error, Sendable, CustomStringConvertible {
    public var exit: CtlExit
    public var message: String
    /// `error.data.name` (`iommufdd.NotFound`), when the daemon gave one.
    public var name: String?
    /// Lines printed after the message (`hint: ...`).
    public var details: [String]
    /// The JSON-RPC error object, printed on stdout with `--json`.
    public var json: JSONValue?
    /// False when the command already printed its JSON answer: no error object follows it.
    public var printsJSON = true

    public init(_ exit: CtlExit, _ message: String, name: String? = nil, details: [String] = [], json: JSONValue? = nil) {
        self.exit = exit
        self.message = message
        self.name = name
        self.details = details
        self.json = json
    }

    /// An error answered by the daemon: message, name, errno and ioctl on one line; the hint
    /// (when the daemon gave one) on the next.
    public init(rpc error: RPCError) {
        var tags: [String] = []
        if let name = error.name { tags.append(name) }
        if let errno = error.data?["errno"]?.stringValue { tags.append("errno \(errno)") }
        if let ioctl = error.data?["ioctl"]?.stringValue { tags.append("ioctl \(ioctl)") }
        if error.name == nil { tags.append("JSON-RPC \(error.code)") }
        var details: [String] = []
        if let hint = error.data?["hint"]?.stringValue { details.append("hint: \(hint)") }
        if let detail = error.data?["detail"]?.stringValue, !error.message.contains(detail) {
            details.append("detail: \(detail)")
        }
        self.init(
            CtlExit.forRPCError(error), "\(error.message) [\(tags.joined(separator: ", "))]",
            name: error.name, details: details, json: error.json)
    }

    /// A transport failure, with what to do about it.
    public init(transport error: RPCTransportError) {
        let exit = CtlExit.forTransportError(error)
        var details: [String] = []
        switch error.kind {
        case .noDaemon:
            details.append("hint: start it with `systemctl start iommufdd` (or `iommufdd --backend sim` to try it), or point --socket / IOMMUFDD_SOCKET at its socket")
        case .connectionRefused:
            details.append("hint: check `systemctl status iommufdd`; a socket left behind by a crashed daemon is removed when it starts again")
        case .permissionDenied:
            details.append("hint: run as root, or as a member of the group that owns the socket (see `ls -l \(error.path ?? "SOCKET")`)")
        default:
            break
        }
        self.init(exit, error.message, details: details)
    }

    /// Any error out of a command: `CtlError` as is, daemon and transport errors translated,
    /// anything else a generic failure.
    public init(converting error: any Error) {
        switch error {
        case let e as CtlError: self = e
        case let e as RPCError: self.init(rpc: e)
        case let e as RPCTransportError: self.init(transport: e)
        case let e as DecodingError:
            self.init(.failure, "the daemon's answer is not what iommuctl expects (\(e)); use --json to see it")
        default: self.init(.failure, String(describing: error))
        }
    }

    public var description: String { message }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }

    func rightPadded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
