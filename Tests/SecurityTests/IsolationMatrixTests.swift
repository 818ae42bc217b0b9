import Foundation
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

// The isolation matrix (BRIEF section 6): every method of the daemon, called by every role, on
// owner A's objects, against the real iommufdd binary with real peer credentials.
//
// Why over the socket rather than in-process: the roles come from SO_PEERCRED, so only a real
// connection from a real uid exercises the whole path (accept hook, per-connection identity
// cache, MethodAccess gate, broker checks). A connection from another uid costs one fork (see
// `DaemonUnderTest.connect(as:)`), and a cell is a handful of calls on a Unix socket, so the
// full matrix runs in seconds; an in-process copy would test nothing more.
//
// Every cell starts from a fresh `Fixture` and is torn down by an admin `owner.release`: an
// allowed destructive call in one cell cannot hide a denial in the next.

/// Who makes the call. `owner` is manager A, whose owner and objects every cell targets.
enum Role: String, CaseIterable, CustomStringConvertible {
    case admin, owner, other, reader
    /// A manager without `trusted_vmm`, acting on its own owner.
    case untrusted

    var uid: UInt32 {
        switch self {
        case .admin: 0
        case .owner: TestUID.managerA
        case .other: TestUID.managerB
        case .reader: TestUID.reader
        case .untrusted: TestUID.untrustedManager
        }
    }
    var description: String {
        switch self {
        case .admin: "admin"
        case .owner: "owning manager"
        case .other: "other manager"
        case .reader: "reader"
        case .untrusted: "untrusted manager"
        }
    }
}

/// The objects every cell starts from, each made by its owner's manager.
struct Fixture {
    /// Owner A (manager A) with IOAS `ioas`; device a0 is attached to it through the
    /// dirty-capable auto-domain HWPT `hwpt`.
    let owner: String
    let ioas: Int64
    let hwpt: Int64
    /// Owner B (manager B) with IOAS `otherIOAS`; device b0 is attached to it.
    let otherOwner: String
    let otherIOAS: Int64
    /// Owner C (the untrusted manager) with device c0 attached.
    let untrustedOwner: String
    /// A name no owner has, for `owner.create`.
    let spareOwner: String

    static let iova: Int64 = 0x10_0000
    static let length: Int64 = 0x1_0000
}

/// One connection per role, and the calls that build fixtures.
final class Clients {
    let daemon: DaemonUnderTest
    let admin: RPCClient
    let a: RPCClient
    let b: RPCClient
    let reader: RPCClient
    let untrusted: RPCClient
    private var serial = 0

    init(_ daemon: DaemonUnderTest) throws {
        self.daemon = daemon
        admin = try daemon.connect()
        a = try daemon.connect(as: TestUID.managerA)
        b = try daemon.connect(as: TestUID.managerB)
        reader = try daemon.connect(as: TestUID.reader)
        untrusted = try daemon.connect(as: TestUID.untrustedManager)
    }

    func client(_ role: Role) -> RPCClient {
        switch role {
        case .admin: admin
        case .owner: a
        case .other: b
        case .reader: reader
        case .untrusted: untrusted
        }
    }

    func makeFixture() throws -> Fixture {
        serial += 1
        let ownerA = "vm-a-\(serial)", ownerB = "vm-b-\(serial)", ownerC = "vm-c-\(serial)"
        try a.value("owner.create", ["name": .string(ownerA)])
        let ioas = try a.value("ioas.create", ["owner": .string(ownerA)]).id("ioas")
        let attach = try a.value("device.attach", ["owner": .string(ownerA), "device": "a0", "ioas": .id(ioas), "dirty": "required"])
        try b.value("owner.create", ["name": .string(ownerB)])
        let ioasB = try b.value("ioas.create", ["owner": .string(ownerB)]).id("ioas")
        try b.value("device.attach", ["owner": .string(ownerB), "device": "b0", "ioas": .id(ioasB)])
        try untrusted.value("owner.create", ["name": .string(ownerC)])
        let ioasC = try untrusted.value("ioas.create", ["owner": .string(ownerC)]).id("ioas")
        try untrusted.value("device.attach", ["owner": .string(ownerC), "device": "c0", "ioas": .id(ioasC)])
        return Fixture(
            owner: ownerA, ioas: ioas, hwpt: try attach.id("pt"), otherOwner: ownerB, otherIOAS: ioasB,
            untrustedOwner: ownerC, spareOwner: "vm-new-\(serial)")
    }

    /// Releases every owner of the fixture (admin); each must be released completely.
    func tearDown(_ f: Fixture) throws {
        let owners = try admin.value("owner.list")["owners"]?.arrayValue ?? []
        for owner in owners {
            guard let name = owner["name"]?.stringValue else { continue }
            let released = try admin.value("owner.release", ["name": .string(name)])
            guard released["released"]?.boolValue == true else {
                throw DaemonTestError("owner.release \(name) left objects behind: \(released)")
            }
        }
    }

    /// What an admin sees of the fixture's owners: a cell that is refused must not change it.
    func snapshot(_ f: Fixture) throws -> [JSONValue] {
        var out: [JSONValue] = []
        for name in [f.owner, f.otherOwner, f.untrustedOwner] {
            out.append(try admin.value("owner.info", ["name": .string(name)]))
        }
        out.append(try admin.value("ioas.info", ["ioas": .id(f.ioas)]))
        out.append(try admin.value("device.list"))
        return out
    }

