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
use super::blocking::Blocking;
use super::socket::{Direction, Socket};
use super::sys;
use super::tcp::fd_conversions;

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
    sock: Socket,
    blocking: Blocking,
}

impl UdpSocket {
    /// Bind to `addr` (port 0 picks a free port), trying each address it
    /// resolves to in turn, like `std::net::UdpSocket::bind`.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |a| {
            let sock = Socket::new(domain(a), libc::SOCK_DGRAM)?;
            sys::bind(sock.as_raw_fd(), a)?;
            Ok(UdpSocket {
                sock,
                blocking: Blocking::new(),
            })
        })
    }

    /// Send to and receive from `addr` only (the first address it resolves
    /// to that the kernel accepts); does not wait.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| sys::connect(self.sock.as_raw_fd(), a))
    }

    /// Send a datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.blocking
            .io(&self.sock, Direction::Write, |fd| sys::send(fd, buf))
    }

    /// Receive a datagram from the connected peer; the part that does not
    /// fit in `buf` is lost.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.blocking
            .io(&self.sock, Direction::Read, |fd| sys::recv(fd, buf, 0))
    }

    /// Like [`recv`](Self::recv), leaving the datagram queued.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.blocking.io(&self.sock, Direction::Read, |fd| {
            sys::recv(fd, buf, libc::MSG_PEEK)
        })
    }

    /// Send a datagram to the first address `addr` resolves to.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let Some(to) = addr.to_socket_addrs()?.next() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no addresses to send data to",
            ));
        };
        self.blocking.io(&self.sock, Direction::Write, |fd| {
            sys::send_to(fd, buf, &to)
        })
    }

    /// Receive a datagram and the address it came from.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.blocking
            .io(&self.sock, Direction::Read, |fd| sys::recv_from(fd, buf, 0))
    }

    /// Like [`recv_from`](Self::recv_from), leaving the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.blocking.io(&self.sock, Direction::Read, |fd| {
            sys::recv_from(fd, buf, libc::MSG_PEEK)
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::local_addr(self.sock.as_raw_fd())
    }

    /// The connected peer; `NotConnected` if there is none.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sys::peer_addr(self.sock.as_raw_fd())
    }

    /// A second handle to the same socket (a `dup`), with a copy of this
    /// one's timeouts and non-blocking flag.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            sock: Socket::from_owned(sys::duplicate(self.sock.as_raw_fd())?)?,
            blocking: self.blocking.copy(),
        })
    }

    /// After `timeout`, a receive that got nothing fails with `WouldBlock`,
    /// as `std::net` does on Linux. `Some(Duration::ZERO)` is an
    /// `InvalidInput` error. The timeout belongs to this handle.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.blocking.set_timeout(Direction::Read, timeout)
    }

    /// Like [`set_read_timeout`](Self::set_read_timeout), for sends.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.blocking.set_timeout(Direction::Write, timeout)
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.blocking.timeout(Direction::Read))
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.blocking.timeout(Direction::Write))
    }

    /// In non-blocking mode sends and receives return `WouldBlock` at once
    /// instead of waiting. Unlike `std::net`, the flag belongs to this handle
    /// only.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.blocking.set_nonblocking(nonblocking);
        Ok(())
    }

    /// `SO_BROADCAST`: allow sending to a broadcast address.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        sys::set_flag(
            self.sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BROADCAST,
            on,
        )
    }

    pub fn broadcast(&self) -> io::Result<bool> {
        sys::flag(self.sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_BROADCAST)
    }

    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        sys::set_ttl(self.sock.as_raw_fd(), ttl)
    }

    pub fn ttl(&self) -> io::Result<u32> {
        sys::ttl(self.sock.as_raw_fd())
    }

    /// The socket's pending error (`SO_ERROR`), which this clears.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        sys::take_error(self.sock.as_raw_fd())
    }
}

/// Wrap a socket that `std::net` owned, keeping its timeouts and
/// non-blocking mode.
///
/// # Panics
/// If the descriptor cannot be put in non-blocking mode (`fcntl` fails,
/// which it does not for a valid socket).
impl From<std::net::UdpSocket> for UdpSocket {
    fn from(s: std::net::UdpSocket) -> UdpSocket {
        let blocking = Blocking::new();
        // The kernel never reports a zero timeout, so these cannot fail.
        let _ = blocking.set_timeout(Direction::Read, s.read_timeout().ok().flatten());
        let _ = blocking.set_timeout(Direction::Write, s.write_timeout().ok().flatten());
        blocking.set_nonblocking(sys::is_nonblocking(s.as_raw_fd()).unwrap_or(false));
        let sock = Socket::from_owned(OwnedFd::from(s))
            .expect("spindle::net: cannot make a std::net::UdpSocket non-blocking");
        UdpSocket { sock, blocking }
    }
}

/// Hand the socket to `std::net`, in blocking mode unless this handle was
/// non-blocking, with this handle's timeouts.
impl From<UdpSocket> for std::net::UdpSocket {
    fn from(s: UdpSocket) -> std::net::UdpSocket {
        let UdpSocket { sock, blocking } = s;
        let std = std::net::UdpSocket::from(sock.into_owned());
        // setsockopt/fcntl on a valid socket with valid values do not fail.
        let _ = std.set_read_timeout(blocking.timeout(Direction::Read));
        let _ = std.set_write_timeout(blocking.timeout(Direction::Write));
        if blocking.nonblocking() {
            let _ = std.set_nonblocking(true);
        }
        std
    }
}

fd_conversions!(UdpSocket, std::net::UdpSocket);

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UdpSocket");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        d.field("fd", &self.sock.as_raw_fd()).finish()
    }
}
