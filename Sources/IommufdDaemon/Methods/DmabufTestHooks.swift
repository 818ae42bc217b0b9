#if canImport(Glibc)
import Glibc
#endif
import IommufdBroker
import IommufdCore
import IommufdRPC
import IommufdContract

// MARK: p2p

/// `test.dmabuf_get {length}` → a dma-buf of the selftest exporter, sent back by SCM_RIGHTS
/// (`IOMMU_TEST_OP_DMABUF_GET`; on the simulator its model), and `test.dmabuf_revoke {fd,
/// revoked}` (`IOMMU_TEST_OP_DMABUF_REVOKE`), so end-to-end tests can map a dma-buf with
/// `ioas.map` and revoke it. TEST ONLY: admins only, registered with `[sim]` or `[kernel]
/// test_hooks` (the kernel backend also needs mock devices: a CONFIG_IOMMUFD_TEST kernel);
/// absent from `rpc.discover` otherwise.
public struct TestDmabufGetParams: Codable, Hashable, Sendable {
    /// Bytes; rounded up to pages; 1..512 pages.
    public var length: UInt64
    public init(length: UInt64) { self.length = length }
}

public struct TestDmabufGetResult: Codable, Hashable, Sendable {
    public var fd: FDRef
    public var size: UInt64
    public var exporter: String
}

public struct TestDmabufRevokeParams: Codable, Hashable, Sendable {
    public var fd: FDRef
    /// true: the exporter revokes the dma-buf; false: restores it.
    public var revoked: Bool
    public init(fd: FDRef = FDRef(fd: 0), revoked: Bool) {
        self.fd = fd
        self.revoked = revoked
    }
}

public struct TestDmabufRevokeResult: Codable, Hashable, Sendable {
    public var revoked: Bool
}

extension DaemonService {
    func addDmabufTestHooks() {
        guard let hooks = backend as? any DmabufTestHooks else { return }
        @Sendable func requireAdmin(_ caller: Caller, _ method: String) throws {
            guard caller.role == .admin else {
                throw BrokerError(.permissionDenied, "\(method) is a test hook that makes or revokes dma-bufs outside any owner; only an admin may call it, and \(caller.identity) is a \(caller.role.rawValue)")
            }
        }
        @Sendable func kernel(_ error: IommuError, _ what: String) -> BrokerError {
            BrokerError(.kernel, "\(what) failed: \(error.operation) returned \(error.errno.name) (\(error.errno.message))" + (error.detail.map { " [\($0)]" } ?? ""), kernel: error)
        }
        table.addWithFDs(
            "test.dmabuf_get", "TEST ONLY ([sim] or [kernel] test_hooks; admins only): a dma-buf of the selftest exporter, sent back by SCM_RIGHTS",
            access: .write, params: TestDmabufGetParams.self
        ) { caller, p, _ in
            try requireAdmin(caller, "test.dmabuf_get")
            guard p.length > 0, p.length <= UInt64(UInt32.max) else {
                throw BrokerError(.invalidParams, "test.dmabuf_get: length \(p.length) must be from 1 to 512 pages")
            }
            let fd: Int32
            do {
                fd = try hooks.testDmabufGet(length: UInt32(p.length))
            } catch let error as IommuError {
                throw kernel(error, "getting a \(p.length)-byte dma-buf from the selftest exporter")
            }
            let info = (try? hooks.dmabufInfo(fd: fd)) ?? nil
            return WithFDs(result: TestDmabufGetResult(fd: FDRef(fd: 0), size: info?.size ?? 0, exporter: info?.exporter ?? "?"), fds: [fd])
        }
        table.add(
            "test.dmabuf_revoke", "TEST ONLY ([sim] or [kernel] test_hooks; admins only): the selftest exporter revokes or restores the dma-buf sent",
            access: .write, takesFD: true, params: TestDmabufRevokeParams.self
        ) { caller, p, call in
            try requireAdmin(caller, "test.dmabuf_revoke")
            let fd = try call.fds.take(p.fd.fd)
            defer { _ = close(fd) }
            do {
                try hooks.testDmabufRevoke(fd: fd, revoked: p.revoked)
            } catch let error as IommuError {
                throw kernel(error, "\(p.revoked ? "revoking" : "restoring") the dma-buf sent")
            }
            return TestDmabufRevokeResult(revoked: p.revoked)
        }
    }
}