    // Preparations, made by the owners' managers.

    func map(_ client: RPCClient, ioas: Int64) throws {
        let memfd = try makeMemfd(bytes: Int(Fixture.length))
        defer { close(memfd) }
        try client.value("ioas.map", [
            "ioas": .id(ioas), "fd": ["fd": 0], "offset": 0, "length": .int(Fixture.length), "iova": .int(Fixture.iova),
        ], fds: [memfd])
    }

    func newIOAS(_ client: RPCClient, _ owner: String) throws -> Int64 {
        try client.value("ioas.create", ["owner": .string(owner)]).id("ioas")
    }

    /// Attaches v0 (behind the SMMUv3-like smmu0) to owner A's IOAS, so it can have a vIOMMU.
    func attachV0(_ f: Fixture) throws {
        try a.value("device.attach", ["owner": .string(f.owner), "device": "v0", "ioas": .id(f.ioas)])
    }

    /// n0 (behind the selftest mock IOMMU) attached to owner A's IOAS, a nest parent for it,
    /// and, with `viommu`, a vIOMMU and n0's vDevice 7 on it.
    func nestedSetUp(_ f: Fixture, viommu: Bool = false) throws -> (parent: Int64, viommu: Int64?) {
        try a.value("device.attach", ["owner": .string(f.owner), "device": "n0", "ioas": .id(f.ioas)])
        if viommu {
            let created = try a.value("viommu.create", ["device": "n0"])
            let v = try created.id("viommu")
            try a.value("vdevice.create", ["viommu": .id(v), "device": "n0", "virtual_id": 7])
            return (try created.id("nest_parent"), v)
        }
        return (try a.value("hwpt.alloc", ["ioas": .id(f.ioas), "device": "n0", "nest_parent": true]).id("hwpt"), nil)
    }

    /// A nested HWPT of owner A's on n0's nest parent.
    func newNestedHWPT(_ f: Fixture) throws -> Int64 {
        let parent = try nestedSetUp(f).parent
        return try a.value("hwpt.alloc", ["device": "n0", "parent": .id(parent), "data": ["type": "selftest", "iotlb": 7]]).id("hwpt")
    }

    /// A vIOMMU of owner A's for v0 (attached first).
    func newVIOMMU(_ f: Fixture) throws -> Int64 {
        try attachV0(f)
        return try a.value("viommu.create", ["device": "v0"]).id("viommu")
    }
}

/// Params for a call, and the fds sent with it (closed by the runner afterwards).
struct CallParams {
    var params: JSONValue?
    var fds: [Int32] = []
}

/// A row of the expectation table: a method (and a variant of its params), and the outcome of
/// each role's call.
struct MatrixRow: CustomStringConvertible {
    let method: String
    let variant: String
    let cells: [(Role, Outcome)]
    let prepare: @Sendable (Fixture, Clients) throws -> CallParams

    var description: String { variant.isEmpty ? method : "\(method) (\(variant))" }

    /// `expect` has one symbol per column admin, owning manager, other manager, reader:
    /// ✓ success · ✗ PermissionDenied · ∅ NotFound (not visible) · U passed every check, but
    /// the simulator cannot do it (Unsupported) · C Conflict · I InvalidParams.
    static func row(
        _ method: String, _ variant: String = "", _ expect: String,
        _ prepare: @escaping @Sendable (Fixture, Clients) throws -> CallParams = { _, _ in CallParams() }
    ) -> MatrixRow {
        let columns: [Role] = [.admin, .owner, .other, .reader]
        precondition(expect.count == columns.count, "row \(method): \(expect) needs one symbol per role")
        return MatrixRow(method: method, variant: variant, cells: Array(zip(columns, expect.map(outcome))), prepare: prepare)
    }

    /// A single cell: `role` calls `method` with params mixing owners' objects.
    static func cell(
        _ method: String, _ variant: String, _ role: Role, _ expect: Character,
        _ prepare: @escaping @Sendable (Fixture, Clients) throws -> CallParams
    ) -> MatrixRow {
        MatrixRow(method: method, variant: variant, cells: [(role, outcome(expect))], prepare: prepare)
    }

    private static func outcome(_ symbol: Character) -> Outcome {
        switch symbol {
        case "✓": .ok
        case "✗": .denied
        case "∅": .notFound
        case "U": .unsupported
        case "C": .conflict
        case "I": .invalidParams
        default: preconditionFailure("unknown expectation symbol \(symbol)")
        }
    }
}

private func p(_ object: [String: JSONValue]) -> CallParams { CallParams(params: .object(object)) }

