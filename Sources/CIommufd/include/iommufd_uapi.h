/* Own mirrors of the iommufd, VFIO cdev and iommufd selftest uAPI as of Linux 7.3.
 *
 * Layouts and numbers are facts of the kernel ABI (include/uapi/linux/iommufd.h, vfio.h and
 * drivers/iommu/iommufd/iommufd_test.h); the names are ours (`ifd_` prefix) so this header never
 * clashes with whatever <linux/iommufd.h> the build host has (Debian 12's predates most of it).
 * Every struct is pinned with _Static_assert on its size and key offsets: a layout mistake
 * fails the build, not an ioctl at run time.
 */
#ifndef CIOMMUFD_IOMMUFD_UAPI_H
#define CIOMMUFD_IOMMUFD_UAPI_H

#include <stddef.h>
#include <stdint.h>

/* __aligned_u64: 8-byte aligned on every ABI, including i386 where plain u64 is 4-aligned. */
typedef uint64_t ifd_aligned_u64 __attribute__((aligned(8)));

/* The _IO encoding of asm-generic/ioctl.h: dir (2 bits) | size (14) | type (8) | nr (8).
 * Every iommufd/VFIO-cdev ioctl is _IO: direction none, size 0 (the struct carries its size). */
#define IFD_IOC_NRSHIFT 0
#define IFD_IOC_TYPESHIFT 8
#define IFD_IOC_SIZESHIFT 16
#define IFD_IOC_DIRSHIFT 30
#define IFD_IO(type, nr) \
    ((unsigned long)((0UL << IFD_IOC_DIRSHIFT) | (0UL << IFD_IOC_SIZESHIFT) | \
                     ((unsigned long)(type) << IFD_IOC_TYPESHIFT) | ((unsigned long)(nr) << IFD_IOC_NRSHIFT)))

#define IFD_IOMMUFD_TYPE 0x3b /* ';' */
#define IFD_VFIO_TYPE 0x3b    /* ';' */
#define IFD_VFIO_BASE 100

/* enum of iommufd command numbers */
#define IFD_CMD_DESTROY 0x80
#define IFD_CMD_IOAS_ALLOC 0x81
#define IFD_CMD_IOAS_ALLOW_IOVAS 0x82
#define IFD_CMD_IOAS_COPY 0x83
#define IFD_CMD_IOAS_IOVA_RANGES 0x84
#define IFD_CMD_IOAS_MAP 0x85
#define IFD_CMD_IOAS_UNMAP 0x86
#define IFD_CMD_OPTION 0x87
#define IFD_CMD_VFIO_IOAS 0x88
#define IFD_CMD_HWPT_ALLOC 0x89
#define IFD_CMD_GET_HW_INFO 0x8a
#define IFD_CMD_HWPT_SET_DIRTY_TRACKING 0x8b
#define IFD_CMD_HWPT_GET_DIRTY_BITMAP 0x8c
#define IFD_CMD_HWPT_INVALIDATE 0x8d
#define IFD_CMD_FAULT_QUEUE_ALLOC 0x8e
#define IFD_CMD_IOAS_MAP_FILE 0x8f
#define IFD_CMD_VIOMMU_ALLOC 0x90
#define IFD_CMD_VDEVICE_ALLOC 0x91
#define IFD_CMD_IOAS_CHANGE_PROCESS 0x92
#define IFD_CMD_VEVENTQ_ALLOC 0x93
#define IFD_CMD_HW_QUEUE_ALLOC 0x94
#define IFD_CMD_TEST 0xa0 /* IOMMUFD_CMD_BASE + 32, CONFIG_IOMMUFD_TEST only */

