// goref is the Go reference program for spindle-bench. It measures the same
// things the Rust runtime is measured on (memory per parked task, context
// switch cost, spawn+join cost) but with Go goroutines, so the two can be
// compared. Every subcommand but net (a server, see net.go) prints exactly
// one JSON object on stdout; any error is one "goref: ..." line on stderr
// with exit code 2.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
)

const (
	maxCount  = 100_000_000
	maxRepeat = 1000
)

func main() {
	if len(os.Args) < 2 {
		fail("missing subcommand (want one of: mem, switch, spawn, fanout, net)")
	}
	sub, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // we report flag errors ourselves, on one line

	var result any
	switch sub {
	case "mem":
		count := fs.Int("count", 0, "number of parked goroutines (required)")
		procs := fs.Int("procs", runtime.GOMAXPROCS(0), "GOMAXPROCS")
		touch := fs.Int("touch", 0, "0, or 12288: a warm-up round of goroutines touches that much stack")
		parse(fs, args)
		checkRange("-count", *count, 1, maxCount)
		checkRange("-procs", *procs, 1, 1024)
		if *touch != 0 && *touch != warmTouch {
			fail(fmt.Sprintf("-touch must be 0 or %d (got %d)", warmTouch, *touch))
		}
		runtime.GOMAXPROCS(*procs)
		result = runMem(*count, *touch)
	case "fanout":
		count := fs.Int("count", 1_000_000, "goroutines per round")
		procs := fs.Int("procs", runtime.GOMAXPROCS(0), "GOMAXPROCS")
		parse(fs, args)
		checkRange("-count", *count, 1, maxCount)
		checkRange("-procs", *procs, 1, 1024)
		runtime.GOMAXPROCS(*procs)
		result = runFanout(*count)
	case "switch":
		n := fs.Int("n", 1_000_000, "one-way hand-offs per sample")
		repeat := fs.Int("repeat", 5, "samples per row")
		parse(fs, args)
		checkRange("-n", *n, 1, maxCount)
		checkRange("-repeat", *repeat, 1, maxRepeat)
		result = runSwitch(*n, *repeat)
	case "net":
		procs := fs.Int("procs", runtime.GOMAXPROCS(0), "GOMAXPROCS")
		parse(fs, args)
		checkRange("-procs", *procs, 1, 1024)
		runtime.GOMAXPROCS(*procs)
		runNet() // serves until stdin closes; prints no JSON
	case "spawn":
		count := fs.Int("count", 1_000_000, "goroutines per sample")
		repeat := fs.Int("repeat", 5, "samples per row")
		parse(fs, args)
		checkRange("-count", *count, 1, maxCount)
		checkRange("-repeat", *repeat, 1, maxRepeat)
		result = runSpawn(*count, *repeat)
	default:
		fail(fmt.Sprintf("unknown subcommand %q (want one of: mem, switch, spawn, fanout, net)", sub))
	}

	out, err := json.Marshal(result)
	if err != nil {
		fail("encoding JSON: " + err.Error())
	}
	os.Stdout.Write(append(out, '\n'))
}

// fail prints a single error line on stderr and exits with code 2.
func fail(msg string) {
	msg = strings.ReplaceAll(msg, "\n", " ")
	fmt.Fprintln(os.Stderr, "goref: "+msg)
	os.Exit(2)
}

func parse(fs *flag.FlagSet, args []string) {
	if err := fs.Parse(args); err != nil {
		fail(fs.Name() + ": " + err.Error())
	}
	if fs.NArg() > 0 {
		fail(fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0)))
	}
}

func checkRange(name string, v, lo, hi int) {
	if v < lo || v > hi {
		fail(fmt.Sprintf("%s must be between %d and %d (got %d)", name, lo, hi, v))
	}
}

// row is one named measurement: all samples plus their median, min and max.
type row struct {
	Name      string    `json:"name"`
	SamplesNs []float64 `json:"samples_ns"`
	MedianNs  float64   `json:"median_ns"`
	MinNs     float64   `json:"min_ns"`
	MaxNs     float64   `json:"max_ns"`
}

// measure runs sample() repeat times and summarises the results.
func measure(name string, repeat int, sample func() float64) row {
	r := row{Name: name}
	for i := 0; i < repeat; i++ {
		r.SamplesNs = append(r.SamplesNs, sample())
	}
	s := append([]float64(nil), r.SamplesNs...)
	sort.Float64s(s)
	r.MinNs, r.MaxNs = s[0], s[len(s)-1]
	if m := len(s) / 2; len(s)%2 == 1 {
		r.MedianNs = s[m]
	} else {
		r.MedianNs = (s[m-1] + s[m]) / 2
	}
	return r
}

// withProcs runs f with GOMAXPROCS temporarily set to procs.
func withProcs(procs int, f func() float64) float64 {
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	return f()
}
