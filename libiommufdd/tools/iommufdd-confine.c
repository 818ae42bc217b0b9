/* iommufdd-confine: runs a command confined (iommufdd_confine, docs/SECURITY.md "Device fds"),
 * for a VMM that cannot call the library itself. The filter is installed before exec, so the
 * command and everything it starts get EPERM for VFIO_DEVICE_BIND_IOMMUFD,
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_IOMMUFD_PT and VFIO_DEVICE_PCI_HOT_RESET on
 * any fd; its fds (the channel, device fds passed by the manager) are inherited as they are.
 *
 * usage: iommufdd-confine [--] CMD [ARG...]
 * Exit status: the command's (it replaces this process); 125 when confining failed (nothing was
 * run), 127 when CMD cannot be executed, 2 for a usage error. */
#define _GNU_SOURCE
#include <iommufdd.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int first = 1;
    if (first < argc && strcmp(argv[first], "--") == 0) first++;
    if (first >= argc || (argv[first][0] == '-' && argv[first - 1][0] != '-')) {
        fprintf(stderr,
                "usage: iommufdd-confine [--] CMD [ARG...]\n"
                "Runs CMD with a seccomp filter that denies (EPERM) the VFIO ioctls that move a device to\n"
                "another IOAS or reset other devices: VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_ATTACH_IOMMUFD_PT,\n"
                "VFIO_DEVICE_DETACH_IOMMUFD_PT, VFIO_DEVICE_PCI_HOT_RESET.\n");
        return 2;
    }
    struct iommufdd_error err;
    if (iommufdd_confine(&err) != 0) {
        fprintf(stderr, "iommufdd-confine: %s: %s; %s was not run\n", err.name, err.message, argv[first]);
        return 125;
    }
    execvp(argv[first], argv + first);
    int e = errno;
    fprintf(stderr, "iommufdd-confine: cannot execute %s: %s%s\n", argv[first], strerror(e),
            e == ENOENT ? " (not found: give a path, or check PATH)" : "");
    return 127;
}
