/* libiommufdd: the C client of iommufdd's VMM channel (docs/vmm-channel.md).
 *
 * A VM manager asks iommufdd for a channel with the JSON-RPC method `owner.delegate` and passes
 * the fd it gets to the VMM, as libvirt passes fds to QEMU. The VMM adopts it here and makes the
 * calls of its hot path over it: map, unmap and copy (batches of up to 256 in one message), dirty
 * bitmap reads into a memfd it supplied once, and its devices' fds. Whoever holds the channel acts
 * as that owner and only that owner.
 *
 * Errors: a call returns -1 (NULL for iommufdd_channel_adopt) and sets errno; the daemon's error
 * name ("iommufdd.NotFound", ...), its message, and for a batch the entry that failed are in
 * iommufdd_last_error(). Transport failures set errno too (EPIPE: the daemon closed the channel,
 * e.g. revoked; ETIMEDOUT: no answer within the timeout) with name "iommufdd.Transport".
 *
 * Not thread-safe: one call at a time per channel (open more channels for more threads). One
 * exception to one request at a time: INVALIDATE batches can be pipelined
 * (iommufdd_invalidate_send / iommufdd_invalidate_wait), several in flight on one channel.
 * The wire structs below are the ones on the wire (little-endian hosts only). */
#ifndef IOMMUFDD_H
#define IOMMUFDD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOMMUFDD_CHANNEL_VERSION_MAJOR 1
/* The channel minor version of this library's newest calls: 1 the nested-translation calls, 2 the
 * PASID calls (iommufdd_pasid_attach ...). An older daemon answers a newer call EOPNOTSUPP
 * ("iommufdd.UnknownOp"); iommufdd_channel_version_minor says what the daemon speaks. */
#define IOMMUFDD_CHANNEL_VERSION_MINOR 2
#define IOMMUFDD_MAX_ENTRIES 256
#define IOMMUFDD_MAX_MEMORY_SLOTS 512

/* MAP and COPY entry flags. */
#define IOMMUFDD_MAP_READ 0x1u
#define IOMMUFDD_MAP_WRITE 0x2u
#define IOMMUFDD_MAP_FIXED_IOVA 0x4u
/* UNMAP entry flags (neither TOLERATE_MISSING nor REQUIRE_PRESENT: the owner's policy). */
#define IOMMUFDD_UNMAP_TOLERATE_MISSING 0x1u
#define IOMMUFDD_UNMAP_REQUIRE_PRESENT 0x2u
#define IOMMUFDD_UNMAP_ALL 0x4u
/* DIRTY_READ flags. */
#define IOMMUFDD_DIRTY_NO_CLEAR 0x1u

struct iommufdd_channel;

struct iommufdd_error {
    int err;              /* the errno (also in errno after the failed call) */
    uint32_t index;       /* for a batch: the entry that failed */
    uint32_t done;        /* for a batch: entries whose effect stays (UNMAP: those before index) */
    char name[32];        /* the daemon's error name, e.g. "iommufdd.QuotaExceeded" */
    char message[1025];   /* what failed, why, and what to do */
};

/* MAP: `iova` is where to map with IOMMUFDD_MAP_FIXED_IOVA (else 0; the answer fills it in). */
struct iommufdd_map {
    uint32_t ioas;
    uint32_t mem_index;   /* a memfd registered with iommufdd_mem_register */
    uint64_t offset;      /* into that memfd */
    uint64_t length;
    uint64_t iova;
    uint32_t flags;
    uint32_t reserved;    /* 0 */
};

struct iommufdd_unmap {
    uint32_t ioas;
    uint32_t flags;
    uint64_t iova;
    uint64_t length;
};

/* COPY: map the pages behind [src_iova, +length) of src_ioas into dst_ioas (same owner). */
struct iommufdd_copy {
    uint32_t dst_ioas;
    uint32_t src_ioas;
    uint64_t src_iova;
    uint64_t length;
    uint64_t dst_iova;    /* with IOMMUFDD_MAP_FIXED_IOVA; else 0, filled in */
    uint32_t flags;
    uint32_t reserved;
};

struct iommufdd_dirty_result {
    uint64_t dirty_pages;
    uint64_t bitmap_bytes;    /* bytes written at offset 0 of the bitmap memfd */
    uint32_t clear_failures;  /* HWPTs whose clearing read failed (their pages stay dirty) */
};

/* Adopts a channel fd (from owner.delegate): the library owns it from now on, even on failure.
 * Says HELLO and checks the protocol version. NULL with errno (and *err filled when given). */
struct iommufdd_channel *iommufdd_channel_adopt(int fd, struct iommufdd_error *err);
/* Closes the channel and every fd the library keeps for it. */
void iommufdd_channel_close(struct iommufdd_channel *ch);

