/* libiommufdd: iommufdd_confine, the seccomp filter that keeps a device fd in its owner's
 * domain (docs/SECURITY.md, "Device fds"). See include/iommufdd.h. */
#define _GNU_SOURCE
#include "iommufdd.h"

#include <errno.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

/* _IO(VFIO_TYPE, VFIO_BASE + n) with VFIO_TYPE ';' (0x3b) and VFIO_BASE 100, from
 * include/uapi/linux/vfio.h. The numbers are part of the kernel's ABI. */
const struct iommufdd_denied_ioctl iommufdd_denied_ioctls[IOMMUFDD_DENIED_IOCTLS] = {
    { 0x3b00 + 100 + 13, "VFIO_DEVICE_PCI_HOT_RESET" },
    { 0x3b00 + 100 + 18, "VFIO_DEVICE_BIND_IOMMUFD" },
    { 0x3b00 + 100 + 19, "VFIO_DEVICE_ATTACH_IOMMUFD_PT" },
    { 0x3b00 + 100 + 20, "VFIO_DEVICE_DETACH_IOMMUFD_PT" },
};

static int confine_fail(struct iommufdd_error *err, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int confine_fail(struct iommufdd_error *err, int e, const char *fmt, ...) {
    if (err) {
        memset(err, 0, sizeof(*err));
        err->err = e;
        snprintf(err->name, sizeof(err->name), "%s", "iommufdd.Confine");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    errno = e;
    return -1;
}

int iommufdd_confine(struct iommufdd_error *err) {
    /* Unprivileged seccomp needs no_new_privs; it also means an exec'd setuid binary gains
     * nothing. It cannot be unset, like the filter. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        int e = errno;
        return confine_fail(err, e, "prctl(PR_SET_NO_NEW_PRIVS) failed: %s; nothing was confined", strerror(e));
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return confine_fail(err, ENOMEM, "seccomp_init failed (out of memory); nothing was confined");
    int rc = 0;
    const char *step = "";
    /* The compat ABIs of the native architecture get the same rules: a 64-bit process can make
     * 32-bit system calls (int 0x80 on x86_64), whose ioctl has another number. Any other
     * architecture stays at libseccomp's default for a foreign one: the thread is killed. */
#if defined(__x86_64__)
    static const uint32_t compat[] = { SCMP_ARCH_X86, SCMP_ARCH_X32 };
#elif defined(__aarch64__)
    static const uint32_t compat[] = { SCMP_ARCH_ARM };
#else
    static const uint32_t compat[] = { 0 };
#endif
    for (size_t i = 0; i < sizeof(compat) / sizeof(compat[0]) && rc == 0; i++) {
        if (compat[i] == 0) continue;
        rc = seccomp_arch_add(ctx, compat[i]);
        if (rc == -EEXIST) rc = 0;
        step = "seccomp_arch_add (a compat architecture)";
    }
    /* The kernel's ioctl takes its request as an unsigned int: the upper 32 bits of the
     * register are ignored. The rule compares the low 32 bits only, so a request with junk in
     * the upper half (which the kernel would run as the same ioctl) is denied too. */
    for (int i = 0; i < IOMMUFDD_DENIED_IOCTLS && rc == 0; i++) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, (scmp_datum_t)iommufdd_denied_ioctls[i].request));
        step = "seccomp_rule_add (ioctl)";
    }
    if (rc == 0) {
        rc = seccomp_load(ctx);
        step = "seccomp_load";
    }
    seccomp_release(ctx);
    if (rc != 0)
        return confine_fail(err, -rc, "%s failed: %s; nothing was confined (is seccomp enabled in this kernel, CONFIG_SECCOMP_FILTER?)", step, strerror(-rc));
    return 0;
}
