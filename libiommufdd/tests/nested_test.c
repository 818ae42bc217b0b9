/* libiommufdd's nested-translation calls (iommufdd_nested_alloc, iommufdd_replace,
 * iommufdd_invalidate and its pipelined form iommufdd_invalidate_send / _wait,
 * iommufdd_hwpt_destroy, iommufdd_queue_fd), run against the real iommufdd on
 * the simulator by Tests/EndToEndTests/LibIommufddTests.swift, which plays the manager: an owner
 * whose device (behind the simulator's selftest mock IOMMU) is on a vIOMMU's nest parent, with
 * vDevice 7 and a fault queue, and a channel delegated for it (inherited as an fd).
 *
 * usage: nested-test CHANNEL_FD DEVICE NEST_PARENT VIOMMU FAULT_QUEUE */
#define _GNU_SOURCE
#include <iommufdd.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

struct hwpt_entry { uint32_t flags, iotlb_id; };            /* struct iommu_hwpt_invalidate_selftest */
struct viommu_entry { uint32_t flags, vdev_id, cache_id; };  /* struct iommu_viommu_invalidate_selftest */
struct selftest_data { uint32_t iotlb, pagetable_type; };    /* struct iommu_hwpt_selftest */

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s CHANNEL_FD DEVICE NEST_PARENT VIOMMU FAULT_QUEUE\n", argv[0]);
        return 2;
    }
    const char *device = argv[2];
    uint32_t parent = (uint32_t)strtoul(argv[3], NULL, 0), viommu = (uint32_t)strtoul(argv[4], NULL, 0);
    uint32_t queue = (uint32_t)strtoul(argv[5], NULL, 0);
    struct iommufdd_error err;
    struct iommufdd_channel *ch = iommufdd_channel_adopt(atoi(argv[1]), &err);
    CHECK(ch != NULL, "adopt: %s %s", err.name, err.message);
    if (!ch) goto out;

    /* A nested HWPT on the nest parent and one on the vIOMMU. */
    struct selftest_data data = { 5, 0 };
    uint32_t hwpt = 0, hwpt2 = 0, stage2 = 0;
    CHECK(iommufdd_nested_alloc(ch, parent, device, IOMMUFDD_HWPT_DATA_SELFTEST, &data, sizeof(data), 0, &hwpt, &stage2) == 0, "alloc: %s", last(ch));
    CHECK(hwpt != 0 && stage2 == parent, "hwpt %u on %u", hwpt, stage2);
    CHECK(iommufdd_nested_alloc(ch, viommu, device, IOMMUFDD_HWPT_DATA_SELFTEST, &data, sizeof(data), 0, &hwpt2, &stage2) == 0, "alloc on the vIOMMU: %s", last(ch));
    CHECK(stage2 == parent, "the vIOMMU's nest parent %u", stage2);

    /* Refusals: an unknown type, a size that is not the type's, an absent parent, another
     * type's data. */
    CHECK(iommufdd_nested_alloc(ch, parent, device, 7, &data, sizeof(data), 0, NULL, NULL) == -1 && errno == EINVAL, "errno %d", errno);
    CHECK(strcmp(iommufdd_last_error(ch)->name, "iommufdd.InvalidParams") == 0 && strstr(iommufdd_last_error(ch)->message, "data_type 0x7"), "%s", last(ch));
    CHECK(iommufdd_nested_alloc(ch, parent, device, IOMMUFDD_HWPT_DATA_SELFTEST, &data, 4, 0, NULL, NULL) == -1 && errno == EBADMSG, "%s", last(ch));
    CHECK(iommufdd_nested_alloc(ch, 999999, device, IOMMUFDD_HWPT_DATA_SELFTEST, &data, sizeof(data), 0, NULL, NULL) == -1 && errno == ENOENT, "%s", last(ch));
    uint64_t vtd[3] = { 0, 0x1000, 48 };
    CHECK(iommufdd_nested_alloc(ch, parent, device, IOMMUFDD_HWPT_DATA_VTD_S1, vtd, sizeof(vtd), 0, NULL, NULL) == -1 && errno == EINVAL, "%s", last(ch));
    CHECK(strstr(iommufdd_last_error(ch)->message, "NESTED_ALLOC: data.type 'vtd_s1' does not fit device") != NULL, "%s", last(ch));

    /* The device onto the nested HWPT. */
    uint32_t previous = 0;
    CHECK(iommufdd_replace(ch, device, hwpt, &previous) == 0 && previous == parent, "replace: %s (previous %u)", last(ch), previous);
    CHECK(iommufdd_replace(ch, device, 999999, NULL) == -1 && errno == ENOENT, "%s", last(ch));

    /* Invalidation: a batch of 64 in one call. */
    struct hwpt_entry batch[64];
    for (int i = 0; i < 64; i++) batch[i] = (struct hwpt_entry){ 0, (uint32_t)(i % 4) };
    uint32_t done = 99;
    CHECK(iommufdd_invalidate(ch, hwpt, IOMMUFDD_INVALIDATE_DATA_SELFTEST, batch, sizeof(batch[0]), 64, &done) == 0 && done == 64, "invalidate: %s (done %u)", last(ch), done);
    /* The vIOMMU's: entry 1 names a vDevice that does not exist; the kernel stops there. */
    struct viommu_entry v[3] = { { 0, 7, 0 }, { 0, 8, 1 }, { 0, 7, 2 } };
    CHECK(iommufdd_invalidate(ch, viommu, IOMMUFDD_INVALIDATE_DATA_SELFTEST, v, sizeof(v[0]), 3, &done) == -1 && errno == EINVAL && done == 1, "errno %d done %u", errno, done);
    CHECK(strcmp(iommufdd_last_error(ch)->name, "iommufdd.Kernel") == 0 && iommufdd_last_error(ch)->done == 1 && iommufdd_last_error(ch)->index == 1, "%s", last(ch));
    CHECK(iommufdd_invalidate(ch, viommu, IOMMUFDD_INVALIDATE_DATA_SELFTEST, &v[1], sizeof(v[0]), 1, &done) == -1 && errno == EINVAL && done == 0, "%s", last(ch));
    CHECK(strcmp(iommufdd_last_error(ch)->name, "iommufdd.Kernel") == 0, "%s", last(ch));
    /* Checked before the kernel: an IOTLB index past the mock's, a vIOMMU entry to an HWPT. */
    struct hwpt_entry bad = { 0, 4 };
    CHECK(iommufdd_invalidate(ch, hwpt, IOMMUFDD_INVALIDATE_DATA_SELFTEST, &bad, sizeof(bad), 1, &done) == -1 && errno == EINVAL, "%s", last(ch));
    CHECK(strcmp(iommufdd_last_error(ch)->name, "iommufdd.InvalidParams") == 0 && strstr(iommufdd_last_error(ch)->message, "iotlb_id 4"), "%s", last(ch));
    CHECK(iommufdd_invalidate(ch, hwpt, IOMMUFDD_INVALIDATE_DATA_SELFTEST, v, sizeof(v[0]), 1, &done) == -1 && errno == EINVAL, "%s", last(ch));
    CHECK(iommufdd_invalidate(ch, hwpt, IOMMUFDD_INVALIDATE_DATA_SELFTEST, batch, sizeof(batch[0]), 0, &done) == -1 && errno == EINVAL, "an empty batch");
    CHECK(iommufdd_invalidate(ch, 999999, IOMMUFDD_INVALIDATE_DATA_SELFTEST, batch, sizeof(batch[0]), 1, &done) == -1 && errno == ENOENT, "%s", last(ch));

    /* Pipelined: four batches in flight, the third refused by the daemon's checks; the answers
     * come in order, each for its request, and the refused one does not stop the fourth. */
    uint64_t ids[4] = { 0 }, answered = 0;
    CHECK(iommufdd_invalidate_wait(ch, &answered, &done) == -1 && errno == EINVAL, "a wait with nothing in flight: %s", last(ch));
    CHECK(iommufdd_invalidate_send(ch, hwpt, IOMMUFDD_INVALIDATE_DATA_SELFTEST, batch, sizeof(batch[0]), 64, &ids[0]) == 0, "send: %s", last(ch));
    CHECK(iommufdd_invalidate_send(ch, hwpt, IOMMUFDD_INVALIDATE_DATA_SELFTEST, batch, sizeof(batch[0]), 8, &ids[1]) == 0, "send: %s", last(ch));
    CHECK(iommufdd_invalidate_send(ch, hwpt, IOMMUFDD_INVALIDATE_DATA_SELFTEST, &bad, sizeof(bad), 1, &ids[2]) == 0, "send: %s", last(ch));
    CHECK(iommufdd_invalidate_send(ch, hwpt, IOMMUFDD_INVALIDATE_DATA_SELFTEST, batch, sizeof(batch[0]), 256 / 8, &ids[3]) == 0, "send: %s", last(ch));
    CHECK(iommufdd_in_flight(ch) == 4 && ids[1] == ids[0] + 1 && ids[3] == ids[0] + 3, "in flight %u, ids %" PRIu64 "..%" PRIu64, iommufdd_in_flight(ch), ids[0], ids[3]);
    /* Any other call waits its turn: EBUSY, and nothing is sent. */
    CHECK(iommufdd_invalidate(ch, hwpt, IOMMUFDD_INVALIDATE_DATA_SELFTEST, batch, sizeof(batch[0]), 1, &done) == -1 && errno == EBUSY, "%s", last(ch));
    CHECK(iommufdd_replace(ch, device, parent, NULL) == -1 && errno == EBUSY && strstr(iommufdd_last_error(ch)->message, "iommufdd_invalidate_wait"), "%s", last(ch));
    CHECK(iommufdd_invalidate_wait(ch, &answered, &done) == 0 && answered == ids[0] && done == 64, "answer 0: %s (id %" PRIu64 ", done %u)", last(ch), answered, done);
    CHECK(iommufdd_invalidate_wait(ch, &answered, &done) == 0 && answered == ids[1] && done == 8, "answer 1: %s (done %u)", last(ch), done);
    CHECK(iommufdd_invalidate_wait(ch, &answered, &done) == -1 && errno == EINVAL && answered == ids[2] && done == 0, "answer 2: %s", last(ch));
    CHECK(strcmp(iommufdd_last_error(ch)->name, "iommufdd.InvalidParams") == 0 && strstr(iommufdd_last_error(ch)->message, "iotlb_id 4"), "%s", last(ch));
    CHECK(iommufdd_invalidate_wait(ch, &answered, &done) == 0 && answered == ids[3] && done == 32, "answer 3: %s (done %u)", last(ch), done);
    CHECK(iommufdd_in_flight(ch) == 0, "in flight %u", iommufdd_in_flight(ch));
    /* The bound: IOMMUFDD_MAX_IN_FLIGHT, then EBUSY until one is collected. */
    unsigned sent = 0;
    while (sent < IOMMUFDD_MAX_IN_FLIGHT && iommufdd_invalidate_send(ch, hwpt, IOMMUFDD_INVALIDATE_DATA_SELFTEST, batch, sizeof(batch[0]), 64, NULL) == 0) sent++;
    CHECK(sent == IOMMUFDD_MAX_IN_FLIGHT, "sent %u: %s", sent, last(ch));
    CHECK(iommufdd_invalidate_send(ch, hwpt, IOMMUFDD_INVALIDATE_DATA_SELFTEST, batch, sizeof(batch[0]), 64, NULL) == -1 && errno == EBUSY, "%s", last(ch));
    unsigned collected = 0;
    while (iommufdd_in_flight(ch) > 0 && iommufdd_invalidate_wait(ch, NULL, &done) == 0 && done == 64) collected++;
    CHECK(collected == IOMMUFDD_MAX_IN_FLIGHT, "collected %u: %s", collected, last(ch));
    CHECK(iommufdd_invalidate(ch, hwpt, IOMMUFDD_INVALIDATE_DATA_SELFTEST, batch, sizeof(batch[0]), 64, &done) == 0 && done == 64, "after: %s", last(ch));

    /* Destroy: busy while the device is on it. QEMU's flow for a new guest STE: alloc, replace,
     * destroy the old one. */
    CHECK(iommufdd_hwpt_destroy(ch, hwpt) == -1 && errno == EBUSY, "%s", last(ch));
    uint32_t hwpt3 = 0;
    CHECK(iommufdd_nested_alloc(ch, parent, device, IOMMUFDD_HWPT_DATA_SELFTEST, &data, sizeof(data), 0, &hwpt3, NULL) == 0, "%s", last(ch));
    CHECK(iommufdd_replace(ch, device, hwpt3, &previous) == 0 && previous == hwpt, "%s", last(ch));
    CHECK(iommufdd_hwpt_destroy(ch, hwpt) == 0, "%s", last(ch));
    CHECK(iommufdd_hwpt_destroy(ch, hwpt) == -1 && errno == ENOENT, "%s", last(ch));

    /* The fault queue's relay fd. */
    uint32_t kind = 0;
    int qfd = iommufdd_queue_fd(ch, queue, &kind);
    int type = 0;
    socklen_t len = sizeof(type);
    CHECK(qfd >= 0 && kind == IOMMUFDD_QUEUE_FAULT && getsockopt(qfd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_SEQPACKET, "queue fd: %s", last(ch));
    if (qfd >= 0) close(qfd);
    CHECK(iommufdd_queue_fd(ch, 999999, &kind) == -1 && errno == ENOENT, "%s", last(ch));

    /* Back onto the nest parent; what stays for the manager to see: hwpt3 and hwpt2. */
    CHECK(iommufdd_replace(ch, device, parent, &previous) == 0 && previous == hwpt3, "%s", last(ch));
    printf("nested=%u,%u\n", hwpt3, hwpt2);
    iommufdd_channel_close(ch);
out:
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
