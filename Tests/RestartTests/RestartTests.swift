import Foundation
import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdRPC
import IommufdTestSupervisor
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The daemon binary next to the test bundle (`swift test` builds every product).
func daemonBinary() throws -> String {
    let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    var dir = (exe as NSString).deletingLastPathComponent
    while !dir.isEmpty && dir != "/" {
        let candidate = dir + "/iommufdd"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = (dir as NSString).deletingLastPathComponent
    }
    throw TestFailure("no iommufdd executable next to \(exe); run `swift build --product iommufdd` first")
}

/// `sim.dma` params (the daemon's test hook on the simulator).
struct SimDMA: Encodable {
    var device: String
    var iova: UInt64
    var length: UInt64
    var page_size: UInt64
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A client of the daemon under the supervisor.
final class Client {
    let path: String
    var rpc: RPCClient

    init(path: String) throws {
        self.path = path
        rpc = try RPCClient(path: path)
    }

    func reconnect() throws {
        rpc.close()
        rpc = try RPCClient(path: path)
    }

    func call<P: Encodable, R: Decodable>(_ method: String, _ params: P, as: R.Type = R.self) throws -> R {
        try rpc.call(method, params: params, as: R.self, timeout: .seconds(60))
    }

    func raw(_ method: String, _ params: some Encodable) throws -> JSONValue {
        let encoded = try JSONValueEncoder().encode(params)
        let (result, fds) = try rpc.call(method, params: encoded, timeout: .seconds(60))
        for fd in fds { close(fd) }
        return result
    }

    func map(_ ioas: ObjectID, memfd: Int32, offset: UInt64, length: UInt64, iova: UInt64? = nil) throws -> IOASMapResult {
        let params = try JSONValueEncoder().encode(IOASMapParams(ioas: ioas, fd: FDRef(fd: 0), offset: offset, length: length, iova: iova))
        let (result, fds) = try rpc.call("ioas.map", params: params, fds: [memfd], timeout: .seconds(60))
        for fd in fds { close(fd) }
        return try JSONValueDecoder().decode(IOASMapResult.self, from: result)
    }
}

/// Everything a client can see of the daemon's objects, to compare before and after a restart.
struct Snapshot: Equatable {
    var owners: JSONValue
    var ioas: [JSONValue]
    var hwpts: JSONValue
    var devices: JSONValue
    var dirty: [JSONValue]

    init(_ c: Client, ioas ids: [ObjectID]) throws {
        owners = try c.raw("owner.list", NoParams())
        ioas = try ids.map { try c.raw("ioas.info", IOASInfoParams(ioas: $0, maxMappings: 100_000)) }
        hwpts = try c.raw("hwpt.list", IOASListParams())
        devices = try c.raw("device.list", DeviceListParams())
        dirty = try ids.map { try c.raw("dirty.status", IOASParams(ioas: $0)) }
    }
}

@Suite("Restart under a systemd-like supervisor", .serialized)
struct RestartTests {
    @Test("SIGKILL in a stream of RPCs: every object, mapping, lease and policy is back under the same IDs")
    func killDuringStream() throws {
        let config = NSTemporaryDirectory() + "iommufdd-restart-\(getpid()).toml"
        // test_hooks: sim.dma lets a simulated device dirty pages.
        try "[daemon]\nbackend = \"sim\"\nlog_level = \"warning\"\n[sim]\ntest_hooks = true\n".write(toFile: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: config) }
        let sup = try Supervisor(daemonPath: try daemonBinary(), arguments: ["--config", config])
        defer { sup.shutdown() }
        try sup.start()
        try sup.waitReady(count: 1)

        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let ram = try makeMemfd(bytes: 64 << 20)
        defer { close(ram) }
        let c = try Client(path: sup.controlPath)

        let info0 = try c.raw("daemon.info", NoParams())
        #expect(info0["restart_keeps_objects"] == .bool(true))

