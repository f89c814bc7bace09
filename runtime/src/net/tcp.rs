//! TCP for coroutines: [`TcpListener`] and [`TcpStream`], shaped like
//! `std::net`'s.
//!
//! Every call is a non-blocking system call (`sys.rs`) run through
//! `Socket::io`: if the kernel says `EAGAIN`, a coroutine parks on the
//! socket until the poller reports it ready and then tries again, so its
//! worker runs other coroutines meanwhile; a plain thread waits in
//! `poll(2)`. Timeouts and the non-blocking flag are per handle
//! (`blocking.rs`).
//!
//! Connecting follows the usual non-blocking recipe: `connect` answers
//! `EINPROGRESS`, the caller waits until the socket is writable, then
//! `SO_ERROR` says whether the connection was made (and `getpeername` tells a
//! finished connection from a spurious wake-up, as Go's `net` does).

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::addr::{domain, each_addr};
use super::blocking::{zero_timeout, Blocking};
use super::socket::{Direction, Socket};
use super::sys;

/// `std::net`'s listen backlog on Linux.
const BACKLOG: libc::c_int = 128;

/// A TCP socket server, listening for connections: `std::net::TcpListener`
/// for coroutines.
///
/// A coroutine blocked in [`accept`](TcpListener::accept) parks, and its
/// worker runs other coroutines until a connection arrives. On a plain
/// thread it blocks that thread, like `std::net`.
///
/// ```
/// use std::io::{Read, Write};
/// use spindle::net::{TcpListener, TcpStream};
///
/// let rt = spindle::Runtime::builder().workers(2).build().unwrap();
/// let reply = rt.block_on(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     // One coroutine per connection, written as plain blocking code.
///     let server = spindle::spawn(move || {
///         let (mut conn, _peer) = listener.accept().unwrap();
///         let mut buf = [0; 4];
///         conn.read_exact(&mut buf).unwrap();
///         conn.write_all(&buf).unwrap();
///     });
///     let mut client = TcpStream::connect(addr).unwrap();
///     client.write_all(b"ping").unwrap();
///     let mut reply = Vec::new();
///     client.read_to_end(&mut reply).unwrap(); // until the server closes
///     server.join().unwrap();
///     reply
/// });
/// assert_eq!(reply, b"ping");
/// ```
pub struct TcpListener {
    sock: Socket,
    blocking: Blocking,
}

/// A TCP connection: `std::net::TcpStream` for coroutines.
///
/// Reading, writing and connecting park a coroutine instead of blocking its
/// worker. `Read` and `Write` are implemented for `&TcpStream` too, so two
/// coroutines can share one connection through an `Arc`, one reading and
/// one writing (or use [`try_clone`](TcpStream::try_clone)).
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use std::time::Duration;
/// use spindle::net::{TcpListener, TcpStream};
///
/// let rt = spindle::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     spindle::spawn(move || {
///         for conn in listener.incoming().take(1) {
///             let conn = conn.unwrap();
///             let mut lines = BufReader::new(&conn);
///             let mut line = String::new();
///             lines.read_line(&mut line).unwrap();
///             (&conn).write_all(line.to_uppercase().as_bytes()).unwrap();
///         }
///     });
///     let stream = TcpStream::connect(addr).unwrap();
///     stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
///     (&stream).write_all(b"hello\n").unwrap();
///     let mut line = String::new();
///     BufReader::new(&stream).read_line(&mut line).unwrap();
///     assert_eq!(line, "HELLO\n");
/// });
/// ```
pub struct TcpStream {
    sock: Socket,
    blocking: Blocking,
}

/// The connections of a [`TcpListener`], from [`TcpListener::incoming`]:
/// an endless iterator of [`TcpListener::accept`] results.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl TcpListener {
    /// Bind a listener to `addr` (port 0 picks a free port), trying each
    /// address it resolves to in turn, like `std::net::TcpListener::bind`
    /// (with `SO_REUSEADDR` and a backlog of 128, as there).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |a| {
            let sock = Socket::new(domain(a), libc::SOCK_STREAM)?;
            let fd = sock.as_raw_fd();
            sys::set_flag(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, true)?;
            sys::bind(fd, a)?;
            sys::listen(fd, BACKLOG)?;
            Ok(TcpListener {
                sock,
                blocking: Blocking::new(),
            })
        })
    }

    /// Wait for a connection; return it and the peer's address.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, peer) = self.blocking.io(&self.sock, Direction::Read, sys::accept)?;
        // accept4 made it non-blocking already.
        Ok((TcpStream::from_socket(Socket::from_nonblocking(fd)), peer))
    }

    /// An iterator over incoming connections; it never returns `None`.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::local_addr(self.sock.as_raw_fd())
    }

    /// A second handle to the same listening socket (a `dup`), with a copy
    /// of this one's non-blocking flag.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            sock: Socket::from_owned(sys::duplicate(self.sock.as_raw_fd())?)?,
            blocking: self.blocking.copy(),
        })
    }

    /// In non-blocking mode `accept` returns `WouldBlock` at once when no
    /// connection is waiting. Unlike `std::net`, the flag belongs to this
    /// handle only, not to handles made by `try_clone`.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.blocking.set_nonblocking(nonblocking);
        Ok(())
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

