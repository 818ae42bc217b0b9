/* The confinement's test (iommufdd_confine and the iommufdd-confine wrapper), run by
 * Tests/EndToEndTests/ConfineTests.swift. No root and no VFIO device needed: seccomp looks at
 * the ioctl's request number before any driver does, so on /dev/null an unconfined process gets
 * ENOTTY (null has no ioctls) and a confined one EPERM (the filter) for the four denied numbers.
 *
 * usage: confine-test WRAPPER     every check (WRAPPER: the built iommufdd-confine)
 *        confine-test --probe     prints "probe REQUEST ERRNO" for each request of the table
 *                                 below on /dev/null, for a process started by the wrapper */
#define _GNU_SOURCE
#include <iommufdd.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* VFIO ioctls the filter must leave alone (a VMM needs them on its device fd). */
static const struct { unsigned long request; const char *name; } allowed[] = {
    { 0x3b00 + 100 + 7, "VFIO_DEVICE_GET_INFO" },
    { 0x3b00 + 100 + 11, "VFIO_DEVICE_RESET" },
    { 0x3b00 + 100 + 12, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO" },
    { 0x3b00 + 100 + 21, "VFIO_DEVICE_FEATURE" },
};
#define NALLOWED (sizeof(allowed) / sizeof(allowed[0]))

/* ioctl(fd, request) as the raw system call, so the upper half of the register is what we say. */
static int raw_ioctl(int fd, unsigned long request) {
    long rc = syscall(SYS_ioctl, fd, request, 0UL);
    return rc < 0 ? errno : 0;
}

#if defined(__x86_64__)
/* The 32-bit ioctl (number 54) through int 0x80: the compat ABI a 64-bit process can use too. */
static int compat_ioctl(int fd, unsigned long request) {
    long rc;
    __asm__ volatile("int $0x80" : "=a"(rc) : "a"(54L), "b"((long)fd), "c"((long)request), "d"(0L) : "memory");
    return rc < 0 ? (int)-rc : 0;
}
#endif

static int probe(void) {
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0) return 3;
    for (int i = 0; i < IOMMUFDD_DENIED_IOCTLS; i++)
        printf("probe %s %d\n", iommufdd_denied_ioctls[i].name, raw_ioctl(null, iommufdd_denied_ioctls[i].request));
    for (size_t i = 0; i < NALLOWED; i++) printf("probe %s %d\n", allowed[i].name, raw_ioctl(null, allowed[i].request));
    printf("probe no_new_privs %d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    return 0;
}

/* The checks a confined process makes on itself; its exit status is the number of failures. */
static int compat_unconfined; /* what the 32-bit ABI answered before confining */

static void confined_child(int null) {
    struct iommufdd_error err;
    CHECK(iommufdd_confine(&err) == 0, "iommufdd_confine: %s: %s", err.name, err.message);
    CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs is set");
    for (int i = 0; i < IOMMUFDD_DENIED_IOCTLS; i++) {
        unsigned long r = iommufdd_denied_ioctls[i].request;
        const char *n = iommufdd_denied_ioctls[i].name;
        CHECK(ioctl(null, r) == -1 && errno == EPERM, "%s: confined, ioctl gives errno %d, not EPERM", n, errno);
        /* Junk in the upper 32 bits: the kernel runs the same ioctl, the filter denies it too. */
        CHECK(raw_ioctl(null, 0xdeadbeef00000000UL | r) == EPERM, "%s with the upper half set: not EPERM", n);
#if defined(__x86_64__)
        /* The 32-bit ABI (when this kernel has it: unconfined it answered ENOTTY) is denied too. */
        if (compat_unconfined == ENOTTY) CHECK(compat_ioctl(null, r) == EPERM, "%s through the 32-bit ABI is not EPERM", n);
#endif
    }
    for (size_t i = 0; i < NALLOWED; i++)
        CHECK(raw_ioctl(null, allowed[i].request) == ENOTTY, "%s must still reach the driver (ENOTTY on /dev/null)", allowed[i].name);
    /* Everything else still works: files, pipes, processes. */
    int p[2];
    CHECK(pipe(p) == 0 && write(p[1], "ok", 2) == 2, "pipe");
    char buf[2];
    CHECK(read(p[0], buf, 2) == 2 && memcmp(buf, "ok", 2) == 0, "read back");
    int n = -1;
    CHECK(ioctl(p[0], FIONREAD, &n) == 0 && n == 0, "another ioctl (FIONREAD) still works");
    /* Confining again stacks a second filter: still fine. */
    CHECK(iommufdd_confine(NULL) == 0, "confining twice");
    /* The filter is inherited: a child of the confined process is confined too. */
    pid_t grandchild = fork();
    if (grandchild == 0) _exit(raw_ioctl(null, iommufdd_denied_ioctls[2].request) == EPERM ? 0 : 1);
    int status = 0;
    CHECK(grandchild > 0 && waitpid(grandchild, &status, 0) == grandchild && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "a child of a confined process is confined");
    fflush(stdout);
    _exit(failed > 255 ? 255 : failed);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--probe") == 0) return probe();
    if (argc != 2) {
        fprintf(stderr, "usage: %s WRAPPER | --probe\n", argv[0]);
        return 2;
    }
    const char *wrapper = argv[1];
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK(null >= 0, "open /dev/null");

    /* Unconfined: every number reaches the driver, which knows none of them. */
    CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 0, "the test starts unconfined (no_new_privs already set)");
    for (int i = 0; i < IOMMUFDD_DENIED_IOCTLS; i++) {
        CHECK(ioctl(null, iommufdd_denied_ioctls[i].request) == -1 && errno == ENOTTY, "%s: unconfined, errno %d, not ENOTTY", iommufdd_denied_ioctls[i].name, errno);
        CHECK(raw_ioctl(null, 0xdeadbeef00000000UL | iommufdd_denied_ioctls[i].request) == ENOTTY, "the kernel ignores the upper half");
    }
#if defined(__x86_64__)
    compat_unconfined = compat_ioctl(null, iommufdd_denied_ioctls[0].request);
    printf("the 32-bit ioctl ABI answers %d unconfined%s\n", compat_unconfined, compat_unconfined == ENOTTY ? "" : " (no IA32 emulation: the compat checks are not made)");
#endif
    CHECK(iommufdd_denied_ioctls[0].request == 0x3b71 && iommufdd_denied_ioctls[1].request == 0x3b76 &&
          iommufdd_denied_ioctls[2].request == 0x3b77 && iommufdd_denied_ioctls[3].request == 0x3b78, "the numbers of include/uapi/linux/vfio.h");

    /* The library call, in a child (a filter cannot be removed). */
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) confined_child(null);
    int status = 0;
    CHECK(child > 0 && waitpid(child, &status, 0) == child, "wait");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the confined child failed %d checks (status 0x%x)", WEXITSTATUS(status), status);

    /* This process is still unconfined. */
    CHECK(raw_ioctl(null, iommufdd_denied_ioctls[2].request) == ENOTTY, "the parent stays unconfined");

    /* The exec wrapper: the probe it runs sees EPERM for the four and ENOTTY for the rest. */
    char command[4096];
    snprintf(command, sizeof(command), "'%s' -- '%s' --probe", wrapper, argv[0][0] == '/' ? argv[0] : realpath(argv[0], NULL));
    FILE *out = popen(command, "r");
    CHECK(out != NULL, "popen %s", command);
    int perm = 0, notty = 0, nnp = -1;
    char line[256];
    while (out && fgets(line, sizeof(line), out)) {
        char name[128];
        int e;
        if (sscanf(line, "probe %127s %d", name, &e) != 2) continue;
        if (strcmp(name, "no_new_privs") == 0) { nnp = e; continue; }
        int denied = 0;
        for (int i = 0; i < IOMMUFDD_DENIED_IOCTLS; i++) denied |= strcmp(name, iommufdd_denied_ioctls[i].name) == 0;
        if (denied) { CHECK(e == EPERM, "wrapped: %s gives %d", name, e); perm += e == EPERM; }
        else { CHECK(e == ENOTTY, "wrapped: %s gives %d", name, e); notty += e == ENOTTY; }
    }
    CHECK(out && pclose(out) == 0, "the wrapped probe exits 0");
    CHECK(perm == IOMMUFDD_DENIED_IOCTLS && notty == (int)NALLOWED && nnp == 1, "wrapped: %d EPERM, %d ENOTTY, no_new_privs %d", perm, notty, nnp);

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
