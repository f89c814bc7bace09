//! UDP for coroutines: [`UdpSocket`], shaped like `std::net::UdpSocket`.
//!
//! A datagram socket never waits to connect, so only receiving (and sending
//! into a full send buffer) can block; both go through `Socket::io`, which
//! parks a coroutine until the poller reports the socket ready.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::addr::{domain, each_addr};
use super::endpoint::{common_methods, conversions, timeout_methods, Endpoint};
use super::socket::{Direction, Socket};
use super::sys;

/// A UDP socket: `std::net::UdpSocket` for coroutines.
///
/// ```
/// use spindle::net::UdpSocket;
///
/// let rt = spindle::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| {
///     let server = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let addr = server.local_addr().unwrap();
///     let echo = spindle::spawn(move || {
///         let mut buf = [0; 64];
///         let (n, from) = server.recv_from(&mut buf).unwrap(); // parks
///         server.send_to(&buf[..n], from).unwrap();
///     });
///     let client = UdpSocket::bind("127.0.0.1:0").unwrap();
///     client.connect(addr).unwrap();
///     client.send(b"marco").unwrap();
///     let mut buf = [0; 64];
///     let n = client.recv(&mut buf).unwrap();
///     assert_eq!(&buf[..n], b"marco");
///     echo.join().unwrap();
/// });
/// ```
pub struct UdpSocket {
    endpoint: Endpoint,
}

impl UdpSocket {
    /// Bind to `addr` (port 0 picks a free port), trying each address it
    /// resolves to in turn, like `std::net::UdpSocket::bind`.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |a| {
            let sock = Socket::new(domain(a), libc::SOCK_DGRAM)?;
            sys::bind(sock.as_raw_fd(), a)?;
            Ok(UdpSocket {
                endpoint: Endpoint::new(sock),
            })
        })
    }

    /// Send to and receive from `addr` only (the first address it resolves
    /// to that the kernel accepts); does not wait.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| sys::connect(self.endpoint.fd(), a))
    }

    /// Send a datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.endpoint.io(Direction::Write, |fd| sys::send(fd, buf))
    }

    /// Receive a datagram from the connected peer; the part that does not
    /// fit in `buf` is lost.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.endpoint
            .io(Direction::Read, |fd| sys::recv(fd, buf, 0))
    }

    /// Like [`recv`](Self::recv), leaving the datagram queued.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.endpoint
            .io(Direction::Read, |fd| sys::recv(fd, buf, libc::MSG_PEEK))
    }

    /// Send a datagram to the first address `addr` resolves to.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let Some(to) = addr.to_socket_addrs()?.next() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no addresses to send data to",
            ));
        };
        self.endpoint
            .io(Direction::Write, |fd| sys::send_to(fd, buf, &to))
    }

    /// Receive a datagram and the address it came from.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.endpoint
            .io(Direction::Read, |fd| sys::recv_from(fd, buf, 0))
    }

    /// Like [`recv_from`](Self::recv_from), leaving the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.endpoint.io(Direction::Read, |fd| {
            sys::recv_from(fd, buf, libc::MSG_PEEK)
        })
    }

    /// The connected peer; `NotConnected` if there is none.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sys::peer_addr(self.endpoint.fd())
    }

    // local_addr, try_clone, set_nonblocking, set_ttl, ttl, take_error and
    // the four timeout methods: the same for every socket type (endpoint.rs).
    common_methods!(UdpSocket);
    timeout_methods!();

    /// `SO_BROADCAST`: allow sending to a broadcast address.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        sys::set_flag(self.endpoint.fd(), libc::SOL_SOCKET, libc::SO_BROADCAST, on)
    }

    pub fn broadcast(&self) -> io::Result<bool> {
        sys::flag(self.endpoint.fd(), libc::SOL_SOCKET, libc::SO_BROADCAST)
    }
}

// The conversions to and from std::net and file descriptors (endpoint.rs).
conversions!(UdpSocket, std::net::UdpSocket);

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.endpoint.fmt_debug(f, "UdpSocket", false)
    }
}
