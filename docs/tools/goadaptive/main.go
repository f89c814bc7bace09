// goadaptive shows what Go's contiguous stacks cost as they grow, and what
// the adaptive starting stack size (Go 1.19+) does to the next goroutines.
// Standard library only; run it from the repository root:
//
//	go run docs/tools/goadaptive/main.go
//	GODEBUG=adaptivestackstart=0 go run docs/tools/goadaptive/main.go
//
// Part 1 starts N goroutines that each recurse to a given stack depth and
// park there, and prints the MemStats.StackInuse delta per goroutine (the
// stack size each one ended with: a power of two) and the time per goroutine
// (start, grow by copy-and-double, park). Part 2 parks N goroutines deep,
// runs a GC while they are parked (the GC records the average stack in use),
// lets them exit, and then parks N shallow goroutines: with the adaptive
// start on, those reuse the exited goroutines' g's and start with the larger
// stack.
package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

const n = 10_000

// frame is about 1 KiB of stack per call.
//
//go:noinline
func frame(depth int, park <-chan struct{}, wg *sync.WaitGroup) byte {
	var buf [1000]byte
	buf[depth%len(buf)] = byte(depth)
	if depth <= 0 {
		wg.Done()
		<-park
		return buf[0]
	}
	return frame(depth-1, park, wg) + buf[(depth*7)%len(buf)]
}

func stackInuse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.StackInuse
}

// shallow parks at once: no frame of its own beyond the wait.
//
//go:noinline
func shallow(park <-chan struct{}, wg *sync.WaitGroup) {
	wg.Done()
	<-park
}

// parkAt starts n goroutines that recurse `depth` frames (0: none) and
// park; it returns the StackInuse delta from `base` and the time, per
// goroutine, and a function that releases them and waits until they exited.
func parkAt(depth int, base uint64) (perG float64, ns float64, release func()) {
	park := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(n)
	t := time.Now()
	for i := 0; i < n; i++ {
		if depth == 0 {
			go shallow(park, &wg)
		} else {
			go frame(depth, park, &wg)
		}
	}
	wg.Wait()
	ns = float64(time.Since(t).Nanoseconds()) / n
	perG = (float64(stackInuse()) - float64(base)) / n
	return perG, ns, func() {
		for runtime.NumGoroutine() > 1 {
			close(park)
			park = nil
			for runtime.NumGoroutine() > 1 {
				time.Sleep(time.Millisecond)
			}
		}
	}
}

func main() {
	debug.SetGCPercent(-1) // only the GCs this program asks for
	fmt.Printf("%s, N = %d goroutines, frames of about 1 KiB\n", runtime.Version(), n)
	fmt.Println("part 1: park N fresh goroutines at a depth (a GC with none parked before each row)")
	fmt.Println("  frames  StackInuse per goroutine  ns per goroutine (start, grow, park)")
	for _, depth := range []int{0, 1, 3, 6, 12, 28} {
		runtime.GC()
		perG, ns, release := parkAt(depth, stackInuse())
		fmt.Printf("  %6d  %22.0f B  %12.0f\n", depth, perG, ns)
		release()
	}

	fmt.Println("part 2: N goroutines park 12 frames deep, a GC runs while they are parked, they exit;")
	fmt.Println("        then N new goroutines park (StackInuse counted from before the deep round)")
	for _, depth := range []int{0, 12} {
		runtime.GC()
		base := stackInuse()
		_, _, release := parkAt(12, base)
		runtime.GC() // scans the parked stacks: sets the next starting stack size
		release()
		perG, ns, release := parkAt(depth, base)
		fmt.Printf("  then %2d frames deep: StackInuse %6.0f B per goroutine, %6.0f ns each\n", depth, perG, ns)
		release()
	}
}
