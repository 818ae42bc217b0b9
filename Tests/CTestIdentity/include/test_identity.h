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

/* Test-only: the signal the two calls below use, a real-time one (SIGRTMIN + 5) that no other
 * test sends: SIGUSR1/SIGUSR2 belong to the SignalWatcher tests, which send them to the whole
 * process. */
int test_interrupt_signal(void);

/* Installs a handler for that signal that does nothing, without SA_RESTART, so a blocking call
 * in a thread the signal is sent to (pthread_kill) fails with EINTR, as in a VMM full of timers
 * or under libFuzzer's alarm. */
int test_install_interrupting_signal(void);

/* pthread_kill(thread, test_interrupt_signal()) on the thread `test_current_thread` named. */
int test_interrupt_thread(unsigned long thread);
unsigned long test_current_thread(void);

#endif
