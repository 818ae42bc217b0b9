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

/// Restart-to-READY with 1,000 IOAS and 100,000 mappings on the simulator, under the
/// supervisor: the time from spawning the daemon (with the fd store's fds) to its `READY=1`.
///
/// A measurement, not a check of speed: it runs only when asked, against a release build:
///
///     swift build -c release --product iommufdd
///     IOMMUFDD_RESTART_BENCH=.build/release/iommufdd swift test --filter RestartBenchmark
@Suite("Restart benchmark")
struct RestartBenchmark {
    static let binary = ProcessInfo.processInfo.environment["IOMMUFDD_RESTART_BENCH"]

    @Test("restart-to-READY, 1,000 IOAS and 100,000 mappings", .enabled(if: binary != nil, "set IOMMUFDD_RESTART_BENCH to the iommufdd binary"))
    func restartToReady() throws {
        let ioasCount = 1_000
        let mappingsPerIOAS = 100
        let config = NSTemporaryDirectory() + "iommufdd-restart-bench-\(getpid()).toml"
        try "[daemon]\nbackend = \"sim\"\nlog_level = \"warning\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: config) }
        let sup = try Supervisor(daemonPath: Self.binary ?? "", arguments: ["--config", config])
        defer { sup.shutdown() }
        var t = DispatchTime.now()
        try sup.start()
        try sup.waitReady(count: 1)
        let emptyStart = Self.seconds(since: t)

        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let ram = try makeMemfd(bytes: mappingsPerIOAS * Int(page))
        defer { close(ram) }
        let c = try Client(path: sup.controlPath)
        _ = try c.raw("owner.create", OwnerCreateParams(name: "bench"))
        t = DispatchTime.now()
        var ids: [ObjectID] = []
        for _ in 0..<ioasCount {
            let id = try c.call("ioas.create", IOASCreateParams(owner: "bench"), as: IOASCreateResult.self).ioas
            ids.append(id)
            for m in 0..<mappingsPerIOAS {
                _ = try c.map(id, memfd: ram, offset: UInt64(m) * page, length: page, iova: 0x10_0000 + UInt64(m) * 0x1_0000)
            }
        }
        let buildTime = Self.seconds(since: t)
        let stored = sup.storedNames

        sup.kill9()
        t = DispatchTime.now()
        try sup.start()
        try sup.waitReady(count: 2)
        let restart = Self.seconds(since: t)

        try c.reconnect()
        let info = try c.raw("daemon.info", NoParams())
        #expect(info["counts"]?["ioas"]?.int64Value == Int64(ioasCount))
        #expect(info["counts"]?["mappings"]?.int64Value == Int64(ioasCount * mappingsPerIOAS))
        #expect(info["recovery"]?["journal"]?["problems"]?.arrayValue?.isEmpty == true)
        let recovery = info["recovery"]?["seconds"]?.doubleValue ?? -1
        let journalBytes = info["fd_store"]?["journal_bytes"]?.int64Value ?? -1
        print("""
            restart benchmark (\(Self.binary ?? "")): \(ioasCount) IOAS, \(ioasCount * mappingsPerIOAS) mappings
              empty start to READY:       \(String(format: "%.3f", emptyStart)) s
              building the state:         \(String(format: "%.1f", buildTime)) s over one connection
              fd store at the kill:       \(stored.count) fds (\(stored.joined(separator: ", ")))
              journal size:               \(journalBytes) bytes
              restart (spawn) to READY:   \(String(format: "%.3f", restart)) s
              of which recovery:          \(String(format: "%.3f", recovery)) s (simulator replay + journal + checks)
            """)
    }

    static func seconds(since t: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e9
    }
}
