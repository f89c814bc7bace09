// switch.go measures the cost of handing control from one goroutine to
// another. Two goroutines ping-pong a value over unbuffered channels, so
// each send must wake the other side: one send+receive is one "hand-off".
// We also time runtime.Gosched() with one OS thread, which is the cheapest
// possible switch: just "let the other goroutine run".
package main

import (
	"runtime"
	"sync"
	"time"
)

type switchResult struct {
	Kind      string `json:"kind"`
	N         int    `json:"n"`
	Repeat    int    `json:"repeat"`
	GoVersion string `json:"go_version"`
	Rows      []row  `json:"rows"`
}

// rounds turns a number of one-way hand-offs into round trips (at least 1).
func rounds(n int) int {
	if n < 2 {
		return 1
	}
	return n / 2
}

// chanPingPong returns ns per one-way hand-off.
func chanPingPong(n int) float64 {
	r := rounds(n)
	ping, pong := make(chan int), make(chan int)
	go func() { // goroutine B: echo every value back
		for i := 0; i < r; i++ {
			pong <- <-ping
		}
	}()
	t0 := time.Now()
	for i := 0; i < r; i++ { // goroutine A
		ping <- i
		<-pong
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(2*r)
}

// goschedPingPong returns ns per runtime.Gosched() call, with two
// goroutines taking turns (call with GOMAXPROCS=1).
func goschedPingPong(n int) float64 {
	r := rounds(n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < r; i++ {
				runtime.Gosched()
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return float64(time.Since(t0).Nanoseconds()) / float64(2*r)
}

func runSwitch(n, repeat int) switchResult {
	warm := min(n, 10_000) // untimed warm-up before each row
	chanRow := func(procs int) func() float64 {
		return func() float64 {
			return withProcs(procs, func() float64 { return chanPingPong(n) })
		}
	}
	withProcs(1, func() float64 { return chanPingPong(warm) })
	row1 := measure("chan_pingpong_procs1", repeat, chanRow(1))
	withProcs(2, func() float64 { return chanPingPong(warm) })
	row2 := measure("chan_pingpong_procs2", repeat, chanRow(2))
	withProcs(1, func() float64 { return goschedPingPong(warm) })
	row3 := measure("gosched_procs1", repeat, func() float64 {
		return withProcs(1, func() float64 { return goschedPingPong(n) })
	})
	return switchResult{
		Kind:      "switch",
		N:         n,
		Repeat:    repeat,
		GoVersion: runtime.Version(),
		Rows:      []row{row1, row2, row3},
	}
}
