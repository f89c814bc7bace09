//! Parking and waking on sockets (`spindle::net`): a coroutine blocked in a
//! socket call parks, and what wakes it.
//!
//! Most tests run on **one** worker: a socket call that blocked the worker
//! thread instead of parking would keep the other coroutine (the one that
//! connects, writes or shuts down) from ever running, and the watchdog
//! would report the hang. The `sleep`s only let the other coroutine reach
//! its blocking call first; no test asserts on time except a lower bound
//! for a timeout.
//!
//! What a parked coroutine gets (documented behaviour, checked here):
//! * `shutdown(Read)`/`shutdown(Both)` by another handle of the connection:
//!   a parked `read` returns `Ok(0)` (end of file);
//! * `shutdown(Write)` by another handle: a parked `write` fails with
//!   `BrokenPipe`;
//! * `shutdown(SHUT_RD)` of a listening socket: a parked `accept` fails
//!   with `InvalidInput` (`EINVAL`), as a blocked thread's would;
//! * the peer resetting the connection: a parked `write` fails with
//!   `ConnectionReset` or `BrokenPipe`;
//! * dropping another handle (from `try_clone`) closes only that handle's
//!   descriptor, as in `std::net`: the parked call keeps waiting, and is
//!   woken by the next data even when the closed descriptor's number has
//!   been reused by a new socket.

use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use spindle::chan;
use spindle::net::{TcpListener, TcpStream};
use spindle::Runtime;
use spindle_tests::watchdog;

const SETTLE: Duration = Duration::from_millis(20);

/// A connected pair on loopback: (client, server side).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

fn one_worker() -> Runtime {
    Runtime::builder().workers(1).build().unwrap()
}

/// Write into `s` until a write fails (the peer does not read), at most
/// 256 MiB; return the error.
fn write_until_error(mut s: &TcpStream) -> io::Error {
    let chunk = vec![7u8; 64 << 10];
    for _ in 0..4096 {
        if let Err(e) = s.write(&chunk) {
            return e;
        }
    }
    panic!("256 MiB written without an error");
}

#[test]
fn a_coroutine_parked_in_accept_is_woken_by_a_connect() {
    watchdog("accept woken by connect", |_| {
        one_worker().block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let acceptor = spindle::spawn(move || {
                let (mut conn, peer) = listener.accept().unwrap();
                let mut b = [0u8; 1];
                conn.read_exact(&mut b).unwrap();
                (peer, b[0])
            });
            spindle::sleep(SETTLE); // the acceptor parks in accept
            let mut client = TcpStream::connect(addr).unwrap();
            client.write_all(&[42]).unwrap();
            let (peer, byte) = acceptor.join().unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            assert_eq!(byte, 42);
        });
    });
}

#[test]
fn a_socket_waiter_and_a_channel_waiter_on_one_worker_both_wake() {
    watchdog("socket and channel waiters", |p| {
        one_worker().block_on(move || {
            for socket_first in [true, false] {
                let (mut client, server) = pair();
                let (tx, rx) = chan::bounded::<u32>(0);
                let reader = spindle::spawn(move || {
                    let mut buf = [0u8; 3];
                    (&server).read_exact(&mut buf).unwrap();
                    buf
                });
                let receiver = spindle::spawn(move || rx.recv().unwrap());
                spindle::sleep(SETTLE); // both park
                if socket_first {
                    client.write_all(b"abc").unwrap();
                    tx.send(5).unwrap();
                } else {
                    tx.send(5).unwrap();
                    client.write_all(b"abc").unwrap();
                }
                assert_eq!(&reader.join().unwrap(), b"abc");
                assert_eq!(receiver.join().unwrap(), 5);
                p.tick();
            }
        });
    });
}

#[test]
fn shutdown_by_another_handle_wakes_a_parked_reader_with_end_of_file() {
    watchdog("shutdown wakes reader", |p| {
        one_worker().block_on(move || {
            for how in [Shutdown::Read, Shutdown::Both] {
                let (client, _server) = pair();
                let other = client.try_clone().unwrap();
                let reader = spindle::spawn(move || {
                    let mut buf = [0u8; 16];
                    (&client).read(&mut buf)
                });
                spindle::sleep(SETTLE);
                other.shutdown(how).unwrap();
                assert_eq!(reader.join().unwrap().unwrap(), 0, "{how:?}");
                p.tick();
            }
        });
    });
}

#[test]
fn shutdown_write_by_another_handle_wakes_a_parked_writer_with_broken_pipe() {
    watchdog("shutdown wakes writer", |_| {
        one_worker().block_on(|| {
            let (client, _server) = pair(); // the server never reads
            let other = client.try_clone().unwrap();
            let writer = spindle::spawn(move || write_until_error(&client));
            spindle::sleep(SETTLE); // the writer fills the buffers and parks
            other.shutdown(Shutdown::Write).unwrap();
            assert_eq!(writer.join().unwrap().kind(), ErrorKind::BrokenPipe);
        });
    });
}

#[test]
fn shutting_down_a_listener_wakes_a_parked_accept_with_an_error() {
    watchdog("listener shutdown wakes accept", |_| {
        one_worker().block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let fd = listener.as_raw_fd();
            let acceptor = spindle::spawn(move || listener.accept().map(|_| ()));
            spindle::sleep(SETTLE);
            // SAFETY: shutdown(2) on a descriptor the acceptor keeps open
            // (it owns the listener until accept returns); no pointers.
            assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_RD) }, 0);
            let e = acceptor.join().unwrap().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        });
    });
}

