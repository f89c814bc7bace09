//! Tests of the poller through `Socket`, on pipes, socket pairs and UDP
//! sockets (the TCP and UDP API has its own tests in tests/tests/net_*.rs).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::poller::{token, Poller};
use super::readiness::Check;
use super::socket::{Direction, Socket};
use crate::Runtime;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// A pipe: (read end, write end), both close-on-exec, blocking.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid two-int buffer; the fds are owned at once.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: just created, owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid two-int buffer; the fds are owned at once.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0);
    // SAFETY: just created, owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn read_op(buf: &mut [u8]) -> impl FnMut(RawFd) -> io::Result<usize> + '_ {
    move |fd| {
        // SAFETY: `buf` is valid for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

fn write_fd(fd: RawFd, data: &[u8]) {
    // SAFETY: `data` is valid for its length.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize);
}

fn read_byte(sock: &Socket, deadline: Option<Instant>) -> io::Result<u8> {
    let mut b = [0u8; 1];
    let n = sock.io(Direction::Read, deadline, read_op(&mut b))?;
    assert_eq!(n, 1);
    Ok(b[0])
}

#[test]
fn parked_reader_wakes_when_a_thread_writes() {
    let rt = rt(2);
    let (r, w) = pipe();
    let sock = Socket::from_owned(r).unwrap();
    let reader = rt.spawn(move || read_byte(&sock, None).unwrap());
    std::thread::sleep(Duration::from_millis(20));
    write_fd(w.as_raw_fd(), b"x");
    assert_eq!(reader.join().unwrap(), b'x');
}

#[test]
fn many_edges_on_one_socket_are_all_seen() {
    // A reader that consumes one byte per wake-up and a writer that writes
    // one byte at a time: every byte arrives (an edge remembered while the
    // reader was busy is not lost).
    let rt = rt(2);
    let (a, b) = socketpair();
    let sock = Socket::from_owned(a).unwrap();
    let reader = rt.spawn(move || {
        let mut sum = 0u64;
        for _ in 0..2000 {
            sum += u64::from(read_byte(&sock, None).unwrap());
        }
        sum
    });
    let writer = std::thread::spawn(move || {
        for i in 0..2000u32 {
            write_fd(b.as_raw_fd(), &[(i % 251) as u8]);
            if i % 97 == 0 {
                std::thread::yield_now();
            }
        }
        b
    });
    let expect: u64 = (0..2000u64).map(|i| i % 251).sum();
    assert_eq!(reader.join().unwrap(), expect);
    drop(writer.join().unwrap());
}

#[test]
fn deadline_gives_would_block_in_a_coroutine_and_on_a_thread() {
    let rt = rt(1);
    let (r, _w) = pipe();
    let sock = Arc::new(Socket::from_owned(r).unwrap());
    let s2 = sock.clone();
    let in_coroutine = rt.spawn(move || {
        let deadline = Instant::now() + Duration::from_millis(30);
        let e = read_byte(&s2, Some(deadline)).unwrap_err();
        (e.kind(), Instant::now() >= deadline)
    });
    assert_eq!(
        in_coroutine.join().unwrap(),
        (io::ErrorKind::WouldBlock, true)
    );
    let deadline = Instant::now() + Duration::from_millis(30);
    let e = read_byte(&sock, Some(deadline)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    assert!(Instant::now() >= deadline);
}

#[test]
fn plain_thread_blocks_like_std() {
    let (a, b) = socketpair();
    let sock = Socket::from_owned(a).unwrap();
    let t = std::thread::spawn(move || read_byte(&sock, None).unwrap());
    std::thread::sleep(Duration::from_millis(10));
    write_fd(b.as_raw_fd(), b"q");
    assert_eq!(t.join().unwrap(), b'q');
}

#[test]
fn shutdown_wakes_a_parked_reader() {
    let rt = rt(2);
    let (a, _b) = socketpair();
    let sock = Arc::new(Socket::from_owned(a).unwrap());
    let s2 = sock.clone();
    let reader = rt.spawn(move || {
        let mut buf = [0u8; 8];
        s2.io(Direction::Read, None, read_op(&mut buf))
    });
    std::thread::sleep(Duration::from_millis(20));
    sock.shutdown(std::net::Shutdown::Read).unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), 0, "end of file");
}

