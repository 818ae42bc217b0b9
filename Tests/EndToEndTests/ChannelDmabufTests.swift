#if canImport(Glibc)
import Glibc
#endif
import IommufdChannel
import IommufdRPC
import TestProcesses
import Testing

// MARK: p2p

@Suite("End to end: a dma-buf over the VMM channel")
struct ChannelDmabufTests {
    @Test("MEM_REGISTER takes a dma-buf, MAP of it is P2P (not pinned), the control plane sees it as such")
    func dmabufOverTheChannel() throws {
        let daemon = try DaemonProcess()
        let mgr = try daemon.client()
        _ = try mgr.call("owner.create", ["name": "vm-p2p"])
        let ioas = try #require(try mgr.call("ioas.create", ["owner": "vm-p2p"])["ioas"]?.int)
        let (ch, _) = try ChannelE2ETests.delegate(mgr, "vm-p2p")
        let (got, fds) = try mgr.call("test.dmabuf_get", params: ["length": 16384], timeout: .seconds(30))
        let dmabuf = try #require(fds.first, "test.dmabuf_get: \(got)")
        defer { close(dmabuf) }
        try ch.register(index: 3, memfd: dmabuf)
        let mapped = try ch.map([.init(ioas: UInt32(ioas), memIndex: 3, offset: 0, length: 16384, iova: 0x100_0000)])
        #expect(mapped.iovas == [0x100_0000] && mapped.pinned == 0)
        let info = try mgr.call("ioas.info", ["ioas": .int(ioas)])
        #expect(info["p2p_bytes"]?.uint == 16384 && info["pinned_bytes"]?.uint == 0)
        #expect(info["mappings"]?.arrayValue?.first?["source"]?.stringValue == "dmabuf")
        // Past the end of the dma-buf: refused with the reason.
        let beyond = ChannelE2ETests.failure { _ = try ch.map([.init(ioas: UInt32(ioas), memIndex: 3, offset: 0x1000, length: 16384, iova: 0x200_0000)]) }
        #expect(beyond?.message.contains("beyond the end of the dma-buf") == true, "\(String(describing: beyond))")
        _ = try mgr.call("owner.release", ["name": "vm-p2p"])
    }
}
