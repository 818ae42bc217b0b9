import Foundation
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The security model against the real daemon: clients of other uids (SO_PEERCRED) play a
/// second VM manager, a reader and an unlisted user. Needs root to take those uids.
@Suite("End to end: roles, ownership, allow-list and quotas", .enabled(if: runningAsRoot, "needs root to connect as other uids"))
final class AccessE2ETests {
    let daemon: DaemonProcess

    init() throws {
        daemon = try DaemonProcess(config: TestConfig(allow: ["sim-pci0", "sim-pci1", "sim-mdev0"]))
    }

    deinit { daemon.expectCleanStop() }

    @Test func unlistedUIDIsRefusedAtAccept() throws {
        let c = try daemon.client(as: TestUID.unlisted)
        // The refusal is sent at accept, before any request, and the connection closed.
        let e = try c.error("daemon.ping")
        #expect(e.name == ErrorName.permissionDenied && e.message.contains("\(TestUID.unlisted)"), "\(e)")
        #expect(c.isClosedByDaemon())
        #expect(try daemon.client().call("daemon.ping") == "pong")
    }

    @Test func secondManagerIsRefusedOnTheFirstOnesOwner() throws {
        let a = try daemon.client(as: TestUID.managerA)
        let b = try daemon.client(as: TestUID.managerB)
        try a.call("owner.create", ["name": "vm-a"])
        let ioas = try #require(try a.call("ioas.create", ["owner": "vm-a"])["ioas"]?.int)
        try a.call("device.attach", ["owner": "vm-a", "device": "sim-pci0", "ioas": .int(ioas)])

        // B sees none of it, and cannot touch it by name or by id: to B it does not exist.
        #expect(try b.call("owner.list")["owners"] == [])
        #expect(try b.call("ioas.list", [:])["ioas"] == [])
        for (method, params) in [
            ("owner.info", ["name": "vm-a"]), ("owner.release", ["name": "vm-a"]),
            ("ioas.create", ["owner": "vm-a"]), ("ioas.destroy", ["ioas": .int(ioas)]),
            ("ioas.info", ["ioas": .int(ioas)]), ("ioas.unmap", ["ioas": .int(ioas), "all": true]),
            ("dirty.start", ["ioas": .int(ioas)]), ("device.detach", ["device": "sim-pci0"]),
        ] as [(String, JSONValue)] {
            let e = try b.error(method, params)
            #expect(e.code == -32001 && e.name == ErrorName.notFound, "\(method): \(e)")
            #expect(!e.message.contains("another"), "\(method) says there is something to hide: \(e)")
        }
        // Nor can it take A's leased device into an owner of its own.
        try b.call("owner.create", ["name": "vm-b"])
        let bIOAS = try #require(try b.call("ioas.create", ["owner": "vm-b"])["ioas"]?.int)
        let taken = try b.error("device.attach", ["owner": "vm-b", "device": "sim-pci0", "ioas": .int(bIOAS)])
        #expect(taken.name == ErrorName.conflict, "\(taken)")
        // B's device listing says sim-pci0 is leased without naming A's owner.
        let listed = try #require(try b.call("device.list", [:])["devices"]?.arrayValue?.first { $0["name"] == "sim-pci0" })
        #expect(listed["leased"] == true && listed["owner"] == nil)

        // A's objects are intact; the admin (the test's own uid) sees both owners.
        #expect(try a.call("ioas.info", ["ioas": .int(ioas)])["devices"] == ["sim-pci0"])
        let admin = try daemon.client()
        #expect(try admin.call("owner.list")["owners"]?.arrayValue?.count == 2)
        #expect(try a.call("owner.release", ["name": "vm-a"])["released"] == true)
        #expect(try b.call("owner.release", ["name": "vm-b"])["released"] == true)
    }