int iommufdd_channel_fd(const struct iommufdd_channel *ch);
/* The owner this channel acts as, and its ID. */
const char *iommufdd_channel_owner(const struct iommufdd_channel *ch);
uint64_t iommufdd_channel_id(const struct iommufdd_channel *ch);
/* The daemon's page size: offsets, lengths and IOVAs are multiples of it. */
uint64_t iommufdd_channel_page_size(const struct iommufdd_channel *ch);
/* The channel minor version the daemon answered HELLO with (1: ops up to QUEUE_FD; 2: PASID ops). */
unsigned iommufdd_channel_version_minor(const struct iommufdd_channel *ch);
/* How long a call waits for its answer (default 30000 ms; < 0: forever). */
void iommufdd_channel_set_timeout(struct iommufdd_channel *ch, int milliseconds);
/* The last failure on this channel. */
const struct iommufdd_error *iommufdd_last_error(const struct iommufdd_channel *ch);

/* Registers `memfd` (guest RAM; or a dma-buf, e.g. a VFIO PCI BAR for P2P, which the daemon
 * maps as P2P memory, not pinned: docs/p2p.md) under `index`; the library keeps a duplicate, so that after a
 * daemon restart (the daemon answers ESTALE for an index it does not know) it registers it again
 * and retries the call, once, without the caller seeing it. */
int iommufdd_mem_register(struct iommufdd_channel *ch, uint32_t index, int memfd);
int iommufdd_mem_unregister(struct iommufdd_channel *ch, uint32_t index);

/* All or nothing: on failure no entry stays mapped (unless undoing failed: see done). Fills in
 * each entry's iova, and *pinned (may be NULL) with the owner's pinned bytes after. */
int iommufdd_map(struct iommufdd_channel *ch, struct iommufdd_map *entries, unsigned count, uint64_t *pinned);
/* In order; stops at the first failure (entries before it stay unmapped). unmapped[i] (may be
 * NULL) gets each entry's bytes. */
int iommufdd_unmap(struct iommufdd_channel *ch, const struct iommufdd_unmap *entries, unsigned count,
                   uint64_t *unmapped, uint64_t *pinned);
int iommufdd_copy(struct iommufdd_channel *ch, struct iommufdd_copy *entries, unsigned count, uint64_t *pinned);

/* Sets the memfd DIRTY_READ writes bitmaps into (bit n of 64-bit little-endian words = page n
 * of the range); kept by the library for a restart, like the memory. */
int iommufdd_dirty_bitmap_set(struct iommufdd_channel *ch, int memfd);
int iommufdd_dirty_read(struct iommufdd_channel *ch, uint32_t ioas, uint64_t iova, uint64_t length,
                        uint64_t page_size, uint32_t flags, struct iommufdd_dirty_result *out);

/* A device leased to this channel's owner: its bound VFIO cdev fd (>= 0, the caller owns it), or
 * -1. Under the daemon's trusted_vmm rule, as device.fd on the control plane. */
int iommufdd_device_fd(struct iommufdd_channel *ch, const char *device, uint32_t *device_id);

/* A PCI hot reset (bus or slot reset) of a device leased to this channel's owner, done by the
 * daemon after it checked that every device the reset touches is leased to the same owner
 * (EPERM, "iommufdd.PolicyRefused", naming the others, when not). For a VMM confined by
 * iommufdd_confine, which may not call VFIO_DEVICE_PCI_HOT_RESET itself. *reset_count (may be
 * NULL): how many devices were reset, the device included. EOPNOTSUPP when the device has no
 * hot reset (no bus or slot reset covers it, or not PCI): use VFIO_DEVICE_RESET on its fd. */
int iommufdd_device_hot_reset(struct iommufdd_channel *ch, const char *device, uint32_t *reset_count);

/* Nested translation, for a VMM with a vIOMMU (docs/vmm-channel.md, "Nested translation"). Per
 * guest STE or PASID-table change (QEMU's flow): a nested HWPT for the new stage 1
 * (iommufdd_nested_alloc), the device moved onto it without a window of blocked DMA
 * (iommufdd_replace), the old one destroyed (iommufdd_hwpt_destroy). Per guest TLB command: a
 * batch of entries in one IOMMU_HWPT_INVALIDATE (iommufdd_invalidate). The checks are those of
 * hwpt.alloc, device.replace, hwpt.destroy and hwpt.invalidate / viommu.invalidate on the control
 * plane; the objects are this channel's owner's (another owner's IDs answer ENOENT, like absent
 * ones). */

/* Nested data types (IOMMU_HWPT_DATA_*): `data` is the kernel's uAPI struct of the type, exactly
 * (selftest 8 bytes: iotlb, pagetable_type 0; vtd_s1 24; arm_smmuv3 16; amd_guest 32). */
