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

/* The spinning wait that used to be here is IommufdCore's AdaptiveSpin over
 * ciommufd_wait_readable (spin_helpers.h). */

/* Signals an eventfd made by ciommufd_eventfd. */
void ciommufd_eventfd_signal(int wake_fd);

#endif
