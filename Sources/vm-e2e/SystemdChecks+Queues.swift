#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC

// Two queues of one owner across a restart under the real systemd. Every iommufd queue fd is a
// file of the one anonymous inode, with the same flags and offset; a store that tells fds apart
// by those alone (the test supervisor's model of systemd 252 without kcmp) keeps only the first,
// so the daemon stores each queue fd in a capsule of its own inode (FDCapsule, docs/queues.md).
// Here two fault queues (`fault.create` needs only an owner) go through systemctl restart and
// systemctl kill -s KILL (whileDMA's recovery check fails on a queue that could not be taken
// back), and afterwards both are listed, connected to the holders this process kept, and
// released by the kernel. With the capsule turned off these checks pass too: Debian's systemd
// 252 in the test VM does not merge the two raw fds.
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
