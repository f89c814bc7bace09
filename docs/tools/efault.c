/*
 * efault.c: why a stack cannot grow by catching faults.
 *
 * Imagine a runtime that maps a stack's lower pages PROT_NONE and, in a
 * SIGSEGV handler, makes a page writable when the coroutine first touches it
 * ("grow on fault"). This program sets that up for one page and then touches
 * it two ways:
 *
 *   1. a store from user code: the CPU faults, the handler "grows" the stack,
 *      the store is retried and succeeds;
 *   2. read(2) from a pipe into the same kind of page: the *kernel* does the
 *      store, finds the page inaccessible and returns -1 with errno EFAULT.
 *      No signal is delivered, the handler never runs, the data is lost.
 *
 * spindle grows stacks by ordinary demand paging instead (the kernel's own
 * fault path, which also serves the kernel's copies), and uses exactly this
 * EFAULT behaviour on purpose, to probe that MADV_GUARD_INSTALL really works
 * (runtime/src/stack/guard.rs, guard_regions_work).
 *
 * Build and run (not part of the Cargo workspace):
 *   cc -O2 -o /tmp/efault docs/tools/efault.c && /tmp/efault
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static long page;
static volatile sig_atomic_t grown;

static void grow_on_fault(int sig, siginfo_t *si, void *ctx) {
    (void)sig; (void)ctx;
    char *p = (char *)((unsigned long)si->si_addr & ~(page - 1));
    mprotect(p, page, PROT_READ | PROT_WRITE); /* "grow" the stack by one page */
    grown++;
}

int main(void) {
    page = sysconf(_SC_PAGESIZE);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = grow_on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);

    char *a = mmap(NULL, 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) { perror("mmap"); return 1; }

    /* 1. A store from user code. */
    ((volatile char *)a)[100] = 'x';
    printf("user store into a protected page: handler ran %d time(s), byte now '%c'\n",
           (int)grown, a[100]);

    /* 2. The kernel stores into the second protected page on our behalf. */
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); return 1; }
    if (write(fds[1], "hello", 5) != 5) { perror("write"); return 1; }
    grown = 0;
    ssize_t got = read(fds[0], a + page + 100, 5);
    int err = errno;
    printf("read(2) into a protected page: returned %zd, errno %s (%s), handler ran %d time(s)\n",
           got, err == EFAULT ? "EFAULT" : "?", strerror(err), (int)grown);
    return 0;
}
