#if canImport(Glibc)
import Glibc
#endif
import IommufdCore
import IommufdRPC
import Testing

@testable import IommuctlKit

// MARK: p2p

@Suite("ioas map --fd passes an inherited descriptor (a dma-buf has no path)")
struct IOASMapFDTests {
    /// A daemon whose ioas.map reports what it got and answers as for a dma-buf when `p2p`.
    func mapDaemon(p2p: Bool) throws -> (FakeDaemon, Recorder<ReceivedFile>) {
        let daemon = try FakeDaemon()
        let seen = Recorder<ReceivedFile>()
        daemon.on("ioas.map") { [seen] call in
            let fd = try call.fds.take(reference: call.params?["fd"])
            defer { close(fd) }
            seen.append(inspect(fd, prefixLength: 6))
            let length = call.params?["length"]?.uint64Value ?? 0
            var answer: [String: JSONValue] = ["ioas": call.params?["ioas"] ?? .null, "iova": .unsigned(0x4000_0000), "length": .unsigned(length), "owner_pinned_bytes": 0]
            if p2p { answer["owner_p2p_bytes"] = .unsigned(length) }
            return RPCResult(.object(answer))
        }
        return (daemon, seen)
    }

    @Test("the descriptor's whole size goes by default; a dma-buf answer says P2P, not pinned")
    func inheritedDescriptor() throws {
        let (daemon, seen) = try mapDaemon(p2p: true)
        let fd = try Memfd.create(name: "iommuctl-test-fd")
        defer { close(fd) }
        #expect(ftruncate(fd, 16384) == 0)
        #expect(pwrite(fd, Array("DMABUF".utf8), 6, 0) == 6)
        let run = daemon.run(["ioas", "map", "3", "--fd", "\(fd)"])
        #expect(run.code == 0, "\(run.error)")
        #expect(seen.all == [ReceivedFile(size: 16384, accessMode: O_RDWR, prefix: "DMABUF")])
        #expect(daemon.params(of: "ioas.map").first??["length"] == 16384)
        #expect(run.output == "mapped 16 KiB of descriptor \(fd) at IOVA 0x40000000-0x40003fff in IOAS 3 (read-write; P2P dma-buf, not pinned; the owner now has 16 KiB of P2P mappings)")
        // iommuctl passed a duplicate: its own descriptor is still open.
        #expect(fcntl(fd, F_GETFD) >= 0)
    }

    @Test("a descriptor iommuctl does not have fails locally (exit 11); --fd with a FILE is a usage error")
    func refusals() throws {
        let (daemon, _) = try mapDaemon(p2p: false)
        let closed = daemon.run(["ioas", "map", "3", "--fd", "987"])
        #expect(closed.code == CtlExit.localIO.rawValue)
        #expect(closed.error.contains("--fd 987: iommuctl has no such open descriptor"))
        #expect(daemon.run(["ioas", "map", "3", "/tmp/x", "--fd", "0"]).code == CtlExit.usage.rawValue)
        #expect(daemon.run(["ioas", "map", "3", "--memfd", "4K", "--fd", "0"]).code == CtlExit.usage.rawValue)
        #expect(daemon.methodsCalled.isEmpty)
    }
}
