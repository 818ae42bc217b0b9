/// The catalogue of every error name a client of iommufdd can meet: in `error.data.name` of a
/// JSON-RPC error on the control socket, in the error answer of a VMM channel
/// (docs/vmm-channel.md), or from libiommufdd itself. Names are for programs and stable: a
/// client matches on them, never on messages. The broker maps its errors onto the first group,
/// the RPC transport and the channel use theirs from here, and libiommufdd's names are checked
/// against this list (ContractTests).
public enum ErrorName: String, CaseIterable, Sendable, Codable {
    // Raised by the broker, on the control socket and on the channel alike.
    case notFound = "NotFound"
    case permissionDenied = "PermissionDenied"
    case busy = "Busy"
    case quotaExceeded = "QuotaExceeded"
    case unsupported = "Unsupported"
    case kernel = "Kernel"
    case invalidParams = "InvalidParams"
    case conflict = "Conflict"
    case policyRefused = "PolicyRefused"
    case limitExceeded = "LimitExceeded"
    case io = "IO"
    // Raised by the control socket's transport, before or around a method.
    case messageTooLarge = "MessageTooLarge"
    case tooManyFileDescriptors = "TooManyFileDescriptors"
    case fileDescriptorsLost = "FileDescriptorsLost"
    case tooManyClients = "TooManyClients"
    case fileDescriptorsInBatch = "FileDescriptorsInBatch"
    case shuttingDown = "ShuttingDown"
    // Raised by a VMM channel itself (its decoder and server); never on the control socket.
    case badMessage = "BadMessage"
    case unknownOp = "UnknownOp"
    case badFD = "BadFD"
    case notRegistered = "NotRegistered"
    case noBitmap = "NoBitmap"
    case ownerGone = "OwnerGone"
    // Made by libiommufdd on the client's side; the daemon never sends them.
    case transport = "Transport"
    case confine = "Confine"

    /// Where a name comes from.
    public enum Origin: String, CaseIterable, Sendable, Codable {
        /// The broker: any method, on the control socket or a channel.
        case broker
        /// The control socket's JSON-RPC transport.
        case controlSocket = "control-socket"
        /// A VMM channel's decoder or server (an errno and this name in the error answer).
        case channel
        /// libiommufdd, without an answer from the daemon.
        case library
    }

    /// `"iommufdd.NotFound"`: what `error.data.name` (or a channel answer's name) carries.
    public var wireName: String { "iommufdd." + rawValue }

    /// The name `wireName` is, if it is one of the catalogue's.
    public init?(wireName: String) {
        guard wireName.hasPrefix("iommufdd."), let name = ErrorName(rawValue: String(wireName.dropFirst("iommufdd.".count))) else {
            return nil
        }
        self = name
    }

    public var origin: Origin {
        switch self {
        case .notFound, .permissionDenied, .busy, .quotaExceeded, .unsupported, .kernel, .invalidParams, .conflict,
            .policyRefused, .limitExceeded, .io:
            .broker
        case .messageTooLarge, .tooManyFileDescriptors, .fileDescriptorsLost, .tooManyClients, .fileDescriptorsInBatch,
            .shuttingDown:
            .controlSocket
        case .badMessage, .unknownOp, .badFD, .notRegistered, .noBitmap, .ownerGone:
            .channel
        case .transport, .confine:
            .library
        }
    }

    /// The JSON-RPC error code that comes with the name on the control socket: -32602 (invalid
    /// params) and -32600 (invalid request) where the standard codes fit, else a fixed code of the
    /// -32000...-32099 domain range. Nil for names that never travel on the control socket.
    public var rpcCode: Int? {
        switch self {
        case .invalidParams: -32602
        case .notFound: -32001
        case .permissionDenied: -32002
        case .busy: -32003
        case .quotaExceeded: -32004
        case .unsupported: -32005
        case .kernel: -32006
        case .conflict: -32007
        case .policyRefused: -32008
        case .limitExceeded: -32009
        case .io: -32010
        case .messageTooLarge, .tooManyFileDescriptors, .fileDescriptorsInBatch: -32600
        case .fileDescriptorsLost, .tooManyClients, .shuttingDown: -32000
        case .badMessage, .unknownOp, .badFD, .notRegistered, .noBitmap, .ownerGone, .transport, .confine: nil
        }
    }

    /// What the name means and what a client does about it (PROTOCOL.md, `rpc.discover`).
    public var meaning: String {
        switch self {
        case .notFound:
            "No such owner, device, IOAS, HWPT, vIOMMU, vDevice or queue, or it belongs to another manager (the two answer the same); list what you may see and use one of those"
        case .permissionDenied:
            "The caller's role does not allow this (a reader changing state, device.fd without trusted_vmm, no role at all): ask an admin for the role in the config"
        case .busy:
            "The object is still in use (devices attached, vDevices on a vIOMMU, an HWPT a device uses): remove what depends on it first"
        case .quotaExceeded:
            "The owner's pinned-memory quota would be exceeded: unmap something, or raise quota_bytes"
        case .unsupported:
            "The running kernel, IOMMU driver or backend lacks what this needs (daemon.info lists the features and the Linux version that has each)"
        case .kernel:
            "An ioctl failed: data.errno, data.errno_value and data.ioctl say which and how; the message says what the daemon was doing"
        case .invalidParams:
            "A param the daemon refuses (unknown, missing, wrong type, misaligned, out of range): the message names it"
        case .conflict:
            "The request conflicts with the object's state (a device leased to another owner, already attached, not attached): the message says which state, and the call that changes it"
        case .policyRefused:
            "A policy refuses it (dirty=required on a device that cannot track, a device leased to another owner in a hot reset): change the request or the policy"
        case .limitExceeded:
            "A configured or kernel limit (channels per owner, entries per invalidation, dirty bitmap size): split the request or raise the limit"
        case .io:
            "A system call of the daemon's own failed (dup, mmap, write into a supplied memfd): the message names it and its errno"
        case .messageTooLarge:
            "A request line is larger than the daemon takes (data.limit); the connection is closed"
        case .tooManyFileDescriptors:
            "More file descriptors came with one message than the daemon takes (data.limit); all were closed"
        case .fileDescriptorsLost:
            "The daemon could not receive the file descriptors sent with a message (its open-file limit); none were kept: retry later"
        case .tooManyClients:
            "The daemon serves its maximum number of connections: retry later"
        case .fileDescriptorsInBatch:
            "A method that answers with file descriptors was sent in a batch: send it as a single request"
        case .shuttingDown:
            "The daemon is stopping: reconnect once it is back"
        case .badMessage:
            "A channel message that is not a well-formed request (short, wrong size, bad flags, fds where none belong): errno EBADMSG, or EMSGSIZE when too large"
        case .unknownOp:
            "A channel op this daemon does not know: errno EOPNOTSUPP; see docs/vmm-channel.md for the ops of its version"
        case .badFD:
            "An fd of the wrong kind on a channel (not a regular file): errno EBADF"
        case .notRegistered:
            "No memory is registered under that index on this channel (never, or not since the daemon restarted): register it again and retry; errno ESTALE"
        case .noBitmap:
            "The channel has no bitmap memfd set (never, or not since a restart): set it again; errno ESTALE"
        case .ownerGone:
            "The channel's owner was released; the channel closes after this answer: errno EPIPE"
        case .transport:
            "libiommufdd could not talk to the daemon (channel closed or revoked, malformed answer, timeout, version mismatch): the errno and message say which"
        case .confine:
            "libiommufdd could not install the seccomp confinement; nothing was confined"
        }
    }
}