impl<'a> Iterator for Incoming<'a> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl TcpStream {
    fn from_socket(sock: Socket) -> TcpStream {
        TcpStream {
            sock,
            blocking: Blocking::new(),
        }
    }

    /// Connect to `addr`, trying each address it resolves to in turn until
    /// one accepts, like `std::net::TcpStream::connect`.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| connect_addr(a, None))
    }

    /// Connect to `addr`, giving up after `timeout` with `TimedOut`
    /// ("connection timed out"), like `std::net::TcpStream::connect_timeout`.
    /// A zero timeout is an `InvalidInput` error.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(zero_timeout());
        }
        connect_addr(addr, Some(timeout))
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sys::peer_addr(self.sock.as_raw_fd())
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::local_addr(self.sock.as_raw_fd())
    }

    /// Shut down the read half, the write half or both. A coroutine parked
    /// on this connection (through another handle) wakes up: a reader sees
    /// end of file, a writer after `Shutdown::Write` gets `BrokenPipe`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// A second handle to the same connection (a `dup`), with a copy of this
    /// one's timeouts and non-blocking flag.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            sock: Socket::from_owned(sys::duplicate(self.sock.as_raw_fd())?)?,
            blocking: self.blocking.copy(),
        })
    }

    /// After `timeout`, a read (or `peek`) that got no data fails with
    /// `WouldBlock`, as `std::net` does on Linux. `None` waits for ever;
    /// `Some(Duration::ZERO)` is an `InvalidInput` error. The timeout
    /// belongs to this handle, not to handles made by `try_clone` later.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.blocking.set_timeout(Direction::Read, timeout)
    }

    /// Like [`set_read_timeout`](Self::set_read_timeout), for writes.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.blocking.set_timeout(Direction::Write, timeout)
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.blocking.timeout(Direction::Read))
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.blocking.timeout(Direction::Write))
    }

    /// Read without removing the data from the socket's queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.blocking.io(&self.sock, Direction::Read, |fd| {
            sys::recv(fd, buf, libc::MSG_PEEK)
        })
    }

    /// `TCP_NODELAY`: send small writes at once instead of batching them
    /// (Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        sys::set_flag(
            self.sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            nodelay,
        )
    }

    pub fn nodelay(&self) -> io::Result<bool> {
        sys::flag(self.sock.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY)
    }

    /// `SO_LINGER` (unstable in `std::net`): `Some(Duration::ZERO)` makes
    /// dropping the stream reset the connection instead of closing it.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        sys::set_linger(self.sock.as_raw_fd(), linger)
    }

    pub fn linger(&self) -> io::Result<Option<Duration>> {
        sys::linger(self.sock.as_raw_fd())
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

    /// In non-blocking mode reads and writes return `WouldBlock` at once
    /// instead of waiting. Unlike `std::net`, the flag belongs to this handle
    /// only, not to handles made by `try_clone`.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.blocking.set_nonblocking(nonblocking);
        Ok(())
    }

    fn recv_into(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.blocking
            .io(&self.sock, Direction::Read, |fd| sys::recv(fd, buf, 0))
    }

    fn recv_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.blocking
            .io(&self.sock, Direction::Read, |fd| sys::readv(fd, bufs))
    }

    fn send_from(&self, buf: &[u8]) -> io::Result<usize> {
        self.blocking
            .io(&self.sock, Direction::Write, |fd| sys::send(fd, buf))
    }

    fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.blocking.io(&self.sock, Direction::Write, |fd| {
            sys::send_vectored(fd, bufs)
        })
    }
}

/// Open a socket and connect it to `addr`, waiting at most `timeout`.
fn connect_addr(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let sock = Socket::new(domain(addr), libc::SOCK_STREAM)?;
    match sys::connect(sock.as_raw_fd(), addr) {
        Ok(()) => return Ok(TcpStream::from_socket(sock)),
        // EINTR: the connection goes on in the background, as with EINPROGRESS.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EINTR)) => {}
        Err(e) => return Err(e),
    }
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    match sock.io(Direction::Write, deadline, connect_finished) {
        Ok(()) => Ok(TcpStream::from_socket(sock)),
        Err(e) if timeout.is_some() && e.kind() == io::ErrorKind::WouldBlock => Err(
            io::Error::new(io::ErrorKind::TimedOut, "connection timed out"),
        ),
        Err(e) => Err(e),
    }
}

