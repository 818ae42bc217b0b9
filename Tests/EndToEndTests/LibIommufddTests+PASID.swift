import Foundation
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: pasidch

extension LibIommufddTests {
    @Test("the C test program attaches, replaces and detaches PASIDs through libiommufdd (channel 1.2), refused as the control plane refuses")
    func pasidTest() throws {
        try Self.make([])
        var config = TestConfig()
        config.allow = ["pasid-pci0", "mock-pci1"]
        config.extra = """
            [[sim.iommu]]
            name = "mock0"
            driver = "selftest-mock"
            nesting = true

            [[sim.device]]
            name = "pasid-pci0"
            iommu = "mock0"
            pci_address = "0000:01:00.0"
            pasid_width = 20

            [[sim.device]]
            name = "mock-pci1"
            iommu = "mock0"
            pci_address = "0000:02:00.0"
            """
        let daemon = try DaemonProcess(config: config)
        let mgr = try daemon.client()
        _ = try mgr.call("owner.create", ["name": "vm-p"])
        let ioas = try #require(try mgr.call("ioas.create", ["owner": "vm-p"])["ioas"]?.int)
        let rid = try #require(try mgr.call("hwpt.alloc", ["ioas": .int(ioas), "device": "pasid-pci0", "pasid": true])["hwpt"]?.int)
        _ = try mgr.call("device.attach", ["owner": "vm-p", "device": "pasid-pci0", "hwpt": .int(rid)])
        // The second HWPT is the program's: a nested one it allocates on this nest parent with
        // NESTED_ALLOC_FLAGS and the PASID flag (branch pasidnest).
        let parent = try #require(try mgr.call("hwpt.alloc", ["ioas": .int(ioas), "device": "pasid-pci0", "nest_parent": true])["hwpt"]?.int)
        let plain = try #require(try mgr.call("hwpt.alloc", ["ioas": .int(ioas), "device": "pasid-pci0"])["hwpt"]?.int)
        // Another owner's HWPT, which the program must not reach.
        _ = try mgr.call("owner.create", ["name": "vm-q"])
        let ioasQ = try #require(try mgr.call("ioas.create", ["owner": "vm-q"])["ioas"]?.int)
        let foreign = try #require(try mgr.call("device.attach", ["owner": "vm-q", "device": "mock-pci1", "ioas": .int(ioasQ)])["pt"]?.int)

        let (_, fds) = try mgr.call("owner.delegate", params: ["name": "vm-p"], timeout: .seconds(60))
        let channel = try #require(fds.first)
        defer { close(channel) }
        let program = Self.library + "/build/pasid-test"
        let arguments = ["3", "pasid-pci0", "\(rid)", "\(parent)", "\(plain)", "\(foreign)"]
        let r = getuid() == 0
            ? try SpawnedProcess.run("/usr/bin/setpriv", ["--reuid=\(TestUID.unlisted)", "--regid=\(TestUID.unlisted)", "--clear-groups", program] + arguments, inherit: [(channel, 3)])
            : try SpawnedProcess.run(program, arguments, inherit: [(channel, 3)])
        #expect(r.status == 0, "pasid-test failed (\(r.status)):\n\(r.output)\n\(r.error)")
        #expect(r.output.contains(" passed, 0 failed"), "\(r.output)")
        // What the program left is what the manager sees: PASID 5 on the nested HWPT it allocated
        // with the PASID flag, which hwpt.list shows as a nested HWPT on the parent, with pasid.
        let line = try #require(r.output.split(separator: "\n").first { $0.hasPrefix("pasid=5:") }, "\(r.output)")
        let other = try #require(Int64(line.dropFirst("pasid=5:".count)), "\(line)")
        let pasids = try mgr.call("device.info", ["device": "pasid-pci0"])["pasids"]?.arrayValue ?? []
        #expect(pasids.count == 1 && pasids.first?["pasid"]?.int == 5 && pasids.first?["hwpt"]?.int == other, "\(pasids)")
        let hwpts = try mgr.call("hwpt.list", ["owner": "vm-p"])["hwpts"]?.arrayValue ?? []
        let nested = try #require(hwpts.first { $0["hwpt"]?.int == other }, "\(hwpts)")
        #expect(nested["pasid"] == true && nested["nested"]?["parent"]?.int == parent, "\(nested)")
        let released = try mgr.call("owner.release", ["name": "vm-p"])
        #expect(released["released"] == true && released["destroyed"]?["pasid_attachment"]?.int == 1, "\(released)")
    }
}