#[test]
fn socket_and_channel_waiters_both_wake() {
    let rt = rt(2);
    let (a, b) = socketpair();
    let sock = Socket::from_owned(a).unwrap();
    let (tx, rx) = crate::chan::bounded::<u32>(0);
    let on_socket = rt.spawn(move || read_byte(&sock, None).unwrap());
    let on_channel = rt.spawn(move || rx.recv().unwrap());
    std::thread::sleep(Duration::from_millis(20));
    tx.send(5).unwrap();
    write_fd(b.as_raw_fd(), b"s");
    assert_eq!(on_channel.join().unwrap(), 5);
    assert_eq!(on_socket.join().unwrap(), b's');
}

#[test]
fn epoll_sleepers_wake_for_spawns_and_timers() {
    // A coroutine parked on a socket makes idle workers sleep in epoll_wait;
    // a spawn from this thread, and a timer, must still wake them.
    let rt = rt(2);
    let (a, b) = socketpair();
    let sock = Socket::from_owned(a).unwrap();
    let parked = rt.spawn(move || read_byte(&sock, None).unwrap());
    let poller = rt.scheduler().poller.clone();
    while poller.blocking_waits() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 0..50u64 {
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(rt.spawn(move || i * 2).join().unwrap(), i * 2);
    }
    let slept = rt.spawn(|| {
        let t0 = Instant::now();
        crate::sleep(Duration::from_millis(15));
        t0.elapsed() >= Duration::from_millis(15)
    });
    assert!(slept.join().unwrap());
    assert!(poller.blocking_waits() > 1, "workers slept in epoll_wait");
    write_fd(b.as_raw_fd(), b"z");
    assert_eq!(parked.join().unwrap(), b'z');
}

/// Raise the soft fd limit to the hard one; returns the soft limit.
fn raise_nofile() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid rlimit buffers.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

#[test]
fn ten_thousand_parked_sockets_on_two_workers() {
    // One UDP socket per coroutine (one fd each); a thread sends each a
    // datagram carrying its number.
    const N: usize = 10_000;
    let limit = raise_nofile();
    assert!(
        limit >= N as libc::rlim_t + 1000,
        "RLIMIT_NOFILE is {limit}; this test needs {} (raise the hard limit)",
        N + 1000
    );
    let rt = rt(2);
    let mut addrs = Vec::with_capacity(N);
    let mut handles = Vec::with_capacity(N);
    for i in 0..N {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        addrs.push(udp.local_addr().unwrap());
        let sock = Socket::from_owned(OwnedFd::from(udp)).unwrap();
        handles.push(rt.spawn(move || {
            let mut buf = [0u8; 8];
            let n = sock.io(Direction::Read, None, read_op(&mut buf)).unwrap();
            assert_eq!(n, 8);
            assert_eq!(u64::from_le_bytes(buf), i as u64);
        }));
    }
    std::thread::sleep(Duration::from_millis(50));
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, addr) in addrs.iter().enumerate() {
        sender.send_to(&(i as u64).to_le_bytes(), addr).unwrap();
    }
    for h in handles {
        h.join().unwrap();
    }
    let poller = rt.scheduler().poller.clone();
    assert!(!poller.has_waiters());
    assert!(
        !poller.has_registered(),
        "every socket deregistered on drop"
    );
}

