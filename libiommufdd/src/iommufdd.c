/* libiommufdd: see include/iommufdd.h and docs/vmm-channel.md. */
#define _GNU_SOURCE
#include "iommufdd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum {
    OP_HELLO = 1, OP_MEM_REGISTER, OP_MEM_UNREGISTER, OP_MAP, OP_UNMAP, OP_COPY,
    OP_DIRTY_BITMAP_SET, OP_DIRTY_READ, OP_DEVICE_FD, OP_HOT_RESET,
    OP_NESTED_ALLOC, OP_REPLACE, OP_HWPT_DESTROY, OP_INVALIDATE, OP_QUEUE_FD,
    OP_PASID_ATTACH, OP_PASID_REPLACE, OP_PASID_DETACH,
    OP_NESTED_ALLOC_FLAGS,
};
#define FLAG_REPLY 0x1
#define FLAG_ERROR 0x2
#define HEADER_SIZE 16
#define MAX_MESSAGE (HEADER_SIZE + 8 + IOMMUFDD_MAX_ENTRIES * 40)
#define ANSWER_BUFFER (HEADER_SIZE + 48 + 1024 + 16)
#define NOT_REGISTERED "iommufdd.NotRegistered"
#define NO_BITMAP "iommufdd.NoBitmap"

_Static_assert(sizeof(struct iommufdd_map) == 40, "MAP entry layout");
_Static_assert(sizeof(struct iommufdd_unmap) == 24, "UNMAP entry layout");
_Static_assert(sizeof(struct iommufdd_copy) == 40, "COPY entry layout");

struct header {
    uint64_t id;
    uint16_t op;
    uint16_t flags;
    uint32_t size;
};

struct iommufdd_channel {
    int fd;
    uint64_t next_id;
    int timeout_ms;
    char owner[129];
    uint64_t id;
    uint64_t page_size;
    unsigned minor;       /* the channel minor version the daemon answered HELLO with */
    int memory[IOMMUFDD_MAX_MEMORY_SLOTS]; /* the library's duplicates, -1 when unused */
    int bitmap;
    unsigned in_flight;   /* pipelined INVALIDATEs sent and not yet answered (ids next_id - in_flight ...) */
    struct iommufdd_error error;
    unsigned char out[MAX_MESSAGE];
    unsigned char in[ANSWER_BUFFER + IOMMUFDD_MAX_ENTRIES * 8];
};

