/*
 * wakeprobe: where does a Unix-socket round trip's time go on this machine?
 *
 * A client writes a 48-byte line on a SOCK_STREAM socketpair and blocks until the server
 * writes it back, N times; prints the median, p10, p90 and p99. The server is a thread of the
 * same process or a forked process, waits in read(2), in ppoll(2) (as the RPC server's linger
 * does), or spins on a non-blocking read for a while before blocking; client and server can be
 * pinned to CPUs; a SCHED_IDLE spinner can keep a CPU out of halt (it yields to any normal task
 * at once, so it only changes whether that CPU is idle, not who runs).
 *
 *   cc -O2 -pthread -o wakeprobe wakeprobe.c
 *   wakeprobe [-n N] [-p] [-c CPU] [-s CPU] [-b CPU]... [-w read|ppoll|spin|spinyield] [-u SPIN_US]
 *     -p        server is a forked process (default: a thread)
 *     -c / -s   pin the client / the server to CPU
 *     -b CPU    run a SCHED_IDLE spinner on CPU (may repeat)
 *     -w        how the server waits (default read; spinyield: spin with sched_yield)
 *     -u        spin window for -w spin, µs (default 50)
 *
 * Part of Benchmarks/RESULTS.md (issue 16 target 3); not built by SwiftPM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int n = 20000, server_cpu = -1, client_cpu = -1, spin_us = 50;
static const char *wait_mode = "read";

static unsigned long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("sched_setaffinity"); exit(1); }
}

static ssize_t server_read(int fd, char *buf, size_t len) {
    if (!strcmp(wait_mode, "ppoll")) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        struct timespec t = { 0, 200000 };
        for (;;) {
            int rc = ppoll(&p, 1, &t, NULL);
            if (rc > 0) break;
            if (rc < 0 && errno != EINTR) return -1;
        }
        return read(fd, buf, len);
    }
    if (!strcmp(wait_mode, "spin") || !strcmp(wait_mode, "spinyield")) {
        unsigned long long until = now_ns() + (unsigned long long)spin_us * 1000;
        do {
            ssize_t r = recv(fd, buf, len, MSG_DONTWAIT);
            if (r >= 0 || errno != EAGAIN) return r;
            if (wait_mode[4]) sched_yield();
        } while (now_ns() < until);
    }
    return read(fd, buf, len);
}

static void serve(int fd) {
    pin(server_cpu);
    char buf[4096];
    for (;;) {
        ssize_t r = server_read(fd, buf, sizeof buf);
        if (r <= 0) return;
        if (write(fd, buf, r) != r) return;
    }
}

static void *serve_thread(void *arg) { serve((int)(long)arg); return NULL; }

static void *idle_spinner(void *arg) {
    pin((int)(long)arg);
    struct sched_param sp = { 0 };
    if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0) perror("SCHED_IDLE");
    for (;;) __asm__ volatile("pause");
    return NULL;
}

static int cmp(const void *a, const void *b) {
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int process = 0, opt;
    pthread_t t;
    while ((opt = getopt(argc, argv, "n:pc:s:b:w:u:")) != -1) {
        switch (opt) {
        case 'n': n = atoi(optarg); break;
        case 'p': process = 1; break;
        case 'c': client_cpu = atoi(optarg); break;
        case 's': server_cpu = atoi(optarg); break;
        case 'b': pthread_create(&t, NULL, idle_spinner, (void *)(long)atoi(optarg)); break;
        case 'w': wait_mode = optarg; break;
        case 'u': spin_us = atoi(optarg); break;
        default: fprintf(stderr, "see the comment at the top of wakeprobe.c\n"); return 2;
        }
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) { perror("socketpair"); return 1; }
    pid_t child = -1;
    if (process) {
        child = fork();
        if (child == 0) { close(sv[0]); serve(sv[1]); _exit(0); }
    } else {
        pthread_create(&t, NULL, serve_thread, (void *)(long)sv[1]);
    }
    pin(client_cpu);
    const char line[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.ping\"}\n";
    char buf[4096];
    unsigned long long *s = malloc(sizeof *s * n);
    for (int i = -1000; i < n; i++) {
        unsigned long long t0 = now_ns();
        if (write(sv[0], line, sizeof line - 1) < 0) { perror("write"); return 1; }
        size_t got = 0;
        while (got < sizeof line - 1) {
            ssize_t r = read(sv[0], buf, sizeof buf);
            if (r <= 0) { perror("read"); return 1; }
            got += r;
        }
        if (i >= 0) s[i] = now_ns() - t0;
    }
    qsort(s, n, sizeof *s, cmp);
    printf("%-7s %-5s client cpu %2d server cpu %2d: median %6.1f us  p10 %6.1f  p90 %6.1f  p99 %6.1f\n",
           process ? "process" : "thread", wait_mode, client_cpu, server_cpu,
           s[n / 2] / 1e3, s[n / 10] / 1e3, s[n * 9 / 10] / 1e3, s[n * 99 / 100] / 1e3);
    if (child > 0) { kill(child, SIGKILL); waitpid(child, NULL, 0); }
    return 0;
}