#[test]
fn shutdown_cancels_coroutines_parked_on_sockets() {
    let rt = rt(2);
    let poller = rt.scheduler().poller.clone();
    let mut writers = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..100 {
        let (a, b) = socketpair();
        writers.push(b);
        let sock = Socket::from_owned(a).unwrap();
        handles.push(rt.spawn(move || read_byte(&sock, None)));
    }
    while !poller.has_waiters() {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
    drop(rt);
    for h in handles {
        let payload = h.join().unwrap_err();
        assert!(payload.is::<crate::Cancelled>());
    }
    assert!(!poller.has_waiters());
    assert!(!poller.has_registered());
    // Only the test's reference is left: dropping it closes the fds.
    assert_eq!(Arc::strong_count(&poller), 1);
}

#[test]
fn socket_of_another_runtime_blocks_in_poll() {
    let (rt_a, rt_b) = (rt(1), rt(1));
    let (a, b) = socketpair();
    let sock = Arc::new(Socket::from_owned(a).unwrap());
    let s2 = sock.clone();
    // Registered with A by a timed-out wait there.
    let e = rt_a
        .spawn(move || read_byte(&s2, Some(Instant::now() + Duration::from_millis(5))))
        .join()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    let s3 = sock.clone();
    let reader = rt_b.spawn(move || read_byte(&s3, None).unwrap());
    std::thread::sleep(Duration::from_millis(20));
    write_fd(b.as_raw_fd(), b"b");
    assert_eq!(reader.join().unwrap(), b'b');
    drop(rt_a);
    // Still usable after its runtime is gone, from a plain thread.
    write_fd(b.as_raw_fd(), b"c");
    assert_eq!(read_byte(&sock, None).unwrap(), b'c');
}

#[test]
fn into_owned_deregisters_and_restores_blocking() {
    let rt = rt(1);
    let poller = rt.scheduler().poller.clone();
    let (a, b) = socketpair();
    let sock = Socket::from_owned(a).unwrap();
    let sock = rt
        .spawn(move || {
            let e = read_byte(&sock, Some(Instant::now() + Duration::from_millis(5)));
            assert!(e.is_err());
            sock
        })
        .join()
        .unwrap();
    assert!(poller.has_registered());
    let fd = sock.into_owned();
    assert!(!poller.has_registered());
    // SAFETY: F_GETFL on an fd we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert_eq!(flags & libc::O_NONBLOCK, 0);
    drop(b);
}

#[test]
fn stale_event_after_reuse_wakes_nobody() {
    let poller = Poller::new().unwrap();
    let (a, _b) = socketpair();
    let (index, seq) = poller.register(a.as_raw_fd()).unwrap();
    poller.deregister(a.as_raw_fd(), index, seq);
    let (c, _d) = socketpair();
    let (index2, seq2) = poller.register(c.as_raw_fd()).unwrap();
    assert_eq!((index2, seq2), (index, seq.wrapping_add(1)), "entry reused");
    // An event of the old registration, dispatched late: ignored.
    let stale = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token(index, seq),
    };
    assert_eq!(poller.dispatch(&[stale], None), 0);
    let r = poller.table.get(index2);
    let me = crate::park::Caller::get();
    assert_eq!(
        r.enqueue(seq2, 0, None, || me.to_waiter()),
        Check::Queued,
        "the stale event left no edge behind"
    );
    let fresh = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token(index2, seq2),
    };
    assert_eq!(
        poller.dispatch(&[fresh], None),
        1,
        "the live event wakes the waiter"
    );
    assert!(r.withdraw(0, me.addr()).is_none());
    assert_eq!(r.enqueue(seq, 0, None, || me.to_waiter()), Check::Closed);
    poller.deregister(c.as_raw_fd(), index2, seq2);
}

