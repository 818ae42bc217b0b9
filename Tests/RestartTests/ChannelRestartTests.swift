import Foundation
import IommufdBroker
import IommufdContract
import IommufdChannel
import IommufdCore
import IommufdRPC
import IommufdTestSupervisor
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("A VMM channel across a restart", .serialized)
struct ChannelRestartTests {
    @Test("SIGKILL: the VMM's channel fd goes on working; it registers its memfd again (ESTALE says when), and a revoke after the restart closes it")
    func channelSurvivesRestart() throws {
        let d = try SupervisedDaemon("channel-restart", config: "[daemon]\nbackend = \"sim\"\nlog_level = \"warning\"\n")
        defer { d.close() }
        let (sup, c) = (d.sup, d.client)
        _ = try c.raw("owner.create", OwnerCreateParams(name: "vm-1"))
        _ = try c.raw("owner.create", OwnerCreateParams(name: "vm-2"))
        let ioas = try c.call("ioas.create", IOASCreateParams(owner: "vm-1"), as: IOASCreateResult.self).ioas
        let (result, fds) = try c.rpc.call("owner.delegate", params: ["name": "vm-1"], timeout: .seconds(60))
        let channelID = try #require(result["channel"]?.uint64Value)
        #expect(fds.count == 1)
        let ch = ChannelClient(adopting: try #require(fds.first))
        let (other, otherFDs) = try c.rpc.call("owner.delegate", params: ["name": "vm-2"], timeout: .seconds(60))
        let ch2 = ChannelClient(adopting: try #require(otherFDs.first))
        #expect(sup.waitForStore { $0.contains(StoredFDName.channel(channelID)) })

        let ram = try makeMemfd(bytes: 1 << 20)
        defer { close(ram) }
        try ch.register(index: 1, memfd: ram)
        _ = try ch.map([.init(ioas: ioas, memIndex: 1, offset: 0, length: 0x4000, iova: 0x10_0000)])

        sup.kill9()
        try sup.start()
        try sup.waitReady(count: 2)

        // The same fd, served by the new daemon, still acting as vm-1.
        let hello = try ch.hello()
        #expect(hello.owner == "vm-1" && hello.channel == channelID)
        #expect(try ch2.hello().owner == "vm-2" && other["channel"]?.uint64Value == (try ch2.hello()).channel)
        // Registrations lived in the old process: the index answers ESTALE until registered again.
        do {
            _ = try ch.map([.init(ioas: ioas, memIndex: 1, offset: 0x4000, length: 0x4000, iova: 0x20_0000)])
            Issue.record("a map with an index registered before the restart succeeded")
        } catch let f as ChannelClient.Failure {
            #expect(f.reply.errno == ChannelWire.ESTALE && f.reply.name == ChannelWire.ErrorName.notRegistered)
        }
        try ch.register(index: 1, memfd: ram)
        _ = try ch.map([.init(ioas: ioas, memIndex: 1, offset: 0x4000, length: 0x4000, iova: 0x20_0000)])
        try c.reconnect()
        let info = try c.call("ioas.info", IOASInfoParams(ioas: ioas), as: IOASInfo.self)
        #expect(info.mappings.map(\.iova) == [0x10_0000, 0x20_0000] && info.pinnedBytes == 0x8000)
        let recovery = try c.raw("daemon.info", NoParams())["recovery"]?["journal"]
        #expect(recovery?["channels"]?.int64Value == 2)
        #expect((recovery?["problems"]?.arrayValue ?? []).isEmpty, "\(recovery?["problems"] ?? .null)")

        // Revoked after the restart: closed for the VMM, and gone from the fd store.
        let revoked = try c.raw("owner.revoke_channels", OwnerNameParams(name: "vm-1"))
        #expect(revoked["revoked"]?.int64Value == 1)
        #expect(ch.isClosedByDaemon())
        #expect(sup.waitForStore { !$0.contains(StoredFDName.channel(channelID)) })
        // The VMM hanging up drops its channel from the store too.
        ch2.close()
        #expect(sup.waitForStore { !$0.contains { $0.hasPrefix("channel.") } })
    }

    // MARK: chnested

    @Test("SIGKILL: a nested HWPT made and attached over the channel is taken back from the journal; the same channel fd invalidates, replaces and destroys it")
    func nestedFromTheChannelSurvivesSIGKILL() throws {
        let d = try SupervisedDaemon("channel-nested-restart", config: """
            [daemon]
            backend = "sim"
            log_level = "warning"
            [devices]
            allow = ["mock-pci0"]
            [[sim.iommu]]
            name = "mock0"
            driver = "selftest-mock"
            nesting = true
            [[sim.device]]
            name = "mock-pci0"
            iommu = "mock0"
            pci_address = "0000:01:00.0"

            """)
        defer { d.close() }
        let (sup, c) = (d.sup, d.client)
        _ = try c.raw("owner.create", OwnerCreateParams(name: "vm-n"))
        let ioas = try c.call("ioas.create", IOASCreateParams(owner: "vm-n"), as: IOASCreateResult.self).ioas
        _ = try c.raw("device.attach", DeviceAttachParams(owner: "vm-n", device: "mock-pci0", ioas: ioas))
        let parent = try c.call("hwpt.alloc", HWPTAllocParams(ioas: ioas, device: "mock-pci0", nestParent: true), as: HWPTInfo.self).hwpt
        let (result, fds) = try c.rpc.call("owner.delegate", params: ["name": "vm-n"], timeout: .seconds(60))
        let channelID = try #require(result["channel"]?.uint64Value)
        let ch = ChannelClient(adopting: try #require(fds.first))
        #expect(sup.waitForStore { $0.contains(StoredFDName.channel(channelID)) })
        let nested = try ch.nestedAllocSelftest(parent: parent, device: "mock-pci0", iotlb: 4)
        #expect(try ch.replace(device: "mock-pci0", pt: nested).pt == nested)
        let before = try c.call("hwpt.list", HWPTListParams(owner: "vm-n"), as: HWPTListResult.self)

        sup.kill9()
        try sup.start()
        try sup.waitReady(count: 2)

        // The same fd, the same nested HWPT, still attached.
        #expect(try ch.hello().owner == "vm-n")
        try c.reconnect()
        let after = try c.call("hwpt.list", HWPTListParams(owner: "vm-n"), as: HWPTListResult.self)
        #expect(after == before)
        #expect(after.hwpts.first { $0.hwpt == nested }?.devices == ["mock-pci0"])
        let recovery = try c.raw("daemon.info", NoParams())["recovery"]?["journal"]
        #expect((recovery?["problems"]?.arrayValue ?? []).isEmpty, "\(recovery?["problems"] ?? .null)")
        let inv = try ch.invalidate(target: nested, dataType: InvalidateDataType.selftest, entryLength: 8,
                                    entries: ChannelClient.selftestHWPTEntries([(1, 0)]))
        #expect(inv.done == 1 && inv.errno == 0)
        #expect(try ch.replace(device: "mock-pci0", pt: parent) == (parent, nested))
        try ch.hwptDestroy(nested)
        let end = try c.call("hwpt.list", HWPTListParams(owner: "vm-n"), as: HWPTListResult.self)
        #expect(end.hwpts.allSatisfy { $0.nested == nil }, "\(end.hwpts)")
        ch.close()
    }
}

/// The supervised daemon of a channel restart test: `config` written to a temporary file, the
/// daemon started under the test supervisor with it and ready, and a control client.
/// `close()` shuts the daemon down and removes the file.
final class SupervisedDaemon {
    let configPath: String
    let sup: Supervisor
    let client: Client

    init(_ name: String, config: String) throws {
        configPath = NSTemporaryDirectory() + "iommufdd-\(name)-\(getpid()).toml"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        do {
            sup = try Supervisor(daemonPath: try daemonBinary(), arguments: ["--config", configPath])
        } catch {
            try? FileManager.default.removeItem(atPath: configPath)
            throw error
        }
        do {
            try sup.start()
            try sup.waitReady(count: 1)
            client = try Client(path: sup.controlPath)
        } catch {
            sup.shutdown()
            try? FileManager.default.removeItem(atPath: configPath)
            throw error
        }
    }

    func close() {
        sup.shutdown()
        try? FileManager.default.removeItem(atPath: configPath)
    }
}
