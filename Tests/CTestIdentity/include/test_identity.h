/* Test-only: connect to a Unix socket as another user, so end-to-end tests can play a second
 * VM manager, a reader or an unlisted user against the real daemon (SO_PEERCRED records the
 * connecting thread's credentials). Needs CAP_SETUID/CAP_SETGID (the tests run as root). */
#ifndef CTEST_IDENTITY_H
#define CTEST_IDENTITY_H
#include <sys/types.h>

/* On a fresh thread that takes effective uid `uid` and gid `gid` (raw setresuid/setresgid:
 * this thread only, not the whole process as glibc's wrappers would), connects a SOCK_STREAM
 * socket to `path`. Returns the connected fd (close-on-exec), or -1 with errno set. The
 * thread ends with the connect, so no other code ever runs with those credentials. */
int test_connect_as(const char *path, uid_t uid, gid_t gid);

/* Test-only: installs a handler for SIGUSR2 that does nothing, without SA_RESTART, so a
 * blocking call in a thread the signal is sent to (pthread_kill) fails with EINTR, as in a VMM
 * full of timers or under libFuzzer's alarm. */
int test_install_interrupting_sigusr2(void);

/* pthread_kill(thread, SIGUSR2) on the thread `test_current_thread` named. */
int test_interrupt_thread(unsigned long thread);
unsigned long test_current_thread(void);

#endif
