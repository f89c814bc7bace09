// spawn.go measures how expensive it is to create goroutines.
// "spawn_join" starts one goroutine and waits for it to finish before
// starting the next, so it is the full cost of one short-lived task.
// "spawn_batch" starts all of them first and waits once at the end, which
// is how fan-out code usually looks.
package main

import (
	"runtime"
	"sync"
	"time"
)

type spawnResult struct {
	Kind       string `json:"kind"`
	Count      int    `json:"count"`
	Repeat     int    `json:"repeat"`
	GoVersion  string `json:"go_version"`
	Gomaxprocs int    `json:"gomaxprocs"`
	Rows       []row  `json:"rows"`
}

// spawnJoin returns ns per sequential spawn+join.
func spawnJoin(n int) float64 {
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
		wg.Wait()
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

// spawnBatch returns ns per goroutine when all n are started before joining.
func spawnBatch(n int) float64 {
	var wg sync.WaitGroup
	wg.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func runSpawn(count, repeat int) spawnResult {
	spawnJoin(10_000) // untimed warm-up
	joinRow := measure("spawn_join", repeat, func() float64 { return spawnJoin(count) })
	spawnBatch(10_000) // untimed warm-up
	batchRow := measure("spawn_batch", repeat, func() float64 { return spawnBatch(count) })
	return spawnResult{
		Kind:       "spawn",
		Count:      count,
		Repeat:     repeat,
		GoVersion:  runtime.Version(),
		Gomaxprocs: runtime.GOMAXPROCS(0),
		Rows:       []row{joinRow, batchRow},
	}
}
