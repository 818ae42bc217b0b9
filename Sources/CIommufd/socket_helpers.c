#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "socket_helpers.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* A control buffer large enough for the kernel's maximum, aligned for struct cmsghdr. */
union scm_buffer {
    char bytes[CMSG_SPACE(sizeof(int) * CIOMMUFD_SCM_MAX_FDS)];
    struct cmsghdr align;
};

size_t ciommufd_scm_rights_space(unsigned int max_fds) {
    if (max_fds > CIOMMUFD_SCM_MAX_FDS) max_fds = CIOMMUFD_SCM_MAX_FDS;
    return CMSG_SPACE(sizeof(int) * max_fds);
}

ssize_t ciommufd_send_with_fds(int sock, const void *buf, size_t len,
                               const int *fds, unsigned int nfds, int flags) {
    if (nfds > CIOMMUFD_SCM_MAX_FDS || (nfds > 0 && (len == 0 || fds == NULL))) {
        errno = EINVAL;
        return -1;
    }
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;

    union scm_buffer control;
    if (nfds > 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }
    return sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
}

ssize_t ciommufd_recv_with_fds(int sock, void *buf, size_t len,
                               int *fds_out, unsigned int max_fds,
                               unsigned int *nfds_out, int *truncated, int flags) {
    *nfds_out = 0;
    *truncated = 0;
    if (max_fds > CIOMMUFD_SCM_MAX_FDS) max_fds = CIOMMUFD_SCM_MAX_FDS;

    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union scm_buffer control;
    /* With max_fds == 0 the buffer still holds a header, so MSG_CTRUNC tells us fds were sent. */
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds);

    ssize_t n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
    if (n < 0) return n;

    unsigned int count = 0;
    int overflow = 0;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
        size_t payload = cmsg->cmsg_len - CMSG_LEN(0);
        size_t received = payload / sizeof(int);
        for (size_t i = 0; i < received; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
            if (count < max_fds) {
                fds_out[count++] = fd;
            } else {
                /* Cannot happen with a control buffer sized for max_fds; never leak one. */
                close(fd);
                overflow = 1;
            }
        }
    }
    if ((msg.msg_flags & MSG_CTRUNC) || overflow) {
        /* The kernel fills the buffer up to max_fds unless installing an fd failed. */
        *truncated = (count < max_fds && !overflow) ? CIOMMUFD_FDS_LOST : CIOMMUFD_FDS_TOO_MANY;
        for (unsigned int i = 0; i < count; i++) close(fds_out[i]);
        count = 0;
    }
    *nfds_out = count;
    return n;
}

int ciommufd_peer_credentials(int sock, uint32_t *uid, uint32_t *gid, int32_t *pid) {
    struct ucred cred;
    socklen_t size = sizeof(cred);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) return -1;
    if (size != sizeof(cred)) {
        errno = EPROTO;
        return -1;
    }
    *uid = cred.uid;
    *gid = cred.gid;
    *pid = cred.pid;
    return 0;
}

int ciommufd_accept(int listen_fd) {
    return accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
