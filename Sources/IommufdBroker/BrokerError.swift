import IommufdContract
import IommufdCore

/// The one error type the broker throws. `kind.wireName` is the stable name the RPC layer puts
/// in `error.data`; `message` says what failed, why, and what to do.
public struct BrokerError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable, CaseIterable, Codable {
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

        /// The contract's name of this kind (IommufdContract's catalogue of error names).
        public var contract: ErrorName {
            switch self {
            case .notFound: .notFound
            case .permissionDenied: .permissionDenied
            case .busy: .busy
            case .quotaExceeded: .quotaExceeded
            case .unsupported: .unsupported
            case .kernel: .kernel
            case .invalidParams: .invalidParams
            case .conflict: .conflict
            case .policyRefused: .policyRefused
            case .limitExceeded: .limitExceeded
            case .io: .io
            }
        }

        /// `"iommufdd.NotFound"` ... : stable, part of the protocol.
        public var wireName: String { contract.wireName }

        /// The JSON-RPC error code of the kind, from the contract: -32602 (invalid params) for
        /// bad params, else a fixed code in the -32000..-32099 domain range. Every name the
        /// broker raises has one (ContractTests).
        public var rpcCode: Int { contract.rpcCode ?? -32000 }
    }

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
        self.kind = kind
        self.message = message
        self.kernel = kernel
    }

    public var wireName: String { kind.wireName }
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