/// Has the connection started by a non-blocking `connect` been made?
/// `Ok`, its error, or `WouldBlock` while it is still under way.
fn connect_finished(fd: RawFd) -> io::Result<()> {
    match sys::take_error(fd)? {
        Some(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINPROGRESS | libc::EALREADY | libc::EINTR)
            ) =>
        {
            Err(io::ErrorKind::WouldBlock.into())
        }
        Some(e) => Err(e),
        None => match sys::peer_addr(fd) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => Err(e),
        },
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_into(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.recv_vectored(bufs)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_into(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.recv_vectored(bufs)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send_from(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.send_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send_from(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.send_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---- conversions: std::net, file descriptors, Debug ----

/// Wrap a socket that `std::net` owned, keeping its timeouts and
/// non-blocking mode.
///
/// # Panics
/// If the descriptor cannot be put in non-blocking mode (`fcntl` fails,
/// which it does not for a valid socket).
impl From<std::net::TcpStream> for TcpStream {
    fn from(s: std::net::TcpStream) -> TcpStream {
        let blocking = Blocking::new();
        // The kernel never reports a zero timeout, so these cannot fail.
        let _ = blocking.set_timeout(Direction::Read, s.read_timeout().ok().flatten());
        let _ = blocking.set_timeout(Direction::Write, s.write_timeout().ok().flatten());
        blocking.set_nonblocking(sys::is_nonblocking(s.as_raw_fd()).unwrap_or(false));
        let sock = Socket::from_owned(OwnedFd::from(s))
            .expect("spindle::net: cannot make a std::net::TcpStream non-blocking");
        TcpStream { sock, blocking }
    }
}

/// Hand the socket to `std::net`, in blocking mode unless this handle was
/// non-blocking, with this handle's timeouts.
impl From<TcpStream> for std::net::TcpStream {
    fn from(s: TcpStream) -> std::net::TcpStream {
        let TcpStream { sock, blocking } = s;
        let std = std::net::TcpStream::from(sock.into_owned());
        // setsockopt/fcntl on a valid socket with valid values do not fail.
        let _ = std.set_read_timeout(blocking.timeout(Direction::Read));
        let _ = std.set_write_timeout(blocking.timeout(Direction::Write));
        if blocking.nonblocking() {
            let _ = std.set_nonblocking(true);
        }
        std
    }
}

/// As `From<std::net::TcpListener>`, see there.
impl From<std::net::TcpListener> for TcpListener {
    fn from(l: std::net::TcpListener) -> TcpListener {
        let blocking = Blocking::new();
        blocking.set_nonblocking(sys::is_nonblocking(l.as_raw_fd()).unwrap_or(false));
        let sock = Socket::from_owned(OwnedFd::from(l))
            .expect("spindle::net: cannot make a std::net::TcpListener non-blocking");
        TcpListener { sock, blocking }
    }
}

impl From<TcpListener> for std::net::TcpListener {
    fn from(l: TcpListener) -> std::net::TcpListener {
        let TcpListener { sock, blocking } = l;
        let std = std::net::TcpListener::from(sock.into_owned());
        if blocking.nonblocking() {
            let _ = std.set_nonblocking(true);
        }
        std
    }
}

macro_rules! fd_conversions {
    ($t:ty, $std:ty) => {
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.sock.as_raw_fd()
            }
        }

        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                // SAFETY: the descriptor is owned by self.sock and stays open
                // for as long as self is borrowed.
                unsafe { BorrowedFd::borrow_raw(self.sock.as_raw_fd()) }
            }
        }

        /// The descriptor, in the state `std::net` would leave it (see `From`).
        impl IntoRawFd for $t {
            fn into_raw_fd(self) -> RawFd {
                <$std>::from(self).into_raw_fd()
            }
        }

        impl From<$t> for OwnedFd {
            fn from(s: $t) -> OwnedFd {
                <$std>::from(s).into()
            }
        }

        /// # Panics
        /// If the descriptor cannot be put in non-blocking mode.
        impl FromRawFd for $t {
            unsafe fn from_raw_fd(fd: RawFd) -> $t {
                // SAFETY: the caller promises that fd is an open socket of
                // this kind that it hands over to us.
                <$t>::from(unsafe { <$std>::from_raw_fd(fd) })
            }
        }

        /// # Panics
        /// If the descriptor cannot be put in non-blocking mode.
        impl From<OwnedFd> for $t {
            fn from(fd: OwnedFd) -> $t {
                <$t>::from(<$std>::from(fd))
            }
        }
    };
}
pub(super) use fd_conversions;

fd_conversions!(TcpStream, std::net::TcpStream);
fd_conversions!(TcpListener, std::net::TcpListener);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpStream");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &peer);
        }
        d.field("fd", &self.sock.as_raw_fd()).finish()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpListener");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        d.field("fd", &self.sock.as_raw_fd()).finish()
    }
}
