// fanout.go measures a burst: start N goroutines, then wait for all of them
// (`go f(); wg.Wait()`), twice in one fresh process. The first round is what
// a program's first burst costs; the second runs with whatever the first
// left behind (free g structs and stacks). spindle-bench starts one process
// per sample, so every first round is really a first round.
package main

import (
	"runtime"
	"time"
)

type fanoutResult struct {
	Kind       string  `json:"kind"`
	Count      int     `json:"count"`
	GoVersion  string  `json:"go_version"`
	Gomaxprocs int     `json:"gomaxprocs"`
	FirstNs    float64 `json:"first_ns"`
	SecondNs   float64 `json:"second_ns"`
}

func runFanout(count int) fanoutResult {
	_ = time.Now() // the clock's first read is not part of round one
	first := spawnBatch(count)
	second := spawnBatch(count)
	return fanoutResult{
		Kind:       "fanout",
		Count:      count,
		GoVersion:  runtime.Version(),
		Gomaxprocs: runtime.GOMAXPROCS(0),
		FirstNs:    first,
		SecondNs:   second,
	}
}
