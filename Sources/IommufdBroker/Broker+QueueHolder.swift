#if canImport(Glibc)
import Glibc
#endif

// MARK: i14audit

extension Broker {
    /// Whether the holder of a queue's fd still has it open: the daemon's end of the socket pair
    /// has not seen the other end close. The pump notices a hang-up on its own thread and then
    /// forgets the relay (`pumpRelay`); until it has, `queue.list` asks the socket itself, so
    /// `connected` is true of the moment it is asked (a holder that just exited shows `no`).
    static func holderConnected(_ relayFD: Int32) -> Bool {
        let rdhup: Int16 = 0x2000  // POLLRDHUP (a _GNU_SOURCE name)
        var p = pollfd(fd: relayFD, events: rdhup, revents: 0)
        guard poll(&p, 1, 0) == 1 else { return true }
        return p.revents & (Int16(POLLHUP | POLLERR | POLLNVAL) | rdhup) == 0
    }
}
