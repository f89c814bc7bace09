// seedcheck repeats the measuring methods of the articles this project grew
// from, next to the method spindle-bench uses, so that the difference can be
// seen in one run. Standard library only; run it from the repository root:
//
//	go run docs/tools/seedcheck/main.go
//
// It starts N goroutines three ways and prints bytes per goroutine:
//
//  1. "Alloc after exit": goroutines that call wg.Done and return, then
//     MemStats.Alloc is read after wg.Wait, when they have all exited.
//  2. "Sys while parked": goroutines blocked on a channel, MemStats.Sys delta,
//     printed both as bytes/1000 ("kb", as the article did) and bytes/1024 (KiB).
//  3. The kernel's view while parked: RSS + VmPTE delta, plus MemStats
//     HeapAlloc and StackInuse deltas.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

const n = 10_000

func mem() runtime.MemStats {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// rss returns resident bytes (field 2 of /proc/self/statm, in pages).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	pages, _ := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// pte returns page-table bytes ("VmPTE: N kB" in /proc/self/status; kB = 1024 B).
func pte() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		panic(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmPTE:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	panic("no VmPTE")
}

func main() {
	fmt.Printf("%s, N = %d goroutines\n", runtime.Version(), n)

	// 1. The method of the blog post: Alloc before, spawn, wait for exit, Alloc after.
	before := mem()
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() { defer wg.Done() }()
	}
	wg.Wait()
	after := mem()
	fmt.Printf("1. Alloc delta after the goroutines exited: %+.1f B per goroutine\n",
		(float64(after.Alloc)-float64(before.Alloc))/n)

	// 2 and 3. Goroutines parked on a channel while we measure.
	before = mem()
	r0, p0 := rss(), pte()
	ch := make(chan struct{})
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go func() { started.Done(); <-ch }()
	}
	started.Wait()
	after = mem()
	r1, p1 := rss(), pte()
	sys := float64(after.Sys) - float64(before.Sys)
	fmt.Printf("2. Sys delta while parked: %.0f B per goroutine = %.3f \"kb\" (/1000) = %.3f KiB (/1024)\n",
		sys/n, sys/n/1000, sys/n/1024)
	fmt.Printf("3. RSS + VmPTE delta while parked: %.0f B per goroutine (RSS %.0f, VmPTE %.0f)\n",
		float64(r1-r0+p1-p0)/n, float64(r1-r0)/n, float64(p1-p0)/n)
	fmt.Printf("   HeapAlloc delta %.0f B, StackInuse delta %.0f B per goroutine\n",
		(float64(after.HeapAlloc)-float64(before.HeapAlloc))/n,
		(float64(after.StackInuse)-float64(before.StackInuse))/n)
	close(ch)
}
