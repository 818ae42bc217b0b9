import Foundation
import Testing

@testable import IommufdDaemon

#if canImport(Glibc)
import Glibc
#endif

@Suite("Test hooks: the config gate")
struct TestHooksTests {
    private static let names = NameResolver(uid: { $0 == "root" ? 0 : nil }, gid: { $0 == "root" ? 0 : nil })

    @Test func offByDefault() throws {
        let config = try DaemonConfig.parse("", file: "t.toml", names: Self.names).get()
        #expect(!config.kernel.testHooks && !config.sim.testHooks)
    }

    @Test func kernelHooksNeedMockDevices() throws {
        guard case .failure(let error) = DaemonConfig.parse("[kernel]\ntest_hooks = true\n", file: "t.toml", names: Self.names) else {
            Issue.record("kernel test hooks without allow_mock_devices were accepted")
            return
        }
        #expect(error.issues.count == 1)
        #expect(error.issues.first?.key == "kernel.test_hooks")
        let ok = try DaemonConfig.parse("[kernel]\nallow_mock_devices = true\ntest_hooks = true\n", file: "t.toml", names: Self.names).get()
        #expect(ok.kernel.testHooks && !ok.sim.testHooks)
    }

    @Test func simHooksKeepTheDefaultTopology() throws {
        let config = try DaemonConfig.parse("[sim]\ntest_hooks = true\n", file: "t.toml", names: Self.names).get()
        #expect(config.sim.testHooks)
        #expect(config.sim.devices == DaemonConfig.Sim.defaultDevices)
    }
}
