//! 10^4 concurrent TCP connections, server on 2 workers, every echoed byte
//! checked.
//!
//! The point of the netpoller: 10^4 coroutines each blocked in a socket call,
//! on two OS threads. The server (this process) runs one coroutine per
//! connection; the clients run in a child process (this test binary again),
//! one coroutine per connection on 2 workers, so that neither process needs
//! more than about 10^4 file descriptors (the machine's hard `RLIMIT_NOFILE`
//! is 2 x 10^4, which both ends in one process would exceed).
//!
//! Each server coroutine first sends a one-byte greeting. A client connects,
//! reads the greeting, and waits on a `WaitGroup` until all 10^4 clients
//! have theirs, so the 10^4 connections are open at once (the server checks:
//! none of its coroutines can end before its client writes). Then each
//! client sends its own pattern in two writes, half-closes, and reads the
//! echo to end of file.
//!
//! A listener's backlog is 128 (as in `std::net`); a SYN that finds it full
//! is dropped and retried by the kernel a second later. So the client keeps
//! at most 64 connections between `connect` and greeting, with tokens in a
//! channel.
//!
//! Each process raises its soft `RLIMIT_NOFILE` to the hard one if needed,
//! and the test skips, saying so, if that is not enough.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use spindle::chan;
use spindle::net::{TcpListener, TcpStream};
use spindle::sync::WaitGroup;
use spindle::Runtime;
use spindle_tests::{is_child, run_child, watchdog, Progress};

const TEST: &str = "ten_thousand_concurrent_echo_connections_on_two_workers";
const CLIENT_ROLE: &str = "net-echo-clients";
/// Where the child finds the server.
const ADDR_ENV: &str = "SPINDLE_TEST_ECHO_ADDR";
const CONNS: usize = 10_000;
/// File descriptors beyond one per connection: the test harness, the
/// runtime's own (epoll, eventfd), the listener, pipes to the child.
const SPARE_FDS: u64 = 256;
const GREETING: u8 = b'>';

/// Raise `RLIMIT_NOFILE` to at least `want` if possible; `Err` says why not.
fn raise_nofile(want: u64) -> Result<(), String> {
    // SAFETY: rlimit is plain old data.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit writes one rlimit into lim.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    if lim.rlim_cur >= want {
        return Ok(());
    }
    let soft_only = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // Root with CAP_SYS_RESOURCE may raise the hard limit too.
    let both = libc::rlimit {
        rlim_cur: want,
        rlim_max: want,
    };
    for new in [soft_only, both] {
        // SAFETY: setrlimit reads one rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 && new.rlim_cur >= want {
            return Ok(());
        }
    }
    Err(format!(
        "RLIMIT_NOFILE is {} (hard {}) and cannot be raised to {want}; \
         raise it (ulimit -n {want}, as root) to run this test",
        lim.rlim_cur, lim.rlim_max
    ))
}

#[test]
fn ten_thousand_concurrent_echo_connections_on_two_workers() {
    if let Err(why) = raise_nofile(CONNS as u64 + SPARE_FDS) {
        eprintln!("skipped: {why}");
        return;
    }
    if is_child(CLIENT_ROLE) {
        let addr: SocketAddr = std::env::var(ADDR_ENV).unwrap().parse().unwrap();
        watchdog("10^4 echo clients", move |progress| {
            let rt = Runtime::builder().workers(2).build().unwrap();
            rt.block_on(move || clients(addr, progress));
        });
        return;
    }
    let rt = Runtime::builder().workers(2).build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (most_open, echoed) = watchdog("10^4 echo connections", move |progress| {
        let server = rt.spawn(move || serve(listener, progress));
        let run = run_child(TEST, CLIENT_ROLE, &[(ADDR_ENV, &addr)]);
        if run.stderr.contains("skipped:") {
            eprintln!("{run}");
        }
        run.assert_passed();
        server.join().expect("server")
    });
    assert_eq!(most_open, CONNS, "not all connections were open at once");
    let sent: usize = (0..CONNS).map(|i| pattern(i).len()).sum();
    assert_eq!(echoed, sent);
}

/// Accept `CONNS` connections, one echo coroutine each; return the most
/// connections open at once and the bytes echoed.
fn serve(listener: TcpListener, progress: Progress) -> (usize, usize) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut most_open = 0;
    let mut handlers = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let (conn, _) = listener.accept().expect("accept");
        most_open = most_open.max(open.fetch_add(1, Ordering::Relaxed) + 1);
        progress.tick();
        let open = open.clone();
        let progress = progress.clone();
        handlers.push(spindle::spawn(move || {
            let echoed = echo(conn);
            open.fetch_sub(1, Ordering::Relaxed);
            progress.tick();
            echoed
        }));
    }
    let echoed = handlers
        .into_iter()
        .map(|h| h.join().expect("server coroutine"))
        .sum();
    (most_open, echoed)
}

/// Greet, then echo through a 4 KiB buffer until end of file; return the
/// byte count.
fn echo(mut conn: TcpStream) -> usize {
    conn.write_all(&[GREETING]).expect("greeting");
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        match conn.read(&mut buf).expect("server read") {
            0 => return total,
            n => {
                conn.write_all(&buf[..n]).expect("server write");
                total += n;
            }
        }
    }
}

/// The child: `CONNS` client coroutines, all connected before any writes.
fn clients(addr: SocketAddr, progress: Progress) {
    const IN_FLIGHT: usize = 64;
    let (token_tx, token_rx) = chan::bounded::<()>(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        token_tx.send(()).unwrap();
    }
    let all_greeted = WaitGroup::new();
    all_greeted.add(CONNS);
    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            let (token_tx, token_rx) = (token_tx.clone(), token_rx.clone());
            let all_greeted = all_greeted.clone();
            let progress = progress.clone();
            spindle::spawn(move || {
                token_rx.recv().expect("token");
                let mut conn = TcpStream::connect(addr).expect("connect");
                let mut greeting = [0u8; 1];
                conn.read_exact(&mut greeting).expect("greeting");
                assert_eq!(greeting[0], GREETING);
                token_tx.send(()).unwrap();
                all_greeted.done();
                progress.tick();
                all_greeted.wait();
                let data = pattern(i);
                let (a, b) = data.split_at(data.len() / 2);
                conn.write_all(a).unwrap();
                conn.write_all(b).unwrap();
                conn.shutdown(Shutdown::Write).unwrap();
                let mut back = Vec::with_capacity(data.len());
                conn.read_to_end(&mut back).unwrap();
                assert!(
                    back == data,
                    "client {i}: the echo differs from what was sent"
                );
                progress.tick();
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
}

/// The bytes client `i` sends: 1 to 3000 of them, different for every client.
fn pattern(i: usize) -> Vec<u8> {
    let len = 1 + (i * 7919) % 3000;
    (0..len)
        .map(|k| (i.wrapping_mul(31) ^ k.wrapping_mul(131)) as u8)
        .collect()
}
