#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdRPC

// MARK: p2p

// A dma-buf mapping across the SIGKILL: the selftest exporter's dma-buf (test.dmabuf_get)
// mapped by ioas.map into an IOAS of its own owner before the state snapshot, so the
// same-objects check covers it; after the restart it is still P2P, and a revoke through the
// fd this client kept shows in ioas.info: the restarted daemon asks the kernel through the
// duplicate it took back from the fd store.
final class RestartDmabufState: @unchecked Sendable {
    static let shared = RestartDmabufState()
    var ioas: Int64?
    var iova: Int64?
    var fd: Int32 = -1
    static let owner = "vm-p2p"
    static let length: Int64 = 16384
}

extension RestartChecks {
    func dmabufBeforeKill() throws {
        let c = try connected()
        let s = RestartDmabufState.shared
        let (got, fds) = try c.json("test.dmabuf_get", ["length": .int(RestartDmabufState.length)])
        guard let fd = fds.first else { throw CheckFailure(description: "test.dmabuf_get answered \(got) without an fd") }
        s.fd = fd
        try expect(got["exporter"]?.stringValue == "iommufd" && got["size"]?.int64Value == RestartDmabufState.length, "test.dmabuf_get: \(got)")
        _ = try c.json("owner.create", ["name": .string(RestartDmabufState.owner)])
        let (created, _) = try c.json("ioas.create", ["owner": .string(RestartDmabufState.owner)])
        guard let ioas = created["ioas"]?.int64Value else { throw CheckFailure(description: "ioas.create: \(created)") }
        s.ioas = ioas
        let (mapped, _) = try c.json("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 0], "offset": 0, "length": .int(RestartDmabufState.length)], fds: [fd])
        s.iova = mapped["iova"]?.int64Value
        try expect(mapped["owner_p2p_bytes"]?.int64Value == RestartDmabufState.length && mapped["owner_pinned_bytes"]?.int64Value == 0, "ioas.map of the dma-buf: \(mapped)")
    }

    func dmabufAfterRestart() throws {
        let c = try connected()
        let s = RestartDmabufState.shared
        guard let ioas = s.ioas, s.fd >= 0 else { throw CheckFailure(description: "no dma-buf mapping was made before the kill") }
        defer { close(s.fd) }
        var (info, _) = try c.json("ioas.info", ["ioas": .int(ioas)])
        try expect(info["p2p_bytes"]?.int64Value == RestartDmabufState.length && info["pinned_bytes"]?.int64Value == 0, "ioas.info after the restart: \(info)")
        try expect(info["mappings"]?.arrayValue?.first?["source"]?.stringValue == "dmabuf" && info["mappings"]?.arrayValue?.first?["revoked"] == .bool(false), "the mapping after the restart: \(info)")
        _ = try c.json("test.dmabuf_revoke", ["fd": ["fd": 0], "revoked": true], fds: [s.fd])
        (info, _) = try c.json("ioas.info", ["ioas": .int(ioas)])
        try expect(info["revoked_mappings"]?.int64Value == 1 && info["mappings"]?.arrayValue?.first?["revoked"] == .bool(true), "ioas.info after a revoke, restarted daemon: \(info)")
        let (released, _) = try c.json("owner.release", ["name": .string(RestartDmabufState.owner)])
        try expect(released["released"] == .bool(true), "owner.release \(RestartDmabufState.owner): \(released)")
    }
}