    @Test func readerMayReadButNotWrite() throws {
        let admin = try daemon.client()
        try admin.call("owner.create", ["name": "vm-r"])
        let ioas = try #require(try admin.call("ioas.create", ["owner": "vm-r"])["ioas"]?.int)
        let r = try daemon.client(as: TestUID.reader)
        #expect(try r.call("daemon.ping") == "pong")
        #expect(try r.call("daemon.info")["backend"] == "sim")
        // Every device of the default topology (sim-pci0-3, sim-mdev0), listed to a reader too.
        #expect(try r.call("device.list", [:])["devices"]?.arrayValue?.count == 5)
        #expect(try r.call("ioas.info", ["ioas": .int(ioas)])["owner"] == "vm-r")
        #expect(try r.call("events.subscribe", [:])["subscription"] != nil)
        for (method, params) in [
            ("owner.create", ["name": "vm-reader"]), ("ioas.create", ["owner": "vm-r"]),
            ("ioas.destroy", ["ioas": .int(ioas)]), ("owner.release", ["name": "vm-r"]),
            ("dirty.read", ["ioas": .int(ioas), "iova": 0, "length": 4096]),  // read-and-clear writes
        ] as [(String, JSONValue)] {
            let e = try r.error(method, params)
            #expect(e.code == -32002 && e.name == ErrorName.permissionDenied, "\(method): \(e)")
        }
        #expect(try admin.call("ioas.list", [:])["ioas"]?.arrayValue?.count == 1, "nothing changed")
    }

    @Test func deviceOutsideTheAllowListIsRefused() throws {
        let a = try daemon.client(as: TestUID.managerA)
        try a.call("owner.create", ["name": "vm-allow"])
        let ioas = try #require(try a.call("ioas.create", ["owner": "vm-allow"])["ioas"]?.int)
        let e = try a.error("device.attach", ["owner": "vm-allow", "device": "sim-pci2", "ioas": .int(ioas)])
        #expect(e.name == ErrorName.permissionDenied && e.message.contains("allow-list"), "\(e)")
        let listed = try #require(try a.call("device.list", [:])["devices"]?.arrayValue?.first { $0["name"] == "sim-pci2" })
        #expect(listed["allowed"] == false && listed["leased"] == false)
        // Nothing half-done: the device is not leased or bound.
        #expect(try a.call("owner.info", ["name": "vm-allow"])["devices"] == [])
        try a.call("owner.release", ["name": "vm-allow"])
    }

    @Test func pinnedByteQuotaIsEnforcedPerOwner() throws {
        let q = try daemon.client(as: TestUID.quotaManager)
        let owner = try q.call("owner.create", ["name": "vm-quota"])
        #expect(owner["quota_bytes"] == 65536)
        let ioas = try #require(try q.call("ioas.create", ["owner": "vm-quota"])["ioas"]?.int)
        let ram = try makeMemfd(bytes: 1 << 20)
        defer { close(ram) }
        try q.call("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 0], "offset": 0, "length": 0xC000], fds: [ram])
        let over = try q.error("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 0], "offset": 0xC000, "length": 0x8000], fds: [ram])
        #expect(over.code == -32004 && over.name == ErrorName.quotaExceeded, "\(over)")
        // What fits still fits; unmapping refunds.
        try q.call("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 0], "offset": 0xC000, "length": 0x4000], fds: [ram])
        #expect(try q.call("owner.info", ["name": "vm-quota"])["pinned_bytes"] == 65536)
        let unmapped = try q.call("ioas.unmap", ["ioas": .int(ioas), "all": true])
        #expect(unmapped["owner_pinned_bytes"] == 0)
        try q.call("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 0], "offset": 0, "length": 0x10000], fds: [ram])
        try q.call("owner.release", ["name": "vm-quota"])
    }

    @Test func deviceFDOnlyForTrustedVMM() throws {
        let a = try daemon.client(as: TestUID.managerA)
        try a.call("owner.create", ["name": "vm-fd"])
        let ioas = try #require(try a.call("ioas.create", ["owner": "vm-fd"])["ioas"]?.int)
        try a.call("device.attach", ["owner": "vm-fd", "device": "sim-pci1", "ioas": .int(ioas)])
        let e = try a.error("device.fd", ["device": "sim-pci1"])
        #expect(e.name == ErrorName.permissionDenied && e.message.contains("trusted_vmm"), "\(e)")
        try a.call("owner.release", ["name": "vm-fd"])
    }
}