#define IOMMUFDD_HWPT_DATA_VTD_S1 1u
#define IOMMUFDD_HWPT_DATA_ARM_SMMUV3 2u
#define IOMMUFDD_HWPT_DATA_AMD_GUEST 3u
#define IOMMUFDD_HWPT_DATA_SELFTEST 0xdeadu
/* Invalidation data types: entries are the uAPI structs (vtd_s1 24 bytes, to a nested HWPT;
 * arm_smmuv3 16, to a vIOMMU; selftest 8 to a mock nested HWPT, 12 to a mock vIOMMU). */
#define IOMMUFDD_INVALIDATE_DATA_VTD_S1 0u
#define IOMMUFDD_INVALIDATE_DATA_ARM_SMMUV3 1u
#define IOMMUFDD_INVALIDATE_DATA_SELFTEST 0xdeadbeefu
/* iommufdd_queue_fd's kinds. */
#define IOMMUFDD_QUEUE_FAULT 1u
#define IOMMUFDD_QUEUE_VEVENTQ 2u

/* A nested HWPT for `device` (leased to this owner) on `parent`, a nest-parent HWPT or a vIOMMU
 * of this owner. fault_queue: a fault queue of the owner, or 0. *hwpt (may be NULL): the new
 * HWPT's ID; *nest_parent (may be NULL): its stage-2 parent. */
int iommufdd_nested_alloc(struct iommufdd_channel *ch, uint32_t parent, const char *device, uint32_t data_type,
                          const void *data, uint32_t data_len, uint32_t fault_queue, uint32_t *hwpt, uint32_t *nest_parent);
/* Moves an attached device of this owner onto `pt` (an HWPT, or an IOAS: the owner's auto-domain
 * policy picks the HWPT). *previous (may be NULL): the page table it left. */
int iommufdd_replace(struct iommufdd_channel *ch, const char *device, uint32_t pt, uint32_t *previous);
/* Destroys an HWPT of this owner (EBUSY while a device or a nested HWPT uses it). */
int iommufdd_hwpt_destroy(struct iommufdd_channel *ch, uint32_t hwpt);
/* `count` entries (1 to IOMMUFDD_MAX_ENTRIES) of `entry_len` bytes each to a nested HWPT or a
 * vIOMMU (`target`), in one IOMMU_HWPT_INVALIDATE. As the ioctl: 0 when every entry was done;
 * -1 with errno otherwise, and *done (may be NULL) says how many entries, in order, took effect
 * (the driver refused entry *done with errno; the ones after it were not tried: send them again
 * once it is fixed). iommufdd_last_error()->done is the same. */
int iommufdd_invalidate(struct iommufdd_channel *ch, uint32_t target, uint32_t data_type, const void *entries,
                        uint32_t entry_len, unsigned count, uint32_t *done);
/* Pipelined invalidation (docs/vmm-channel.md, "Pipelining and busy polling"): for a VMM whose
 * guest queues TLB commands faster than one round trip each, e.g. several vCPUs or invalidation
 * queues. iommufdd_invalidate_send sends a batch as iommufdd_invalidate would and returns at once
 * (0, *id (may be NULL) the request's id; -1 with errno: EBUSY when IOMMUFDD_MAX_IN_FLIGHT are
 * in flight already, or as iommufdd_invalidate for a bad batch or a closed channel).
 * iommufdd_invalidate_wait waits for the answer to the oldest one in flight (the daemon runs
 * them in order, one after the other): *id (may be NULL) which request it answers, and 0 or -1
 * with errno and *done exactly as iommufdd_invalidate (a refused batch changes nothing and the
 * next one still runs; ETIMEDOUT leaves it in flight). EINVAL when nothing is in flight. While
 * any is in flight, every other call on the channel fails with EBUSY. */
#define IOMMUFDD_MAX_IN_FLIGHT 16u
int iommufdd_invalidate_send(struct iommufdd_channel *ch, uint32_t target, uint32_t data_type, const void *entries,
                             uint32_t entry_len, unsigned count, uint64_t *id);
int iommufdd_invalidate_wait(struct iommufdd_channel *ch, uint64_t *id, uint32_t *done);
/* INVALIDATE requests sent by iommufdd_invalidate_send and not yet collected. */
unsigned iommufdd_in_flight(const struct iommufdd_channel *ch);
/* An event or fault queue of this owner (fault.create / veventq.create on the control plane):
 * a fresh relay fd (SOCK_SEQPACKET, one record a message; fault responses go back on it), >= 0,
 * the caller owns it; the previous holder's fd reaches end of file. Never the kernel's queue fd.
 * *kind (may be NULL): IOMMUFDD_QUEUE_FAULT or IOMMUFDD_QUEUE_VEVENTQ. */
int iommufdd_queue_fd(struct iommufdd_channel *ch, uint32_t queue, uint32_t *kind);

