import Foundation
import IommufdCore
import IommufdRPC
import IommufdSim
import IommufdTestSupervisor
import TestProcesses
import Testing

@testable import IommufdBroker
import IommufdContract

#if canImport(Glibc)
import Glibc
#endif

// Issue 17 item 5, with the real daemon binary under the systemd-like supervisor: a rollback to
// a daemon older than the journal in the fd store. The newer journal is made by rewriting the
// format version in the stored journal's header (no binary of a newer format exists to run;
// JournalFormatTests adopts the golden journal of every older version).

@Suite("Upgrade and rollback through the fd store", .serialized)
struct UpgradeE2ETests {
    @Test("A journal of a newer format: the daemon refuses to start naming both versions, and the fd store keeps every fd for the newer daemon")
    func newerJournalKeepsTheStore() throws {
        let config = NSTemporaryDirectory() + "iommufdd-upgrade-\(getpid()).toml"
        try "[daemon]\nbackend = \"sim\"\nlog_level = \"warning\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: config) }
        let log = config + ".log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let sup = try Supervisor(daemonPath: try daemonBinary(), arguments: ["--config", config], logPath: log)
        defer { sup.shutdown() }
        try sup.start()
        try sup.waitReady(count: 1)
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let ram = try makeMemfd(bytes: 16 * page)
        defer { close(ram) }
        var c = try Client(path: sup.controlPath)
        _ = try c.raw("owner.create", OwnerCreateParams(name: "vm"))
        let ioas = try c.call("ioas.create", IOASCreateParams(owner: "vm"), as: IOASCreateResult.self).ioas
        _ = try c.map(ioas, memfd: ram, offset: 0, length: 4 * page, iova: 0x10_0000)
        _ = try c.raw("device.attach", DeviceAttachParams(owner: "vm", device: "sim-pci0", ioas: ioas))
        let before = try CrashView(c)
        c.rpc.close()
        sup.kill9()

        let names = sup.storedNames
        let journalName = try #require(names.first { $0.hasPrefix("journal.") })
        // A newer iommufdd wrote it: the header says the next format version after this daemon's.
        let newer = ObjectJournal.format.version + 1
        func setVersion(_ v: Int) throws {
            let done = sup.withStoredFD(named: journalName) { fd -> Bool in
                let digits: [UInt8] = [UInt8(0x30 + v / 10), UInt8(0x30 + v % 10)]
                return digits.withUnsafeBytes { pwrite(fd, $0.baseAddress, 2, 6) } == 2
            }
            try #require(done == true, "could not rewrite \(journalName) in the store")
        }
        try setVersion(newer)
        try sup.start()
        let refused = #expect(throws: Supervisor.NotReady.self) { try sup.waitReady(count: 2, timeout: 60) }
        let text = refused.map { "\($0)" } ?? ""
        #expect(text.contains("journal format version \(newer), newer than this daemon's version \(newer - 1)"), "\(text)")
        #expect(text.contains("Nothing was taken, closed or removed from the fd store"), "\(text)")
        // Every stored fd is still there, open, under its name.
        #expect(sup.storedNames == names, "the refused start changed the fd store: \(names) → \(sup.storedNames)")
        #expect(sup.storedFDsOpen)

        // The newer daemon comes back (here: the header says 01 again): it finds everything.
        try setVersion(newer - 1)
        try sup.start()
        try sup.waitReady(count: 2)
        c = try Client(path: sup.controlPath)
        #expect(try CrashView(c) == before)
        let info = try c.raw("daemon.info", NoParams())
        #expect(info["recovery"]?["restarted"] == .bool(true))
        #expect(sup.stop() == 0)
    }
}