static const unsigned long IFD_IOMMU_DESTROY = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_DESTROY);
static const unsigned long IFD_IOMMU_IOAS_ALLOC = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_IOAS_ALLOC);
static const unsigned long IFD_IOMMU_IOAS_ALLOW_IOVAS = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_IOAS_ALLOW_IOVAS);
static const unsigned long IFD_IOMMU_IOAS_COPY = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_IOAS_COPY);
static const unsigned long IFD_IOMMU_IOAS_IOVA_RANGES = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_IOAS_IOVA_RANGES);
static const unsigned long IFD_IOMMU_IOAS_MAP = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_IOAS_MAP);
static const unsigned long IFD_IOMMU_IOAS_UNMAP = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_IOAS_UNMAP);
static const unsigned long IFD_IOMMU_OPTION = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_OPTION);
static const unsigned long IFD_IOMMU_VFIO_IOAS = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_VFIO_IOAS);
static const unsigned long IFD_IOMMU_HWPT_ALLOC = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_HWPT_ALLOC);
static const unsigned long IFD_IOMMU_GET_HW_INFO = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_GET_HW_INFO);
static const unsigned long IFD_IOMMU_HWPT_SET_DIRTY_TRACKING = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_HWPT_SET_DIRTY_TRACKING);
static const unsigned long IFD_IOMMU_HWPT_GET_DIRTY_BITMAP = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_HWPT_GET_DIRTY_BITMAP);
static const unsigned long IFD_IOMMU_HWPT_INVALIDATE = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_HWPT_INVALIDATE);
static const unsigned long IFD_IOMMU_FAULT_QUEUE_ALLOC = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_FAULT_QUEUE_ALLOC);
static const unsigned long IFD_IOMMU_IOAS_MAP_FILE = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_IOAS_MAP_FILE);
static const unsigned long IFD_IOMMU_VIOMMU_ALLOC = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_VIOMMU_ALLOC);
static const unsigned long IFD_IOMMU_VDEVICE_ALLOC = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_VDEVICE_ALLOC);
static const unsigned long IFD_IOMMU_IOAS_CHANGE_PROCESS = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_IOAS_CHANGE_PROCESS);
static const unsigned long IFD_IOMMU_VEVENTQ_ALLOC = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_VEVENTQ_ALLOC);
static const unsigned long IFD_IOMMU_HW_QUEUE_ALLOC = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_HW_QUEUE_ALLOC);
static const unsigned long IFD_IOMMU_TEST_CMD = IFD_IO(IFD_IOMMUFD_TYPE, IFD_CMD_TEST);

static const unsigned long IFD_VFIO_DEVICE_BIND_IOMMUFD = IFD_IO(IFD_VFIO_TYPE, IFD_VFIO_BASE + 18);
static const unsigned long IFD_VFIO_DEVICE_ATTACH_IOMMUFD_PT = IFD_IO(IFD_VFIO_TYPE, IFD_VFIO_BASE + 19);
static const unsigned long IFD_VFIO_DEVICE_DETACH_IOMMUFD_PT = IFD_IO(IFD_VFIO_TYPE, IFD_VFIO_BASE + 20);
static const unsigned long IFD_VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = IFD_IO(IFD_VFIO_TYPE, IFD_VFIO_BASE + 12);
static const unsigned long IFD_VFIO_DEVICE_PCI_HOT_RESET = IFD_IO(IFD_VFIO_TYPE, IFD_VFIO_BASE + 13);

/* ---- flags and enums ---- */
enum {
    IFD_IOAS_MAP_FIXED_IOVA = 1 << 0,
    IFD_IOAS_MAP_WRITEABLE = 1 << 1,
    IFD_IOAS_MAP_READABLE = 1 << 2,
};
enum {
    IFD_OPTION_RLIMIT_MODE = 0,
    IFD_OPTION_HUGE_PAGES = 1,
};
enum {
    IFD_OPTION_OP_SET = 0,
    IFD_OPTION_OP_GET = 1,
};
enum {
    IFD_HWPT_ALLOC_NEST_PARENT = 1 << 0,
    IFD_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1,
    IFD_HWPT_FAULT_ID_VALID = 1 << 2,
    IFD_HWPT_ALLOC_PASID = 1 << 3,
};
enum { IFD_HWPT_DATA_NONE = 0 };
enum { IFD_HWPT_DIRTY_TRACKING_ENABLE = 1 };
enum { IFD_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1 };

