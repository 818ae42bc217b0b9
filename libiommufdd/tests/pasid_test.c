/* libiommufdd's PASID calls (iommufdd_pasid_attach, iommufdd_pasid_replace,
 * iommufdd_pasid_detach; channel version 1.2), run against the real iommufdd on the simulator by
 * Tests/EndToEndTests/LibIommufddTests.swift, which plays the manager: an owner whose device (20-bit
 * PASIDs, behind the simulator's selftest mock IOMMU) has its RID on an HWPT allocated with
 * pasid=true (RID_HWPT), a second such HWPT (OTHER_HWPT), one allocated without pasid
 * (PLAIN_HWPT), another owner's HWPT (FOREIGN_HWPT), and a channel delegated for it (fd).
 *
 * usage: pasid-test CHANNEL_FD DEVICE RID_HWPT OTHER_HWPT PLAIN_HWPT FOREIGN_HWPT */
#define _GNU_SOURCE
#include <iommufdd.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static int named(struct iommufdd_channel *ch, const char *name, const char *words) {
    const struct iommufdd_error *e = iommufdd_last_error(ch);
    return strcmp(e->name, name) == 0 && strstr(e->message, words) != NULL;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s CHANNEL_FD DEVICE RID_HWPT OTHER_HWPT PLAIN_HWPT FOREIGN_HWPT\n", argv[0]);
        return 2;
    }
    const char *device = argv[2];
    uint32_t rid = (uint32_t)strtoul(argv[3], NULL, 0), other = (uint32_t)strtoul(argv[4], NULL, 0);
    uint32_t plain = (uint32_t)strtoul(argv[5], NULL, 0), foreign = (uint32_t)strtoul(argv[6], NULL, 0);
    struct iommufdd_error err;
    struct iommufdd_channel *ch = iommufdd_channel_adopt(atoi(argv[1]), &err);
    CHECK(ch != NULL, "adopt: %s %s", err.name, err.message);
    if (!ch) goto out;
    CHECK(iommufdd_channel_version_minor(ch) >= IOMMUFDD_CHANNEL_VERSION_MINOR, "the daemon speaks 1.%u", iommufdd_channel_version_minor(ch));

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
