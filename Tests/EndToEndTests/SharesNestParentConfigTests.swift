import IommufdCore
import Testing

@testable import IommufdDaemon

// MARK: nestedgaps

/// `[[sim.iommu]] shares_nest_parent`: the driver's default (selftest-mock only), or what the
/// file says, reaches the simulator's topology; a second mock instance that refuses makes the
/// daemon give it a nest parent of its own (docs/nested.md, "One shared stage 2").
@Suite("Config: [[sim.iommu]] shares_nest_parent")
struct SharesNestParentConfigTests {
    static let names = NameResolver(uid: { ["root": 0][$0] }, gid: { ["root": 0][$0] })

    @Test func defaultsPerDriverAndWhatTheFileSays() throws {
        let text = """
            [[sim.iommu]]
            name = "m0"
            driver = "selftest-mock"
            nesting = true

            [[sim.iommu]]
            name = "m1"
            driver = "selftest-mock"
            nesting = true
            shares_nest_parent = false

            [[sim.iommu]]
            name = "s0"
            driver = "arm-smmuv3"
            nesting = true

            [[sim.iommu]]
            name = "s1"
            driver = "arm-smmuv3"
            nesting = true
            shares_nest_parent = true
            """
        let config = try DaemonConfig.parse(text, file: "test.toml", names: Self.names).get()
        #expect(config.sim.iommus.map(\.sharesNestParent) == [nil, false, nil, true])
        let topology = BackendFactory.simTopology(config.sim)
        #expect(topology.iommus.map(\.sharesNestParent) == [true, false, false, true])
        // The built-in topology: sim-iommu0 (VT-d), sim-iommu1 (SMMUv3), sim-iommu2 (mock).
        #expect(BackendFactory.simTopology(DaemonConfig.defaults.sim).iommus.map(\.sharesNestParent) == [false, false, true])
    }

    @Test func aWrongTypeIsAnErrorNamingTheKey() {
        let text = """
            [[sim.iommu]]
            name = "m0"
            driver = "selftest-mock"
            shares_nest_parent = "yes"
            """
        guard case .failure(let error) = DaemonConfig.parse(text, file: "test.toml", names: Self.names) else {
            Issue.record("a string for shares_nest_parent was accepted")
            return
        }
        #expect("\(error)".contains("shares_nest_parent"), "\(error)")
    }
}