/* selftest (iommufd_test.h) */
enum {
    IFD_TEST_OP_ADD_RESERVED = 1,
    IFD_TEST_OP_MOCK_DOMAIN = 2,
    IFD_TEST_OP_MOCK_DOMAIN_REPLACE = 10,
    IFD_TEST_OP_MOCK_DOMAIN_FLAGS = 12,
    IFD_TEST_OP_DIRTY = 13,
    IFD_TEST_OP_TRIGGER_IOPF = 15,
    IFD_TEST_OP_TRIGGER_VEVENT = 17,
    IFD_TEST_OP_PASID_ATTACH = 18,
    IFD_TEST_OP_PASID_REPLACE = 19,
    IFD_TEST_OP_PASID_DETACH = 20,
    IFD_TEST_OP_PASID_CHECK_HWPT = 21,
    IFD_TEST_OP_DMABUF_GET = 22,
    IFD_TEST_OP_DMABUF_REVOKE = 23,
};
enum {
    IFD_MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0,
    IFD_MOCK_FLAGS_DEVICE_PASID = 1 << 2,
};

/* ---- iommufd structs ---- */
struct ifd_destroy {
    uint32_t size;
    uint32_t id;
};
_Static_assert(sizeof(struct ifd_destroy) == 8, "iommu_destroy");

struct ifd_ioas_alloc {
    uint32_t size;
    uint32_t flags;
    uint32_t out_ioas_id;
};
_Static_assert(sizeof(struct ifd_ioas_alloc) == 12, "iommu_ioas_alloc");

struct ifd_iova_range {
    ifd_aligned_u64 start;
    ifd_aligned_u64 last;
};
_Static_assert(sizeof(struct ifd_iova_range) == 16, "iommu_iova_range");

struct ifd_ioas_iova_ranges {
    uint32_t size;
    uint32_t ioas_id;
    uint32_t num_iovas;
    uint32_t __reserved;
    ifd_aligned_u64 allowed_iovas;
    ifd_aligned_u64 out_iova_alignment;
};
_Static_assert(sizeof(struct ifd_ioas_iova_ranges) == 32, "iommu_ioas_iova_ranges");
_Static_assert(offsetof(struct ifd_ioas_iova_ranges, allowed_iovas) == 16, "allowed_iovas");
_Static_assert(offsetof(struct ifd_ioas_iova_ranges, out_iova_alignment) == 24, "out_iova_alignment");

struct ifd_ioas_allow_iovas {
    uint32_t size;
    uint32_t ioas_id;
    uint32_t num_iovas;
    uint32_t __reserved;
    ifd_aligned_u64 allowed_iovas;
};
_Static_assert(sizeof(struct ifd_ioas_allow_iovas) == 24, "iommu_ioas_allow_iovas");

struct ifd_ioas_map {
    uint32_t size;
    uint32_t flags;
    uint32_t ioas_id;
    uint32_t __reserved;
    ifd_aligned_u64 user_va;
    ifd_aligned_u64 length;
    ifd_aligned_u64 iova;
};
_Static_assert(sizeof(struct ifd_ioas_map) == 40, "iommu_ioas_map");
_Static_assert(offsetof(struct ifd_ioas_map, iova) == 32, "iommu_ioas_map.iova");

struct ifd_ioas_map_file {
    uint32_t size;
    uint32_t flags;
    uint32_t ioas_id;
    int32_t fd;
    ifd_aligned_u64 start;
    ifd_aligned_u64 length;
    ifd_aligned_u64 iova;
};
_Static_assert(sizeof(struct ifd_ioas_map_file) == 40, "iommu_ioas_map_file");
_Static_assert(offsetof(struct ifd_ioas_map_file, fd) == 12, "iommu_ioas_map_file.fd");