/* PASID attachments (channel version 1.2; docs/vmm-channel.md, "PASID attachments (ops 16-18)"),
 * for a VMM with a vIOMMU that follows the guest's PASID table: per entry the guest sets, the
 * PASID of the device attached to an HWPT (usually a nested one for the guest's stage 1, from
 * iommufdd_nested_alloc), moved to another without a window of blocked DMA when the guest
 * changes the entry, detached when it clears it. The checks are those of device.attach_pasid,
 * device.replace_pasid and device.detach_pasid on the control plane, with the same error names
 * and errno: the device leased to this channel's owner (another owner's device or HWPT is
 * ENOENT, like an absent one), the HWPT allocated with `pasid` (hwpt.alloc pasid=true, or
 * iommufdd_nested_alloc_flags with IOMMUFDD_NESTED_ALLOC_PASID; EINVAL otherwise), `pasid` from 1 up to the device's width (device.info capabilities.pasid_width;
 * PASID 0 is the RID: iommufdd_replace), the device's RID on an HWPT allocated with `pasid` too.
 * Attaching an attached PASID, or replacing or detaching one that is not, is EEXIST
 * ("iommufdd.Conflict"). The daemon journals the attachment: it survives a daemon restart, and
 * owner.release detaches it. A daemon older than 1.2 answers EOPNOTSUPP. */
int iommufdd_pasid_attach(struct iommufdd_channel *ch, const char *device, uint32_t pasid, uint32_t hwpt);
/* *previous (may be NULL): the HWPT the PASID left (the same as hwpt when it was on it already:
 * nothing is done then). */
int iommufdd_pasid_replace(struct iommufdd_channel *ch, const char *device, uint32_t pasid, uint32_t hwpt, uint32_t *previous);
/* *previous (may be NULL): the HWPT the PASID was on. Its DMA is blocked from now on. */
int iommufdd_pasid_detach(struct iommufdd_channel *ch, const char *device, uint32_t pasid, uint32_t *previous);
/* iommufdd_nested_alloc with a flags word (NESTED_ALLOC_FLAGS, op 19, channel version 1.2;
 * docs/vmm-channel.md "NESTED_ALLOC_FLAGS (op 19)"): IOMMUFDD_NESTED_ALLOC_PASID allocates the
 * nested HWPT with IOMMU_HWPT_ALLOC_PASID (hwpt.alloc pasid=true on the control plane), so the
 * VMM can put a device PASID on it with iommufdd_pasid_attach without asking its manager. The
 * checks and errors are iommufdd_nested_alloc's and hwpt.alloc pasid=true's (EOPNOTSUPP, named
 * "iommufdd.Unsupported", when the daemon's backend has no PASID support); any other flag bit is
 * EOPNOTSUPP too ("iommufdd.Unsupported", as the kernel answers a flag it does not know). Flags 0 is iommufdd_nested_alloc. A daemon older than 1.2
 * answers EOPNOTSUPP ("iommufdd.UnknownOp"). */
#define IOMMUFDD_NESTED_ALLOC_PASID 0x1u
int iommufdd_nested_alloc_flags(struct iommufdd_channel *ch, uint32_t parent, const char *device, uint32_t data_type,
                                const void *data, uint32_t data_len, uint32_t fault_queue, uint32_t flags,
                                uint32_t *hwpt, uint32_t *nest_parent);

/* Confinement (docs/SECURITY.md, "Device fds"). A bound VFIO device fd can re-attach its
 * device to any IOAS or HWPT of the daemon's iommufd, another VM's included, and hot-reset devices
 * of other owners on the same bus. After it has its device fds, a VMM calls iommufd_confine() on
 * itself: a seccomp filter makes these ioctls fail with EPERM, on any fd, for this process and
 * every process it starts (inherited across fork and exec; it cannot be removed). Hot resets go
 * through the daemon instead (iommufdd_device_hot_reset), which checks every device they touch.
 * Sets PR_SET_NO_NEW_PRIVS. Returns 0, or -1 with errno (*err filled when given; name
 * "iommufdd.Confine"), in which case nothing was confined. The exec wrapper
 * `iommufdd-confine -- CMD...` does the same for a VMM that cannot be changed. */
#define IOMMUFDD_DENIED_IOCTLS 4
struct iommufdd_denied_ioctl {
    unsigned long request;
    const char *name;
};
/* The ioctls the filter denies: VFIO_DEVICE_PCI_HOT_RESET, VFIO_DEVICE_BIND_IOMMUFD,
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_IOMMUFD_PT. */
extern const struct iommufdd_denied_ioctl iommufdd_denied_ioctls[IOMMUFDD_DENIED_IOCTLS];
int iommufdd_confine(struct iommufdd_error *err);

#ifdef __cplusplus
}
#endif

#endif
