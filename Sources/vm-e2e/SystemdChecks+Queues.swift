#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC

// Two queues of one owner across a restart under the real systemd. Every iommufd queue fd is a
// file of the kernel's one anonymous inode, with the same flags; systemd 252's same_fd() without
// kcmp (this kernel has none: ENOSYS) compares file type, st_dev, st_ino and F_GETFL, and never
// takes a file of type 0 — fstat's answer for an anonymous inode (vm-e2e queues,
// queue-fd-identity) — for another, so it keeps two raw queue fds apart; systemd 256 would not
// (docs/queues.md, SystemdSameFD). The daemon stores each queue fd in a capsule of its own inode
// anyway (FDCapsule). Here two fault queues (`fault.create` needs only an owner) go through
// systemctl restart and systemctl kill -s KILL (whileDMA's recovery check fails on a queue that
// could not be taken back), and afterwards both are listed, connected to the holders this
// process kept, and released by the kernel. With the capsule turned off these checks pass too,
// as systemd 252's code says they must.
final class SystemdQueueState: @unchecked Sendable {
    static let shared = SystemdQueueState()
    var queues: [Int64] = []
    var holders: [Int32] = []
}

extension SystemdChecks {
    static let queueOwner = "vm-systemd-queues"

    func twoQueuesBeforeRestarts() throws {
        let c = try connected()
        _ = try c.json("owner.create", ["name": .string(Self.queueOwner)])
        let s = SystemdQueueState.shared
        for _ in 0..<2 {
            let (result, fds) = try c.json("fault.create", ["owner": .string(Self.queueOwner)])
            guard let id = result["queue"]?["queue"]?.int64Value, let fd = fds.first else {
                for fd in fds { close(fd) }
                throw CheckFailure(description: "fault.create answered \(result) with \(fds.count) fds")
            }
            s.queues.append(id)
            s.holders.append(fd)
        }
        let props = try show(Self.service, ["NFileDescriptorStore"])
        print("      fault queues \(s.queues) of \(Self.queueOwner); NFileDescriptorStore=\(props["NFileDescriptorStore"] ?? "-")")
    }

    func twoQueuesAfterRestarts() throws {
        let c = try connected()
        let s = SystemdQueueState.shared
        let (list, _) = try c.json("queue.list", ["owner": .string(Self.queueOwner)])
        let listed = list["queues"]?.arrayValue ?? []
        for id in s.queues {
            let q = listed.first { $0["queue"]?.int64Value == id }
            try expect(q != nil, "fault queue \(id) is gone after systemctl restart and kill -s KILL: \(list)")
            try expect(q?["connected"] == .bool(true), "fault queue \(id)'s holder is not connected after the restarts: \(q ?? nil)")
        }
        for fd in s.holders { close(fd) }
        s.holders = []
        // The kernel still has both: owner.release destroys them (IOMMU_DESTROY) without a failure.
        _ = try c.release(Self.queueOwner)
    }
}