struct ifd_ioas_copy {
    uint32_t size;
    uint32_t flags;
    uint32_t dst_ioas_id;
    uint32_t src_ioas_id;
    ifd_aligned_u64 length;
    ifd_aligned_u64 dst_iova;
    ifd_aligned_u64 src_iova;
};
_Static_assert(sizeof(struct ifd_ioas_copy) == 40, "iommu_ioas_copy");
_Static_assert(offsetof(struct ifd_ioas_copy, src_iova) == 32, "iommu_ioas_copy.src_iova");

struct ifd_ioas_unmap {
    uint32_t size;
    uint32_t ioas_id;
    ifd_aligned_u64 iova;
    ifd_aligned_u64 length;
};
_Static_assert(sizeof(struct ifd_ioas_unmap) == 24, "iommu_ioas_unmap");
_Static_assert(offsetof(struct ifd_ioas_unmap, iova) == 8, "iommu_ioas_unmap.iova");

struct ifd_option {
    uint32_t size;
    uint32_t option_id;
    uint16_t op;
    uint16_t __reserved;
    uint32_t object_id;
    ifd_aligned_u64 val64;
};
_Static_assert(sizeof(struct ifd_option) == 24, "iommu_option");
_Static_assert(offsetof(struct ifd_option, object_id) == 12, "iommu_option.object_id");
_Static_assert(offsetof(struct ifd_option, val64) == 16, "iommu_option.val64");

struct ifd_hwpt_alloc {
    uint32_t size;
    uint32_t flags;
    uint32_t dev_id;
    uint32_t pt_id;
    uint32_t out_hwpt_id;
    uint32_t __reserved;
    uint32_t data_type;
    uint32_t data_len;
    ifd_aligned_u64 data_uptr;
    uint32_t fault_id;
    uint32_t __reserved2;
};
_Static_assert(sizeof(struct ifd_hwpt_alloc) == 48, "iommu_hwpt_alloc");
_Static_assert(offsetof(struct ifd_hwpt_alloc, data_uptr) == 32, "iommu_hwpt_alloc.data_uptr");
_Static_assert(offsetof(struct ifd_hwpt_alloc, fault_id) == 40, "iommu_hwpt_alloc.fault_id");

struct ifd_hw_info {
    uint32_t size;
    uint32_t flags;
    uint32_t dev_id;
    uint32_t data_len;
    ifd_aligned_u64 data_uptr;
    uint32_t out_data_type; /* union with in_data_type (IOMMU_HW_INFO_FLAG_INPUT_TYPE) */
    uint8_t out_max_pasid_log2;
    uint8_t __reserved[3];
    ifd_aligned_u64 out_capabilities;
};
_Static_assert(sizeof(struct ifd_hw_info) == 40, "iommu_hw_info");
_Static_assert(offsetof(struct ifd_hw_info, out_data_type) == 24, "iommu_hw_info.out_data_type");
_Static_assert(offsetof(struct ifd_hw_info, out_max_pasid_log2) == 28, "iommu_hw_info.out_max_pasid_log2");
_Static_assert(offsetof(struct ifd_hw_info, out_capabilities) == 32, "iommu_hw_info.out_capabilities");

struct ifd_hwpt_set_dirty_tracking {
    uint32_t size;
    uint32_t flags;
    uint32_t hwpt_id;
    uint32_t __reserved;
};
_Static_assert(sizeof(struct ifd_hwpt_set_dirty_tracking) == 16, "iommu_hwpt_set_dirty_tracking");

struct ifd_hwpt_get_dirty_bitmap {
    uint32_t size;
    uint32_t hwpt_id;
    uint32_t flags;
    uint32_t __reserved;
    ifd_aligned_u64 iova;
    ifd_aligned_u64 length;
    ifd_aligned_u64 page_size;
    ifd_aligned_u64 data;
};
_Static_assert(sizeof(struct ifd_hwpt_get_dirty_bitmap) == 48, "iommu_hwpt_get_dirty_bitmap");
_Static_assert(offsetof(struct ifd_hwpt_get_dirty_bitmap, data) == 40, "iommu_hwpt_get_dirty_bitmap.data");

