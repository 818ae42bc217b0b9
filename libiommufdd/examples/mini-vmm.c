/* mini-vmm: the VMM side of iommufdd in under 300 lines, on a real VFIO device (QEMU's edu,
 * a DMA engine). A manager (in the test VM: `vm-e2e mini-vmm`) creates the owner, its IOAS and
 * the guest memory memfd, leases and attaches the device, delegates a channel, and starts this
 * program with the channel and the memfd inherited. This program then does what a VMM does:
 *
 *   1. adopts the channel, registers the guest memory, maps it (MAP at a fixed IOVA);
 *   2. takes its device's fd over the channel (DEVICE_FD);
 *   3. confines itself (iommufdd_confine): from here on it cannot move the device elsewhere;
 *   4. makes the device DMA guest memory -> device -> guest memory and checks the bytes;
 *   5. unmaps (UNMAP) and sees the next DMA blocked by the IOMMU;
 *   6. tries to attach its device to another IOAS, detach it, rebind it and hot-reset the bus
 *      itself: EPERM, from the filter (unconfined, the same calls reached the kernel);
 *   7. asks the daemon for the hot reset instead (HOT_RESET), maps again and sees DMA land.
 *
 * usage: mini-vmm CHANNEL_FD MEMFD_FD IOAS DEVICE OTHER_IOAS
 *   OTHER_IOAS: an IOAS of another owner, which the device must never reach.
 * Prints one line per check and "N passed, 0 failed"; exit status 0 when all passed.
 *
 * Build: make -C libiommufdd (build/mini-vmm; build/mini-vmm-static for the test VM), or
 * against an installed library:
 *   cc -o mini-vmm mini-vmm.c $(pkg-config --cflags --libs iommufdd)
 *   cc -static -o mini-vmm mini-vmm.c $(pkg-config --static --cflags --libs iommufdd) */
#define _GNU_SOURCE
#include <iommufdd.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* include/uapi/linux/vfio.h: _IO(';', 100 + n). */
#define VFIO_DEVICE_GET_REGION_INFO 0x3b6c
#define VFIO_DEVICE_PCI_HOT_RESET 0x3b71
#define VFIO_DEVICE_BIND_IOMMUFD 0x3b76
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT 0x3b77
#define VFIO_DEVICE_DETACH_IOMMUFD_PT 0x3b78
struct region_info { uint32_t argsz, flags, index, cap_offset; uint64_t size, offset; };
struct bind_iommufd { uint32_t argsz, flags; int32_t iommufd; uint32_t out_devid; uint64_t token_uuid_ptr; };
struct attach_pt { uint32_t argsz, flags, pt_id, pasid; };
struct detach_pt { uint32_t argsz, flags, pasid; };
struct hot_reset { uint32_t argsz, flags, count; };

/* QEMU's edu (docs/specs/edu.rst): BAR0 registers; the engine's bus addresses are 28 bits. */
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_BUFFER 0x40000
#define IOVA 0x100000ull
#define GUEST_BYTES (1u << 20)

static int passed, failed;
#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (cond) { passed++; printf("ok    %s\n", #cond); }                               \
        else { failed++; printf("FAIL  %s:%d: %s: ", __FILE__, __LINE__, #cond); printf(__VA_ARGS__); printf("\n"); } \
        fflush(stdout);                                                                    \
    } while (0)

static int device;
static off_t bar0;

static off_t region(uint32_t index) {
    struct region_info r = { .argsz = sizeof(r), .index = index };
    return ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &r) == 0 ? (off_t)r.offset : -1;
}
static int reg_write(off_t reg, uint64_t v) { return pwrite(device, &v, 8, bar0 + reg) == 8 ? 0 : -1; }
static uint64_t reg_read(off_t reg) { uint64_t v = ~0ull; return pread(device, &v, 8, bar0 + reg) == 8 ? v : ~0ull; }
/* Registers below 0x80 take 4-byte accesses only (others read as all ones). */
static uint32_t reg_read32(off_t reg) { uint32_t v = ~0u; return pread(device, &v, 4, bar0 + reg) == 4 ? v : ~0u; }

