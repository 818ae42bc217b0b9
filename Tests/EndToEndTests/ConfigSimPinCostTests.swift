import IommufdSim
import Testing

@testable import IommufdDaemon

private let names = NameResolver(uid: { ["root": 0][$0] }, gid: { ["root": 0][$0] })

@Suite("Config: [sim] pin_ns_per_page")
struct ConfigSimPinCostTests {
    @Test func parsesAndIsCheckedAndReachesTheSimulator() throws {
        let c = try DaemonConfig.parse("[sim]\npin_ns_per_page = 950\n", file: "test.toml", names: names).get()
        #expect(c.sim.pinNsPerPage == 950)
        #expect(DaemonConfig.defaults.sim.pinNsPerPage == 0)
        guard case .failure(let error) = DaemonConfig.parse("[sim]\npin_ns_per_page = -1\n", file: "test.toml", names: names) else {
            Issue.record("a negative pinning cost was accepted")
            return
        }
        #expect(error.issues.first?.reason == "-1 is out of range (0 to 1000000000)")
        var config = DaemonConfig.defaults
        config.daemon.backend = .sim
        config.sim.pinNsPerPage = 950
        let backend = try BackendFactory.open(config)
        #expect((backend as? SimBackend)?.pinNanosecondsPerPage == 950)
    }
}
