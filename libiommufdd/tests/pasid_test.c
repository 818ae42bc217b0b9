/* libiommufdd's PASID calls (iommufdd_pasid_attach, iommufdd_pasid_replace,
 * iommufdd_pasid_detach, iommufdd_nested_alloc_flags with IOMMUFDD_NESTED_ALLOC_PASID; channel
 * version 1.2), run against the real iommufdd on the simulator by
 * Tests/EndToEndTests/LibIommufddTests.swift, which plays the manager: an owner whose device (20-bit
 * PASIDs, behind the simulator's selftest mock IOMMU) has its RID on an HWPT allocated with
 * pasid=true (RID_HWPT), a nest-parent HWPT (NEST_PARENT) on which the program allocates its own
 * nested HWPTs with and without the PASID flag, one allocated without pasid (PLAIN_HWPT), another
 * owner's HWPT (FOREIGN_HWPT), and a channel delegated for it (fd). First,
 * against a stand-in for a channel version 1.1 daemon (a child process answering as one): the
 * library reports minor 1 and passes the daemon's UnknownOp (EOPNOTSUPP) on.
 *
 * usage: pasid-test CHANNEL_FD DEVICE RID_HWPT NEST_PARENT PLAIN_HWPT FOREIGN_HWPT */
#define _GNU_SOURCE
#include <iommufdd.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static int named(struct iommufdd_channel *ch, const char *name, const char *words) {
    const struct iommufdd_error *e = iommufdd_last_error(ch);
    return strcmp(e->name, name) == 0 && strstr(e->message, words) != NULL;
}

/* A channel version 1.1 daemon, as far as this test needs one: it answers HELLO with minor 1 and
 * the next request as a 1.1 daemon's decoder answers an op it does not have (UnknownOp,
 * EOPNOTSUPP). The library must report the daemon's minor and pass the refusal on. */
static void older_daemon(int fd) {
    unsigned char in[256], out[256];
    for (int round = 0; round < 2; round++) {
        ssize_t n = recv(fd, in, sizeof(in), 0);
        if (n < 16) _exit(1);
        uint64_t id;
        uint16_t op;
        memcpy(&id, in, 8);
        memcpy(&op, in + 8, 2);
        memset(out, 0, sizeof(out));
        memcpy(out, &id, 8);
        memcpy(out + 8, &op, 2);
        uint16_t flags = round == 0 ? 0x1 : 0x3;
        memcpy(out + 10, &flags, 2);
        uint32_t size;
        if (round == 0) {
            uint16_t major = 1, minor = 1;
            uint32_t entries = 256, slots = 512;
            uint64_t page = 4096, channel = 9;
            memcpy(out + 16, &major, 2);
            memcpy(out + 18, &minor, 2);
            memcpy(out + 20, &entries, 4);
            memcpy(out + 24, &page, 8);
            memcpy(out + 32, &slots, 4);
            memcpy(out + 40, &channel, 8);
            memcpy(out + 48, "old", 3);
            size = 160;
        } else {
            char message[96];
            int len = snprintf(message, sizeof(message), "op %u is not a channel op of version 1.1; see docs/vmm-channel.md", op);
            int32_t err = EOPNOTSUPP;
            uint32_t zero = 0, mlen = (uint32_t)len;
            memcpy(out + 16, &err, 4);
            memcpy(out + 20, &zero, 4);
            memcpy(out + 24, &zero, 4);
            memcpy(out + 28, &mlen, 4);
            memcpy(out + 32, "iommufdd.UnknownOp", 18);
            memcpy(out + 64, message, (size_t)len);
            size = 48 + mlen;
        }
        memcpy(out + 12, &size, 4);
        if (send(fd, out, 16 + size, 0) != (ssize_t)(16 + size)) _exit(1);
    }
    _exit(0);
}

