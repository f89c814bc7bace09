//! `net-server` (hidden): the echo server `net` measures, in its own process.
//!
//! One task per connection, each reading lines through a 4 KiB heap buffer
//! (the size of Go's `bufio.Reader`, which the Go server in
//! `bench-cli/go/net.go` uses) and writing each line back:
//!
//! * `--kind spindle`: a coroutine per connection on a spindle runtime with
//!   `--workers` workers, on `spindle::net` (a read that would block parks
//!   the coroutine, not the worker);
//! * `--kind threads`: an OS thread per connection on `std::net` (the
//!   baseline a green thread is meant to beat).
//!
//! Both listen with the largest backlog the kernel allows and set
//! `TCP_NODELAY` on accepted connections, as Go does by default.
//!
//! The protocol with the parent, shared with the Go server: the server
//! listens on 127.0.0.1, port 0 (the kernel picks a free one), and prints
//! the port on a line of its own; then each `gc` line on stdin is answered
//! with `ok` once the server is ready to be measured (Go collects garbage
//! first; spindle and threads have none), followed by ` stack=B heap=B`
//! where the server can tell: for spindle, its resident stack pages
//! (`mincore`) and its heap since start (the counting allocator); for Go,
//! `MemStats.StackInuse` and `HeapAlloc`. End of stdin ends the server,
//! and so does the parent's death (`PR_SET_PDEATHSIG`, set by the parent).

use std::io::{BufRead, Read, Write};

use crate::measure::{alloc, netsys};
use crate::present::progress;

/// Bytes of each connection's read buffer: Go's `bufio.Reader` default.
pub const BUFFER_BYTES: usize = 4096;

/// Which server to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Spindle,
    Threads,
}

#[derive(Debug, clap::Args)]
pub struct NetServerArgs {
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Worker threads of the spindle runtime.
    #[arg(long, default_value = "2", value_parser = crate::args::parse_workers)]
    pub workers: usize,
}

/// Echo every line read from `r` to `w` until end of input or an error.
/// One 4 KiB buffer, allocated when the connection starts, as
/// `bufio.NewReader` does; a line longer than the buffer is echoed in
/// buffer-sized pieces (Go's `ReadSlice` returns `ErrBufferFull` and the Go
/// server writes what it has).
pub fn echo_lines<R: Read, W: Write>(mut r: R, mut w: W) {
    let mut buf = vec![0u8; BUFFER_BYTES];
    let (mut start, mut end) = (0, 0);
    loop {
        if let Some(nl) = buf[start..end].iter().position(|&b| b == b'\n') {
            if w.write_all(&buf[start..start + nl + 1]).is_err() {
                return;
            }
            start += nl + 1;
            continue;
        }
        if start > 0 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == buf.len() {
            if w.write_all(&buf).is_err() {
                return;
            }
            end = 0;
        }
        match r.read(&mut buf[end..]) {
            Ok(0) | Err(_) => return,
            Ok(k) => end += k,
        }
    }
}

/// Print the port for the parent, then answer its `gc` lines on a thread
/// of their own (`ok`, then what `figures` adds); end the process when
/// stdin closes.
fn announce(port: u16, figures: impl Fn() -> String + Send + 'static) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{port}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the port: {e}"))?;
    std::thread::Builder::new()
        .name("net-control".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(_) = line else { break };
                let extra = figures();
                let mut out = std::io::stdout().lock();
                if writeln!(out, "ok{extra}")
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    break;
                }
            }
            std::process::exit(0);
        })
        .map_err(|e| format!("cannot start the control thread: {e}"))?;
    Ok(())
}

/// Report an accept error once a second at most (EMFILE repeats).
fn accept_failed(e: &std::io::Error, last: &mut Option<std::time::Instant>) {
    if last.is_none_or(|t| t.elapsed().as_secs() >= 1) {
        eprintln!("spindle-bench net-server: accept: {e}");
        *last = Some(std::time::Instant::now());
    }
}

/// Run the server until stdin closes.
pub fn run(a: &NetServerArgs) -> Result<(), String> {
    progress::clear();
    match a.kind {
        Kind::Spindle => spindle_server(a.workers),
        Kind::Threads => thread_server(),
    }
}

fn spindle_server(workers: usize) -> Result<(), String> {
    use spindle::net::TcpListener;
    let rt = spindle::Runtime::builder()
        .workers(workers)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let rt = std::sync::Arc::new(rt);
    // The heap from here on is counted (connection buffers, tasks, the
    // poller's records); no allocation happens per line echoed.
    alloc::start();
    let stats_rt = rt.clone();
    let figures = move || {
        let stack = stats_rt.resident_stack_bytes().unwrap_or(0);
        format!(" stack={stack} heap={}", alloc::read().bytes)
    };
    rt.block_on(move || {
        let l = TcpListener::from(listen()?);
        announce(l.local_addr().map_err(|e| e.to_string())?.port(), figures)?;
        let mut last = None;
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    drop(spindle::spawn(move || echo_lines(&s, &s)));
                }
                Err(e) => {
                    accept_failed(&e, &mut last);
                    spindle::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    })
}

/// 127.0.0.1, a free port, the largest backlog (see
/// [`netsys::listen_loopback`]).
fn listen() -> Result<std::net::TcpListener, String> {
    netsys::listen_loopback().map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))
}

fn thread_server() -> Result<(), String> {
    let l = listen()?;
    announce(
        l.local_addr().map_err(|e| e.to_string())?.port(),
        String::new,
    )?;
    let mut last = None;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                if let Err(e) = std::thread::Builder::new().spawn(move || echo_lines(&s, &s)) {
                    accept_failed(&e, &mut last);
                }
            }
            Err(e) => {
                accept_failed(&e, &mut last);
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_lines_whole_and_long_ones_in_pieces() {
        let input = b"a\nbc\n".to_vec();
        let mut out = Vec::new();
        echo_lines(&input[..], &mut out);
        assert_eq!(out, b"a\nbc\n");
        let long = vec![b'x'; BUFFER_BYTES * 2 + 10];
        let mut out = Vec::new();
        echo_lines(&long[..], &mut out);
        // Two full buffers echoed; the unterminated tail is not a line.
        assert_eq!(out.len(), BUFFER_BYTES * 2);
    }
}
