#include "sys_helpers.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int ifd_ioctl(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }

int ifd_open(const char *path, int flags) { return open(path, flags); }

int ifd_gettid(void) { return (int)syscall(SYS_gettid); }

int ifd_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

int ifd_memfd_create(const char *name, unsigned int flags) {
    return memfd_create(name, flags | MFD_CLOEXEC);
}

void *ifd_mmap_anonymous(size_t length) {
    void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *ifd_mmap_shared(int fd, size_t length, off_t offset) {
    void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
    return p == MAP_FAILED ? NULL : p;
}

int ifd_munmap(void *addr, size_t length) { return munmap(addr, length); }

int ifd_kcmp_file(int fd1, int fd2) {
    pid_t self = getpid();
    return (int)syscall(SYS_kcmp, self, self, 0 /* KCMP_FILE */, fd1, fd2);
}
