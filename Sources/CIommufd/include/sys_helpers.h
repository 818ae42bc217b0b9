/* System calls Swift cannot call directly (variadic ioctl/open) or that need _GNU_SOURCE. */
#ifndef CIOMMUFD_SYS_HELPERS_H
#define CIOMMUFD_SYS_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ioctl(2) with a fixed argument list. Returns -1 with errno set on failure. */
int ifd_ioctl(int fd, unsigned long request, void *arg);

/* open(2) with a fixed argument list (no mode: never creates). */
int ifd_open(const char *path, int flags);

/* gettid(2): the calling thread's ID (for /proc/self/task/TID). */
int ifd_gettid(void);

/* eventfd(2), counter 0, EFD_CLOEXEC | EFD_NONBLOCK: a wake-up a thread polls beside its socket. */
int ifd_eventfd(void);

/* memfd_create(2) with MFD_CLOEXEC. */
int ifd_memfd_create(const char *name, unsigned int flags);

/* Anonymous private read/write mapping of `length` bytes; NULL (errno set) on failure. */
void *ifd_mmap_anonymous(size_t length);

/* Shared read/write mapping of `length` bytes of `fd` at `offset`; NULL (errno set) on failure. */
void *ifd_mmap_shared(int fd, size_t length, off_t offset);

int ifd_munmap(void *addr, size_t length);

/* kcmp(2) KCMP_FILE on two fds of this process: 0 when they are the same open file description,
 * 1 or 2 when not (ordering), -1 with errno when kcmp is unavailable (ENOSYS, EPERM). */
int ifd_kcmp_file(int fd1, int fd2);

#endif
