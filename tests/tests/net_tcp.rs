//! `spindle::net` TCP against `std::net`: plain threads and coroutines on
//! either end, the same errors as `std::net`, conversions both ways, and
//! the options.

use std::io::{self, ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spindle::net::{TcpListener, TcpStream};
use spindle::Runtime;
use spindle_tests::watchdog;

/// Echo one connection until end of file.
fn echo(mut conn: impl Read + Write) {
    let mut buf = [0u8; 1024];
    loop {
        match conn.read(&mut buf).unwrap() {
            0 => return,
            n => conn.write_all(&buf[..n]).unwrap(),
        }
    }
}

/// Send 100 KiB, half-close, check the echo.
fn talk(mut conn: impl Read + Write, half_close: impl FnOnce(&mut dyn Write)) {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    conn.write_all(&data).unwrap();
    half_close(&mut conn);
    let mut back = Vec::new();
    conn.read_to_end(&mut back).unwrap();
    assert!(back == data, "echo differs");
}

#[test]
fn a_plain_thread_client_talks_to_a_coroutine_server() {
    watchdog("thread client, coroutine server", |_| {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = rt.spawn(move || {
            for conn in listener.incoming().take(2) {
                let conn = conn.unwrap();
                spindle::spawn(move || echo(conn));
            }
        });
        // A std::net client and a spindle::net client on plain threads.
        let s = std::net::TcpStream::connect(addr).unwrap();
        talk(&s, |_| s.shutdown(Shutdown::Write).unwrap());
        let s = TcpStream::connect(addr).unwrap();
        talk(&s, |_| s.shutdown(Shutdown::Write).unwrap());
        server.join().unwrap();
    });
}

#[test]
fn a_coroutine_client_talks_to_a_plain_thread_server() {
    watchdog("coroutine client, thread server", |_| {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let spindle_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addrs = [
            std_listener.local_addr().unwrap(),
            spindle_listener.local_addr().unwrap(),
        ];
        let t1 = std::thread::spawn(move || echo(std_listener.accept().unwrap().0));
        let t2 = std::thread::spawn(move || echo(spindle_listener.accept().unwrap().0));
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(move || {
            for addr in addrs {
                let s = TcpStream::connect(addr).unwrap();
                talk(&s, |_| s.shutdown(Shutdown::Write).unwrap());
            }
        });
        t1.join().unwrap();
        t2.join().unwrap();
    });
}

#[test]
fn errors_match_std() {
    fn kind_and_text(e: io::Error) -> (ErrorKind, String) {
        (e.kind(), e.to_string())
    }
    watchdog("errors like std", |_| {
        let none: &[SocketAddr] = &[];
        assert_eq!(
            kind_and_text(TcpStream::connect(none).unwrap_err()),
            kind_and_text(std::net::TcpStream::connect(none).unwrap_err())
        );
        assert_eq!(
            kind_and_text(TcpListener::bind(none).unwrap_err()),
            kind_and_text(std::net::TcpListener::bind(none).unwrap_err())
        );
        // A port nobody listens on (bound, then closed).
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let std_refused = std::net::TcpStream::connect(dead).unwrap_err().kind();
        assert_eq!(std_refused, ErrorKind::ConnectionRefused);
        assert_eq!(TcpStream::connect(dead).unwrap_err().kind(), std_refused);
        let rt = Runtime::builder().workers(1).build().unwrap();
        let (zero, refused) = rt.block_on(move || {
            (
                TcpStream::connect_timeout(&dead, Duration::ZERO).unwrap_err(),
                TcpStream::connect(dead).unwrap_err().kind(),
            )
        });
        assert_eq!(refused, std_refused);
        assert_eq!(
            kind_and_text(zero),
            kind_and_text(std::net::TcpStream::connect_timeout(&dead, Duration::ZERO).unwrap_err())
        );
        // Zero timeouts, and addresses of unconnected sockets.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let std_s = std::net::TcpStream::connect(std_l.local_addr().unwrap()).unwrap();
        assert_eq!(
            kind_and_text(s.set_read_timeout(Some(Duration::ZERO)).unwrap_err()),
            kind_and_text(std_s.set_read_timeout(Some(Duration::ZERO)).unwrap_err())
        );
        assert_eq!(
            kind_and_text(s.set_write_timeout(Some(Duration::ZERO)).unwrap_err()),
            kind_and_text(std_s.set_write_timeout(Some(Duration::ZERO)).unwrap_err())
        );
        // Binding an address in use.
        let taken = l.local_addr().unwrap();
        assert_eq!(
            TcpListener::bind(taken).unwrap_err().kind(),
            std::net::TcpListener::bind(taken).unwrap_err().kind()
        );
    });
}

/// A listener whose accept queue holds one connection (backlog 0); std's
/// `bind` always asks for 128.
fn tiny_backlog_listener() -> std::net::TcpListener {
    // SAFETY: socket(2) takes no pointers; we own the new descriptor.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: fd is a new socket nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sin is a valid sockaddr_in of the length given.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sin).cast(),
            std::mem::size_of_val(&sin) as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "bind: {}", io::Error::last_os_error());
    // SAFETY: listen(2) takes no pointers.
    assert_eq!(unsafe { libc::listen(fd.as_raw_fd(), 0) }, 0);
    std::net::TcpListener::from(fd)
}

