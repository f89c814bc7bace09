// peaklive counts how many goroutines exist at once in the measuring loop of
// "Exploring the Lightweight Nature of Goroutines in Go" (chapter 6): N
// goroutines that only call wg.Done. It samples runtime.NumGoroutine after
// every go statement and prints the peak. Standard library only; run it
// from the repository root:
//
//	go run docs/tools/peaklive/main.go
package main

import (
	"fmt"
	"runtime"
	"sync"
)

func main() {
	var wg sync.WaitGroup
	N := 10000
	peak := 0
	wg.Add(N)
	for i := 0; i < N; i++ {
		go func() {
			defer wg.Done()
		}()
		if g := runtime.NumGoroutine(); g > peak {
			peak = g
		}
	}
	wg.Wait()
	fmt.Println(runtime.Version(), "peak runtime.NumGoroutine() during the loop:", peak, "for N =", N)
}