struct ifd_viommu_alloc {
    uint32_t size;
    uint32_t flags;
    uint32_t type;
    uint32_t dev_id;
    uint32_t hwpt_id;
    uint32_t out_viommu_id;
    uint32_t data_len;
    uint32_t __reserved;
    ifd_aligned_u64 data_uptr;
};
_Static_assert(sizeof(struct ifd_viommu_alloc) == 40, "iommu_viommu_alloc");
_Static_assert(offsetof(struct ifd_viommu_alloc, out_viommu_id) == 20, "iommu_viommu_alloc.out_viommu_id");

struct ifd_vdevice_alloc {
    uint32_t size;
    uint32_t viommu_id;
    uint32_t dev_id;
    uint32_t out_vdevice_id;
    ifd_aligned_u64 virt_id;
};
_Static_assert(sizeof(struct ifd_vdevice_alloc) == 24, "iommu_vdevice_alloc");
_Static_assert(offsetof(struct ifd_vdevice_alloc, virt_id) == 16, "iommu_vdevice_alloc.virt_id");

/* ---- selftest: struct iommu_test_cmd with the union members the daemon uses ----
 * The kernel's union is 48 bytes (its largest member is `dirty`), so the struct keeps the
 * kernel's size (72) and `last` at offset 64: the kernel's min_size is offsetofend(last). */
struct ifd_test_cmd {
    uint32_t size;
    uint32_t op;
    uint32_t id;
    uint32_t __reserved;
    union {
        struct {
            ifd_aligned_u64 start;
            ifd_aligned_u64 length;
        } add_reserved;
        struct {
            uint32_t out_stdev_id;
            uint32_t out_hwpt_id;
            uint32_t out_idev_id;
        } mock_domain;
        struct {
            uint32_t out_stdev_id;
            uint32_t out_hwpt_id;
            uint32_t out_idev_id;
            uint32_t dev_flags;
        } mock_domain_flags;
        struct {
            uint32_t pt_id;
        } mock_domain_replace;
        struct {
            uint32_t flags;
            ifd_aligned_u64 iova;
            ifd_aligned_u64 length;
            ifd_aligned_u64 page_size;
            ifd_aligned_u64 uptr;
            ifd_aligned_u64 out_nr_dirty;
        } dirty;
        struct {
            uint32_t pasid;
            uint32_t hwpt_id; /* 0: checks that nothing is attached at `pasid` */
        } pasid_check; /* `id` is the selftest object */
        struct {
            uint32_t pasid;
            uint32_t pt_id;
        } pasid_attach; /* also pasid_replace; `id` is the selftest object */
        struct {
            uint32_t pasid;
        } pasid_detach; /* `id` is the selftest object */
        struct {
            uint32_t dev_id;
            uint32_t pasid;
            uint32_t grpid;
            uint32_t perm;
            ifd_aligned_u64 addr;
        } trigger_iopf;
        struct {
            uint32_t dev_id;
        } trigger_vevent;
        struct {
            uint32_t length;     /* rounded up to pages; 1..512 pages */
            uint32_t open_flags; /* O_CLOEXEC ... of the new dma-buf fd */
        } dmabuf_get;
        struct {
            int32_t dmabuf_fd;
            uint32_t revoked;
        } dmabuf_revoke;
    };
    uint32_t last;
};
_Static_assert(sizeof(struct ifd_test_cmd) == 72, "iommu_test_cmd");
_Static_assert(offsetof(struct ifd_test_cmd, add_reserved) == 16, "iommu_test_cmd union");
_Static_assert(offsetof(struct ifd_test_cmd, dirty.iova) == 24, "iommu_test_cmd.dirty.iova");
_Static_assert(offsetof(struct ifd_test_cmd, dirty.out_nr_dirty) == 56, "iommu_test_cmd.dirty.out_nr_dirty");
_Static_assert(offsetof(struct ifd_test_cmd, last) == 64, "iommu_test_cmd.last");
_Static_assert(offsetof(struct ifd_test_cmd, pasid_check.hwpt_id) == 20, "iommu_test_cmd.pasid_check.hwpt_id");
_Static_assert(offsetof(struct ifd_test_cmd, pasid_attach.pt_id) == 20, "iommu_test_cmd.pasid_attach.pt_id");
_Static_assert(offsetof(struct ifd_test_cmd, pasid_detach.pasid) == 16, "iommu_test_cmd.pasid_detach.pasid");
_Static_assert(offsetof(struct ifd_test_cmd, trigger_iopf.addr) == 32, "iommu_test_cmd.trigger_iopf.addr");
_Static_assert(offsetof(struct ifd_test_cmd, trigger_vevent.dev_id) == 16, "iommu_test_cmd.trigger_vevent.dev_id");
_Static_assert(offsetof(struct ifd_test_cmd, dmabuf_get.open_flags) == 20, "iommu_test_cmd.dmabuf_get.open_flags");
_Static_assert(offsetof(struct ifd_test_cmd, dmabuf_revoke.revoked) == 20, "iommu_test_cmd.dmabuf_revoke.revoked");

