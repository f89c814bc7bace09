/*
 * madvise_cost.c: what it costs to give a finished stack's pages back.
 *
 * Before a finished coroutine's 256 KiB slot is reused, everything below its
 * top 8 KiB must be released with MADV_DONTNEED (runtime/src/stack/release.rs).
 * spindle batches up to 32 finished stacks into one process_madvise(2) call
 * when the kernel supports it (runtime/src/stack/pool.rs, DIRTY_MAX), and
 * skips the call for stacks that provably touched no new page (the process's
 * page-fault count did not move since they were handed out). This
 * program times that release on 32 slots of a MAP_NORESERVE mapping, next
 * to the cheapest system call there is. Every line is ns per stack:
 *
 *   getppid                 a system call that does nothing (entry + exit)
 *   madvise, nothing        one madvise per stack that never grew
 *   madvise, 1 page         the same when the stack touched one page below
 *                           the window (includes the fault that touched it)
 *   process_madvise x32     one call for 32 stacks that never grew
 *
 * Build and run (not part of the Cargo workspace):
 *   cc -O2 -o /tmp/madvise_cost docs/tools/madvise_cost.c && /tmp/madvise_cost
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SLOT (256 << 10)
#define WINDOW (8 << 10)
#define SLOTS 32
#define N 200000 /* stacks released per sample */
#define ROUNDS 5
#define PIDFD_SELF (-10000) /* Linux 6.14 uapi */
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    long page = sysconf(_SC_PAGESIZE);
    char *slab = mmap(NULL, (size_t)SLOT * SLOTS, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (slab == MAP_FAILED) { perror("mmap"); return 1; }
    madvise(slab, (size_t)SLOT * SLOTS, MADV_NOHUGEPAGE);
    struct iovec iov[SLOTS];
    for (int s = 0; s < SLOTS; s++) {
        char *top = slab + (size_t)(s + 1) * SLOT;
        for (char *p = top - WINDOW; p < top; p += page) *p = 1; /* start window */
        iov[s].iov_base = slab + (size_t)s * SLOT + page;        /* above the guard */
        iov[s].iov_len = SLOT - page - WINDOW;
    }
    const char *names[4] = {"getppid (empty system call)",
                            "madvise(DONTNEED), nothing to release",
                            "touch 1 page, then madvise(DONTNEED)",
                            "process_madvise(DONTNEED), 32 stacks a call"};
    for (int c = 0; c < 4; c++) {
        double r[ROUNDS];
        int ok = 1;
        for (int k = 0; k < ROUNDS && ok; k++) {
            double t0 = now_ns();
            for (int i = 0; i < N && ok; i++) {
                int s = i % SLOTS;
                if (c == 0) {
                    syscall(SYS_getppid);
                } else if (c == 1 || c == 2) {
                    char *top = slab + (size_t)(s + 1) * SLOT;
                    if (c == 2) *(volatile char *)(top - WINDOW - page) = 1;
                    if (madvise(iov[s].iov_base, iov[s].iov_len, MADV_DONTNEED) != 0) {
                        perror("madvise");
                        return 1;
                    }
                } else if (s == 0) {
                    long rc = syscall(SYS_process_madvise, PIDFD_SELF, iov, SLOTS,
                                      MADV_DONTNEED, 0);
                    if (rc < 0) { perror("process_madvise (needs Linux 6.14+)"); ok = 0; }
                }
            }
            r[k] = (now_ns() - t0) / N;
        }
        if (!ok) continue;
        qsort(r, ROUNDS, sizeof r[0], cmp);
        printf("%-45s median %7.1f ns per stack (min %.1f, max %.1f; %d x %d stacks)\n",
               names[c], r[ROUNDS / 2], r[0], r[ROUNDS - 1], ROUNDS, N);
    }
    return 0;
}
