/* The waits of IommufdCore's AdaptiveSpin, for the RPC linger and the VMM channel (branch
 * chspin): one poll of a client's socket and an eventfd, with a timeout (0: do not sleep). */
#ifndef CIOMMUFD_SPIN_HELPERS_H
#define CIOMMUFD_SPIN_HELPERS_H

/* Waits up to `timeout_ns` nanoseconds (0: only checks; negative: no limit) for `fd` to become
 * readable (or hung up, or in error) or for `wake_fd` (an eventfd, -1 for none) to be signalled;
 * a signalled eventfd is drained. Returns 2 when `fd` is ready (whether or not `wake_fd` was
 * signalled too), 1 when only `wake_fd` was, 0 on timeout, -1 with errno on failure: EINTR,
 * ppoll's own errors, or EBADF when `fd` is not an open descriptor (POLLNVAL). */
int ciommufd_wait_readable(int fd, int wake_fd, long long timeout_ns);

#endif
