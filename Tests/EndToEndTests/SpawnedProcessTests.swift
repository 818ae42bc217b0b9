import Foundation
import TestProcesses
import Testing

/// The launcher every end-to-end test uses must give its children the signal state a shell
/// would: nothing blocked, SIGTERM not ignored — whatever the test runner's thread had.
@Suite("Spawned test processes")
struct SpawnedProcessTests {
    @Test func childrenStartWithNoSignalBlockedOrIgnored() throws {
        // Block SIGTERM in this thread, as a runner thread may; the child must not inherit it.
        var blocked = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGTERM)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        // grep reads its own status (a shell would not do: dash clears its signal mask at start).
        let result = try SpawnedProcess.run("/bin/grep", ["-E", "^Sig(Blk|Ign):", "/proc/self/status"])
        pthread_sigmask(SIG_SETMASK, &previous, nil)

        #expect(result.status == 0, "\(result.error)")
        var masks: [String: UInt64] = [:]
        for line in result.output.split(separator: "\n") {
            let parts = line.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, let value = UInt64(parts[1], radix: 16) { masks[parts[0]] = value }
        }
        let term = UInt64(1) << (SIGTERM - 1)
        let blockedInChild = try #require(masks["SigBlk"], "no SigBlk in: \(result.output)")
        let ignoredInChild = try #require(masks["SigIgn"], "no SigIgn in: \(result.output)")
        #expect(blockedInChild == 0, "the child starts with signals blocked: SigBlk \(String(blockedInChild, radix: 16))")
        #expect(ignoredInChild & term == 0, "the child starts with SIGTERM ignored")
    }
}
