#include "spin_helpers.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

int ciommufd_wait_readable(int fd, int wake_fd, long long timeout_ns) {
    struct pollfd fds[2] = {
        { .fd = fd, .events = POLLIN },
        { .fd = wake_fd, .events = POLLIN },
    };
    nfds_t n = wake_fd >= 0 ? 2 : 1;
    int rc;
    if (timeout_ns == 0) {
        rc = poll(fds, n, 0);
    } else if (timeout_ns < 0) {
        rc = ppoll(fds, n, NULL, NULL);
    } else {
        struct timespec timeout = { .tv_sec = timeout_ns / 1000000000LL, .tv_nsec = timeout_ns % 1000000000LL };
        rc = ppoll(fds, n, &timeout, NULL);
    }
    if (rc < 0) return -1;
    if (n == 2 && fds[1].revents) {
        uint64_t drained;
        (void)!read(wake_fd, &drained, sizeof drained);
    }
    if (fds[0].revents & POLLNVAL) {
        errno = EBADF;
        return -1;
    }
    if (fds[0].revents) return 2;
    if (n == 2 && fds[1].revents) return 1;
    return 0;
}
