import Testing

@testable import IommufdDaemon

private let names = NameResolver(uid: { ["root": 0][$0] }, gid: { ["root": 0][$0] })

@Suite("Config: [limits] rpc_linger_us and rpc_spin_us")
struct ConfigRPCLingerTests {
    @Test func parseIntoTheServersLimits() throws {
        let c = try DaemonConfig.parse("[limits]\nrpc_linger_us = 300\nrpc_spin_us = 0\n", file: "test.toml", names: names).get()
        let l = Daemon.limits(c)
        #expect(l.lingerMicroseconds == 300)
        #expect(l.lingerSpinMicroseconds == 0)
        let d = Daemon.limits(DaemonConfig.defaults)
        #expect(d.lingerMicroseconds == 200 && d.lingerSpinMicroseconds == 50)
        // The spin is part of the linger: never longer than it.
        let short = try DaemonConfig.parse("[limits]\nrpc_linger_us = 20\n", file: "test.toml", names: names).get()
        #expect(Daemon.limits(short).lingerSpinMicroseconds == 20)
    }

    @Test(arguments: [("rpc_linger_us", "10001", "0 to 10000"), ("rpc_linger_us", "-1", "0 to 10000"), ("rpc_spin_us", "1001", "0 to 1000")])
    func outOfRangeIsRefused(key: String, value: String, range: String) {
        guard case .failure(let error) = DaemonConfig.parse("[limits]\n\(key) = \(value)\n", file: "test.toml", names: names) else {
            Issue.record("\(key) = \(value) was accepted")
            return
        }
        #expect(error.issues.first?.reason == "\(value) is out of range (\(range))")
    }

    /// The RPC server takes its limits at start: a reload that changes one says so.
    @Test func aReloadNamesTheLimitsThatWaitForARestart() throws {
        let old = DaemonConfig.defaults
        let new = try DaemonConfig.parse("[limits]\nmax_clients = 8\nrpc_spin_us = 0\nchannel_busy_poll_us = 100\n", file: "test.toml", names: names).get()
        #expect(new.changesNeedingRestart(from: old) == ["limits.max_clients", "limits.rpc_spin_us"])
        #expect(old.changesNeedingRestart(from: old) == [])
    }
}
