#include "linger_helpers.h"

#include <poll.h>
#include <sched.h>
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

static long long monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int ciommufd_linger_spin(int fd, int wake_fd, long spin_usec, long usec, long *waited_ns, int *spin_overran) {
    struct pollfd fds[2] = {
        { .fd = fd, .events = POLLIN },
        { .fd = wake_fd, .events = POLLIN },
    };
    nfds_t n = wake_fd >= 0 ? 2 : 1;
    long long start = monotonic_ns();
    long long spin_end = start + (long long)spin_usec * 1000;
    long long end = start + (long long)usec * 1000;
    int result = 0;
    if (spin_overran) *spin_overran = 0;
    if (spin_usec > 0) {
        for (;;) {
            int rc = poll(fds, n, 0);
            long long t = monotonic_ns();
            if (spin_overran && t - start > 2LL * spin_usec * 1000) *spin_overran = 1;
            if (rc != 0) {
                if (rc > 0 && fds[0].revents != 0) result = 2;
                goto done;
            }
            if (t >= spin_end || t >= end) break;
            /* Let anything runnable on this CPU go first: the client itself, when both share
             * one CPU, could not send its request while this thread kept the CPU. */
            sched_yield();
        }
    }
    long long left = end - monotonic_ns();
    if (left > 0) {
        struct timespec timeout = { .tv_sec = left / 1000000000LL, .tv_nsec = left % 1000000000LL };
        int rc = ppoll(fds, n, &timeout, NULL);
        if (rc > 0 && fds[0].revents != 0) result = 1;
    }
done:
    if (wake_fd >= 0 && fds[1].revents) {
        uint64_t drained;
        (void)!read(wake_fd, &drained, sizeof drained);
    }
    if (waited_ns) *waited_ns = (long)(monotonic_ns() - start);
    return result;
}

void ciommufd_eventfd_signal(int wake_fd) {
    uint64_t one = 1;
    (void)!write(wake_fd, &one, sizeof one);
}
