import IommufdCore

/// A file descriptor passed with SCM_RIGHTS, named in params by its index in the message's
/// fds: `{"fd": 0}`. The RPC layer resolves it to the received `Int32` before calling the broker,
/// and in results it names the index of an fd sent back with the reply.
public struct FDRef: Codable, Hashable, Sendable {
    public var fd: Int
    public init(fd: Int) { self.fd = fd }
}

/// Params of methods that take none.
public struct NoParams: Codable, Hashable, Sendable {
    public init() {}
}

/// A result plus the fds to send back with it (SCM_RIGHTS). The RPC layer sends the fds in this
/// order (the result's `FDRef`s index into it) and then closes them: they are the broker's
/// duplicates, handed over.
public struct WithFDs<Result: Encodable & Sendable>: Sendable {
    public var result: Result
    public var fds: [Int32]
    public init(result: Result, fds: [Int32]) {
        self.result = result
        self.fds = fds
    }
}

/// The kinds of objects the broker tracks.
public enum ObjectKind: String, Codable, Sendable, Hashable, CaseIterable {
    case ioas, hwpt, device, viommu, vdevice
    // MARK: queues
    case veventq, fault
    // MARK: hwqueue3
    case hwQueue = "hw_queue"
}
