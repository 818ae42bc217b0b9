import IommufdContract
import IommufdCore

/// The one error type the broker throws. `kind` is one of the contract's broker error names;
/// `kind.wireName` is the stable name the RPC layer puts in `error.data`; `message` says what
/// failed, why, and what to do.
public struct BrokerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The contract's error name (IommufdContract's catalogue): the broker raises the names
    /// whose `origin` is `.broker`. `kind.wireName` (`"iommufdd.NotFound"`) and `kind.rpcCode`
    /// are the contract's, part of the protocol.
    public typealias Kind = ErrorName

    /// What goes in JSON-RPC `error.data`.
    public struct WireData: Codable, Hashable, Sendable {
        /// The stable name, `"iommufdd.Busy"`.
        public var name: String
        /// For kernel errors: `"EBUSY"`, the number, and the ioctl (`"IOMMU_DESTROY"`).
        public var errno: String?
        public var errnoValue: Int32?
        public var ioctl: String?
        enum CodingKeys: String, CodingKey {
            case name, errno, ioctl
            case errnoValue = "errno_value"
        }
    }

    public var wireData: WireData {
        WireData(name: wireName, errno: kernel?.errno.name, errnoValue: kernel?.errno.rawValue, ioctl: kernel?.operation)
    }

    public var kind: Kind
    public var message: String
    /// For `.kernel`: the backend's error (errno name + ioctl).
    public var kernel: IommuError?

    public init(_ kind: Kind, _ message: String, kernel: IommuError? = nil) {
        assert(kind.origin == .broker, "\(kind.wireName) is not a name the broker raises")
        self.kind = kind
        self.message = message
        self.kernel = kernel
    }

    public var wireName: String { kind.wireName }
    /// The JSON-RPC error code: -32602 (invalid params) for bad params, else the kind's fixed
    /// code in the -32000...-32099 domain range. Every name the broker raises has one
    /// (ContractTests); -32000 would stand for one that had none.
    public var rpcCode: Int { Self.rpcCode(kind) }
    public static func rpcCode(_ kind: Kind) -> Int { kind.rpcCode ?? -32000 }
    /// `"ENOENT"` for kernel errors.
    public var errnoName: String? { kernel?.errno.name }
    /// `"IOMMU_IOAS_UNMAP"` for kernel errors.
    public var ioctl: String? { kernel?.operation }

    public var description: String { "\(kind.wireName): \(message)" }

    /// Wraps a backend failure: `what` says what the daemon was doing ("attaching device vfio3
    /// to IOAS 5"); the errno and ioctl are kept for the wire.
    static func kernel(_ error: IommuError, _ what: String) -> BrokerError {
        var hint = ""
        switch error.errno {
        case .ENOMEM: hint = " The kernel could not pin or allocate memory: check LimitMEMLOCK/RLIMIT_MEMLOCK."
        case .EBUSY: hint = " The object is still in use: remove what depends on it first."
        case .ENOTTY, .EOPNOTSUPP: hint = " The running kernel or IOMMU driver does not support this."
        case .EADDRINUSE:
            // io_pagetable.c: a domain or device brings reserved ranges (the MSI window, IOVAs
            // outside its aperture) or an alignment that existing mappings of the IOAS violate.
            hint = " The IOAS already maps IOVAs this device's IOMMU cannot use (a reserved range such as the MSI window, outside its aperture, or misaligned for its page size): map only inside what ioas.ranges reports with the device attached, or attach before mapping."
        default: break
        }
        return BrokerError(.kernel, "\(what) failed: \(error.operation) returned \(error.errno.name) (\(error.errno.message))" + (error.detail.map { " [\($0)]" } ?? "") + "." + hint, kernel: error)
    }

    static func invalid(_ message: String) -> BrokerError { BrokerError(.invalidParams, message) }
    static func notFound(_ message: String) -> BrokerError { BrokerError(.notFound, message) }
    static func denied(_ message: String) -> BrokerError { BrokerError(.permissionDenied, message) }
}

/// Runs a backend call and turns its `IommuError` into a `.kernel` `BrokerError`.
@inline(__always)
func kcall<T>(_ what: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as IommuError {
        throw BrokerError.kernel(error, what())
    } catch let error as BrokerError {
        throw error
    } catch {
        throw BrokerError(.io, "\(what()) failed: \(error)")
    }
}
