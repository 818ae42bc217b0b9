#include "linger_helpers.h"

#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

int ciommufd_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

int ciommufd_linger(int fd, int wake_fd, long usec) {
    struct pollfd fds[2] = {
        { .fd = fd, .events = POLLIN },
        { .fd = wake_fd, .events = POLLIN },
    };
    struct timespec timeout = { .tv_sec = usec / 1000000, .tv_nsec = (usec % 1000000) * 1000 };
    int rc = ppoll(fds, wake_fd >= 0 ? 2 : 1, &timeout, NULL);
    if (wake_fd >= 0 && fds[1].revents) {
        uint64_t drained;
        (void)!read(wake_fd, &drained, sizeof drained);
    }
    return rc > 0 && fds[0].revents != 0;
}

void ciommufd_eventfd_signal(int wake_fd) {
    uint64_t one = 1;
    (void)!write(wake_fd, &one, sizeof one);
}
