/* Own mirror of the iommufd HW queue uAPI as of Linux 7.3 (include/uapi/linux/iommufd.h,
 * drivers/iommu/iommufd/iommufd_test.h): branch `hwqueue`.
 * Layouts and numbers are facts of the kernel ABI; every struct is pinned with _Static_assert.
 */
#ifndef CIOMMUFD_IOMMUFD_HWQUEUE_UAPI_H
#define CIOMMUFD_IOMMUFD_HWQUEUE_UAPI_H

#include <stddef.h>
#include <stdint.h>
#include "iommufd_uapi.h"

/* struct iommu_hw_queue_alloc (IOMMU_HW_QUEUE_ALLOC) */
struct ifd_hw_queue_alloc {
    uint32_t size;
    uint32_t flags;
    uint32_t viommu_id;
    uint32_t type;
    uint32_t index;
    uint32_t out_hw_queue_id;
    ifd_aligned_u64 nesting_parent_iova;
    ifd_aligned_u64 length;
};
_Static_assert(sizeof(struct ifd_hw_queue_alloc) == 40, "iommu_hw_queue_alloc");
_Static_assert(offsetof(struct ifd_hw_queue_alloc, index) == 16, "iommu_hw_queue_alloc.index");
_Static_assert(offsetof(struct ifd_hw_queue_alloc, out_hw_queue_id) == 20, "iommu_hw_queue_alloc.out_hw_queue_id");
_Static_assert(offsetof(struct ifd_hw_queue_alloc, nesting_parent_iova) == 24, "iommu_hw_queue_alloc.nesting_parent_iova");
_Static_assert(offsetof(struct ifd_hw_queue_alloc, length) == 32, "iommu_hw_queue_alloc.length");

#define IFD_HW_QUEUE_TYPE_DEFAULT 0u
#define IFD_HW_QUEUE_TYPE_TEGRA241_CMDQV 1u
#define IFD_HW_QUEUE_TYPE_SELFTEST 0xdeadbeefu
#define IFD_TEST_HW_QUEUE_MAX 2u

#endif