/// `connect_timeout` to a listener whose accept queue is full: Linux drops
/// the SYN, so the connection can only time out. Deterministic on loopback,
/// unlike an unroutable address.
#[test]
fn connect_timeout_to_a_full_backlog_times_out_like_std() {
    const T: Duration = Duration::from_millis(100);
    watchdog("connect timeout", |_| {
        let listener = tiny_backlog_listener();
        let addr = listener.local_addr().unwrap();
        // Fill the queue (bounded: it holds one with backlog 0).
        let mut queued = Vec::new();
        let std_err = loop {
            match std::net::TcpStream::connect_timeout(&addr, T) {
                Ok(s) => queued.push(s),
                Err(e) => break e,
            }
            assert!(queued.len() < 16, "the accept queue never filled");
        };
        assert_eq!(std_err.kind(), ErrorKind::TimedOut, "{std_err}");
        let e = TcpStream::connect_timeout(&addr, T).unwrap_err();
        assert_eq!(
            (e.kind(), e.to_string()),
            (std_err.kind(), std_err.to_string())
        );
        let rt = Runtime::builder().workers(1).build().unwrap();
        let e = rt.block_on(move || {
            // The other coroutine of this one worker runs while this one
            // waits to connect (it would not if the wait blocked the thread).
            let ran = Arc::new(AtomicBool::new(false));
            let other = spindle::spawn({
                let ran = ran.clone();
                move || ran.store(true, Ordering::Relaxed)
            });
            let e = TcpStream::connect_timeout(&addr, T).unwrap_err();
            assert!(ran.load(Ordering::Relaxed), "the worker was blocked");
            other.join().unwrap();
            e
        });
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        // Once the queue drains, a connection is made.
        drop(listener.accept().unwrap());
        drop(TcpStream::connect_timeout(&addr, Duration::from_secs(30)).unwrap());
    });
}

