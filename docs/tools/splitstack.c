// splitstack.c: the "hot split" of segmented stacks, measured.
//
// Build and run (x86_64, gcc):
//
//	gcc -O2 -fsplit-stack -o /tmp/splitstack docs/tools/splitstack.c && /tmp/splitstack
//
// With -fsplit-stack every function checks in its prologue whether its frame
// fits in the current stack segment; if not, it calls __morestack (libgcc),
// which switches to another segment for the call and back on return. This is
// the scheme Go used before 1.3. The program recurses to depth d with 288-byte
// frames and then calls a leaf with a 512-byte frame 10^6 times in a loop. At
// most depths the leaf fits and a call costs a few ns; at a depth where the
// caller sits just above the end of a segment, *every* call of the leaf
// crosses into the next segment and back: the hot split.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { CALLS = 100000, REPEAT = 5 };

static volatile uintptr_t leaf_at, caller_at;

__attribute__((noinline)) static void leaf(void) {
    volatile char buf[512];
    buf[0] = 1;
    leaf_at = (uintptr_t)&buf[0];
}

__attribute__((noinline)) static void descend(int d, long calls) {
    volatile char pad[256];
    pad[0] = (char)d;
    if (d > 0) {
        descend(d - 1, calls);
    } else {
        caller_at = (uintptr_t)&pad[0];
        for (long i = 0; i < calls; i++) leaf();
    }
    pad[1] = pad[0]; // keeps the recursive call from being a tail call
}

static uintptr_t gap_at(int d) {
    descend(d, 1);
    return caller_at > leaf_at ? caller_at - leaf_at : leaf_at - caller_at;
}

static double ns_per_call(int d) {
    double best[REPEAT];
    for (int r = 0; r < REPEAT; r++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        descend(d, CALLS);
        clock_gettime(CLOCK_MONOTONIC, &b);
        best[r] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / CALLS;
    }
    for (int i = 1; i < REPEAT; i++) // insertion sort, then take the median
        for (int j = i; j > 0 && best[j] < best[j - 1]; j--) {
            double t = best[j]; best[j] = best[j - 1]; best[j - 1] = t;
        }
    return best[REPEAT / 2];
}

int main(void) {
    // Warm up: the first pass settles the main thread's own limit in libgcc.
    for (int d = 0; d < 200; d++) descend(d, 1);
    uintptr_t normal = gap_at(1);
    printf("depth  leaf frame             ns per leaf call (median of %d x %d calls)\n", REPEAT, CALLS);
    int splits = 0;
    for (int d = 0; d <= 160; d++) {
        uintptr_t gap = gap_at(d);
        double ns = ns_per_call(d);
        if (gap != normal || ns > 20) {
            printf("%5d  %-22s %8.1f\n", d, gap != normal ? "in the next segment" : "same segment", ns);
            splits += gap != normal;
        } else if (d % 20 == 0) {
            printf("%5d  %-22s %8.1f\n", d, "same segment", ns);
        }
    }
    if (!splits) {
        puts("no segment boundary found: was this built with -fsplit-stack?");
        return 1;
    }
    return 0;
}