/// The expectation table. Adding a method to the daemon without a row here fails
/// `everyMethodHasARow`.
let isolationMatrix: [MatrixRow] = {
    typealias R = MatrixRow
    let iova = JSONValue.int(Fixture.iova), length = JSONValue.int(Fixture.length)
    return [
        //     method                 variant            admin owner other reader
        R.row("daemon.ping", "", "✓✓✓✓"),
        R.row("daemon.info", "", "✓✓✓✓"),
        R.row("daemon.metrics", "", "✓✓✓✓"),
        R.row("rpc.discover", "", "✓✓✓✓"),
        R.row("owner.create", "", "✓✓✓✗") { f, _ in p(["name": .string(f.spareOwner)]) },
        R.row("owner.list", "", "✓✓✓✓"),
        R.row("owner.info", "", "✓✓∅✓") { f, _ in p(["name": .string(f.owner)]) },
        R.row("owner.release", "", "✓✓∅✗") { f, _ in p(["name": .string(f.owner)]) },
        R.row("owner.delegate", "", "✓✓∅✗") { f, _ in p(["name": .string(f.owner)]) },
        R.row("owner.revoke_channels", "", "✓✓∅✗") { f, _ in p(["name": .string(f.owner)]) },
        R.row("device.list", "of owner A", "✓✓∅✓") { f, _ in p(["owner": .string(f.owner)]) },
        R.row("device.list", "all", "✓✓✓✓"),
        R.row("device.info", "", "✓✓✓✓") { _, _ in p(["device": "a0"]) },
        R.row("device.attach", "", "✓✓∅✗") { f, _ in p(["owner": .string(f.owner), "device": "a1", "ioas": .id(f.ioas)]) },
        R.row("device.detach", "", "✓✓∅✗") { _, _ in p(["device": "a0"]) },
        R.row("device.replace", "", "✓✓∅✗") { f, c in
            p(["device": "a0", "ioas": .id(try c.newIOAS(c.a, f.owner))])
        },
        R.row("device.release", "", "✓✓∅✗") { _, _ in p(["device": "a0"]) },
        R.row("device.fd", "", "UU∅✗") { _, _ in p(["device": "a0"]) },
        R.row("ioas.create", "", "✓✓∅✗") { f, _ in p(["owner": .string(f.owner)]) },
        R.row("ioas.destroy", "", "✓✓∅✗") { f, c in p(["ioas": .id(try c.newIOAS(c.a, f.owner))]) },
        R.row("ioas.list", "of owner A", "✓✓∅✓") { f, _ in p(["owner": .string(f.owner)]) },
        R.row("ioas.list", "all", "✓✓✓✓"),
        R.row("ioas.info", "", "✓✓∅✓") { f, _ in p(["ioas": .id(f.ioas)]) },
        R.row("ioas.map", "", "✓✓∅✗") { f, _ in
            CallParams(
                params: ["ioas": .id(f.ioas), "fd": ["fd": 0], "offset": 0, "length": length, "iova": iova],
                fds: [try makeMemfd(bytes: Int(Fixture.length))])
        },
        R.row("ioas.unmap", "", "✓✓∅✗") { f, c in
            try c.map(c.a, ioas: f.ioas)
            return p(["ioas": .id(f.ioas), "iova": iova, "length": length])
        },
        R.row("ioas.copy", "", "✓✓∅✗") { f, c in
            try c.map(c.a, ioas: f.ioas)
            let dst = try c.newIOAS(c.a, f.owner)
            return p(["dst_ioas": .id(dst), "src_ioas": .id(f.ioas), "src_iova": iova, "length": length])
        },
        R.row("ioas.ranges", "", "✓✓∅✓") { f, _ in p(["ioas": .id(f.ioas)]) },
        R.row("ioas.set_option", "", "✓✓∅✗") { f, _ in p(["ioas": .id(f.ioas), "huge_pages": false]) },
        R.row("hwpt.list", "of an IOAS", "✓✓∅✓") { f, _ in p(["ioas": .id(f.ioas)]) },
        R.row("hwpt.list", "of owner A", "✓✓∅✓") { f, _ in p(["owner": .string(f.owner)]) },
        R.row("hwpt.list", "all", "✓✓✓✓"),
        R.row("hwpt.alloc", "", "✓✓∅✗") { f, _ in p(["ioas": .id(f.ioas), "device": "a0"]) },
        R.row("hwpt.destroy", "", "✓✓∅✗") { f, c in
            p(["hwpt": .id(try c.a.value("hwpt.alloc", ["ioas": .id(f.ioas), "device": "a0"]).id("hwpt"))])
        },
        R.row("dirty.start", "", "✓✓∅✗") { f, _ in p(["ioas": .id(f.ioas)]) },
        R.row("dirty.stop", "", "✓✓∅✗") { f, c in
            try c.a.value("dirty.start", ["ioas": .id(f.ioas)])
            return p(["ioas": .id(f.ioas)])
        },
        R.row("dirty.status", "", "✓✓∅✓") { f, _ in p(["ioas": .id(f.ioas)]) },
        R.row("dirty.read", "clear: false", "✓✓∅✓") { f, c in
            try c.map(c.a, ioas: f.ioas)
            try c.a.value("dirty.start", ["ioas": .id(f.ioas)])
            return p(["ioas": .id(f.ioas), "iova": iova, "length": length, "clear": false])
        },
        R.row("dirty.read", "read and clear", "✓✓∅✗") { f, c in
            try c.map(c.a, ioas: f.ioas)
            try c.a.value("dirty.start", ["ioas": .id(f.ioas)])
            return p(["ioas": .id(f.ioas), "iova": iova, "length": length])
        },
        // Test hook of the simulator: another manager does not even see whose device it is.
        R.row("sim.dma", "", "✓✓∅✗") { f, c in
            try c.map(c.a, ioas: f.ioas)
            try c.a.value("dirty.start", ["ioas": .id(f.ioas)])
            return p(["device": "a0", "iova": iova, "length": .int(0x1000)])
        },
        // Test hook that stalls the whole daemon (the watchdog test): admins only.
        R.row("test.stall_main_queue", "", "✓✗✗✗") { _, _ in p(["seconds": 0.01]) },
        // Test hook showing every owner's objects in the simulator (the crash-point sweep): admins only.
        R.row("test.sim_inventory", "", "✓✗✗✗"),
        // Test hooks of the selftest dma-buf exporter (branch p2p): admins only.
        R.row("test.dmabuf_get", "", "✓✗✗✗") { _, _ in p(["length": 4096]) },
        R.row("test.dmabuf_revoke", "", "✓✗✗✗") { _, c in
            CallParams(params: ["fd": ["fd": 0], "revoked": true], fds: [try c.newDmabuf()])
        },
        // ioas.map of a dma-buf (P2P) into owner A's IOAS: as for a memfd.
        R.row("ioas.map", "a dma-buf", "✓✓∅✗") { f, c in
            CallParams(params: ["ioas": .id(f.ioas), "fd": ["fd": 0], "offset": 0, "length": 4096, "iova": .int(Fixture.iova)], fds: [try c.newDmabuf()])
        },
        // Nested translation (branch nested).
        R.row("hwpt.alloc", "nested on A's nest parent", "✓✓∅✗") { f, c in
            p(["device": "n0", "parent": .id(try c.nestedSetUp(f).parent), "data": ["type": "selftest", "iotlb": 7]])
        },
        R.row("hwpt.alloc", "nested on A's vIOMMU", "✓✓∅✗") { f, c in
            p(["device": "n0", "viommu": .id(try c.nestedSetUp(f, viommu: true).viommu ?? 0), "data": ["type": "selftest", "iotlb": 7]])
        },
        R.row("hwpt.invalidate", "", "✓✓∅✗") { f, c in
            p(["hwpt": .id(try c.newNestedHWPT(f)), "entries": [["iotlb_id": 0], ["all": true]]])
        },
        R.row("viommu.invalidate", "", "✓✓∅✗") { f, c in
            p(["viommu": .id(try c.nestedSetUp(f, viommu: true).viommu ?? 0), "entries": [["vdev_id": 7, "cache_id": 0]]])
        },
        R.cell("hwpt.alloc", "nested on A's nest parent for B's device", .other, "∅") { f, c in
            p(["device": "b0", "parent": .id(try c.nestedSetUp(f).parent), "data": ["type": "selftest", "iotlb": 7]])
        },
        R.cell("hwpt.alloc", "admin: nested on A's nest parent for B's device", .admin, "I") { f, c in
            p(["device": "b0", "parent": .id(try c.nestedSetUp(f).parent), "data": ["type": "selftest", "iotlb": 7]])
        },
        R.cell("hwpt.alloc", "nested with another driver's data", .owner, "I") { f, c in
            p(["device": "n0", "parent": .id(try c.nestedSetUp(f).parent), "data": ["type": "vtd_s1", "flags": 0, "pgtbl_addr": 0x1000, "addr_width": 48]])
        },
        R.cell("hwpt.alloc", "nested with VT-d data the simulator does not model", .owner, "U") { f, c in
            try c.a.value("device.attach", ["owner": .string(f.owner), "device": "a1", "ioas": .id(f.ioas)])
            let parent = try c.a.value("hwpt.alloc", ["ioas": .id(f.ioas), "device": "a1", "nest_parent": true]).id("hwpt")
            return p(["device": "a1", "parent": .id(parent), "data": ["type": "vtd_s1", "flags": 0, "pgtbl_addr": 0x1000, "addr_width": 48]])
        },
        R.row("viommu.create", "", "✓✓∅✗") { f, c in
            try c.attachV0(f)
            return p(["device": "v0"])
        },
        R.row("viommu.destroy", "", "✓✓∅✗") { f, c in p(["viommu": .id(try c.newVIOMMU(f))]) },
        R.row("viommu.list", "of an IOAS", "✓✓∅✓") { f, c in
            _ = try c.newVIOMMU(f)
            return p(["ioas": .id(f.ioas)])
        },
        R.row("viommu.list", "of owner A", "✓✓∅✓") { f, _ in p(["owner": .string(f.owner)]) },
        R.row("viommu.list", "all", "✓✓✓✓"),
        R.row("vdevice.create", "", "✓✓∅✗") { f, c in
            p(["viommu": .id(try c.newVIOMMU(f)), "device": "v0", "virtual_id": 7])
        },
        R.row("vdevice.destroy", "", "✓✓∅✗") { f, c in
            let v = try c.newVIOMMU(f)
            let vdev = try c.a.value("vdevice.create", ["viommu": .id(v), "device": "v0", "virtual_id": 7]).id("vdevice")
            return p(["vdevice": .id(vdev)])
        },
        // pasid
        R.row("device.attach_pasid", "", "✓✓∅✗") { f, c in
            p(["device": "p0", "pasid": 5, "hwpt": .id(try c.pasidSetUp(f))])
        },
        R.row("device.replace_pasid", "", "✓✓∅✗") { f, c in
            _ = try c.pasidSetUp(f, attach: 5)
            return p(["device": "p0", "pasid": 5, "hwpt": .id(try c.newPASIDHWPT(f))])
        },
        R.row("device.detach_pasid", "", "✓✓∅✗") { f, c in
            _ = try c.pasidSetUp(f, attach: 5)
            return p(["device": "p0", "pasid": 5])
        },
        R.cell("device.attach_pasid", "B's device onto A's HWPT", .other, "∅") { f, c in
            p(["device": "b0", "pasid": 5, "hwpt": .id(try c.pasidSetUp(f))])
        },
        R.row("hwpt.alloc", "with pasid", "✓✓∅✗") { f, c in
            _ = try c.pasidSetUp(f)
            return p(["ioas": .id(f.ioas), "device": "p0", "pasid": true])
        },
        // queues
        R.row("fault.create", "", "✓✓∅✗") { f, _ in p(["owner": .string(f.owner)]) },
        R.row("fault.destroy", "", "✓✓∅✗") { f, c in p(["queue": .id(try c.newFaultQueue(f))]) },
        R.row("veventq.create", "", "✓✓∅✗") { f, c in p(["viommu": .id(try c.newVIOMMU(f))]) },
        R.row("veventq.destroy", "", "✓✓∅✗") { f, c in p(["queue": .id(try c.newVEventQ(f))]) },
        R.row("queue.fd", "", "✓✓∅✗") { f, c in p(["queue": .id(try c.newFaultQueue(f))]) },
        R.row("queue.list", "of owner A", "✓✓∅✓") { f, _ in p(["owner": .string(f.owner)]) },
        R.row("queue.list", "of a vIOMMU", "✓✓∅✓") { f, c in p(["viommu": .id(try c.newVIOMMU(f))]) },
        R.row("queue.list", "all", "✓✓✓✓"),
        R.row("hwpt.alloc", "with a fault queue", "✓✓∅✗") { f, c in
            p(["ioas": .id(f.ioas), "device": "a0", "fault_queue": .id(try c.newFaultQueue(f))])
        },
        R.cell("hwpt.alloc", "B's IOAS, A's fault queue", .other, "∅") { f, c in
            p(["ioas": .id(f.otherIOAS), "device": "b0", "fault_queue": .id(try c.newFaultQueue(f))])
        },
        // nestedgaps: a nested HWPT delivering its faults to a fault queue of the owner.
        R.row("hwpt.alloc", "nested on A's nest parent with A's fault queue", "✓✓∅✗") { f, c in
            let parent = try c.nestedSetUp(f).parent
            return p(["device": "n0", "parent": .id(parent), "data": ["type": "selftest", "iotlb": 7], "fault_queue": .id(try c.newFaultQueue(f))])
        },
        R.row("hwpt.alloc", "nested on A's vIOMMU with A's fault queue", "✓✓∅✗") { f, c in
            let v = try c.nestedSetUp(f, viommu: true).viommu ?? 0
            return p(["device": "n0", "viommu": .id(v), "data": ["type": "selftest", "iotlb": 7], "fault_queue": .id(try c.newFaultQueue(f))])
        },
        // hwqueue3: HW queues of A's mock vIOMMU, over a page mapped in A's IOAS.
        R.row("hwqueue.alloc", "", "✓✓∅✗") { f, c in CallParams(params: Clients.hwQueueParams(try c.hwQueueSetUp(f))) },
        R.row("hwqueue.destroy", "", "✓✓∅✗") { f, c in p(["hw_queue": .id(try c.newHWQueue(f))]) },
        R.cell("hwqueue.alloc", "by number (0xdeadbeef)", .owner, "✓") { f, c in
            CallParams(params: Clients.hwQueueParams(try c.hwQueueSetUp(f), type: .int(0xdead_beef)))
        },
        R.cell("hwqueue.alloc", "tegra241_cmdqv (its guest needs an mmap of the iommufd)", .owner, "U") { f, c in
            CallParams(params: Clients.hwQueueParams(try c.hwQueueSetUp(f), type: "tegra241_cmdqv"))
        },
        R.cell("hwqueue.alloc", "admin: tegra241_cmdqv", .admin, "U") { f, c in
            CallParams(params: Clients.hwQueueParams(try c.hwQueueSetUp(f), type: "tegra241_cmdqv"))
        },
        R.cell("hwqueue.alloc", "index 2 of the mock vIOMMU", .owner, "I") { f, c in
            CallParams(params: Clients.hwQueueParams(try c.hwQueueSetUp(f), index: 2))
        },
        // i14audit: test hooks that make a device report a vEVENT or an I/O page fault: admins only.
        R.row("test.trigger_vevent", "", "✓✗✗✗") { f, c in
            try c.veventReady(f)
            return p(["device": "n0"])
        },
        R.row("test.trigger_iopf", "", "✓✗✗✗") { _, _ in p(["device": "a0", "address": 0x1000]) },
        R.row("events.subscribe", "to owner A", "✓✓∅✓") { f, _ in p(["owner": .string(f.owner)]) },
        R.row("events.subscribe", "to all", "✓✓✓✓"),
        // A subscription is its connection's: nobody else can end it, and nobody else sees it.
        R.row("events.unsubscribe", "manager A's subscription", "∅✓∅∅") { _, c in
            p(["subscription": .id(try c.a.value("events.subscribe").id("subscription"))])
        },

        // Owner B's manager naming owner A's objects from its own owner's requests.
        R.cell("device.attach", "B's device to A's IOAS", .other, "∅") { f, _ in
            p(["owner": .string(f.otherOwner), "device": "b1", "ioas": .id(f.ioas)])
        },
        R.cell("device.attach", "B's device to A's HWPT", .other, "∅") { f, _ in
            p(["owner": .string(f.otherOwner), "device": "b1", "hwpt": .id(f.hwpt)])
        },
        R.cell("device.attach", "A's leased device to B's IOAS", .other, "C") { f, _ in
            p(["owner": .string(f.otherOwner), "device": "a0", "ioas": .id(f.otherIOAS)])
        },
        R.cell("device.replace", "B's device into A's IOAS", .other, "∅") { f, _ in p(["device": "b0", "ioas": .id(f.ioas)]) },
        R.cell("device.replace", "B's device onto A's HWPT", .other, "∅") { f, _ in p(["device": "b0", "hwpt": .id(f.hwpt)]) },
        R.cell("hwpt.alloc", "in A's IOAS for B's device", .other, "∅") { f, _ in p(["ioas": .id(f.ioas), "device": "b0"]) },
        R.cell("ioas.copy", "from A's IOAS into B's", .other, "∅") { f, c in
            try c.map(c.a, ioas: f.ioas)
            return p(["dst_ioas": .id(f.otherIOAS), "src_ioas": .id(f.ioas), "src_iova": iova, "length": length])
        },
        R.cell("ioas.copy", "from B's IOAS into A's", .other, "∅") { f, c in
            try c.map(c.b, ioas: f.otherIOAS)
            return p(["dst_ioas": .id(f.ioas), "src_ioas": .id(f.otherIOAS), "src_iova": iova, "length": length])
        },
        R.cell("vdevice.create", "B's device on A's vIOMMU", .other, "∅") { f, c in
            p(["viommu": .id(try c.newVIOMMU(f)), "device": "b0", "virtual_id": 9])
        },
        R.cell("events.subscribe", "", .other, "∅") { f, _ in p(["owner": .string(f.owner)]) },
        // Even an admin cannot mix owners: a device only uses its own owner's objects.
        R.cell("device.attach", "admin: B's device to A's IOAS", .admin, "I") { f, _ in
            p(["owner": .string(f.otherOwner), "device": "b1", "ioas": .id(f.ioas)])
        },
        R.cell("vdevice.create", "admin: B's device on A's vIOMMU", .admin, "I") { f, c in
            p(["viommu": .id(try c.newVIOMMU(f)), "device": "b0", "virtual_id": 9])
        },
        R.cell("ioas.copy", "admin: across owners", .admin, "I") { f, c in
            try c.map(c.a, ioas: f.ioas)
            return p(["dst_ioas": .id(f.otherIOAS), "src_ioas": .id(f.ioas), "src_iova": iova, "length": length])
        },
        // A device leased to another owner is not taken over, not even by an admin.
        R.cell("device.attach", "B's leased device to A's IOAS", .owner, "C") { f, _ in
            p(["owner": .string(f.owner), "device": "b0", "ioas": .id(f.ioas)])
        },
        R.cell("device.attach", "admin: B's leased device to A's IOAS", .admin, "C") { f, _ in
            p(["owner": .string(f.owner), "device": "b0", "ioas": .id(f.ioas)])
        },
        // A device outside the allow-list is handed to nobody.
        R.cell("device.attach", "device outside the allow-list", .owner, "✗") { f, _ in
            p(["owner": .string(f.owner), "device": "out0", "ioas": .id(f.ioas)])
        },
        R.cell("device.attach", "admin: device outside the allow-list", .admin, "✗") { f, _ in
            p(["owner": .string(f.owner), "device": "out0", "ioas": .id(f.ioas)])
        },
        R.cell("device.attach", "device outside the allow-list, by PCI address", .owner, "✗") { f, _ in
            p(["owner": .string(f.owner), "device": "0000:00:1f.0", "ioas": .id(f.ioas)])
        },
        // device.fd needs trusted_vmm even on the caller's own device.
        R.cell("device.fd", "untrusted manager, own device", .untrusted, "✗") { _, _ in p(["device": "c0"]) },
    ]
}()