/* ---- VFIO cdev ---- */
struct ifd_vfio_device_bind_iommufd {
    uint32_t argsz;
    uint32_t flags;
    int32_t iommufd;
    uint32_t out_devid;
    ifd_aligned_u64 token_uuid_ptr; /* VFIO_DEVICE_BIND_FLAG_TOKEN only */
};
_Static_assert(sizeof(struct ifd_vfio_device_bind_iommufd) == 24, "vfio_device_bind_iommufd");
_Static_assert(offsetof(struct ifd_vfio_device_bind_iommufd, out_devid) == 12, "out_devid");

struct ifd_vfio_device_attach_iommufd_pt {
    uint32_t argsz;
    uint32_t flags;
    uint32_t pt_id;
    uint32_t pasid;
};
_Static_assert(sizeof(struct ifd_vfio_device_attach_iommufd_pt) == 16, "vfio_device_attach_iommufd_pt");

struct ifd_vfio_device_detach_iommufd_pt {
    uint32_t argsz;
    uint32_t flags;
    uint32_t pasid;
};
_Static_assert(sizeof(struct ifd_vfio_device_detach_iommufd_pt) == 12, "vfio_device_detach_iommufd_pt");
/* VFIO_DEVICE_ATTACH_PASID / VFIO_DEVICE_DETACH_PASID: `flags` of the two structs above. */
enum { IFD_VFIO_DEVICE_ATTACH_PASID = 1 << 0, IFD_VFIO_DEVICE_DETACH_PASID = 1 << 0 };

/* VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: a 12-byte header, then `count` of these. */
struct ifd_vfio_pci_dependent_device {
    int32_t devid;       /* union with group_id; VFIO_PCI_DEVID_OWNED 0, NOT_OWNED -1 */
    uint16_t segment;
    uint8_t bus;
    uint8_t devfn;
};
_Static_assert(sizeof(struct ifd_vfio_pci_dependent_device) == 8, "vfio_pci_dependent_device");
struct ifd_vfio_pci_hot_reset_info {
    uint32_t argsz;
    uint32_t flags;      /* IFD_VFIO_PCI_HOT_RESET_FLAG_DEV_ID | _DEV_ID_OWNED */
    uint32_t count;
};
_Static_assert(sizeof(struct ifd_vfio_pci_hot_reset_info) == 12, "vfio_pci_hot_reset_info");
#define IFD_VFIO_PCI_HOT_RESET_FLAG_DEV_ID (1u << 0)
#define IFD_VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED (1u << 1)
/* VFIO_DEVICE_PCI_HOT_RESET: header then `count` group fds (0 for a cdev: iommufd ownership). */
struct ifd_vfio_pci_hot_reset {
    uint32_t argsz;
    uint32_t flags;
    uint32_t count;
};
_Static_assert(sizeof(struct ifd_vfio_pci_hot_reset) == 12, "vfio_pci_hot_reset");

#endif
