// procfs.go reads memory numbers the kernel keeps about this process.
// Go's own counters (runtime.MemStats) only see memory the Go runtime asked
// for; the kernel's view also shows which pages are really resident (RSS)
// and how much memory the page tables that map them take (VmPTE). Together
// they tell us what a goroutine actually costs the machine.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// rssBytes returns the resident set size: field 2 of /proc/self/statm is the
// number of resident pages.
func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		fail("reading /proc/self/statm: " + err.Error())
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		fail("unexpected /proc/self/statm format")
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		fail("parsing /proc/self/statm: " + err.Error())
	}
	return pages * int64(os.Getpagesize())
}

// vmPTEBytes returns the size of this process's page tables, from the
// "VmPTE:  123 kB" line of /proc/self/status.
func vmPTEBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		fail("reading /proc/self/status: " + err.Error())
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "VmPTE:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				fail("parsing VmPTE: " + err.Error())
			}
			return kb * 1024
		}
	}
	fail(fmt.Sprintf("no VmPTE line in /proc/self/status (scan error: %v)", sc.Err()))
	return 0
}