#[test]
fn dropping_a_clone_leaves_a_parked_reader_waiting_even_when_its_fd_is_reused() {
    watchdog("drop clone while parked", |_| {
        one_worker().block_on(|| {
            let (mut client, server) = pair();
            let clone = server.try_clone().unwrap();
            let reader = spindle::spawn(move || {
                let mut buf = [0u8; 2];
                (&server).read_exact(&mut buf).map(|()| buf)
            });
            spindle::sleep(SETTLE);
            let old_fd = clone.as_raw_fd();
            drop(clone);
            // Open sockets until one gets the closed descriptor's number
            // (the kernel hands out the lowest free one; bounded).
            let mut others = Vec::new();
            for _ in 0..64 {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let reused = l.as_raw_fd() == old_fd;
                others.push(l);
                if reused {
                    break;
                }
            }
            spindle::sleep(SETTLE);
            client.write_all(b"ok").unwrap();
            assert_eq!(&reader.join().unwrap().unwrap(), b"ok");
        });
    });
}

#[test]
fn a_peer_reset_mid_write_fails_the_parked_writer() {
    watchdog("reset mid-write", |p| {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(move || {
            for _ in 0..4 {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let resetter = spindle::spawn(move || {
                    let (mut conn, _) = listener.accept().unwrap();
                    let mut b = [0u8; 1];
                    conn.read_exact(&mut b).unwrap(); // the writer has started
                    spindle::sleep(SETTLE); // and is likely parked, buffers full
                    conn.set_linger(Some(Duration::ZERO)).unwrap();
                    drop(conn); // RST, with unread data queued
                });
                let writer = TcpStream::connect(addr).unwrap();
                let e = write_until_error(&writer);
                assert!(
                    matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
                    "{e}"
                );
                resetter.join().unwrap();
                p.tick();
            }
        });
    });
}

#[test]
fn a_read_timeout_gives_would_block_in_a_coroutine_and_on_a_thread() {
    const T: Duration = Duration::from_millis(50);
    fn check(s: &TcpStream) {
        s.set_read_timeout(Some(T)).unwrap();
        assert_eq!(s.read_timeout().unwrap(), Some(T));
        let start = Instant::now();
        let e = (&*s).read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
        assert!(start.elapsed() >= T, "woke before the timeout");
        let e = s.peek(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    }
    watchdog("read timeout", |_| {
        let (client, server) = pair();
        check(&client); // a plain thread
        one_worker().block_on(move || {
            // A second coroutine keeps running while this one waits.
            let (tx, rx) = chan::bounded(0);
            let ticker = spindle::spawn(move || {
                let mut n = 0u32;
                while rx.try_recv().is_err() && n < 1_000_000 {
                    spindle::sleep(Duration::from_millis(1));
                    n += 1;
                }
                n
            });
            check(&server);
            tx.send(()).unwrap();
            assert!(ticker.join().unwrap() > 0, "the other coroutine never ran");
            // After the timeout, the connection still works.
            server.set_read_timeout(None).unwrap();
            (&client).write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            (&server).read_exact(&mut b).unwrap();
            assert_eq!(&b, b"x");
        });
    });
}

#[test]
fn a_write_timeout_gives_would_block() {
    watchdog("write timeout", |_| {
        one_worker().block_on(|| {
            let (client, _server) = pair(); // never reads
            client
                .set_write_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            assert_eq!(write_until_error(&client).kind(), ErrorKind::WouldBlock);
        });
    });
}

#[test]
fn non_blocking_handles_return_would_block_at_once() {
    watchdog("non-blocking", |_| {
        one_worker().block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
            let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            client.set_nonblocking(true).unwrap();
            let e = client.read(&mut [0u8; 4]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WouldBlock);
            // The flag is per handle: a clone made before it blocks.
            listener.set_nonblocking(false).unwrap();
            let (server, _) = listener.accept().unwrap();
            server.set_nonblocking(true).unwrap();
            let blocking = server.try_clone().unwrap();
            blocking.set_nonblocking(false).unwrap();
            client.write_all(b"hi").unwrap();
            let mut b = [0u8; 2];
            (&blocking).read_exact(&mut b).unwrap();
            assert_eq!(&b, b"hi");
        });
    });
}

/// Several coroutines parked in `accept` on one listener (shared through
/// an `Arc`, and through `try_clone`): every connection is taken by one of
/// them and none is left parked while connections wait (a lost wake-up
/// would hang here).
#[test]
fn many_coroutines_parked_in_accept_on_one_listener_all_get_connections() {
    const ACCEPTORS: usize = 8;
    const EACH: usize = 12; // 96 connections: under the backlog of 128
    watchdog("many acceptors", |p| {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(move || {
            let listener = std::sync::Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
            let addr = listener.local_addr().unwrap();
            let acceptors: Vec<_> = (0..ACCEPTORS)
                .map(|i| {
                    let shared = listener.clone();
                    let own = (i % 2 == 1).then(|| listener.try_clone().unwrap());
                    let p = p.clone();
                    spindle::spawn(move || {
                        let l = own.as_ref().unwrap_or(&shared);
                        for _ in 0..EACH {
                            let (mut c, _) = l.accept().unwrap();
                            let mut b = [0u8; 1];
                            c.read_exact(&mut b).unwrap();
                            c.write_all(&b).unwrap();
                            p.tick();
                        }
                    })
                })
                .collect();
            spindle::sleep(SETTLE); // all park in accept
            let clients: Vec<_> = (0..ACCEPTORS * EACH)
                .map(|i| {
                    spindle::spawn(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        c.write_all(&[i as u8]).unwrap();
                        let mut b = [0u8; 1];
                        c.read_exact(&mut b).unwrap();
                        assert_eq!(b[0], i as u8);
                    })
                })
                .collect();
            for h in clients.into_iter().chain(acceptors) {
                h.join().unwrap();
            }
        });
    });
}
