import Foundation
import IommufdRPC
import Testing

// MARK: i14audit

/// `iommuctl queue read` against a real daemon: a fault the simulated device reports
/// (`test.trigger_iopf`) comes out of the fd `queue.fd` hands out, as a VMM reads it.
@Suite("iommuctl queue read against the real daemon")
struct QueueReadE2ETests {
    @Test("a page fault read with --json; the queue's counters and holder afterwards")
    func faultRead() throws {
        let daemon = try LiveDaemon()
        @discardableResult func ok(_ arguments: [String]) throws -> JSONValue { try daemon.json(arguments) }
        try ok(["owner", "create", "vm1"])
        let ioas = try #require(try ok(["ioas", "create", "--owner", "vm1"])["ioas"]?.int64Value)
        let queue = try #require(try ok(["fault", "create", "vm1"])["queue"]?["queue"]?.int64Value)
        let hwpt = try #require(try ok(["hwpt", "alloc", "--ioas", "\(ioas)", "--device", "sim-pci3", "--fault-queue", "\(queue)"])["hwpt"]?.int64Value)
        try ok(["device", "attach", "sim-pci3", "--owner", "vm1", "--hwpt", "\(hwpt)"])
        let deviceID = try #require(try ok(["device", "info", "sim-pci3"])["device_id"]?.int64Value)

        let job = try WalkthroughBackgroundJob(
            command: "queue read", arguments: ["queue", "read", "\(queue)", "--count", "1", "--wait", "30", "--json"], socketPath: daemon.socketPath)
        let ready = try #require(job.firstLine(), "queue read printed nothing on stderr")
        #expect(ready == ["reading fault queue \(queue) of owner vm1; waiting for 1 record"])
        let trigger = try daemon.ctl(["call", "test.trigger_iopf", #"{"device": "sim-pci3", "address": 4096, "perm": 2, "group": 3}"#, "--compact"])
        #expect(trigger.code == 0, "\(trigger.error)")
        #expect(trigger.output == #"{"device":"sim-pci3","device_id":\#(deviceID)}"#)
        let printed = job.finish()
        try #require(printed.count == 1, "\(printed)")
        let record = try JSONValue.parse(printed[0])
        #expect(record["kind"]?.stringValue == "fault")
        #expect(record["queue"]?.int64Value == queue)
        #expect(record["device_id"]?.int64Value == deviceID)
        #expect(record["address"]?.int64Value == 4096)
        #expect(record["perm"]?.int64Value == 2)
        #expect(record["group"]?.int64Value == 3)
        #expect(record["last_page"]?.boolValue == true)

        // Relayed to the holder, awaiting an answer it did not give, and the holder is gone.
        let listed = try #require(try ok(["queue", "list", "--owner", "vm1"])["queues"]?.arrayValue?.first { $0["queue"]?.int64Value == queue })
        #expect(listed["relayed"]?.int64Value == 1)
        #expect(listed["undelivered"]?.int64Value == 0)
        #expect(listed["awaiting_response"]?.int64Value == 1)
        #expect(listed["connected"]?.boolValue == false)

        // Nothing more comes: the timeout says so; an absent queue is NotFound (exit 5).
        let quiet = try daemon.ctl(["queue", "read", "\(queue)", "--count", "1", "--wait", "0.3"])
        #expect(quiet.code == 1)
        #expect(quiet.error.contains("no record came out of fault queue \(queue) within 0.3 s (0 read)"), "\(quiet.error)")
        let absent = try daemon.ctl(["queue", "read", "999"])
        #expect(absent.code == 5, "\(absent.error)")
        #expect(absent.error.contains("no queue 999"), "\(absent.error)")
    }

    @Test("the trigger hooks are admin-only and say what is missing")
    func triggerRefusals() throws {
        let daemon = try LiveDaemon()
        // uid 65534 is a reader: refused before anything is looked at.
        let reader = try daemon.ctl(["call", "test.trigger_vevent", #"{"device": "sim-pci3"}"#], asUID: 65534)
        #expect(reader.code == 4, "\(reader.error)")
        // A device nobody bound cannot report anything.
        let unbound = try daemon.ctl(["call", "test.trigger_vevent", #"{"device": "sim-pci3"}"#])
        #expect(unbound.code == 6, "\(unbound.error)")
        #expect(unbound.error.contains("is not bound to the iommufd"), "\(unbound.error)")
        // Bound but on a paging HWPT: the kernel's ENOENT, with what the device needs.
        _ = try daemon.json(["owner", "create", "vm1"])
        let ioas = try #require(try daemon.json(["ioas", "create", "--owner", "vm1"])["ioas"]?.int64Value)
        _ = try daemon.json(["device", "attach", "sim-pci3", "--owner", "vm1", "--ioas", "\(ioas)"])
        let paging = try daemon.ctl(["call", "test.trigger_vevent", #"{"device": "sim-pci3"}"#])
        #expect(paging.code == 9, "\(paging.error)")
        #expect(paging.error.contains("ENOENT") && paging.error.contains("nested HWPT on a vIOMMU"), "\(paging.error)")
    }
}
