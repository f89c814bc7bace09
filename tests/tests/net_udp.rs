//! `spindle::net::UdpSocket`: round trips between coroutines and plain
//! threads, a receive that parks, timeouts, and `std::net`'s errors.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use spindle::net::UdpSocket;
use spindle::Runtime;
use spindle_tests::watchdog;

/// Answer `n` datagrams with their bytes reversed.
fn reverse_server(sock: &UdpSocket, n: usize) {
    let mut buf = [0u8; 1500];
    for _ in 0..n {
        let (len, from) = sock.recv_from(&mut buf).unwrap();
        buf[..len].reverse();
        assert_eq!(sock.send_to(&buf[..len], from).unwrap(), len);
    }
}

#[test]
fn udp_round_trips_between_coroutines_and_threads() {
    watchdog("udp round trip", |p| {
        // One worker: the server parks in recv_from while the client runs.
        let rt = Runtime::builder().workers(1).build().unwrap();
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let served = rt.spawn(move || reverse_server(&server, 200));
        rt.block_on(move || {
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            assert_eq!(
                client.peer_addr().unwrap_err().kind(),
                ErrorKind::NotConnected
            );
            client.connect(addr).unwrap();
            assert_eq!(client.peer_addr().unwrap(), addr);
            let mut buf = [0u8; 1500];
            for i in 0..100u32 {
                let msg = i.to_be_bytes();
                client.send(&msg).unwrap();
                let n = client.recv(&mut buf).unwrap();
                let mut want = msg;
                want.reverse();
                assert_eq!(&buf[..n], &want);
            }
        });
        p.tick();
        // A plain-thread client (std::net and spindle::net) to the coroutine.
        let std_client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let spindle_client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 64];
        for i in 0..50u32 {
            std_client.send_to(b"ab", addr).unwrap();
            let (n, from) = std_client.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&b"ba"[..], addr));
            spindle_client.send_to(&i.to_le_bytes(), addr).unwrap();
            spindle_client.peek_from(&mut buf).unwrap();
            let (n, from) = spindle_client.recv_from(&mut buf).unwrap();
            assert_eq!(from, addr);
            assert_eq!(&buf[..n], &i.to_be_bytes());
        }
        served.join().unwrap();
        // A coroutine client to a plain-thread (std::net) server.
        let std_server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let std_addr = std_server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = std_server.recv_from(&mut buf).unwrap();
            std_server.send_to(&buf[..n], from).unwrap();
        });
        let got = rt.block_on(move || {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.send_to(b"xyz", std_addr).unwrap();
            let mut buf = [0u8; 64];
            let n = c.peek(&mut buf).unwrap();
            assert_eq!(c.recv(&mut buf).unwrap(), n);
            buf[..n].to_vec()
        });
        assert_eq!(got, b"xyz");
        t.join().unwrap();
    });
}

#[test]
fn udp_timeouts_errors_and_conversions() {
    const T: Duration = Duration::from_millis(30);
    watchdog("udp timeouts", |_| {
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            let std_s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            assert_eq!(s.read_timeout().unwrap(), Some(T));
            let start = Instant::now();
            let e = s.recv_from(&mut [0u8; 8]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
            assert!(start.elapsed() >= T);
            let e = s.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
            let std_e = std_s.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
            assert_eq!((e.kind(), e.to_string()), (std_e.kind(), std_e.to_string()));
            let none: &[SocketAddr] = &[];
            let e = s.send_to(b"x", none).unwrap_err();
            let std_e = std_s.send_to(b"x", none).unwrap_err();
            assert_eq!((e.kind(), e.to_string()), (std_e.kind(), std_e.to_string()));
            s.set_broadcast(true).unwrap();
            assert!(s.broadcast().unwrap());
            s.set_ttl(5).unwrap();
            assert_eq!(s.ttl().unwrap(), 5);
            assert!(s.take_error().unwrap().is_none());
            s.set_nonblocking(true).unwrap();
            let e = s.recv(&mut [0u8; 8]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WouldBlock);
            // To std and back, keeping the timeout (the kernel keeps it in
            // clock ticks; whole seconds survive any tick rate); a clone
            // shares the socket.
            const T2: Duration = Duration::from_secs(2);
            s.set_read_timeout(Some(T2)).unwrap();
            let addr = s.local_addr().unwrap();
            let back = std::net::UdpSocket::from(s);
            assert_eq!(back.read_timeout().unwrap(), Some(T2));
            let s = UdpSocket::from(back);
            assert_eq!(s.read_timeout().unwrap(), Some(T2));
            let clone = s.try_clone().unwrap();
            clone.set_nonblocking(false).unwrap();
            clone.set_read_timeout(None).unwrap();
            std_s.send_to(b"hi", addr).unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(clone.recv(&mut buf).unwrap(), 2);
            assert!(format!("{s:?}").contains(&addr.to_string()));
        });
    });
}
