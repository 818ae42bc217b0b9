/*
 * pingload: C clients sending one JSON-RPC line at a time to a Unix socket (iommufdd, or any
 * line echo), each waiting for the answer line before the next; for profiling the daemon
 * (`perf record -p PID`) without the benchmark's own Swift threads in the picture.
 *
 *   cc -O2 -pthread -o pingload pingload.c
 *   pingload SOCKET [CLIENTS [SECONDS [CLIENT_CPU [GAP_US]]]]
 *     defaults: 1 client, 3 s, no pinning (-1), no gap; GAP_US: each client waits that long
 *     (busy, so the wait is exact) between an answer and its next request
 *
 * Prints requests per second, and for one client the median and p99 round trip.
 * Part of Benchmarks/RESULTS.md (issue 16 target 3); not built by SwiftPM.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *path;
static volatile int stop;
static int client_cpu = -1;
static long gap_us;
#define MAX_SAMPLES (1 << 20)
static unsigned long long samples[MAX_SAMPLES];

static unsigned long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

struct client { pthread_t thread; long count; int record; };

static void *run(void *arg) {
    struct client *c = arg;
    if (client_cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(client_cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); exit(1); }
    const char line[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.ping\"}\n";
    char buf[4096];
    while (!stop) {
        unsigned long long t0 = now_ns();
        if (write(fd, line, sizeof line - 1) < 0) { perror("write"); exit(1); }
        for (;;) {
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) { perror("read"); exit(1); }
            if (buf[r - 1] == '\n') break;
        }
        if (c->record && c->count < MAX_SAMPLES) samples[c->count] = now_ns() - t0;
        c->count++;
        if (gap_us > 0) {
            unsigned long long until = now_ns() + (unsigned long long)gap_us * 1000;
            while (now_ns() < until) {}
        }
    }
    close(fd);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: pingload SOCKET [CLIENTS [SECONDS [CLIENT_CPU [GAP_US]]]]\n"); return 2; }
    path = argv[1];
    int n = argc > 2 ? atoi(argv[2]) : 1;
    double seconds = argc > 3 ? atof(argv[3]) : 3;
    if (argc > 4) client_cpu = atoi(argv[4]);
    if (argc > 5) gap_us = atol(argv[5]);
    struct client *c = calloc(n, sizeof *c);
    c[0].record = n == 1;
    unsigned long long t0 = now_ns();
    for (int i = 0; i < n; i++) pthread_create(&c[i].thread, NULL, run, &c[i]);
    usleep((useconds_t)(seconds * 1e6));
    stop = 1;
    long total = 0;
    for (int i = 0; i < n; i++) { pthread_join(c[i].thread, NULL); total += c[i].count; }
    double elapsed = (now_ns() - t0) / 1e9;
    printf("%d client(s): %.0f req/s", n, total / elapsed);
    if (n == 1 && c[0].count > 100) {
        long k = c[0].count < MAX_SAMPLES ? c[0].count : MAX_SAMPLES;
        qsort(samples + 100, k - 100, sizeof *samples, cmp);
        printf(", median %.1f us, p99 %.1f us", samples[100 + (k - 100) / 2] / 1e3, samples[100 + (k - 100) * 99 / 100] / 1e3);
    }
    printf("\n");
    return 0;
}
