#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdBroker
import IommufdCore
import IommufdKernel
import IommufdContract

// MARK: p2p

/// P2P by dma-buf through the broker on the real kernel: an in-process broker over a kernel
/// backend with a selftest mock device attached to the IOAS (so the mapping reaches a real
/// iommu_domain), and dma-bufs of the selftest exporter (IOMMU_TEST_OP_DMABUF_GET / _REVOKE).
enum P2PChecks {
    static let admin = Caller(uid: 0, gid: 0, pid: 1, role: .admin, identity: "root")

    static func runAll(run: CheckRunner) -> Bool {
        let backend: KernelBackend
        let broker: Broker
        do {
            backend = try KernelBackend(options: KernelBackendOptions(mockDevices: [MockDeviceSpec(name: "pmock0")]))
            broker = try Broker(backend: backend, config: BrokerConfig(access: AccessControl(rules: []), allowList: .all))
        } catch {
            print("FAIL  p2p: cannot open the kernel backend with a mock device: \(error)")
            return false
        }
        run.check("feature-dmabuf-map") {
            try expect(backend.features.contains(.dmabufMap), "daemon.info would not report dmabufMap on this kernel: \(backend.features)")
        }
        run.check("dmabuf-map-p2p-revoke-event-unmap") { try mapRevokeUnmap(backend, broker) }
        return true
    }

    static func mapRevokeUnmap(_ backend: KernelBackend, _ broker: Broker) throws {
        let page = Broker.pageSize
        _ = try broker.ownerCreate(admin, OwnerCreateParams(name: "p2p"))
        let ioas = try broker.ioasCreate(admin, IOASCreateParams(owner: "p2p")).ioas
        _ = try broker.deviceAttach(admin, DeviceAttachParams(owner: "p2p", device: "pmock0", ioas: ioas))
        let events = EventLog()
        _ = try broker.subscribe(admin, EventsSubscribeParams()) { events.append($0) }
        let fd = try backend.testDmabufGet(length: UInt32(4 * page))
        defer { close(fd) }
        let info = try backend.dmabufInfo(fd: fd)
        try expect(info == DmabufInfo(size: 4 * page, exporter: "iommufd"), "fdinfo of the mock dma-buf: \(String(describing: info))")
        let m = try broker.ioasMap(admin, IOASMapParams(ioas: ioas, length: 4 * page), fd: fd)
        try expect(m.ownerP2PBytes == 4 * page && m.ownerPinnedBytes == 0, "ioas.map of the dma-buf: \(m)")
        var i = try broker.ioasInfo(admin, IOASInfoParams(ioas: ioas))
        try expect(i.p2pBytes == 4 * page && i.pinnedBytes == 0 && i.mappings.first?.source == "dmabuf" && i.mappings.first?.revoked == false, "ioas.info before the revoke: \(i)")
        try backend.testDmabufRevoke(fd: fd, revoked: true)
        i = try broker.ioasInfo(admin, IOASInfoParams(ioas: ioas))
        try expect(i.revokedMappings == 1 && i.mappings.first?.revoked == true, "ioas.info after the revoke: \(i)")
        try expect(events.items.contains(.dmabufRevoked(owner: "p2p", ioas: ioas, iova: m.iova, length: 4 * page)), "no event.dmabuf_revoked: \(events.items)")
        do {
            _ = try broker.ioasMap(admin, IOASMapParams(ioas: ioas, length: 4 * page), fd: fd)
            throw CheckFailure(description: "mapping the revoked dma-buf succeeded")
        } catch let e as BrokerError {
            try expect(e.kernel?.errno == .ENODEV && e.message.contains("revoked"), "mapping the revoked dma-buf: \(e)")
        }
        try backend.testDmabufRevoke(fd: fd, revoked: false)
        let m2 = try broker.ioasMap(admin, IOASMapParams(ioas: ioas, length: 4 * page), fd: fd)
        i = try broker.ioasInfo(admin, IOASInfoParams(ioas: ioas))
        try expect(i.mappings.map(\.revoked) == [true, false].map { Optional($0) } || i.mappings.map(\.revoked) == [false, true].map { Optional($0) }, "ioas.info after the restore: \(i)")
        _ = try broker.ioasUnmap(admin, IOASUnmapParams(ioas: ioas, iova: m.iova, length: 4 * page))
        _ = try broker.ioasUnmap(admin, IOASUnmapParams(ioas: ioas, iova: m2.iova, length: 4 * page))
        i = try broker.ioasInfo(admin, IOASInfoParams(ioas: ioas))
        try expect(i.p2pBytes == nil && i.revokedMappings == nil && i.mappingCount == 0, "ioas.info after the unmaps: \(i)")
        let released = try broker.ownerRelease(admin, OwnerReleaseParams(name: "p2p"))
        try expect(released.released, "owner.release: \(released.failures)")
    }

    final class EventLog: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [BrokerEvent] = []
        func append(_ e: BrokerEvent) { lock.withLock { list.append(e) } }
        var items: [BrokerEvent] { lock.withLock { list } }
    }
}