#[test]
fn conversions_to_and_from_std_keep_the_socket_and_its_settings() {
    watchdog("conversions", |_| {
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = std_l.local_addr().unwrap();
            let l = TcpListener::from(std_l);
            assert_eq!(l.local_addr().unwrap(), addr);
            let std_c = std::net::TcpStream::connect(addr).unwrap();
            std_c
                .set_read_timeout(Some(Duration::from_secs(7)))
                .unwrap();
            let c = TcpStream::from(std_c);
            assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_secs(7)));
            let (s, peer) = l.accept().unwrap();
            assert_eq!(peer, c.local_addr().unwrap());
            assert_eq!(s.peer_addr().unwrap(), peer);
            // Back to std: blocking again, with the timeout.
            let std_s = std::net::TcpStream::from(s);
            (&c).write_all(b"abc").unwrap();
            let mut b = [0u8; 3];
            (&std_s).read_exact(&mut b).unwrap();
            assert_eq!(&b, b"abc");
            c.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
            let std_c = std::net::TcpStream::from(c);
            assert_eq!(std_c.write_timeout().unwrap(), Some(Duration::from_secs(3)));
            assert_eq!(std_c.read_timeout().unwrap(), Some(Duration::from_secs(7)));
            // A std socket in non-blocking mode stays non-blocking.
            std_c.set_nonblocking(true).unwrap();
            let mut c = TcpStream::from(std_c);
            assert_eq!(c.read(&mut b).unwrap_err().kind(), ErrorKind::WouldBlock);
            c.set_nonblocking(false).unwrap();
            // Raw descriptors round trip.
            let fd = c.into_raw_fd();
            // SAFETY: fd came from into_raw_fd just above; we hand it back.
            let c = unsafe { TcpStream::from_raw_fd(fd) };
            assert_eq!(c.as_raw_fd(), fd);
            assert_eq!(c.as_fd().as_raw_fd(), fd);
            let owned = OwnedFd::from(c);
            let c = TcpStream::from(owned);
            (&std_s).write_all(b"z").unwrap();
            let mut z = [0u8; 1];
            (&c).read_exact(&mut z).unwrap();
            assert_eq!(&z, b"z");
            let l2 = TcpListener::from(std::net::TcpListener::from(l));
            let d = format!("{l2:?} {c:?}");
            assert!(
                d.contains("TcpListener") && d.contains(&addr.to_string()),
                "{d}"
            );
            assert!(d.contains("TcpStream") && d.contains("peer"), "{d}");
        });
    });
}

#[test]
fn options_peek_vectored_io_and_clones() {
    watchdog("options", |_| {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let l2 = l.try_clone().unwrap();
            assert_eq!(l2.local_addr().unwrap(), l.local_addr().unwrap());
            l.set_ttl(77).unwrap();
            assert_eq!(l.ttl().unwrap(), 77);
            assert!(l.take_error().unwrap().is_none());
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l2.accept().unwrap();
            for on in [true, false] {
                c.set_nodelay(on).unwrap();
                assert_eq!(c.nodelay().unwrap(), on);
            }
            c.set_linger(Some(Duration::from_secs(3))).unwrap();
            assert_eq!(c.linger().unwrap(), Some(Duration::from_secs(3)));
            c.set_linger(None).unwrap();
            assert_eq!(c.linger().unwrap(), None);
            c.set_ttl(9).unwrap();
            assert_eq!(c.ttl().unwrap(), 9);
            assert!(c.take_error().unwrap().is_none());

            let n = (&c)
                .write_vectored(&[IoSlice::new(b"hello "), IoSlice::new(b"world")])
                .unwrap();
            assert_eq!(n, 11);
            let mut p = [0u8; 5];
            // peek parks until data is there, then leaves it queued.
            let peeked = s.peek(&mut p).unwrap();
            assert!(peeked >= 1 && p[..peeked] == b"hello"[..peeked]);
            let (mut a, mut b) = ([0u8; 6], [0u8; 5]);
            let mut got = 0;
            while got < 11 {
                let mut bufs = [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)];
                io::IoSliceMut::advance_slices(&mut &mut bufs[..], got);
                got += (&s).read_vectored(&mut bufs).unwrap();
            }
            assert_eq!((&a, &b), (b"hello ", b"world"));
            // A clone reads what the original's peer writes.
            let s2 = s.try_clone().unwrap();
            drop(s);
            (&c).write_all(b"!").unwrap();
            let mut x = [0u8; 1];
            (&s2).read_exact(&mut x).unwrap();
            assert_eq!(&x, b"!");
        });
    });
}

#[test]
fn spindle_net_on_a_plain_thread_without_any_runtime() {
    watchdog("no runtime", |_| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || echo(l.accept().unwrap().0));
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(30)).unwrap();
        talk(&s, |_| s.shutdown(Shutdown::Write).unwrap());
        t.join().unwrap();
    });
}

/// Like `std::net`'s, the types can be shared between coroutines and threads.
#[test]
fn the_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<TcpStream>();
    send_sync::<TcpListener>();
    send_sync::<spindle::net::UdpSocket>();
}
