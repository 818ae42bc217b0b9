#define _GNU_SOURCE
#include "test_identity.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

struct connect_request {
    const char *path;
    uid_t uid;
    gid_t gid;
    int fd;
    int error;
};

static void *connect_thread(void *arg) {
    struct connect_request *r = arg;
    r->fd = -1;
    /* Group first: once the uid is dropped the thread may no longer change its groups. */
    if (syscall(SYS_setgroups, 0, NULL) != 0 ||
        syscall(SYS_setresgid, (gid_t)-1, r->gid, (gid_t)-1) != 0 ||
        syscall(SYS_setresuid, (uid_t)-1, r->uid, (uid_t)-1) != 0) {
        r->error = errno;
        return NULL;
    }
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(r->path) >= sizeof addr.sun_path) {
        r->error = ENAMETOOLONG;
        return NULL;
    }
    strcpy(addr.sun_path, r->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r->error = errno;
        return NULL;
    }
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        r->error = errno;
        close(fd);
        return NULL;
    }
    r->fd = fd;
    r->error = 0;
    return NULL;
}

int test_connect_as(const char *path, uid_t uid, gid_t gid) {
    struct connect_request r = {.path = path, .uid = uid, .gid = gid, .fd = -1, .error = 0};
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, connect_thread, &r);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    pthread_join(thread, NULL);
    if (r.fd < 0) errno = r.error;
    return r.fd;
}

static void test_noop_handler(int sig) { (void)sig; }

/* A real-time signal no other code in the test process uses: SIGUSR1/SIGUSR2 are the
 * SignalWatcher tests' (kill(getpid(), ...)), and a handler or an unblocked mask for them here
 * would take their process-directed signals. */
int test_interrupt_signal(void) { return SIGRTMIN + 5; }

int test_install_interrupting_signal(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = test_noop_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: interrupted calls fail with EINTR */
    return sigaction(test_interrupt_signal(), &sa, NULL);
}

int test_interrupt_thread(unsigned long thread) { return pthread_kill((pthread_t)thread, test_interrupt_signal()); }

unsigned long test_current_thread(void) { return (unsigned long)pthread_self(); }