/* One transfer of `count` bytes; toRAM: from the device's buffer to `dst`. 0 when it finished. */
static int dma(uint64_t src, uint64_t dst, uint64_t count, int to_ram) {
    if (reg_write(EDU_DMA_SRC, src) || reg_write(EDU_DMA_DST, dst) || reg_write(EDU_DMA_COUNT, count) ||
        reg_write(EDU_DMA_CMD, to_ram ? 0x3 : 0x1))
        return -1;
    for (int i = 0; i < 2000; i++) { /* the engine runs on a QEMU timer: about 100 ms */
        if ((reg_read(EDU_DMA_CMD) & 1) == 0) return 0;
        usleep(5000);
    }
    return -1;
}

static const char *last(struct iommufdd_channel *ch) {
    static char text[1200];
    const struct iommufdd_error *e = iommufdd_last_error(ch);
    snprintf(text, sizeof(text), "errno %d (%s) %s: %s", e->err, strerror(e->err), e->name, e->message);
    return text;
}

/* The errno of one raw ioctl on the device fd (0 on success). */
static int try_ioctl(unsigned long request, void *arg) { return ioctl(device, request, arg) == 0 ? 0 : errno; }

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s CHANNEL_FD MEMFD_FD IOAS DEVICE OTHER_IOAS\n", argv[0]);
        return 2;
    }
    int channel_fd = atoi(argv[1]), memfd = atoi(argv[2]);
    uint32_t ioas = (uint32_t)strtoul(argv[3], NULL, 0), other_ioas = (uint32_t)strtoul(argv[5], NULL, 0);
    const char *device_name = argv[4];

    struct iommufdd_error err;
    struct iommufdd_channel *ch = iommufdd_channel_adopt(channel_fd, &err);
    if (!ch) { printf("FAIL  adopt the channel: %s: %s\n", err.name, err.message); return 1; }
    printf("channel %" PRIu64 " of owner %s\n", iommufdd_channel_id(ch), iommufdd_channel_owner(ch));
    unsigned char *ram = mmap(NULL, GUEST_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    CHECK(ram != MAP_FAILED, "mmap of the guest memory memfd: %s", strerror(errno));
    if (ram == MAP_FAILED) return 1;

    /* 1. Guest memory into the owner's IOAS. */
    CHECK(iommufdd_mem_register(ch, 0, memfd) == 0, "register: %s", last(ch));
    struct iommufdd_map m = { .ioas = ioas, .mem_index = 0, .offset = 0, .length = GUEST_BYTES, .iova = IOVA,
                              .flags = IOMMUFDD_MAP_READ | IOMMUFDD_MAP_WRITE | IOMMUFDD_MAP_FIXED_IOVA };
    CHECK(iommufdd_map(ch, &m, 1, NULL) == 0, "map: %s", last(ch));

    /* 2. The device fd, over the channel. */
    uint32_t devid = 0;
    device = iommufdd_device_fd(ch, device_name, &devid);
    CHECK(device >= 0, "DEVICE_FD %s: %s", device_name, last(ch));
    if (device < 0) goto out;
    printf("device %s: fd %d, iommufd device ID %u\n", device_name, device, devid);
    bar0 = region(0);
    off_t config = region(7);
    CHECK(bar0 >= 0 && config >= 0, "VFIO_DEVICE_GET_REGION_INFO: %s", strerror(errno));
    uint16_t command = 0;
    CHECK(pread(device, &command, 2, config + 4) == 2, "read the PCI command register");
    command |= 0x6; /* memory space + bus master */
    CHECK(pwrite(device, &command, 2, config + 4) == 2, "enable bus mastering");
    uint32_t id = reg_read32(0);
    CHECK((id & 0xff) == 0xed, "BAR0 identification 0x%x: not an edu device", id);

    /* Unconfined, the ioctls the filter will deny reach the kernel: a bind to no iommufd is the
     * kernel's error (EBADF/EINVAL), not EPERM. */
    struct bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = -1 };
    int before = try_ioctl(VFIO_DEVICE_BIND_IOMMUFD, &bind);
    CHECK(before != 0 && before != EPERM, "unconfined, VFIO_DEVICE_BIND_IOMMUFD(-1) gave %d", before);

    /* 3. Confinement. */
    CHECK(iommufdd_confine(&err) == 0, "iommufdd_confine: %s: %s", err.name, err.message);

    /* 4. DMA: guest memory -> device buffer -> guest memory + 4 KiB. */
    for (int i = 0; i < 256; i++) ram[i] = (unsigned char)(i ^ 0x5a);
    memset(ram + 0x1000, 0, 256);
    CHECK(dma(IOVA, EDU_BUFFER, 256, 0) == 0 && dma(EDU_BUFFER, IOVA + 0x1000, 256, 1) == 0, "DMA did not complete");
    CHECK(memcmp(ram, ram + 0x1000, 256) == 0, "the bytes the device wrote back differ from guest memory");
    printf("      DMA through IOVA 0x%llx landed\n", IOVA);

    /* 5. Unmapped, the next DMA is blocked. */
    struct iommufdd_unmap u = { .ioas = ioas, .iova = IOVA, .length = GUEST_BYTES };
    uint64_t unmapped = 0;
    CHECK(iommufdd_unmap(ch, &u, 1, &unmapped, NULL) == 0 && unmapped == GUEST_BYTES, "unmap: %s", last(ch));
    memset(ram + 0x2000, 0, 256);
    CHECK(dma(EDU_BUFFER, IOVA + 0x2000, 256, 1) == 0, "a blocked DMA still completes on the edu");
    int zero = 1;
    for (int i = 0; i < 256; i++) zero &= ram[0x2000 + i] == 0;
    CHECK(zero, "DMA to an unmapped IOVA landed; the IOMMU should have blocked it");
    printf("      DMA to IOVA 0x%llx blocked after UNMAP\n", IOVA + 0x2000);

    /* 6. Confined: the device stays where its owner put it. */
    struct attach_pt attach = { .argsz = sizeof(attach), .pt_id = other_ioas };
    CHECK(try_ioctl(VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) == EPERM, "ATTACH_IOMMUFD_PT to another owner's IOAS %u: %s", other_ioas, strerror(errno));
    struct detach_pt detach = { .argsz = sizeof(detach) };
    CHECK(try_ioctl(VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach) == EPERM, "DETACH_IOMMUFD_PT: %s", strerror(errno));
    CHECK(try_ioctl(VFIO_DEVICE_BIND_IOMMUFD, &bind) == EPERM, "BIND_IOMMUFD: %s", strerror(errno));
    struct hot_reset reset = { .argsz = sizeof(reset) };
    CHECK(try_ioctl(VFIO_DEVICE_PCI_HOT_RESET, &reset) == EPERM, "PCI_HOT_RESET: %s", strerror(errno));

    /* 7. The hot reset goes through the daemon: it runs it, or says this device has none (the
     * edu sits on the root bus, which has no bus reset: Unsupported). Either way not EPERM:
     * every device it would touch is ours. */
    uint32_t count = 0;
    int r = iommufdd_device_hot_reset(ch, device_name, &count);
    CHECK(r == 0 || (errno == EOPNOTSUPP && strcmp(iommufdd_last_error(ch)->name, "iommufdd.Unsupported") == 0), "HOT_RESET: %s", last(ch));
    printf("      HOT_RESET through the daemon: %s\n", r == 0 ? "done" : iommufdd_last_error(ch)->message);
    if (r == 0) {  /* a reset clears the command register: bus mastering on again */
        pwrite(device, &command, 2, config + 4);
    }

    /* Mapped again, DMA lands again: the device is still on its own IOAS. */
    CHECK(iommufdd_map(ch, &m, 1, NULL) == 0, "map again: %s", last(ch));
    for (int i = 0; i < 256; i++) ram[i] = (unsigned char)(i ^ 0x3c);
    memset(ram + 0x1000, 0, 256);
    CHECK(dma(IOVA, EDU_BUFFER, 256, 0) == 0 && dma(EDU_BUFFER, IOVA + 0x1000, 256, 1) == 0, "DMA did not complete");
    CHECK(memcmp(ram, ram + 0x1000, 256) == 0, "after mapping again, the DMA did not land");
    CHECK(iommufdd_unmap(ch, &u, 1, NULL, NULL) == 0, "final unmap: %s", last(ch));
    close(device);
out:
    iommufdd_channel_close(ch);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