        // A VM's worth of state: two owners with policies, IOAS with mappings, attached devices,
        // a vIOMMU and a vDevice, dirty tracking on.
        _ = try c.raw("owner.create", OwnerCreateParams(name: "vm-1", tolerateMissing: true, dirty: .required, hugePages: false))
        _ = try c.raw("owner.create", OwnerCreateParams(name: "vm-2"))
        let a = try c.call("ioas.create", IOASCreateParams(owner: "vm-1"), as: IOASCreateResult.self).ioas
        let b = try c.call("ioas.create", IOASCreateParams(owner: "vm-1", hugePages: true), as: IOASCreateResult.self).ioas
        let s = try c.call("ioas.create", IOASCreateParams(owner: "vm-2"), as: IOASCreateResult.self).ioas
        for i in 0..<64 { _ = try c.map(a, memfd: ram, offset: UInt64(i) * 16 * page, length: 16 * page, iova: 0x10_0000 + UInt64(i) * 0x10_0000) }
        let auto = try c.map(b, memfd: ram, offset: 0, length: 256 * page)
        let attached = try c.call("device.attach", DeviceAttachParams(owner: "vm-1", device: "sim-pci0", ioas: a), as: DeviceAttachResult.self)
        _ = try c.raw("device.attach", DeviceAttachParams(owner: "vm-1", device: "sim-pci1", ioas: b))
        // The vIOMMU is on the SMMUv3-like IOMMU (VT-d has none), which tracks no dirty pages.
        _ = try c.raw("device.attach", DeviceAttachParams(owner: "vm-1", device: "sim-pci2", ioas: b, dirty: .off))
        let viommu = try c.call("viommu.create", VIOMMUCreateParams(device: "sim-pci2"), as: VIOMMUCreateResult.self)
        let vdev = try c.call("vdevice.create", VDeviceCreateParams(viommu: viommu.viommu, device: "sim-pci2", virtualID: 0x42), as: VDeviceCreateResult.self)
        _ = try c.raw("dirty.start", IOASParams(ioas: a))
        // The device writes two ranges; one is read with clear (the simulator must keep that too).
        _ = try c.raw("sim.dma", SimDMA(device: "sim-pci0", iova: 0x10_0000, length: 3 * page, page_size: page))
        _ = try c.raw("sim.dma", SimDMA(device: "sim-pci0", iova: 0x20_0000 + 4 * page, length: 5 * page, page_size: page))
        let first = try c.raw("dirty.read", DirtyReadParams(ioas: a, iova: 0x10_0000, length: 0x10_0000, clear: true))
        #expect(first["dirty_pages"]?.int64Value == 3)
        let bitmapBefore = try c.raw("dirty.read", DirtyReadParams(ioas: a, iova: 0x20_0000, length: 16 * page, clear: false))
        #expect(bitmapBefore["dirty_pages"]?.int64Value == 5)
        let before = try Snapshot(c, ioas: [a, b, s])

        // A second client streams map/unmap on vm-2's IOAS; the daemon is killed mid-stream.
        let stream = MapStream(path: sup.controlPath, ioas: s, memfd: ram, page: page)
        let streamThread = Thread { stream.run() }
        streamThread.start()
        #expect(stream.waitForAcknowledged(200))
        sup.kill9()
        let storedAtDeath = sup.storedNames
        #expect(storedAtDeath.contains("sim-iommufd"))
        #expect(storedAtDeath.contains { $0.hasPrefix("journal.") })
        #expect(storedAtDeath.contains { $0.hasPrefix("mem.") })
        try sup.start()
        try sup.waitReady(count: 2)

        // Same objects, same IDs, same mappings, leases, policies and dirty state.
        try c.reconnect()
        let after = try Snapshot(c, ioas: [a, b])
        #expect(after.owners.removing(owner: "vm-2") == before.owners.removing(owner: "vm-2"))
        #expect(after.ioas == Array(before.ioas.prefix(2)))
        #expect(after.hwpts == before.hwpts)
        #expect(after.devices == before.devices)
        #expect(after.dirty == Array(before.dirty.prefix(2)))
        let bitmapAfter = try c.raw("dirty.read", DirtyReadParams(ioas: a, iova: 0x20_0000, length: 16 * page, clear: false))
        #expect(bitmapAfter == bitmapBefore)
        // What was read with clear before the kill stays cleared.
        let cleared = try c.raw("dirty.read", DirtyReadParams(ioas: a, iova: 0x10_0000, length: 0x10_0000, clear: false))
        #expect(cleared["dirty_pages"]?.int64Value == 0)