static int fail(struct iommufdd_channel *ch, int err, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct iommufdd_channel *ch, int err, const char *name, const char *fmt, ...) {
    memset(&ch->error, 0, sizeof(ch->error));
    ch->error.err = err;
    snprintf(ch->error.name, sizeof(ch->error.name), "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ch->error.message, sizeof(ch->error.message), fmt, ap);
    va_end(ap);
    errno = err;
    return -1;
}

static void put16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Sends a request of `size` payload bytes (already in ch->out + HEADER_SIZE) with `sendfd`
 * (-1: none). Returns 0 and its id in *sent, or -1 (ch->error). */
static int send_request(struct iommufdd_channel *ch, uint16_t op, size_t size, int sendfd, uint64_t *sent) {
    if (ch->fd < 0) return fail(ch, EBADF, "iommufdd.Transport", "the channel is closed");
    uint64_t id = ch->next_id++;
    put64(ch->out, id);
    put16(ch->out + 8, op);
    put16(ch->out + 10, 0);
    put32(ch->out + 12, (uint32_t)size);

    struct iovec iov = { .iov_base = ch->out, .iov_len = HEADER_SIZE + size };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    if (sendfd >= 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &sendfd, sizeof(int));
    }
    ssize_t n;
    do {
        n = sendmsg(ch->fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = errno;
        return fail(ch, e, "iommufdd.Transport", "sending the request on the channel failed: %s%s", strerror(e),
                    e == EPIPE || e == ECONNRESET ? " (the daemon closed the channel: revoked, or the owner was released)" : "");
    }
    *sent = id;
    return 0;
}

/* Waits for the answer to request `id` of `op` (answers to earlier requests that timed out are
 * dropped). Returns the answer's payload size, or -1 (ch->error). The answer's fd, if any, goes
 * to *recvfd (closed when recvfd is NULL). */
static ssize_t await_answer(struct iommufdd_channel *ch, uint64_t id, uint16_t op, int *recvfd) {
    ssize_t n;
    for (;;) {
        struct pollfd p = { .fd = ch->fd, .events = POLLIN };
        int rc;
        do {
            rc = poll(&p, 1, ch->timeout_ms);
        } while (rc < 0 && errno == EINTR);
        if (rc == 0)
            return fail(ch, ETIMEDOUT, "iommufdd.Transport",
                        "no answer within %d ms; if the daemon restarted meanwhile, the request may or may not have taken effect: check (e.g. a repeated map answers EEXIST) before retrying", ch->timeout_ms);
        if (rc < 0) return fail(ch, errno, "iommufdd.Transport", "poll on the channel failed: %s", strerror(errno));

        struct iovec in = { .iov_base = ch->in, .iov_len = sizeof(ch->in) };
        union { char buf[CMSG_SPACE(sizeof(int) * 4)]; struct cmsghdr align; } rcontrol;
        struct msghdr r = { .msg_iov = &in, .msg_iovlen = 1, .msg_control = rcontrol.buf, .msg_controllen = sizeof(rcontrol.buf) };
        do {
            n = recvmsg(ch->fd, &r, MSG_CMSG_CLOEXEC);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            int e = errno;
            return fail(ch, e == ECONNRESET ? EPIPE : e, "iommufdd.Transport", "receiving the answer failed: %s", strerror(e));
        }
        int fds[4], nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&r); c; c = CMSG_NXTHDR(&r, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < count && nfds < 4; i++) memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
        if (n == 0) {
            for (int i = 0; i < nfds; i++) close(fds[i]);
            return fail(ch, EPIPE, "iommufdd.Transport", "the daemon closed the channel (revoked, or the owner was released)");
        }
        if (n < HEADER_SIZE || (r.msg_flags & MSG_TRUNC)) {
            for (int i = 0; i < nfds; i++) close(fds[i]);
            return fail(ch, EPROTO, "iommufdd.Transport", "a malformed answer of %zd bytes", n);
        }
        struct header h = { get64(ch->in), 0, 0, get32(ch->in + 12) };
        memcpy(&h.op, ch->in + 8, 2);
        memcpy(&h.flags, ch->in + 10, 2);
        if (h.id != id) {
            /* An answer to a request that timed out earlier: drop it. */
            for (int i = 0; i < nfds; i++) close(fds[i]);
            continue;
        }
        if ((size_t)n != HEADER_SIZE + h.size || !(h.flags & FLAG_REPLY) || h.op != op) {
            for (int i = 0; i < nfds; i++) close(fds[i]);
            return fail(ch, EPROTO, "iommufdd.Transport", "a malformed answer (size %u, flags 0x%x, op %u)", h.size, h.flags, h.op);
        }
        if (h.flags & FLAG_ERROR) {
            for (int i = 0; i < nfds; i++) close(fds[i]);
            const unsigned char *p = ch->in + HEADER_SIZE;
            if (h.size < 48) return fail(ch, EPROTO, "iommufdd.Transport", "a malformed error answer of %u bytes", h.size);
            uint32_t len = get32(p + 12);
            if (len > h.size - 48) len = h.size - 48;
            if (len > 1024) len = 1024;
            memset(&ch->error, 0, sizeof(ch->error));
            ch->error.err = (int)get32(p);
            ch->error.index = get32(p + 4);
            ch->error.done = get32(p + 8);
            memcpy(ch->error.name, p + 16, 31);
            memcpy(ch->error.message, p + 48, len);
            errno = ch->error.err;
            return -1;
        }
        for (int i = 0; i < nfds; i++) {
            if (i == 0 && recvfd) *recvfd = fds[0];
            else close(fds[i]);
        }
        memset(&ch->error, 0, sizeof(ch->error));
        return (ssize_t)h.size;
    }
}

/* One request and its answer (send_request, await_answer). Not while pipelined requests are in
 * flight: their answers come first. */
