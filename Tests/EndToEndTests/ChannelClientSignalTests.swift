import CTestIdentity
import Foundation
import IommufdChannel
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `ChannelClient.receive` waits for its deadline, not for the first signal: a signal handled
/// without SA_RESTART (libFuzzer's alarm, a VMM's timers) makes `poll` fail with EINTR, which
/// once read as "no answer within the timeout" and made the channel fuzzer report hangs that
/// were none.
@Suite("ChannelClient and signals")
struct ChannelClientSignalTests {
    @Test("a signal during receive does not end the wait")
    func receiveSurvivesSignals() throws {
        // A real-time signal of its own: SIGUSR1/SIGUSR2 are SystemdTests' (sent to the whole
        // process, they would land in this thread's handler while it runs).
        #expect(test_install_interrupting_signal() == 0)
        // This thread must take the signal (a runtime may start test threads with it blocked);
        // it gets its old mask back at the end.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, test_interrupt_signal())
        var previous = sigset_t()
        #expect(pthread_sigmask(SIG_UNBLOCK, &unblock, &previous) == 0)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
        let client = ChannelClient(adopting: pair[0])
        let peer = pair[1]
        defer { close(peer) }

        // Another thread interrupts this one's wait ten times, then answers.
        let me = test_current_thread()
        let interrupter = Thread {
            for _ in 0..<10 {
                usleep(20_000)
                _ = test_interrupt_thread(me)
            }
            var header = [UInt8](repeating: 0, count: 16)
            header[0] = 42  // id 42
            header[8] = 1  // op 1 (HELLO), flags 0, size 0
            _ = header.withUnsafeBytes { send(peer, $0.baseAddress, $0.count, 0) }
        }
        interrupter.start()
        let reply = try #require(try client.receive(timeoutMilliseconds: 10_000))
        #expect(reply.header.id == 42)
        #expect(reply.header.op == 1)
    }
}