        let info = try c.raw("daemon.info", NoParams())
        #expect(info["restart_keeps_objects"] == .bool(true))
        #expect(info["recovery"]?["restarted"] == .bool(true))
        #expect(info["recovery"]?["journal"]?["ioas"]?.int64Value == 3)
        // The only acceptable notes are about the request the daemon died in: a torn journal
        // record, or (killed between the simulator's map and its journal write) that request's
        // mapping in the stream's IOAS, undone. Both are the SIGKILL's timing, not a loss.
        let problems = info["recovery"]?["journal"]?["problems"]?.arrayValue ?? []
        #expect(problems.allSatisfy { note in
            let text = note.stringValue ?? ""
            return text.contains("torn record") || (text.hasPrefix("IOAS \(s): ") && text.contains("by a request the old daemon did not finish"))
        }, "\(problems)")
        #expect((info["recovery"]?["backend_problems"]?.arrayValue ?? []).isEmpty)

        // The stream's client reconnects and carries on; what was acknowledged is there.
        #expect(stream.waitForAcknowledged(stream.acknowledgedCount + 100))
        stream.stop()
        while !streamThread.isFinished { usleep(1000) }
        #expect(stream.errors.isEmpty, "\(stream.errors)")
        let streamInfo = try c.call("ioas.info", IOASInfoParams(ioas: s, maxMappings: 100_000), as: IOASInfo.self)
        let present = Set(streamInfo.mappings.map(\.iova))
        #expect(stream.mapped.isSubset(of: present), "acknowledged mappings missing: \(stream.mapped.subtracting(present).sorted())")

        // The simulator still has the old objects: the old mappings unmap, the devices move.
        let unmapped = try c.call("ioas.unmap", IOASUnmapParams(ioas: a, iova: 0x10_0000, length: 16 * page), as: IOASUnmapResult.self)
        #expect(unmapped.unmappedBytes == 16 * page)
        _ = try c.call("ioas.unmap", IOASUnmapParams(ioas: b, iova: auto.iova, length: auto.length), as: IOASUnmapResult.self)
        let missing = #expect(throws: RPCError.self) {
            _ = try c.raw("ioas.unmap", IOASUnmapParams(ioas: b, iova: auto.iova, length: auto.length, tolerateMissing: false))
        }
        #expect(missing?.message.contains("no mapping") == true)
        _ = try c.raw("vdevice.destroy", VDeviceParams(vdevice: vdev.vdevice))
        _ = try c.raw("device.detach", DeviceNameParams(device: "sim-pci0"))
        let again = try c.call("device.attach", DeviceAttachParams(owner: "vm-1", device: "sim-pci0", ioas: a), as: DeviceAttachResult.self)
        #expect(again.deviceID == attached.deviceID)

        // A second restart (clean this time) after the changes: still the same.
        let beforeSecond = try Snapshot(c, ioas: [a, b, s])
        sup.kill9()
        try sup.start()
        try sup.waitReady(count: 3)
        try c.reconnect()
        #expect(try Snapshot(c, ioas: [a, b, s]) == beforeSecond)
        let released = try c.raw("owner.release", OwnerInfoParams(name: "vm-1"))
        #expect(released["released"] == .bool(true))
        // Releasing everything leaves no memory file in the store.
        _ = try c.raw("owner.release", OwnerInfoParams(name: "vm-2"))
        let emptied = sup.waitForStore { names in !names.contains { $0.hasPrefix("mem.") || $0.hasPrefix("device.") } }
        #expect(emptied, "memory files or devices still in the fd store 30 s after owner.release: \(sup.storedNames)")
        // The restarted daemon stops cleanly (a sanitizer's report at its exit would make it non-zero).
        #expect(sup.stop() == 0, "exit code of the restarted iommufdd after SIGTERM")
    }

    @Test("Without an fd store the daemon says a restart drops every object")
    func noStore() throws {
        let config = NSTemporaryDirectory() + "iommufdd-restart-nostore-\(getpid()).toml"
        try "[daemon]\nbackend = \"sim\"\nlog_level = \"warning\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: config) }
        // FileDescriptorStoreMax=0: systemd sets no $FDSTORE.
        let sup = try Supervisor(daemonPath: try daemonBinary(), arguments: ["--config", config], fdStoreMax: 0)
        defer { sup.shutdown() }
        try sup.start()
        try sup.waitReady(count: 1)
        let c = try Client(path: sup.controlPath)
        let info = try c.raw("daemon.info", NoParams())
        #expect(info["restart_keeps_objects"] == .bool(false))
        let warnings = info["warnings"]?.arrayValue ?? []
        #expect(warnings.contains { $0.stringValue?.contains("a restart of iommufdd destroys every IOAS") == true }, "\(warnings)")
        #expect(sup.storedNames.isEmpty)
        #expect(sup.stop() == 0, "exit code of iommufdd after SIGTERM")
    }
}

