/// The server's defences against clients that send too much, too slowly, or never read.
/// Every limit has a default suited to a control-plane socket; all are configurable.
public struct RPCLimits: Sendable, Hashable {
    /// Longest message (line, without its newline). A longer one is answered with -32600
    /// (`iommufdd.MessageTooLarge`) and the connection is closed: nothing buffers more.
    public var maxMessageBytes: Int = 1 << 20
    /// Connections served at once. One more is accepted, told -32000 (`iommufdd.TooManyClients`)
    /// and closed at once.
    public var maxClients: Int = 256
    /// File descriptors one message may carry (at most 253, the kernel's SCM_MAX_FD). More are
    /// all closed and the request answered with -32600 (`iommufdd.TooManyFileDescriptors`).
    public var maxFileDescriptorsPerMessage: Int = 16
    /// Members of one batch; a larger batch is answered with one -32600.
    public var maxBatchSize: Int = 1024
    /// Nesting of JSON arrays/objects in a message.
    public var maxJSONDepth: Int = 64
    /// A connection with nothing in flight that sends nothing for this long is closed, unless it
    /// is marked `exemptFromIdleTimeout` (a subscriber). `nil`: never.
    public var idleTimeout: Duration? = .seconds(300)
    /// A message must be complete this long after its first byte arrived, or the connection is
    /// closed (a client that sends half a line and stalls).
    public var partialMessageTimeout: Duration = .seconds(10)
    /// Bytes of responses and notifications queued for a client that does not read. Past it the
    /// connection is closed.
    public var maxOutputBytes: Int = 8 << 20
    /// After answering, the thread that served a connection waits this long for that client's
    /// next request before handing the socket back to Dispatch, when no other connection is
    /// being served (`RPCLingerGate`). 0: never.
    public var lingerMicroseconds: Int = 200
    /// The first part of that window, the lingering thread spins (polls the socket without
    /// sleeping) instead of sleeping, for a client that came back that quickly last time
    /// (`RPCLingerGate`): a sleeping thread must be woken, which on a VM whose idle vCPUs halt
    /// costs more than the request itself. At most `lingerMicroseconds`; 0: never spin.
    public var lingerSpinMicroseconds: Int = 50

    public init() {}
}

extension Duration {
    var nanoseconds: UInt64 {
        let (s, atto) = components
        if s < 0 { return 0 }
        return UInt64(s) &* 1_000_000_000 &+ UInt64(max(0, atto) / 1_000_000_000)
    }
}

/// Counters for the daemon's Prometheus output. A snapshot: values only grow, except
/// `connectionsOpen`.
public struct RPCMetrics: Sendable, Hashable {
    /// Connections admitted (past the client limit and the accept hook).
    public var connectionsAccepted: UInt64 = 0
    /// Connections currently open.
    public var connectionsOpen: Int = 0
    /// Connections closed at once because `maxClients` were already open.
    public var connectionsRejectedLimit: UInt64 = 0
    /// Connections refused by the accept hook (unlisted peer).
    public var connectionsRefused: UInt64 = 0
    /// Connections closed by the server, by reason (`"message_too_large"`, `"idle_timeout"`,
    /// `"partial_timeout"`, `"output_overflow"`, `"shutdown"`, `"io_error"`).
    public var disconnects: [String: UInt64] = [:]
    /// Requests handled (with an id), notifications received, batches received.
    public var requests: UInt64 = 0
    public var notificationsReceived: UInt64 = 0
    public var batches: UInt64 = 0
    /// Error responses sent, by JSON-RPC error code.
    public var errorsByCode: [Int: UInt64] = [:]
    /// Notifications pushed to clients (`RPCConnection.notify`).
    public var notificationsSent: UInt64 = 0
    public var bytesReceived: UInt64 = 0
    public var bytesSent: UInt64 = 0
    public var fileDescriptorsReceived: UInt64 = 0
    public var fileDescriptorsSent: UInt64 = 0
    /// accept(2) failures (EMFILE, ENFILE, ...): the server pauses accepting briefly after one.
    public var acceptFailures: UInt64 = 0

    public init() {}
}