static void against_older_daemon(void) {
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == 0, "socketpair: %s", strerror(errno));
    pid_t child = fork();
    if (child == 0) {
        close(pair[0]);
        older_daemon(pair[1]);
    }
    close(pair[1]);
    struct iommufdd_error err;
    struct iommufdd_channel *old = iommufdd_channel_adopt(pair[0], &err);
    CHECK(old != NULL, "a 1.1 daemon's channel: %s %s", err.name, err.message);
    if (old) {
        CHECK(iommufdd_channel_version_minor(old) == 1, "minor %u", iommufdd_channel_version_minor(old));
        CHECK(iommufdd_pasid_attach(old, "dev", 5, 1) == -1 && errno == EOPNOTSUPP && named(old, "iommufdd.UnknownOp", "op 16 is not a channel op of version 1.1"),
              "PASID_ATTACH to a 1.1 daemon: %s", last(old));
        iommufdd_channel_close(old);
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the 1.1 daemon exited with 0x%x", status);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s CHANNEL_FD DEVICE RID_HWPT NEST_PARENT PLAIN_HWPT FOREIGN_HWPT\n", argv[0]);
        return 2;
    }
    const char *device = argv[2];
    uint32_t rid = (uint32_t)strtoul(argv[3], NULL, 0), parent = (uint32_t)strtoul(argv[4], NULL, 0);
    uint32_t plain = (uint32_t)strtoul(argv[5], NULL, 0), foreign = (uint32_t)strtoul(argv[6], NULL, 0);
    against_older_daemon();
    struct iommufdd_error err;
    struct iommufdd_channel *ch = iommufdd_channel_adopt(atoi(argv[1]), &err);
    CHECK(ch != NULL, "adopt: %s %s", err.name, err.message);
    if (!ch) goto out;
    CHECK(iommufdd_channel_version_minor(ch) >= IOMMUFDD_CHANNEL_VERSION_MINOR, "the daemon speaks 1.%u", iommufdd_channel_version_minor(ch));

    /* The second HWPT is the program's own: a nested HWPT (selftest data: iotlb 0,
     * pagetable_type 0) on the nest parent, allocated with IOMMU_HWPT_ALLOC_PASID over the
     * channel. One allocated without the flag takes no PASID, as an RPC HWPT without pasid. */
    const uint32_t selftest[2] = {0, 0};
    uint32_t other = 0, nested_plain = 0, nest_parent = 0;
    CHECK(iommufdd_nested_alloc_flags(ch, parent, device, IOMMUFDD_HWPT_DATA_SELFTEST, selftest, sizeof(selftest), 0,
                                      IOMMUFDD_NESTED_ALLOC_PASID, &other, &nest_parent) == 0 && other != 0 && nest_parent == parent,
          "nested alloc with the PASID flag: %s", last(ch));
    CHECK(iommufdd_nested_alloc_flags(ch, parent, device, IOMMUFDD_HWPT_DATA_SELFTEST, selftest, sizeof(selftest), 0, 0,
                                      &nested_plain, NULL) == 0 && nested_plain != 0, "nested alloc with flags 0: %s", last(ch));
    CHECK(iommufdd_pasid_attach(ch, device, 7, nested_plain) == -1 && errno == EINVAL && named(ch, "iommufdd.InvalidParams", "without IOMMU_HWPT_ALLOC_PASID"),
          "a PASID onto a nested HWPT without the flag: %s", last(ch));
    CHECK(iommufdd_nested_alloc_flags(ch, parent, device, IOMMUFDD_HWPT_DATA_SELFTEST, selftest, sizeof(selftest), 0, 0x2,
                                      NULL, NULL) == -1 && errno == EOPNOTSUPP && named(ch, "iommufdd.Unsupported", "bits 0x2 this daemon does not support"),
          "an undefined flag bit: %s", last(ch));
    CHECK(iommufdd_nested_alloc_flags(ch, foreign, device, IOMMUFDD_HWPT_DATA_SELFTEST, selftest, sizeof(selftest), 0,
                                      IOMMUFDD_NESTED_ALLOC_PASID, NULL, NULL) == -1 && errno == ENOENT && named(ch, "iommufdd.NotFound", "NESTED_ALLOC_FLAGS: no HWPT or vIOMMU"),
          "another owner's HWPT as the parent: %s", last(ch));
    CHECK(iommufdd_hwpt_destroy(ch, nested_plain) == 0, "destroy the nested HWPT without the flag: %s", last(ch));

    /* Attach two PASIDs; replace one (no gap); the answer names the HWPT it left. */
    uint32_t previous = 0;
    CHECK(iommufdd_pasid_attach(ch, device, 5, rid) == 0, "attach: %s", last(ch));
    CHECK(iommufdd_pasid_attach(ch, device, (1u << 20) - 1, other) == 0, "attach the top PASID: %s", last(ch));
    CHECK(iommufdd_pasid_replace(ch, device, 5, other, &previous) == 0 && previous == rid, "replace: %s (previous %u)", last(ch), previous);
    CHECK(iommufdd_pasid_replace(ch, device, 5, other, &previous) == 0 && previous == other, "replace onto the same: %s", last(ch));

    /* Refusals, with the control plane's names and errnos. */
    CHECK(iommufdd_pasid_attach(ch, device, 5, rid) == -1 && errno == EEXIST && named(ch, "iommufdd.Conflict", "already attached"), "%s", last(ch));
    CHECK(iommufdd_pasid_attach(ch, device, 6, plain) == -1 && errno == EINVAL && named(ch, "iommufdd.InvalidParams", "without IOMMU_HWPT_ALLOC_PASID"), "%s", last(ch));
    CHECK(iommufdd_pasid_attach(ch, device, 1u << 20, rid) == -1 && errno == EINVAL && named(ch, "iommufdd.InvalidParams", "beyond the 20-bit PASIDs"), "%s", last(ch));
    CHECK(iommufdd_pasid_attach(ch, device, 0, rid) == -1 && errno == EINVAL && named(ch, "iommufdd.InvalidParams", "PASID 0"), "%s", last(ch));
    CHECK(iommufdd_pasid_attach(ch, device, 6, foreign) == -1 && errno == ENOENT && named(ch, "iommufdd.NotFound", "no HWPT"), "another owner's HWPT: %s", last(ch));
    CHECK(iommufdd_pasid_attach(ch, device, 6, 999999) == -1 && errno == ENOENT && named(ch, "iommufdd.NotFound", "no HWPT 999999"), "%s", last(ch));
    CHECK(iommufdd_pasid_attach(ch, "nope", 6, rid) == -1 && errno == ENOENT, "%s", last(ch));
    CHECK(iommufdd_pasid_replace(ch, device, 6, rid, NULL) == -1 && errno == EEXIST && named(ch, "iommufdd.Conflict", "is not attached"), "%s", last(ch));
    CHECK(iommufdd_pasid_detach(ch, device, 6, NULL) == -1 && errno == EEXIST && named(ch, "iommufdd.Conflict", "PASID_DETACH: "), "%s", last(ch));
    CHECK(iommufdd_pasid_attach(ch, "", 6, rid) == -1 && errno == EINVAL, "an empty device name: %s", last(ch));
    /* An HWPT a PASID is on cannot be destroyed. */
    CHECK(iommufdd_hwpt_destroy(ch, other) == -1 && errno == EBUSY, "%s", last(ch));

    /* Detach one; what stays for the manager to see: PASID 5 on OTHER_HWPT. */
    CHECK(iommufdd_pasid_detach(ch, device, (1u << 20) - 1, &previous) == 0 && previous == other, "detach: %s", last(ch));
    printf("pasid=5:%u\n", other);
    iommufdd_channel_close(ch);
out:
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
