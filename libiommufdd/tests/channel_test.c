/* libiommufdd's test, run against the real iommufdd on the simulator by a Swift test
 * (Tests/EndToEndTests/LibIommufddTests.swift), which plays the manager: it makes the owner, two
 * IOAS, a dirty-tracked mapping a simulated device has written to, delegates a channel, and
 * starts this program with the channel as an inherited fd (as another uid, with no role in the
 * daemon, when run as root).
 *
 * usage: channel-test CHANNEL_FD OWNER IOAS IOAS2 DIRTY_IOVA DIRTY_WORD
 * DIRTY_WORD: the first 64-bit word of the bitmap expected for 64 pages from DIRTY_IOVA. */
#define _GNU_SOURCE
#include <iommufdd.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s CHANNEL_FD OWNER IOAS IOAS2 DIRTY_IOVA DIRTY_WORD\n", argv[0]);
        return 2;
    }
    int fd = atoi(argv[1]);
    const char *owner = argv[2];
    uint32_t ioas = (uint32_t)strtoul(argv[3], NULL, 0), ioas2 = (uint32_t)strtoul(argv[4], NULL, 0);
    uint64_t dirty_iova = strtoull(argv[5], NULL, 0), dirty_word = strtoull(argv[6], NULL, 0);
    printf("running as uid %d\n", (int)getuid());

    /* Something that is not a channel is refused, and closed. */
    struct iommufdd_error err;
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK(iommufdd_channel_adopt(devnull, &err) == NULL && errno == ENOTSOCK, "errno %d", errno);
    CHECK(strcmp(err.name, "iommufdd.Transport") == 0 && strstr(err.message, "SOCK_SEQPACKET"), "%s: %s", err.name, err.message);
    CHECK(fcntl(devnull, F_GETFD) < 0, "the refused fd is closed");

    struct iommufdd_channel *ch = iommufdd_channel_adopt(fd, &err);
    CHECK(ch != NULL, "adopt: %s %s", err.name, err.message);
    if (!ch) goto out;
    CHECK(strcmp(iommufdd_channel_owner(ch), owner) == 0, "owner %s", iommufdd_channel_owner(ch));
    CHECK(iommufdd_channel_page_size(ch) == (uint64_t)sysconf(_SC_PAGESIZE), "page size %" PRIu64, iommufdd_channel_page_size(ch));
    CHECK(iommufdd_channel_id(ch) > 0, "channel id");

    int ram = memfd_create("guest-ram", MFD_CLOEXEC);
    CHECK(ram >= 0 && ftruncate(ram, 1 << 20) == 0, "memfd");
    CHECK(iommufdd_mem_register(ch, 0, ram) == 0, "register: %s", last(ch));

    /* A batch: three at fixed IOVAs, one where the kernel chooses. */
    struct iommufdd_map maps[4] = {
        { .ioas = ioas, .mem_index = 0, .offset = 0x0000, .length = 0x4000, .iova = 0x1000000, .flags = IOMMUFDD_MAP_READ | IOMMUFDD_MAP_WRITE | IOMMUFDD_MAP_FIXED_IOVA },
        { .ioas = ioas, .mem_index = 0, .offset = 0x4000, .length = 0x4000, .iova = 0x1100000, .flags = IOMMUFDD_MAP_READ | IOMMUFDD_MAP_WRITE | IOMMUFDD_MAP_FIXED_IOVA },
        { .ioas = ioas, .mem_index = 0, .offset = 0x8000, .length = 0x4000, .iova = 0x1200000, .flags = IOMMUFDD_MAP_READ | IOMMUFDD_MAP_FIXED_IOVA },
        { .ioas = ioas, .mem_index = 0, .offset = 0xc000, .length = 0x1000, .iova = 0, .flags = IOMMUFDD_MAP_READ | IOMMUFDD_MAP_WRITE },
    };
    uint64_t pinned = 0;
    CHECK(iommufdd_map(ch, maps, 4, &pinned) == 0, "map: %s", last(ch));
    CHECK(maps[0].iova == 0x1000000 && maps[2].iova == 0x1200000 && maps[3].iova != 0, "iovas %" PRIx64, maps[3].iova);
    CHECK(pinned >= 0xd000, "pinned %" PRIu64, pinned);

    /* Errors: errno, the daemon's name and message, the entry. */
    struct iommufdd_map bad[2] = {
        { .ioas = ioas, .mem_index = 0, .offset = 0, .length = 0x1000, .iova = 0x2000000, .flags = IOMMUFDD_MAP_READ | IOMMUFDD_MAP_FIXED_IOVA },
        { .ioas = 999999, .mem_index = 0, .offset = 0, .length = 0x1000, .iova = 0x2000000, .flags = IOMMUFDD_MAP_READ | IOMMUFDD_MAP_FIXED_IOVA },
    };
    CHECK(iommufdd_map(ch, bad, 2, NULL) == -1 && errno == ENOENT, "errno %d", errno);
    const struct iommufdd_error *e = iommufdd_last_error(ch);
    CHECK(strcmp(e->name, "iommufdd.NotFound") == 0 && e->index == 1 && e->done == 0 && strstr(e->message, "no IOAS 999999"), "%s", last(ch));
    struct iommufdd_map unregistered = { .ioas = ioas, .mem_index = 9, .offset = 0, .length = 0x1000, .iova = 0x3000000, .flags = IOMMUFDD_MAP_READ | IOMMUFDD_MAP_FIXED_IOVA };
    CHECK(iommufdd_map(ch, &unregistered, 1, NULL) == -1 && errno == ESTALE, "errno %d", errno);
    CHECK(strcmp(iommufdd_last_error(ch)->name, "iommufdd.NotRegistered") == 0, "%s", last(ch));
    CHECK(iommufdd_map(ch, maps, 0, NULL) == -1 && errno == EINVAL, "an empty batch");

    /* COPY into the second IOAS, then UNMAP. */
    struct iommufdd_copy cp = { .dst_ioas = ioas2, .src_ioas = ioas, .src_iova = 0x1000000, .length = 0x4000, .dst_iova = 0x40000000,
                                .flags = IOMMUFDD_MAP_READ | IOMMUFDD_MAP_WRITE | IOMMUFDD_MAP_FIXED_IOVA };
    CHECK(iommufdd_copy(ch, &cp, 1, NULL) == 0 && cp.dst_iova == 0x40000000, "copy: %s", last(ch));
    struct iommufdd_unmap un[2] = { { ioas, 0, 0x1100000, 0x4000 }, { ioas, 0, 0x1200000, 0x4000 } };
    uint64_t bytes[2] = { 0, 0 };
    CHECK(iommufdd_unmap(ch, un, 2, bytes, &pinned) == 0 && bytes[0] == 0x4000 && bytes[1] == 0x4000, "unmap: %s", last(ch));
    struct iommufdd_unmap hole = { ioas, IOMMUFDD_UNMAP_REQUIRE_PRESENT, 0x7000000, 0x1000 };
    CHECK(iommufdd_unmap(ch, &hole, 1, NULL, NULL) == -1 && errno == ENOENT, "errno %d", errno);
    hole.flags = IOMMUFDD_UNMAP_TOLERATE_MISSING;
    CHECK(iommufdd_unmap(ch, &hole, 1, bytes, NULL) == 0 && bytes[0] == 0, "tolerated: %s", last(ch));

    /* Dirty pages into a bitmap memfd set once. */
    int bitmap = memfd_create("dirty-bitmap", MFD_CLOEXEC);
    CHECK(bitmap >= 0 && ftruncate(bitmap, 4096) == 0, "bitmap memfd");
    CHECK(iommufdd_dirty_bitmap_set(ch, bitmap) == 0, "bitmap: %s", last(ch));
    struct iommufdd_dirty_result dr;
    CHECK(iommufdd_dirty_read(ch, ioas, dirty_iova, 64 * 4096, 0, IOMMUFDD_DIRTY_NO_CLEAR, &dr) == 0, "dirty: %s", last(ch));
    uint64_t word = 0;
    CHECK(pread(bitmap, &word, 8, 0) == 8 && word == dirty_word, "word 0x%" PRIx64 ", expected 0x%" PRIx64, word, dirty_word);
    CHECK(dr.dirty_pages == (uint64_t)__builtin_popcountll(dirty_word) && dr.bitmap_bytes == 8, "pages %" PRIu64, dr.dirty_pages);
    CHECK(iommufdd_dirty_read(ch, ioas, dirty_iova, 64 * 4096, 0, 0, &dr) == 0 && dr.dirty_pages == (uint64_t)__builtin_popcountll(dirty_word), "read and clear");
    CHECK(iommufdd_dirty_read(ch, ioas, dirty_iova, 64 * 4096, 0, 0, &dr) == 0 && dr.dirty_pages == 0, "cleared");

    /* Device fds: none on the simulator, and nobody else's device. */
    uint32_t device_id = 0;
    CHECK(iommufdd_device_fd(ch, "sim-pci0", &device_id) == -1 && errno == EOPNOTSUPP, "errno %d", errno);
    CHECK(strcmp(iommufdd_last_error(ch)->name, "iommufdd.Unsupported") == 0, "%s", last(ch));
    CHECK(iommufdd_device_fd(ch, "sim-pci1", &device_id) == -1 && errno == ENOENT, "errno %d", errno);

    /* Hot reset: sim-pci0 shares PCI bus 00 with sim-pci1 (another owner's) and sim-pci2
     * (nobody's), so the daemon refuses it and says why; nobody else's device is absent. */
    uint32_t reset = 99;
    CHECK(iommufdd_device_hot_reset(ch, "sim-pci0", &reset) == -1 && errno == EPERM && reset == 99, "errno %d", errno);
    CHECK(strcmp(iommufdd_last_error(ch)->name, "iommufdd.PolicyRefused") == 0 && strstr(iommufdd_last_error(ch)->message, "sim-pci1 (0000:00:03.0, leased to another owner)"), "%s", last(ch));
    CHECK(iommufdd_device_hot_reset(ch, "sim-pci1", &reset) == -1 && errno == ENOENT, "errno %d", errno);
    CHECK(iommufdd_device_hot_reset(ch, "", &reset) == -1 && errno == EINVAL, "an empty name");

    /* What stays mapped for the manager to see: 0x1000000 and the auto IOVA in IOAS, the copy. */
    printf("auto_iova=0x%" PRIx64 "\n", maps[3].iova);
    iommufdd_channel_close(ch);
    close(ram);
    close(bitmap);
out:
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
