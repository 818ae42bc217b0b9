/* Waiting briefly for a client's next request on the thread that answered the last one
 * (IommufdRPC's RPCLingerGate, IommufdChannel). ppoll(2) and eventfd(2) need _GNU_SOURCE
 * declarations Swift's Glibc module does not export. */
#ifndef CIOMMUFD_LINGER_HELPERS_H
#define CIOMMUFD_LINGER_HELPERS_H

/* A non-blocking, close-on-exec eventfd; -1 with errno on failure. */
int ciommufd_eventfd(void);

/* Waits up to `usec` microseconds for `fd` to become readable (or hung up), or for `wake_fd`
 * (an eventfd, -1 for none) to be signalled, which is then drained. Returns 1 when `fd` is
 * readable, 0 otherwise (timeout, woken, EINTR, error). */
int ciommufd_linger(int fd, int wake_fd, long usec);

/* ciommufd_linger with a busy phase first: for up to `spin_usec` microseconds (0: none) polls
 * `fd` and `wake_fd` without sleeping (poll with a zero timeout, then sched_yield, so a thread
 * runnable on the same CPU — the client, perhaps — goes first), then sleeps in ppoll for the
 * rest of `usec`. A thread that sleeps must be woken by the client's write, and on a VM whose
 * idle vCPUs halt that wake-up is most of a small request's round trip; a thread still spinning
 * sees the request at once. Returns 2 when `fd` became readable while spinning, 1 when it did
 * while sleeping, 0 otherwise (timeout, woken through `wake_fd`, error); `*waited_ns` is the
 * time until then. `*spin_overran` is set to 1 when the busy phase lasted more than twice
 * `spin_usec`: the thread lost the CPU while spinning (another thread was runnable there), so
 * spinning is only a cost on this machine for now; else 0. */
int ciommufd_linger_spin(int fd, int wake_fd, long spin_usec, long usec, long *waited_ns, int *spin_overran);

/* Signals an eventfd made by ciommufd_eventfd. */
void ciommufd_eventfd_signal(int wake_fd);

#endif