static ssize_t transact(struct iommufdd_channel *ch, uint16_t op, size_t size, int sendfd, int *recvfd) {
    if (recvfd) *recvfd = -1;
    if (ch->in_flight > 0)
        return fail(ch, EBUSY, "iommufdd.Transport", "%u pipelined INVALIDATE requests are in flight on this channel; collect their answers (iommufdd_invalidate_wait) before another call",
                    ch->in_flight);
    uint64_t id;
    if (send_request(ch, op, size, sendfd, &id) < 0) return -1;
    return await_answer(ch, id, op, recvfd);
}

static int reregister(struct iommufdd_channel *ch);

/* `transact`, and after a daemon restart (ESTALE: the daemon lost this channel's registrations)
 * the registrations again and the request once more. The request must still be in ch->out. */
static ssize_t transact_resuming(struct iommufdd_channel *ch, uint16_t op, size_t size, int sendfd, int *recvfd) {
    ssize_t n = transact(ch, op, size, sendfd, recvfd);
    if (n >= 0 || ch->error.err != ESTALE) return n;
    if (strcmp(ch->error.name, NOT_REGISTERED) != 0 && strcmp(ch->error.name, NO_BITMAP) != 0) return n;
    unsigned char saved[MAX_MESSAGE];
    memcpy(saved, ch->out, HEADER_SIZE + size);
    struct iommufdd_error first = ch->error;
    if (reregister(ch) < 0) return -1;
    memcpy(ch->out, saved, HEADER_SIZE + size);
    n = transact(ch, op, size, sendfd, recvfd);
    if (n < 0 && ch->error.err == ESTALE) {
        ch->error = first;  /* never registered at all: the daemon's first answer says so */
        errno = ESTALE;
    }
    return n;
}

static int send_register(struct iommufdd_channel *ch, uint32_t index, int fd) {
    unsigned char *p = ch->out + HEADER_SIZE;
    put32(p, index);
    put32(p + 4, 0);
    return transact(ch, OP_MEM_REGISTER, 8, fd, NULL) < 0 ? -1 : 0;
}

static int send_bitmap(struct iommufdd_channel *ch, int fd) {
    memset(ch->out + HEADER_SIZE, 0, 8);
    return transact(ch, OP_DIRTY_BITMAP_SET, 8, fd, NULL) < 0 ? -1 : 0;
}

static int reregister(struct iommufdd_channel *ch) {
    for (uint32_t i = 0; i < IOMMUFDD_MAX_MEMORY_SLOTS; i++) {
        if (ch->memory[i] < 0) continue;
        if (send_register(ch, i, ch->memory[i]) < 0 && ch->error.err != EEXIST) return -1;
    }
    if (ch->bitmap >= 0 && send_bitmap(ch, ch->bitmap) < 0) return -1;
    return 0;
}

struct iommufdd_channel *iommufdd_channel_adopt(int fd, struct iommufdd_error *err) {
    struct iommufdd_channel *ch = calloc(1, sizeof(*ch));
    if (!ch) {
        int e = errno;
        close(fd);
        if (err) {
            memset(err, 0, sizeof(*err));
            err->err = e;
            snprintf(err->name, sizeof(err->name), "iommufdd.Transport");
            snprintf(err->message, sizeof(err->message), "out of memory");
        }
        errno = e;
        return NULL;
    }
    ch->fd = fd;
    ch->next_id = 1;
    ch->timeout_ms = 30000;
    ch->bitmap = -1;
    for (int i = 0; i < IOMMUFDD_MAX_MEMORY_SLOTS; i++) ch->memory[i] = -1;
    int type = 0;
    socklen_t len = sizeof(type);
    ssize_t n;
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) {
        fail(ch, fd < 0 || errno == EBADF ? EBADF : ENOTSOCK, "iommufdd.Transport",
             "fd %d is not a channel: owner.delegate hands out one end of a SOCK_SEQPACKET socket pair", fd);
    } else if ((n = transact(ch, OP_HELLO, 0, -1, NULL)) >= 0) {
        const unsigned char *p = ch->in + HEADER_SIZE;
        uint16_t major;
        memcpy(&major, p, 2);
        if (n < 160 || major != IOMMUFDD_CHANNEL_VERSION_MAJOR) {
            fail(ch, EPROTONOSUPPORT, "iommufdd.Transport", "the daemon speaks channel version %u, this library %u", major,
                 IOMMUFDD_CHANNEL_VERSION_MAJOR);
        } else {
            uint16_t minor;
            memcpy(&minor, p + 2, 2);
            ch->minor = minor;
            ch->page_size = get64(p + 8);
            ch->id = get64(p + 24);
            memcpy(ch->owner, p + 32, 128);
            return ch;
        }
    }
    int e = ch->error.err;
    if (err) *err = ch->error;
    iommufdd_channel_close(ch);
    errno = e;
    return NULL;
}

