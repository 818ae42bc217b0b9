import Foundation
import IommufdBroker
import IommufdCore
import IommufdSim
import Logging
import Testing

@testable import IommufdDaemon

#if canImport(Glibc)
import Glibc
#endif

@Suite("Test hooks: config gate and test.device_write on the simulator")
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

    /// The hook marks the pages dirty through the device's HWPT, which dirty.read then reports;
    /// refused (EINVAL from the backend) while tracking is off, and for a detached device.
    @Test func deviceWriteShowsUpInDirtyRead() throws {
        let sim = try SimBackend()
        let access = AccessControl(rules: [AccessRule(.uid(0), role: .admin, name: "root")], rootIsAdmin: false, groupsOf: { _, _ in [] })
        var logger = Logger(label: "test-hooks")
        logger.logLevel = .error
        let broker = try Broker(backend: sim, config: BrokerConfig(access: access, allowList: .all, defaults: OwnerPolicy()), logger: logger)
        let root = try #require(access.resolve(uid: 0, gid: 0, pid: 1))
        let page = Broker.pageSize
        let base: UInt64 = 0x100_0000

        _ = try broker.ownerCreate(root, OwnerCreateParams(name: "vm-1"))
        let ioas = try broker.ioasCreate(root, IOASCreateParams(owner: "vm-1", hugePages: false)).ioas
        let fd = memfd_create("test-hooks", 0)
        try #require(fd >= 0)
        defer { close(fd) }
        try #require(ftruncate(fd, off_t(16 * page)) == 0)
        _ = try broker.ioasMap(root, IOASMapParams(ioas: ioas, length: 16 * page, iova: base), fd: fd)
        let write = TestDeviceWriteParams(device: "sim0", iova: base + 2 * page, length: 3 * page)

        #expect(throws: BrokerError.self) { try TestHooks.deviceWrite(root, write, broker: broker, backend: sim) }
        let attached = try broker.deviceAttach(root, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas, dirty: .required))
        do {
            _ = try TestHooks.deviceWrite(root, write, broker: broker, backend: sim)
            Issue.record("a device write with dirty tracking off was accepted")
        } catch let error as IommuError {
            #expect(error.errno == .EINVAL)
        }
        _ = try broker.dirtyStart(root, DirtyParams(ioas: ioas))
        let result = try TestHooks.deviceWrite(root, write, broker: broker, backend: sim)
        #expect(result.hwpt == attached.pt && result.pageSize == page)
        let read = try broker.dirtyRead(root, DirtyReadParams(ioas: ioas, iova: base, length: 16 * page))
        #expect(read.result.runs == [DirtyRun(iova: base + 2 * page, length: 3 * page)])
    }
}
