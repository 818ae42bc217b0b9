/* What libiommufdd's test programs share: CHECK counts a passed or failed check and prints
 * the failures with their place; `last` words a channel's last error for a failure line. */
#ifndef IOMMUFDD_TESTS_CHECK_H
#define IOMMUFDD_TESTS_CHECK_H

#include <iommufdd.h>

#include <stdio.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond) {                                                            \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);             \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
        }                                                                      \
    } while (0)

static inline const char *last(struct iommufdd_channel *ch) {
    static char text[1200];
    const struct iommufdd_error *e = iommufdd_last_error(ch);
    snprintf(text, sizeof(text), "errno %d (%s) %s: %s [entry %u, done %u]", e->err, strerror(e->err), e->name, e->message, e->index, e->done);
    return text;
}

#endif
