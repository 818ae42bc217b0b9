/* Own mirrors of the iommufd event-queue, fault-queue and selftest trigger uAPI as of Linux 7.3
 * (include/uapi/linux/iommufd.h, drivers/iommu/iommufd/iommufd_test.h): branch `queues`.
 * Layouts and numbers are facts of the kernel ABI; every struct is pinned with _Static_assert.
 */
#ifndef CIOMMUFD_IOMMUFD_QUEUES_UAPI_H
#define CIOMMUFD_IOMMUFD_QUEUES_UAPI_H

#include <stddef.h>
#include <stdint.h>
#include "iommufd_uapi.h"

/* struct iommu_fault_alloc (IOMMU_FAULT_QUEUE_ALLOC) */
struct ifd_fault_alloc {
    uint32_t size;
    uint32_t flags;
    uint32_t out_fault_id;
    uint32_t out_fault_fd;
};
_Static_assert(sizeof(struct ifd_fault_alloc) == 16, "iommu_fault_alloc");

/* struct iommu_veventq_alloc (IOMMU_VEVENTQ_ALLOC) */
struct ifd_veventq_alloc {
    uint32_t size;
    uint32_t flags;
    uint32_t viommu_id;
    uint32_t type;
    uint32_t veventq_depth;
    uint32_t out_veventq_id;
    uint32_t out_veventq_fd;
    uint32_t __reserved;
};
_Static_assert(sizeof(struct ifd_veventq_alloc) == 32, "iommu_veventq_alloc");
_Static_assert(offsetof(struct ifd_veventq_alloc, out_veventq_fd) == 24, "iommu_veventq_alloc.out_veventq_fd");

/* struct iommufd_vevent_header: what a vEVENTQ read returns before each event's data. */
struct ifd_vevent_header {
    uint32_t flags;    /* IFD_VEVENTQ_FLAG_LOST_EVENTS */
    uint32_t sequence;
};
_Static_assert(sizeof(struct ifd_vevent_header) == 8, "iommufd_vevent_header");
#define IFD_VEVENTQ_FLAG_LOST_EVENTS (1u << 0)
#define IFD_VEVENTQ_MAX_DEPTH (1u << 19)
#define IFD_VEVENTQ_TYPE_SELFTEST 0xbeefbeefu

/* struct iommu_hwpt_pgfault: one record of a fault-queue read. */
struct ifd_hwpt_pgfault {
    uint32_t flags;   /* IOMMU_PGFAULT_FLAGS_PASID_VALID 1, _LAST_PAGE 2 */
    uint32_t dev_id;
    uint32_t pasid;
    uint32_t grpid;
    uint32_t perm;    /* IOMMU_PGFAULT_PERM_READ 1, _WRITE 2, _EXEC 4, _PRIV 8 */
    uint32_t __reserved;
    ifd_aligned_u64 addr;
    uint32_t length;
    uint32_t cookie;
};
_Static_assert(sizeof(struct ifd_hwpt_pgfault) == 40, "iommu_hwpt_pgfault");
_Static_assert(offsetof(struct ifd_hwpt_pgfault, addr) == 24, "iommu_hwpt_pgfault.addr");
_Static_assert(offsetof(struct ifd_hwpt_pgfault, cookie) == 36, "iommu_hwpt_pgfault.cookie");

/* struct iommu_hwpt_page_response: what a fault-queue write takes. */
struct ifd_hwpt_page_response {
    uint32_t cookie;
    uint32_t code; /* IOMMUFD_PAGE_RESP_SUCCESS 0, _INVALID 1 */
};
_Static_assert(sizeof(struct ifd_hwpt_page_response) == 8, "iommu_hwpt_page_response");

/* The selftest ops (IOMMU_TEST_OP_TRIGGER_IOPF, _TRIGGER_VEVENT) are members of struct
 * ifd_test_cmd in iommufd_uapi.h. */

#endif
