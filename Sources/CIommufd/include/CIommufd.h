/* Umbrella header of the C shim: what Swift cannot express.
 *   iommufd_uapi.h   own mirrors of the iommufd / VFIO cdev / selftest uAPI as of Linux 7.3,
 *                    ioctl numbers as `static const unsigned long`, _Static_assert on layouts
 *   sys_helpers.h    fixed-argument ioctl, memfd, mmap helpers
 *   socket_helpers.h SCM_RIGHTS send/receive (MSG_CMSG_CLOEXEC, MSG_CTRUNC), SO_PEERCRED
 *   linger_helpers.h ppoll + eventfd: a worker waiting briefly for a client's next request
 *   spin_helpers.h   one poll of a client's socket and an eventfd (IommufdCore's AdaptiveSpin)
 */
#ifndef CIOMMUFD_H
#define CIOMMUFD_H
#include "iommufd_uapi.h"
#include "iommufd_queues_uapi.h"
#include "iommufd_hwqueue_uapi.h"
#include "sys_helpers.h"
#include "socket_helpers.h"
#include "linger_helpers.h"
#include "spin_helpers.h"
#endif