/// A client mapping and unmapping in a loop; on a broken connection it reconnects and goes on.
/// Requests whose answer was lost are uncertain (the daemon may have done them): the client
/// resolves them as a VM manager would, by unmapping with tolerate_missing.
final class MapStream: @unchecked Sendable {
    let path: String
    let ioas: ObjectID
    let memfd: Int32
    let page: UInt64
    private let lock = NSCondition()
    private var acknowledged = 0
    private var stopping = false
    private(set) var errors: [String] = []
    /// IOVAs acknowledged as mapped and not unmapped since.
    private(set) var mapped = Set<UInt64>()

    init(path: String, ioas: ObjectID, memfd: Int32, page: UInt64) {
        self.path = path
        self.ioas = ioas
        self.memfd = memfd
        self.page = page
    }

    var acknowledgedCount: Int { lock.withLock { acknowledged } }

    func waitForAcknowledged(_ n: Int) -> Bool {
        let deadline = Date().addingTimeInterval(120)
        lock.lock()
        defer { lock.unlock() }
        while acknowledged < n { if !lock.wait(until: deadline) { return false } }
        return true
    }

    func stop() { lock.withLock { stopping = true } }

    func run() {
        var client: Client?
        var i: UInt64 = 0
        while !lock.withLock({ stopping }) {
            do {
                if client == nil { client = try Client(path: path) }
                let iova = 0x1000_0000 + i * 0x10_0000
                if i % 3 == 2 {
                    _ = try client!.call("ioas.unmap", IOASUnmapParams(ioas: ioas, iova: iova - 2 * 0x10_0000, length: page, tolerateMissing: true), as: IOASUnmapResult.self)
                    lock.withLock { _ = mapped.remove(iova - 2 * 0x10_0000) }
                } else {
                    // Uncertain from a previous life: clear it first (a no-op when absent).
                    _ = try client!.map(ioas, memfd: memfd, offset: 0, length: page, iova: iova)
                    lock.withLock { _ = mapped.insert(iova) }
                }
                i += 1
                lock.withLock {
                    acknowledged += 1
                    lock.broadcast()
                }
            } catch is RPCTransportError {
                client = nil  // the daemon went away: reconnect and retry
                // The request in flight may or may not have been done: undo it if it was.
                if let c = try? Client(path: path) {
                    let iova = 0x1000_0000 + i * 0x10_0000
                    if i % 3 != 2 { _ = try? c.call("ioas.unmap", IOASUnmapParams(ioas: ioas, iova: iova, length: page, tolerateMissing: true), as: IOASUnmapResult.self) }
                    client = c
                }
                usleep(10_000)
            } catch {
                lock.withLock { errors.append("request \(i): \(error)") }
                i += 1
            }
        }
        client?.rpc.close()
    }
}

extension JSONValue {
    /// An `owner.list` result without one owner (whose objects the stream changes).
    func removing(owner: String) -> JSONValue {
        guard case .object(var o) = self, case .array(let list)? = o["owners"] else { return self }
        o["owners"] = .array(list.filter { $0["name"] != .string(owner) })
        return .object(o)
    }
}
