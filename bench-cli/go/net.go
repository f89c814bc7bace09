// net.go is the Go side of `spindle-bench net`: an echo server with one
// goroutine per connection, each reading lines through a bufio.Reader of the
// default size (4 KiB) and writing every line back. Go's netpoller parks a
// goroutine whose read would block, which is what spindle::net copies.
//
// The protocol with spindle-bench, shared with its own server: listen on
// 127.0.0.1 with port 0, print the port on a line, then answer each "gc"
// line on stdin with "ok stack=B heap=B" (MemStats.StackInuse and HeapAlloc)
// after a garbage collection, so the parent reads our memory without garbage
// in it; exit when stdin closes. The parent
// sets PR_SET_PDEATHSIG, so the server also dies with it.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"
)

func runNet() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: " + err.Error())
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	go control()
	var last time.Time
	for {
		c, err := ln.Accept()
		if err != nil {
			// EMFILE and friends: report at most once a second, back off.
			if time.Since(last) >= time.Second {
				fmt.Fprintln(os.Stderr, "goref net: accept:", err)
				last = time.Now()
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go echoLines(c) // net.TCPConn has TCP_NODELAY set by default
	}
}

// echoLines writes back every line read from c. ReadSlice returns a slice of
// the reader's own buffer, so nothing is allocated per line; a line longer
// than the buffer comes back in buffer-sized pieces (bufio.ErrBufferFull).
func echoLines(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 && (err == nil || err == bufio.ErrBufferFull) {
			if _, werr := c.Write(line); werr != nil {
				return
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// control answers the parent: "gc" -> collect garbage, then "ok" and figures.
func control() {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() != "gc" {
			fmt.Println("ok")
			continue
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("ok stack=%d heap=%d\n", ms.StackInuse, ms.HeapAlloc)
	}
	os.Exit(0)
}