void iommufdd_channel_close(struct iommufdd_channel *ch) {
    if (!ch) return;
    if (ch->fd >= 0) close(ch->fd);
    for (int i = 0; i < IOMMUFDD_MAX_MEMORY_SLOTS; i++)
        if (ch->memory[i] >= 0) close(ch->memory[i]);
    if (ch->bitmap >= 0) close(ch->bitmap);
    free(ch);
}

int iommufdd_channel_fd(const struct iommufdd_channel *ch) { return ch->fd; }
const char *iommufdd_channel_owner(const struct iommufdd_channel *ch) { return ch->owner; }
uint64_t iommufdd_channel_id(const struct iommufdd_channel *ch) { return ch->id; }
uint64_t iommufdd_channel_page_size(const struct iommufdd_channel *ch) { return ch->page_size; }
unsigned iommufdd_channel_version_minor(const struct iommufdd_channel *ch) { return ch->minor; }
void iommufdd_channel_set_timeout(struct iommufdd_channel *ch, int milliseconds) { ch->timeout_ms = milliseconds < 0 ? -1 : milliseconds; }
const struct iommufdd_error *iommufdd_last_error(const struct iommufdd_channel *ch) { return &ch->error; }

int iommufdd_mem_register(struct iommufdd_channel *ch, uint32_t index, int memfd) {
    if (index >= IOMMUFDD_MAX_MEMORY_SLOTS)
        return fail(ch, EINVAL, "iommufdd.InvalidParams", "memory index %u is out of range: indexes run from 0 to %u", index, IOMMUFDD_MAX_MEMORY_SLOTS - 1);
    if (send_register(ch, index, memfd) < 0) return -1;
    int copy = fcntl(memfd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return fail(ch, errno, "iommufdd.Transport", "registered, but keeping a duplicate for a daemon restart failed: %s", strerror(errno));
    if (ch->memory[index] >= 0) close(ch->memory[index]);
    ch->memory[index] = copy;
    return 0;
}

int iommufdd_mem_unregister(struct iommufdd_channel *ch, uint32_t index) {
    if (index >= IOMMUFDD_MAX_MEMORY_SLOTS)
        return fail(ch, EINVAL, "iommufdd.InvalidParams", "memory index %u is out of range", index);
    unsigned char *p = ch->out + HEADER_SIZE;
    put32(p, index);
    put32(p + 4, 0);
    ssize_t n = transact(ch, OP_MEM_UNREGISTER, 8, -1, NULL);
    /* ESTALE after a restart: the daemon already has nothing under the index. */
    if (n < 0 && ch->error.err != ESTALE) return -1;
    if (ch->memory[index] >= 0) close(ch->memory[index]);
    ch->memory[index] = -1;
    memset(&ch->error, 0, sizeof(ch->error));
    return 0;
}

static int check_count(struct iommufdd_channel *ch, unsigned count, const char *what) {
    if (count == 0 || count > IOMMUFDD_MAX_ENTRIES)
        return fail(ch, EINVAL, "iommufdd.InvalidParams", "%s of %u entries: a batch has 1 to %u", what, count, IOMMUFDD_MAX_ENTRIES);
    return 0;
}

/* MAP and COPY answers: count, reserved, pinned, count x u64. */
static int counted(struct iommufdd_channel *ch, ssize_t n, unsigned count, uint64_t *values, size_t stride, uint64_t *pinned) {
    const unsigned char *p = ch->in + HEADER_SIZE;
    if (n < 16 || get32(p) != count || (size_t)n != 16 + (size_t)count * 8)
        return fail(ch, EPROTO, "iommufdd.Transport", "a malformed answer of %zd bytes for %u entries", n, count);
    if (pinned) *pinned = get64(p + 8);
    if (values)
        for (unsigned i = 0; i < count; i++) memcpy((char *)values + i * stride, p + 16 + i * 8, 8);
    return 0;
}

int iommufdd_map(struct iommufdd_channel *ch, struct iommufdd_map *entries, unsigned count, uint64_t *pinned) {
    if (check_count(ch, count, "MAP") < 0) return -1;
    unsigned char *p = ch->out + HEADER_SIZE;
    put32(p, count);
    put32(p + 4, 0);
    memcpy(p + 8, entries, (size_t)count * 40);
    ssize_t n = transact_resuming(ch, OP_MAP, 8 + (size_t)count * 40, -1, NULL);
    if (n < 0) return -1;
    return counted(ch, n, count, &entries[0].iova, sizeof(entries[0]), pinned);
}

int iommufdd_unmap(struct iommufdd_channel *ch, const struct iommufdd_unmap *entries, unsigned count,
                   uint64_t *unmapped, uint64_t *pinned) {
    if (check_count(ch, count, "UNMAP") < 0) return -1;
    unsigned char *p = ch->out + HEADER_SIZE;
    put32(p, count);
    put32(p + 4, 0);
    memcpy(p + 8, entries, (size_t)count * 24);
    ssize_t n = transact(ch, OP_UNMAP, 8 + (size_t)count * 24, -1, NULL);
    if (n < 0) return -1;
    return counted(ch, n, count, unmapped, sizeof(uint64_t), pinned);
}

int iommufdd_copy(struct iommufdd_channel *ch, struct iommufdd_copy *entries, unsigned count, uint64_t *pinned) {
    if (check_count(ch, count, "COPY") < 0) return -1;
    unsigned char *p = ch->out + HEADER_SIZE;
    put32(p, count);
    put32(p + 4, 0);
    memcpy(p + 8, entries, (size_t)count * 40);
    ssize_t n = transact(ch, OP_COPY, 8 + (size_t)count * 40, -1, NULL);
    if (n < 0) return -1;
    return counted(ch, n, count, &entries[0].dst_iova, sizeof(entries[0]), pinned);
}

int iommufdd_dirty_bitmap_set(struct iommufdd_channel *ch, int memfd) {
    if (send_bitmap(ch, memfd) < 0) return -1;
    int copy = fcntl(memfd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return fail(ch, errno, "iommufdd.Transport", "set, but keeping a duplicate for a daemon restart failed: %s", strerror(errno));
    if (ch->bitmap >= 0) close(ch->bitmap);
    ch->bitmap = copy;
    return 0;
}

int iommufdd_dirty_read(struct iommufdd_channel *ch, uint32_t ioas, uint64_t iova, uint64_t length,
                        uint64_t page_size, uint32_t flags, struct iommufdd_dirty_result *out) {
    unsigned char *p = ch->out + HEADER_SIZE;
    put32(p, ioas);
    put32(p + 4, flags);
    put64(p + 8, iova);
    put64(p + 16, length);
    put64(p + 24, page_size);
    ssize_t n = transact_resuming(ch, OP_DIRTY_READ, 32, -1, NULL);
    if (n < 0) return -1;
    if (n != 24) return fail(ch, EPROTO, "iommufdd.Transport", "a malformed DIRTY_READ answer of %zd bytes", n);
    const unsigned char *q = ch->in + HEADER_SIZE;
    if (out) {
        out->dirty_pages = get64(q);
        out->bitmap_bytes = get64(q + 8);
        out->clear_failures = get32(q + 16);
    }
    return 0;
}

int iommufdd_device_fd(struct iommufdd_channel *ch, const char *device, uint32_t *device_id) {
    size_t len = device ? strlen(device) : 0;
    if (len == 0 || len > 63) return fail(ch, EINVAL, "iommufdd.InvalidParams", "a device name has 1 to 63 bytes");
    unsigned char *p = ch->out + HEADER_SIZE;
    memset(p, 0, 64);
    memcpy(p, device, len);
    int fd = -1;
    ssize_t n = transact(ch, OP_DEVICE_FD, 64, -1, &fd);
    if (n < 0) return -1;
    if (n != 8 || fd < 0) {
        if (fd >= 0) close(fd);
        return fail(ch, EPROTO, "iommufdd.Transport", "a DEVICE_FD answer without its fd");
    }
    if (device_id) *device_id = get32(ch->in + HEADER_SIZE);
    return fd;
}

int iommufdd_device_hot_reset(struct iommufdd_channel *ch, const char *device, uint32_t *reset_count) {
    size_t len = device ? strlen(device) : 0;
    if (len == 0 || len > 63) return fail(ch, EINVAL, "iommufdd.InvalidParams", "a device name has 1 to 63 bytes");
    unsigned char *p = ch->out + HEADER_SIZE;
    memset(p, 0, 64);
    memcpy(p, device, len);
    ssize_t n = transact(ch, OP_HOT_RESET, 64, -1, NULL);
    if (n < 0) return -1;
    if (n != 8) return fail(ch, EPROTO, "iommufdd.Transport", "a HOT_RESET answer of %zd bytes, not 8", n);
    if (reset_count) *reset_count = get32(ch->in + HEADER_SIZE);
    return 0;
}

/* Nested translation and queue fds (branch chnested). */

static int put_device(struct iommufdd_channel *ch, unsigned char *p, const char *device) {
    size_t len = device ? strlen(device) : 0;
    if (len == 0 || len > 63) return fail(ch, EINVAL, "iommufdd.InvalidParams", "a device name has 1 to 63 bytes");
    memset(p, 0, 64);
    memcpy(p, device, len);
    return 0;
}

/* NESTED_ALLOC (op 11) and NESTED_ALLOC_FLAGS (op 19, branch pasidnest): op 11's 80 bytes
 * (parent, fault queue, data type, data length, device), for op 19 then u32 flags and u32
 * reserved (0); the driver data after them (at 80 or 88). Both answer `nested_result` (8). */
static int nested_alloc(struct iommufdd_channel *ch, uint16_t op, const char *name, uint32_t parent, const char *device,
                        uint32_t data_type, const void *data, uint32_t data_len, uint32_t fault_queue,
                        const uint32_t *flags, uint32_t *hwpt, uint32_t *nest_parent) {
    if (data_len == 0 || data_len > 64 || !data)
        return fail(ch, EINVAL, "iommufdd.InvalidParams", "%s: the driver data is 1 to 64 bytes (the uAPI struct of its type); %u given", name, data_len);
    unsigned char *p = ch->out + HEADER_SIZE;
    put32(p, parent);
    put32(p + 4, fault_queue);
    put32(p + 8, data_type);
    put32(p + 12, data_len);
    if (put_device(ch, p + 16, device) < 0) return -1;
    size_t fixed = 80;
    if (flags) {
        put32(p + 80, *flags);
        put32(p + 84, 0);
        fixed = 88;
    }
    memcpy(p + fixed, data, data_len);
    ssize_t n = transact(ch, op, fixed + (size_t)data_len, -1, NULL);
    if (n < 0) return -1;
    if (n != 8) return fail(ch, EPROTO, "iommufdd.Transport", "a %s answer of %zd bytes, not 8", name, n);
    if (hwpt) *hwpt = get32(ch->in + HEADER_SIZE);
    if (nest_parent) *nest_parent = get32(ch->in + HEADER_SIZE + 4);
    return 0;
}

int iommufdd_nested_alloc(struct iommufdd_channel *ch, uint32_t parent, const char *device, uint32_t data_type,
                          const void *data, uint32_t data_len, uint32_t fault_queue, uint32_t *hwpt, uint32_t *nest_parent) {
    return nested_alloc(ch, OP_NESTED_ALLOC, "NESTED_ALLOC", parent, device, data_type, data, data_len, fault_queue, NULL,
                        hwpt, nest_parent);
}

int iommufdd_replace(struct iommufdd_channel *ch, const char *device, uint32_t pt, uint32_t *previous) {
    unsigned char *p = ch->out + HEADER_SIZE;
    put32(p, pt);
    put32(p + 4, 0);
    if (put_device(ch, p + 8, device) < 0) return -1;
    ssize_t n = transact(ch, OP_REPLACE, 72, -1, NULL);
    if (n < 0) return -1;
    if (n != 8) return fail(ch, EPROTO, "iommufdd.Transport", "a REPLACE answer of %zd bytes, not 8", n);
    if (previous) *previous = get32(ch->in + HEADER_SIZE + 4);
    return 0;
}

int iommufdd_hwpt_destroy(struct iommufdd_channel *ch, uint32_t hwpt) {
    unsigned char *p = ch->out + HEADER_SIZE;
    put32(p, hwpt);
    put32(p + 4, 0);
    ssize_t n = transact(ch, OP_HWPT_DESTROY, 8, -1, NULL);
    if (n < 0) return -1;
    if (n != 0) return fail(ch, EPROTO, "iommufdd.Transport", "an HWPT_DESTROY answer of %zd bytes, not 0", n);
    return 0;
}

/* An INVALIDATE request's payload in ch->out: its size, or -1 (ch->error). */
static ssize_t put_invalidate(struct iommufdd_channel *ch, uint32_t target, uint32_t data_type, const void *entries,
                              uint32_t entry_len, unsigned count) {
    if (check_count(ch, count, "INVALIDATE") < 0) return -1;
    if (entry_len == 0 || !entries || 16 + (size_t)entry_len * count > sizeof(ch->out) - HEADER_SIZE)
        return fail(ch, EINVAL, "iommufdd.InvalidParams", "INVALIDATE: %u entries of %u bytes do not fit one message (at most %zu bytes of entries)",
                    count, entry_len, sizeof(ch->out) - HEADER_SIZE - 16);
    unsigned char *p = ch->out + HEADER_SIZE;
    put32(p, target);
    put32(p + 4, data_type);
    put32(p + 8, entry_len);
    put32(p + 12, count);
    memcpy(p + 16, entries, (size_t)entry_len * count);
    return 16 + (ssize_t)entry_len * count;
}

/* An INVALIDATE answer of n bytes (or -1 from the transport) in ch->in: 0, or -1 (ch->error). */
static int invalidate_answer(struct iommufdd_channel *ch, ssize_t n, uint32_t *done) {
    if (n < 0) return -1;
    if (n != 16) return fail(ch, EPROTO, "iommufdd.Transport", "an INVALIDATE answer of %zd bytes, not 16", n);
    const unsigned char *q = ch->in + HEADER_SIZE;
    uint32_t requested = get32(q), did = get32(q + 4);
    int err = (int)get32(q + 8);
    if (done) *done = did;
    if (did == requested && err == 0) return 0;
    fail(ch, err > 0 ? err : EPROTO, "iommufdd.Kernel",
         "IOMMU_HWPT_INVALIDATE stopped at entry %u of %u: the driver refused it with %s; entries 0 to %u took effect and the ones after it were not tried: fix entry %u and send it and the rest again",
         did, requested, strerror(err > 0 ? err : EPROTO), did == 0 ? 0 : did - 1, did);
    ch->error.index = did;
    ch->error.done = did;
    return -1;
}

int iommufdd_invalidate(struct iommufdd_channel *ch, uint32_t target, uint32_t data_type, const void *entries,
                        uint32_t entry_len, unsigned count, uint32_t *done) {
    if (done) *done = 0;
    ssize_t size = put_invalidate(ch, target, data_type, entries, entry_len, count);
    if (size < 0) return -1;
    return invalidate_answer(ch, transact(ch, OP_INVALIDATE, (size_t)size, -1, NULL), done);
}

int iommufdd_invalidate_send(struct iommufdd_channel *ch, uint32_t target, uint32_t data_type, const void *entries,
                             uint32_t entry_len, unsigned count, uint64_t *id) {
    if (ch->in_flight >= IOMMUFDD_MAX_IN_FLIGHT)
        return fail(ch, EBUSY, "iommufdd.Transport", "%u INVALIDATE requests are already in flight (at most %u); collect an answer (iommufdd_invalidate_wait) first",
                    ch->in_flight, IOMMUFDD_MAX_IN_FLIGHT);
    ssize_t size = put_invalidate(ch, target, data_type, entries, entry_len, count);
    if (size < 0) return -1;
    uint64_t sent;
    if (send_request(ch, OP_INVALIDATE, (size_t)size, -1, &sent) < 0) return -1;
    ch->in_flight++;
    if (id) *id = sent;
    memset(&ch->error, 0, sizeof(ch->error));
    return 0;
}

int iommufdd_invalidate_wait(struct iommufdd_channel *ch, uint64_t *id, uint32_t *done) {
    if (done) *done = 0;
    if (ch->in_flight == 0)
        return fail(ch, EINVAL, "iommufdd.InvalidParams", "no INVALIDATE is in flight on this channel (iommufdd_invalidate_send sends one)");
    uint64_t oldest = ch->next_id - ch->in_flight;
    if (id) *id = oldest;
    ssize_t n = await_answer(ch, oldest, OP_INVALIDATE, NULL);
    if (n < 0 && strcmp(ch->error.name, "iommufdd.Transport") == 0) {
        /* A timeout leaves the request in flight (its answer may still come); any other transport
         * failure ends the channel, and with it every request in flight. */
        if (ch->error.err != ETIMEDOUT) ch->in_flight = 0;
        return -1;
    }
    ch->in_flight--;
    return invalidate_answer(ch, n, done);
}

unsigned iommufdd_in_flight(const struct iommufdd_channel *ch) { return ch->in_flight; }

int iommufdd_queue_fd(struct iommufdd_channel *ch, uint32_t queue, uint32_t *kind) {
    unsigned char *p = ch->out + HEADER_SIZE;
    put32(p, queue);
    put32(p + 4, 0);
    int fd = -1;
    ssize_t n = transact(ch, OP_QUEUE_FD, 8, -1, &fd);
    if (n < 0) return -1;
    if (n != 8 || fd < 0) {
        if (fd >= 0) close(fd);
        return fail(ch, EPROTO, "iommufdd.Transport", "a QUEUE_FD answer without its fd");
    }
    if (kind) *kind = get32(ch->in + HEADER_SIZE + 4);
    return fd;
}

/* PASID attachments (branch pasidch, channel version 1.2): one 80-byte payload, u32 pasid at 0,
 * u32 hwpt at 4 (0 for PASID_DETACH), 8 reserved bytes, the device name at 16; a 16-byte answer,
 * u32 device ID, pasid, the HWPT it is on now, the one it left. */
static int pasid_call(struct iommufdd_channel *ch, uint16_t op, const char *what, const char *device, uint32_t pasid,
                      uint32_t hwpt, uint32_t *previous) {
    unsigned char *p = ch->out + HEADER_SIZE;
    put32(p, pasid);
    put32(p + 4, hwpt);
    put64(p + 8, 0);
    if (put_device(ch, p + 16, device) < 0) return -1;
    ssize_t n = transact(ch, op, 80, -1, NULL);
    if (n < 0) return -1;
    if (n != 16) return fail(ch, EPROTO, "iommufdd.Transport", "a %s answer of %zd bytes, not 16", what, n);
    if (previous) *previous = get32(ch->in + HEADER_SIZE + 12);
    return 0;
}

int iommufdd_pasid_attach(struct iommufdd_channel *ch, const char *device, uint32_t pasid, uint32_t hwpt) {
    return pasid_call(ch, OP_PASID_ATTACH, "PASID_ATTACH", device, pasid, hwpt, NULL);
}

int iommufdd_pasid_replace(struct iommufdd_channel *ch, const char *device, uint32_t pasid, uint32_t hwpt, uint32_t *previous) {
    return pasid_call(ch, OP_PASID_REPLACE, "PASID_REPLACE", device, pasid, hwpt, previous);
}

int iommufdd_pasid_detach(struct iommufdd_channel *ch, const char *device, uint32_t pasid, uint32_t *previous) {
    return pasid_call(ch, OP_PASID_DETACH, "PASID_DETACH", device, pasid, 0, previous);
}

int iommufdd_nested_alloc_flags(struct iommufdd_channel *ch, uint32_t parent, const char *device, uint32_t data_type,
                                const void *data, uint32_t data_len, uint32_t fault_queue, uint32_t flags,
                                uint32_t *hwpt, uint32_t *nest_parent) {
    return nested_alloc(ch, OP_NESTED_ALLOC_FLAGS, "NESTED_ALLOC_FLAGS", parent, device, data_type, data, data_len,
                        fault_queue, &flags, hwpt, nest_parent);
}