#[test]
fn connect_in_a_coroutine_and_refused() {
    let rt = rt(2);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connected = rt.spawn(move || {
        let sock = Socket::new(libc::AF_INET, libc::SOCK_STREAM).unwrap();
        sock.connect(&addr, None).unwrap();
        let mut b = [0u8; 1];
        sock.io(Direction::Read, None, read_op(&mut b)).unwrap();
        b[0]
    });
    let (mut peer, _) = listener.accept().unwrap();
    std::io::Write::write_all(&mut peer, b"k").unwrap();
    assert_eq!(connected.join().unwrap(), b'k');
    // Nobody listens on the port any more.
    drop(listener);
    drop(peer);
    let refused = rt.spawn(move || {
        let sock = Socket::new(libc::AF_INET, libc::SOCK_STREAM).unwrap();
        sock.connect(&addr, Some(Instant::now() + Duration::from_secs(10)))
            .unwrap_err()
            .kind()
    });
    assert_eq!(refused.join().unwrap(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn per_socket_state_stays_small() {
    // Memory per idle connection (issue #14's figure) includes these: the
    // poller's entry and the socket itself.
    let entry = std::mem::size_of::<super::readiness::Readiness>();
    let socket = std::mem::size_of::<Socket>();
    assert!(entry <= 96, "{entry}");
    assert!(socket <= 48, "{socket}");
}

#[test]
fn shutdown_wakes_a_parked_accept_with_an_error() {
    let rt = rt(2);
    let listener = Arc::new(Socket::new(libc::AF_INET, libc::SOCK_STREAM).unwrap());
    super::sys::bind(listener.as_raw_fd(), &"127.0.0.1:0".parse().unwrap()).unwrap();
    super::sys::listen(listener.as_raw_fd(), 8).unwrap();
    let l2 = listener.clone();
    let accepting = rt.spawn(move || {
        l2.io(Direction::Read, None, |fd| {
            // SAFETY: accept4 without an address buffer.
            let r = unsafe {
                libc::accept4(
                    fd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                // SAFETY: a new fd, ours.
                Ok(unsafe { OwnedFd::from_raw_fd(r) })
            }
        })
    });
    let poller = rt.scheduler().poller.clone();
    while !poller.has_waiters() {
        std::thread::sleep(Duration::from_millis(1));
    }
    listener.shutdown(std::net::Shutdown::Both).unwrap();
    assert!(
        accepting.join().unwrap().is_err(),
        "accept fails once shut down"
    );
}

/// `Debug` of the API types (written once, in `endpoint.rs`) reads as
/// `std::net`'s does for the same socket.
#[test]
fn debug_matches_std() {
    use std::mem::ManuallyDrop;
    use std::os::fd::FromRawFd;

    /// `std::net`'s `Debug` of the socket behind `fd`, which stays open.
    fn std_debug<S: FromRawFd + std::fmt::Debug>(fd: RawFd) -> String {
        // SAFETY: fd is open for the whole call, and ManuallyDrop never
        // closes it: the std value only borrows it to print.
        let s = ManuallyDrop::new(unsafe { S::from_raw_fd(fd) });
        format!("{:?}", *s)
    }

    let listener = super::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = super::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let udp = super::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(
        format!("{listener:?}"),
        std_debug::<std::net::TcpListener>(listener.as_raw_fd())
    );
    let s = format!("{stream:?}");
    assert!(s.contains("peer"), "{s}");
    assert_eq!(s, std_debug::<std::net::TcpStream>(stream.as_raw_fd()));
    assert_eq!(
        format!("{udp:?}"),
        std_debug::<std::net::UdpSocket>(udp.as_raw_fd())
    );
}

/// A loopback TCP connection whose server end is read in a coroutine of a
/// one-worker runtime while `send`, on a plain thread, writes to the client
/// end. The only worker is kept busy until `send` returns, so that all it
/// sent reaches the reader in one epoll event: the reader wakes once, and
/// its first read stops short of the end of what is there. It reads until
/// end of file or until it has `want` bytes. Returns the bytes and whether
/// it saw end of file; panics if a read never returns (an edge was lost).
fn read_after_one_event(
    want: usize,
    send: impl FnOnce(&mut std::net::TcpStream) + Send + 'static,
) -> (Vec<u8>, bool) {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::mpsc;

    let rt = rt(1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let server = super::TcpStream::from(listener.accept().unwrap().0);
    let (go_tx, go_rx) = mpsc::channel();
    let sent = Arc::new(AtomicBool::new(false));
    let sent2 = sent.clone();
    let sender = std::thread::spawn(move || {
        go_rx.recv().unwrap();
        send(&mut client);
        sent2.store(true, SeqCst);
        client // kept open until the reader is done
    });
    let (done_tx, done_rx) = mpsc::channel();
    let _reader = rt.spawn(move || {
        // Runs when the reader parks in its first read (one worker), and
        // holds the worker until everything is sent.
        crate::spawn(move || {
            go_tx.send(()).unwrap();
            while !sent.load(SeqCst) {
                std::hint::spin_loop();
            }
        });
        let (mut got, mut buf) = (Vec::new(), [0u8; 64]);
        let eof = loop {
            match (&server).read(&mut buf).unwrap() {
                0 => break true,
                n => got.extend_from_slice(&buf[..n]),
            }
            if got.len() >= want {
                break false;
            }
        };
        done_tx.send((got, eof)).unwrap();
    });
    let result = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a read never returned: an edge was lost");
    drop(sender.join().unwrap());
    result
}

#[test]
fn short_read_before_a_fin_still_sees_end_of_file() {
    // Data and FIN in one event: the first read stops at the FIN, short;
    // the next must not take that for a drained socket and park for good.
    use std::io::Write;
    let (got, eof) = read_after_one_event(usize::MAX, |c| {
        c.write_all(b"abc").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
    });
    assert_eq!((&got[..], eof), (&b"abc"[..], true));
}

#[test]
fn short_read_at_an_urgent_mark_still_sees_the_rest() {
    // TCP stops a read at the urgent mark, short, with data behind it and
    // no edge to come (the urgent byte itself is out of band and skipped).
    use std::io::Write;
    let (got, eof) = read_after_one_event(4, |c| {
        c.write_all(b"ab").unwrap();
        // SAFETY: one valid byte, on a socket we own.
        let n = unsafe { libc::send(c.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!(n, 1);
        c.write_all(b"cd").unwrap();
    });
    assert_eq!((&got[..], eof), (&b"abcd"[..], false));
}

#[test]
fn drained_reads_see_every_byte_of_many_small_writes() {
    // The reader's buffer is larger than each write, so most reads are
    // short and the next one parks before trying: nothing may be lost.
    use std::io::{Read, Write};
    let rt = rt(2);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client.set_nodelay(true).unwrap();
    let server = super::TcpStream::from(listener.accept().unwrap().0);
    let reader = rt.spawn(move || {
        let (mut sum, mut total, mut buf) = (0u64, 0usize, [0u8; 256]);
        loop {
            let n = (&server).read(&mut buf).unwrap();
            if n == 0 {
                break (sum, total);
            }
            total += n;
            sum += buf[..n].iter().map(|&b| u64::from(b)).sum::<u64>();
        }
    });
    let mut expect = 0u64;
    for i in 0..3000u32 {
        let chunk = [(i % 251) as u8; 3];
        expect += 3 * u64::from(chunk[0]);
        client.write_all(&chunk).unwrap();
        if i % 61 == 0 {
            std::thread::yield_now();
        }
    }
    drop(client);
    assert_eq!(reader.join().unwrap(), (expect, 9000));
}

/// A coroutine on a one-worker runtime reads from a loopback connection
/// whose other end `peer` drives; `body` gets the server's stream. Panics
/// if `body` does not return within 30 s: a read that waits for an edge
/// that already came would wait for good.
fn with_served_stream<T: Send + 'static>(
    peer: impl FnOnce(std::net::TcpStream) + Send + 'static,
    body: impl FnOnce(crate::net::TcpStream) -> T + Send + 'static,
) -> T {
    let rt = rt(1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client.set_nodelay(true).unwrap();
    let (server, _) = listener.accept().unwrap();
    let server = crate::net::TcpStream::from(server);
    let peer = std::thread::spawn(move || peer(client));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let _h = rt.spawn(move || done_tx.send(body(server)).unwrap());
    let out = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a read never returned: it waited for an edge that had come");
    peer.join().unwrap();
    out
}

#[test]
fn a_read_after_a_peek_that_parked_sees_the_peeked_bytes() {
    // A short read, then a peek that parks and is woken by the next data's
    // edge, leaving the data queued: the next read must not skip its try
    // on the strength of the short read, or it waits for an edge that came.
    use std::io::{Read, Write};
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let got = with_served_stream(
        move |mut c| {
            // Late, so that the first read parks (and registers the socket).
            std::thread::sleep(Duration::from_millis(100));
            c.write_all(b"hello").unwrap();
            rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(100)); // the peek parks
            c.write_all(b"0123456789").unwrap();
            let _ = rx.recv(); // keep the connection open until the reads end
        },
        move |s| {
            let mut buf = [0u8; 1024];
            let first = (&s).read(&mut buf).unwrap();
            tx.send(()).unwrap();
            let peeked = s.peek(&mut buf).unwrap();
            let read = (&s).read(&mut buf);
            drop(tx);
            (first, peeked, read.map_err(|e| e.kind()))
        },
    );
    assert_eq!(got, (5, 10, Ok(10)));
}

#[test]
fn a_vectored_read_that_fills_every_buffer_it_can_is_not_short() {
    // More buffers than one readv takes (1024): filling those 1024 is a
    // full read, and the rest of the data is read at once, not after an
    // edge that will not come.
    use std::io::{IoSliceMut, Read, Write};
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let got = with_served_stream(
        move |mut c| {
            // Late, so that the first read parks (and registers the socket).
            std::thread::sleep(Duration::from_millis(100));
            c.write_all(&[7u8; 2000]).unwrap();
            let _ = rx.recv(); // keep the connection open until the reads end
        },
        move |s| {
            let _tx = tx;
            let mut one = vec![[0u8; 1]; 1025];
            let mut bufs: Vec<IoSliceMut<'_>> = one
                .iter_mut()
                .map(|b| IoSliceMut::new(&mut b[..]))
                .collect();
            let mut first = 0;
            while first == 0 {
                first = (&s).read_vectored(&mut bufs).unwrap();
            }
            let mut rest = vec![0u8; 4096];
            let mut total = first;
            while total < 2000 {
                match (&s).read(&mut rest) {
                    Ok(0) => break,
                    Ok(n) => total += n,
                    Err(e) => return Err(e.kind()),
                }
            }
            Ok(total)
        },
    );
    assert_eq!(got, Ok(2000));
}