@Suite("Isolation matrix against the real daemon", .serialized, .enabled(if: getuid() == 0, "connects as other uids: needs root (CI runs as root)"))
struct IsolationMatrixTests {
    @Test func everyMethodHasARow() throws {
        let daemon = try DaemonUnderTest()
        defer { #expect(daemon.stop() == 0, "iommufdd did not stop cleanly:\n\(daemon.finalLog)") }
        let document = try daemon.connect().value("rpc.discover")
        let served = Set((document["methods"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue })
        #expect(served.count >= 30, "rpc.discover listed \(served.count) methods")
        let covered = Set(isolationMatrix.map(\.method))
        #expect(served.subtracting(covered).isEmpty, "methods without a row in the isolation matrix: \(served.subtracting(covered).sorted())")
        #expect(covered.subtracting(served).isEmpty, "rows for methods the daemon does not serve: \(covered.subtracting(served).sorted())")
        // Every method has all four role columns somewhere.
        for method in served {
            let roles = Set(isolationMatrix.filter { $0.method == method }.flatMap { $0.cells.map(\.0) })
            #expect(roles.isSuperset(of: [.admin, .owner, .other, .reader]), "\(method) lacks roles: \(roles)")
        }
    }

    @Test func matrix() throws {
        let daemon = try DaemonUnderTest()
        defer { #expect(daemon.stop() == 0, "iommufdd did not stop cleanly:\n\(daemon.finalLog)") }
        let clients = try Clients(daemon)
        var cells = 0
        for row in isolationMatrix {
            for (role, expected) in row.cells {
                let f = try clients.makeFixture()
                let call = try row.prepare(f, clients)
                let before = try clients.snapshot(f)
                var result: JSONValue = .null
                let outcome = Outcome.of {
                    let (value, fds) = try clients.client(role).call(row.method, params: call.params, fds: call.fds, timeout: .seconds(30))
                    for fd in fds { close(fd) }
                    result = value
                }
                for fd in call.fds { close(fd) }
                #expect(outcome == expected, "\(row) as \(role): expected \(expected), got \(outcome)")
                if outcome != .ok {
                    // A refused call changes nothing.
                    #expect(try clients.snapshot(f) == before, "\(row) as \(role) was refused but changed state")
                }
                if row.method == "events.subscribe", let id = result["subscription"]?.int64Value {
                    try clients.client(role).value("events.unsubscribe", ["subscription": .id(id)])
                }
                try clients.tearDown(f)
                cells += 1
            }
        }
        #expect(cells == isolationMatrix.reduce(0) { $0 + $1.cells.count })
        // Everything was released: nothing leaked across cells.
        let counts = try clients.admin.value("daemon.info")["counts"]
        #expect(counts?["owners"]?.int64Value == 0)
        #expect(counts?["ioas"]?.int64Value == 0)
        #expect(counts?["hwpts"]?.int64Value == 0)
        #expect(counts?["devices_leased"]?.int64Value == 0)
    }

    /// Every ∅ of another manager above is the answer an owner or object that does not exist
    /// gets, word for word but for its name or ID: the code, `error.data` and the message.
    @Test func anotherManagersObjectsAnswerLikeAbsentOnes() throws {
        let daemon = try DaemonUnderTest()
        defer { #expect(daemon.stop() == 0, "iommufdd did not stop cleanly:\n\(daemon.finalLog)") }
        let c = try Clients(daemon)
        let f = try c.makeFixture()
        // The vIOMMU moves v0 (behind the SMMUv3-like smmu0) onto a nest-parent HWPT.
        try c.attachV0(f)
        let created = try c.a.value("viommu.create", ["device": "v0"])
        let viommu = try created.id("viommu"), hwpt = try created.id("nest_parent")
        let vdevice = try c.a.value("vdevice.create", ["viommu": .id(viommu), "device": "v0", "virtual_id": 7]).id("vdevice")
        // Each of them is there for its owner.
        try c.a.value("ioas.info", ["ioas": .id(f.ioas)])
        #expect(try c.a.value("hwpt.list", ["ioas": .id(f.ioas)])["hwpts"]?.arrayValue?.contains { $0["hwpt"]?.int64Value == hwpt } == true)
        let absentID: Int64 = 9999
        let absentOwner = "vm-absent"

        func error(_ method: String, _ params: JSONValue) -> RPCError? {
            do {
                try c.b.value(method, params)
                Issue.record("\(method) \(params) as manager B succeeded")
            } catch let e as RPCError {
                return e
            } catch {
                Issue.record("\(method) \(params) as manager B: \(error)")
            }
            return nil
        }
        func compare(_ method: String, _ key: String, owner: String) {
            compare(method, [key: .string(owner)], [key: .string(absentOwner)], owner, absentOwner)
        }
        func compare(_ method: String, _ key: String, id: Int64, _ extra: [String: JSONValue] = [:]) {
            compare(method, .object(extra.merging([key: .id(id)]) { $1 }), .object(extra.merging([key: .id(absentID)]) { $1 }), "\(id)", "\(absentID)")
        }
        func compare(_ method: String, _ theirs: JSONValue, _ absent: JSONValue, _ present: String, _ missing: String) {
            guard let got = error(method, theirs), let expected = error(method, absent) else { return }
            #expect(got.name == "iommufdd.NotFound" && got.code == -32001, "\(method) on owner A's \(present): \(got)")
            #expect(got.code == expected.code && got.data == expected.data, "\(method): \(got) vs \(expected)")
            #expect(got.message == expected.message.replacingOccurrences(of: missing, with: present), "\(method): '\(got.message)' vs absent '\(expected.message)'")
        }
        compare("owner.info", "name", owner: f.owner)
        compare("owner.release", "name", owner: f.owner)
        compare("ioas.create", "owner", owner: f.owner)
        compare("ioas.list", "owner", owner: f.owner)
        compare("events.subscribe", "owner", owner: f.owner)
        compare("ioas.info", "ioas", id: f.ioas)
        compare("ioas.destroy", "ioas", id: f.ioas)
        compare("dirty.status", "ioas", id: f.ioas)
        compare("hwpt.list", "ioas", id: f.ioas)
        compare("device.attach", "ioas", id: f.ioas, ["owner": .string(f.otherOwner), "device": "b1"])
        compare("hwpt.destroy", "hwpt", id: hwpt)
        compare("viommu.destroy", "viommu", id: viommu)
        compare("vdevice.destroy", "vdevice", id: vdevice)
        // hwqueue3: A's mock vIOMMU and its HW queue.
        let mockVIOMMU = try c.hwQueueSetUp(f)
        let hwQueue = try c.a.value("hwqueue.alloc", Clients.hwQueueParams(mockVIOMMU)).id("hw_queue")
        compare("hwqueue.alloc", "viommu", id: mockVIOMMU, ["type": "selftest", "index": 1, "base_address": .int(Fixture.iova), "length": 4096])
        compare("hwqueue.destroy", "hw_queue", id: hwQueue)
        try c.tearDown(f)
    }

    /// An unlisted uid is refused at accept, whatever it sends: the refusal (id null,
    /// PermissionDenied) and then end of stream.
    @Test func unlistedUIDIsRefusedForEveryMethod() throws {
        let daemon = try DaemonUnderTest()
        defer { #expect(daemon.stop() == 0, "iommufdd did not stop cleanly:\n\(daemon.finalLog)") }
        let methods = Set(isolationMatrix.map(\.method)).sorted()
        for method in methods {
            let client = try daemon.connect(as: TestUID.unlisted)
            let first = Outcome.of { try client.value(method) }
            #expect(first == .denied, "\(method) from an unlisted uid: \(first)")
            let second = Outcome.of { try client.value("daemon.ping") }
            guard case .other(let text) = second, text.hasPrefix("transport") else {
                Issue.record("the refused connection still answered: \(second)")
                continue
            }
        }
        let refused = try daemon.connect().value("daemon.metrics")["text"]?.stringValue ?? ""
        #expect(refused.contains("connections_refused_total \(methods.count)\n"), "the refusals are not counted: \(refused)")
    }

    /// What another manager sees of owner A: it exists (a device is leased) but not whose it is.
    @Test func listsHideOtherManagersObjects() throws {
        let daemon = try DaemonUnderTest()
        defer { #expect(daemon.stop() == 0, "iommufdd did not stop cleanly:\n\(daemon.finalLog)") }
        let c = try Clients(daemon)
        let f = try c.makeFixture()

        let ownersB = try c.b.value("owner.list")["owners"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(ownersB == [f.otherOwner])
        let ioasB = try c.b.value("ioas.list")["ioas"]?.arrayValue?.compactMap { $0["ioas"]?.int64Value } ?? []
        #expect(ioasB == [f.otherIOAS])
        let hwptOwnersB = Set(try c.b.value("hwpt.list")["hwpts"]?.arrayValue?.compactMap { $0["owner"]?.stringValue } ?? [])
        #expect(hwptOwnersB == [f.otherOwner])
        let viommuA = try c.newVIOMMU(f)
        let viommusB = try c.b.value("viommu.list")["viommus"]?.arrayValue ?? []
        #expect(!viommusB.contains { $0["owner"]?.stringValue == f.owner }, "manager B sees owner A's vIOMMU: \(viommusB)")
        let viommusReader = try c.reader.value("viommu.list")["viommus"]?.arrayValue?.compactMap { $0["viommu"]?.int64Value } ?? []
        #expect(viommusReader.contains(viommuA))

        let a0AsB = try c.b.value("device.info", ["device": "a0"])
        #expect(a0AsB["leased"]?.boolValue == true)
        #expect(a0AsB["owner"] == nil || a0AsB["owner"] == .null)
        #expect(a0AsB["ioas"] == nil || a0AsB["ioas"] == .null)
        #expect(a0AsB["device_id"] == nil || a0AsB["device_id"] == .null)

        let a0AsReader = try c.reader.value("device.info", ["device": "a0"])
        #expect(a0AsReader["owner"]?.stringValue == f.owner)
        let ownersReader = Set(try c.reader.value("owner.list")["owners"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? [])
        #expect(ownersReader == [f.owner, f.otherOwner, f.untrustedOwner])

        // Events of owner A do not reach manager B's subscription to everything.
        try c.b.value("events.subscribe")
        try c.a.value("ioas.create", ["owner": .string(f.owner)])
        try c.b.value("ioas.create", ["owner": .string(f.otherOwner)])
        var seenOwners: [String] = []
        while let n = try c.b.nextNotification(timeout: .milliseconds(500)) {
            if let owner = n.params?["owner"]?.stringValue { seenOwners.append(owner) }
        }
        #expect(!seenOwners.isEmpty, "manager B got no event for its own owner")
        #expect(!seenOwners.contains(f.owner), "manager B saw events of owner A: \(seenOwners)")
        try c.tearDown(f)
    }
}
