// mem.go measures how much memory one parked (blocked) goroutine costs.
// We start N goroutines that all wait on the same channel, then compare the
// process's memory before and after. The kernel's view (RSS + page tables)
// is the honest number; Go's MemStats.Sys delta is also reported because
// that is the method older benchmarks used.
//
// With -touch B, a warm-up round first runs N goroutines that each touch B
// bytes of stack and exit (all started, then waited for), and only then are
// N parked: the slots are reused, as in a long-running program. The baseline
// is taken before the warm-up, so what the warm-up leaves behind counts.
package main

import (
	"os"
	"runtime"
	"sync"
	"time"
)

type memSnapshot struct {
	rss, pte, sys, stackInuse, heapAlloc int64
}

// snapshot collects garbage first so that leftover garbage does not count.
func snapshot() memSnapshot {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{
		rss:        rssBytes(),
		pte:        vmPTEBytes(),
		sys:        int64(ms.Sys),
		stackInuse: int64(ms.StackInuse),
		heapAlloc:  int64(ms.HeapAlloc),
	}
}

type memResult struct {
	Kind                      string  `json:"kind"`
	Count                     int     `json:"count"`
	GoVersion                 string  `json:"go_version"`
	Gomaxprocs                int     `json:"gomaxprocs"`
	TouchBytes                int     `json:"touch_bytes"`
	PageSize                  int     `json:"page_size"`
	RSSDeltaBytes             int64   `json:"rss_delta_bytes"`
	PTEDeltaBytes             int64   `json:"pte_delta_bytes"`
	SysDeltaBytes             int64   `json:"sys_delta_bytes"`
	StackInuseDeltaBytes      int64   `json:"stack_inuse_delta_bytes"`
	HeapAllocDeltaBytes       int64   `json:"heap_alloc_delta_bytes"`
	PerGoroutineBytes         float64 `json:"per_goroutine_bytes"`
	SysPerGoroutineBytes      float64 `json:"sys_per_goroutine_bytes"`
	SpawnNsPerGoroutine       float64 `json:"spawn_ns_per_goroutine"`
	ReleaseJoinNsTotal        int64   `json:"release_join_ns_total"`
	ReleaseJoinNsPerGoroutine float64 `json:"release_join_ns_per_goroutine"`
}

// warmTouch is the one -touch the program knows: 12 KiB, as spindle-bench's
// warm-up. The array is sized exactly, so the stack grows as far as a
// goroutine touching 12 KiB needs and no further.
const warmTouch = 12 << 10

// sink keeps touchStack's array alive, so the compiler must write it.
var sink byte

// touchStack writes a warmTouch-byte array on this goroutine's stack.
//
//go:noinline
func touchStack() {
	var frame [warmTouch]byte
	for i := 0; i < warmTouch; i += 64 {
		frame[i] = byte(i)
	}
	sink += frame[warmTouch/2]
}

// warmUp runs count goroutines that touch warmTouch bytes of stack and exit.
func warmUp(count int) {
	var wg sync.WaitGroup
	wg.Add(count)
	for i := 0; i < count; i++ {
		go func() {
			touchStack()
			wg.Done()
		}()
	}
	wg.Wait()
	time.Sleep(50 * time.Millisecond)
}

func runMem(count, touch int) memResult {
	before := snapshot()
	if touch > 0 {
		warmUp(count)
	}

	ch := make(chan struct{}) // unbuffered: every receiver blocks
	var started, done sync.WaitGroup
	started.Add(count)
	done.Add(count)

	t0 := time.Now()
	for i := 0; i < count; i++ {
		go func() {
			started.Done()
			<-ch // park here until ch is closed
			done.Done()
		}()
	}
	started.Wait()
	spawn := time.Since(t0)

	time.Sleep(50 * time.Millisecond) // let the last ones reach <-ch
	after := snapshot()

	t1 := time.Now()
	close(ch) // wakes every parked goroutine
	done.Wait()
	releaseJoin := time.Since(t1)

	n := float64(count)
	r := memResult{
		Kind:                      "mem",
		Count:                     count,
		GoVersion:                 runtime.Version(),
		Gomaxprocs:                runtime.GOMAXPROCS(0),
		TouchBytes:                touch,
		PageSize:                  os.Getpagesize(),
		RSSDeltaBytes:             after.rss - before.rss,
		PTEDeltaBytes:             after.pte - before.pte,
		SysDeltaBytes:             after.sys - before.sys,
		StackInuseDeltaBytes:      after.stackInuse - before.stackInuse,
		HeapAllocDeltaBytes:       after.heapAlloc - before.heapAlloc,
		SpawnNsPerGoroutine:       float64(spawn.Nanoseconds()) / n,
		ReleaseJoinNsTotal:        releaseJoin.Nanoseconds(),
		ReleaseJoinNsPerGoroutine: float64(releaseJoin.Nanoseconds()) / n,
	}
	r.PerGoroutineBytes = float64(r.RSSDeltaBytes+r.PTEDeltaBytes) / n
	r.SysPerGoroutineBytes = float64(r.SysDeltaBytes) / n
	return r
}
