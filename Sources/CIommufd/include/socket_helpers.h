/* Unix-socket helpers for the JSON-RPC transport: file descriptors passed with SCM_RIGHTS and
 * the peer's credentials. Swift cannot build control messages (CMSG_* are macros), so this is
 * the one place that does. EINTR is not retried here: the Swift side retries in one place. */
#ifndef CIOMMUFD_SOCKET_HELPERS_H
#define CIOMMUFD_SOCKET_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The kernel's SCM_MAX_FD: no single SCM_RIGHTS message carries more. */
#define CIOMMUFD_SCM_MAX_FDS 253

/* Bytes of control buffer needed for `max_fds` fds in one SCM_RIGHTS message (CMSG_SPACE). */
size_t ciommufd_scm_rights_space(unsigned int max_fds);

/* sendmsg(2) of `len` bytes from `buf` with `nfds` fds (0 allowed) in one SCM_RIGHTS control
 * message, with MSG_NOSIGNAL added to `flags`. The fds ride on the first byte sent. Returns the
 * bytes sent, or -1 with errno (EINVAL if nfds > CIOMMUFD_SCM_MAX_FDS or len == 0 with fds). */
ssize_t ciommufd_send_with_fds(int sock, const void *buf, size_t len,
                               const int *fds, unsigned int nfds, int flags);

/* recvmsg(2) into `buf` with MSG_CMSG_CLOEXEC added to `flags`, and a control buffer sized for
 * `max_fds` fds (clamped to CIOMMUFD_SCM_MAX_FDS). The fds received are stored in `fds_out`
 * (room for `max_fds`) and counted in `*nfds_out`. If the kernel truncated the control data
 * (MSG_CTRUNC), every fd that did arrive is closed, `*nfds_out` is 0, and `*truncated` says
 * why: CIOMMUFD_FDS_TOO_MANY (the peer sent more than `max_fds`) or CIOMMUFD_FDS_LOST (fewer
 * arrived than fit: the kernel could not install them, typically EMFILE). Otherwise
 * `*truncated` is 0. Returns the bytes read (0 at end of stream), or -1 with errno. */
#define CIOMMUFD_FDS_TOO_MANY 1
#define CIOMMUFD_FDS_LOST 2
ssize_t ciommufd_recv_with_fds(int sock, void *buf, size_t len,
                               int *fds_out, unsigned int max_fds,
                               unsigned int *nfds_out, int *truncated, int flags);

/* accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: the new connection's fd, or -1 with errno. */
int ciommufd_accept(int listen_fd);

/* SO_PEERCRED of a connected Unix socket: the uid, gid and pid of the peer at connect time.
 * Returns 0, or -1 with errno. */
int ciommufd_peer_credentials(int sock, uint32_t *uid, uint32_t *gid, int32_t *pid);

#endif
