#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdRPC

// A fault queue across the SIGKILL (branch `queues`): its kernel fd and the daemon's end of the
// holder's socket stay in the fd store, the restarted daemon takes both back (recovery-clean
// checks it reported nothing), the holder's fd is still connected, and owner.release destroys
// the adopted queue (the kernel refuses with EBUSY while the daemon still holds its fd).
final class RestartQueueState: @unchecked Sendable {
    static let shared = RestartQueueState()
    var queue: Int64?
    var holderFD: Int32 = -1
}

extension RestartChecks {
    func queueBeforeKill() throws {
        let (result, fds) = try connected().json("fault.create", ["owner": .string(Self.owner)])
        guard let id = result["queue"]?["queue"]?.int64Value, let fd = fds.first else {
            throw CheckFailure(description: "fault.create answered \(result) with \(fds.count) fds")
        }
        RestartQueueState.shared.queue = id
        RestartQueueState.shared.holderFD = fd
        let names = supervisor.storedNames
        try expect(names.contains("queue.\(id)") && names.contains("queuerelay.\(id)"), "the fault queue's fds are not in the store: \(names)")
    }

    func queueAfterRestart() throws {
        guard let id = RestartQueueState.shared.queue else { throw CheckFailure(description: "no fault queue was made before the kill") }
        let (list, _) = try connected().json("queue.list", ["owner": .string(Self.owner)])
        // The owner also has the vEVENTQ of nested-veventq-before-kill (i14audit): find the fault queue by ID.
        let queues = (list["queues"]?.arrayValue ?? []).filter { $0["kind"]?.stringValue == "fault" }
        try expect(queues.count == 1 && queues[0]["queue"]?.int64Value == id, "queue.list after the restart: \(list)")
        try expect(queues[0]["connected"] == .bool(true), "the holder's fd is not connected after the restart: \(queues[0])")
        // The holder closes its fd: the restarted daemon's relay sees it go.
        close(RestartQueueState.shared.holderFD)
        var gone = false
        for _ in 0..<300 where !gone {
            let (l, _) = try connected().json("queue.list", ["owner": .string(Self.owner)])
            gone = l["queues"]?.arrayValue?.first { $0["queue"]?.int64Value == id }?["connected"] == .bool(false)
            if !gone { usleep(10_000) }
        }
        try expect(gone, "the restarted daemon did not see the holder close its fd")
    }
}
