// stackcopy.c: what the copy of a shared-stack design costs per switch.
//
// A shared-stack coroutine library (libaco's "copy-stack" mode, chapter 8)
// copies the used part of the outgoing coroutine's stack into its private
// save buffer and the incoming one's saved bytes back onto the shared
// stack, at every switch between coroutines that share a stack. This
// program times only that pair of copies, for a few sizes of stack in use;
// it is not libaco and has no context switch in it. Build and run:
//
//	cc -O2 -o /tmp/stackcopy docs/tools/stackcopy.c && /tmp/stackcopy
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SWITCHES = 1000000, REPEAT = 5, MAX = 64 * 1024 };

static char shared_stack[MAX], save_a[MAX], save_b[MAX];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    static const size_t sizes[] = {128, 512, 1024, 4096, 16384, 65536};
    memset(save_a, 1, MAX);
    memset(save_b, 2, MAX);
    printf("bytes in use  ns per switch (save one, restore the other; median of %d x %d)\n", REPEAT, SWITCHES);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        char *top = shared_stack + MAX - n; // stacks grow down: the used part is at the top
        double t[REPEAT];
        for (int r = 0; r < REPEAT; r++) {
            double t0 = now();
            for (int i = 0; i < SWITCHES; i++) {
                char *out = (i & 1) ? save_a : save_b, *in = (i & 1) ? save_b : save_a;
                memcpy(out, top, n); // save the outgoing coroutine's stack
                memcpy(top, in, n);  // restore the incoming one's
                __asm__ volatile("" ::: "memory");
            }
            t[r] = (now() - t0) / SWITCHES;
        }
        qsort(t, REPEAT, sizeof t[0], cmp);
        printf("%12zu  %8.1f  (min %.1f, max %.1f)\n", n, t[REPEAT / 2], t[0], t[REPEAT - 1]);
    }
    return 0;
}
