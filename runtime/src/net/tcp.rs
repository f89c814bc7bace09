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
//! Connecting follows the usual non-blocking recipe (`Socket::connect`):
//! `connect` answers `EINPROGRESS`, the caller waits until the socket is
//! writable, then `SO_ERROR` says whether the connection was made (and
//! `getpeername` tells a finished connection from a spurious wake-up, as Go's
//! `net` does).

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::addr::{domain, each_addr};
use super::blocking::zero_timeout;
use super::endpoint::{common_methods, conversions, timeout_methods, Endpoint};
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
    endpoint: Endpoint,
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
    endpoint: Endpoint,
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
                endpoint: Endpoint::new(sock),
            })
        })
    }

    /// Wait for a connection; return it and the peer's address.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, peer) = self.endpoint.io(Direction::Read, sys::accept)?;
        // accept4 made it non-blocking already.
        Ok((TcpStream::from_socket(Socket::from_nonblocking(fd)), peer))
    }

    /// An iterator over incoming connections; it never returns `None`.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    // local_addr, try_clone, set_nonblocking, set_ttl, ttl, take_error:
    // the same for every socket type (endpoint.rs).
    common_methods!(TcpListener);
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
            endpoint: Endpoint::new(sock),
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
        sys::peer_addr(self.endpoint.fd())
    }

    /// Shut down the read half, the write half or both. A coroutine parked
    /// on this connection (through another handle) wakes up: a reader sees
    /// end of file, a writer after `Shutdown::Write` gets `BrokenPipe`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.endpoint.socket().shutdown(how)
    }

    // local_addr, try_clone, set_nonblocking, set_ttl, ttl, take_error and
    // the four timeout methods: the same for every socket type (endpoint.rs).
    common_methods!(TcpStream);
    timeout_methods!();

    /// Read without removing the data from the socket's queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.endpoint
            .io(Direction::Read, |fd| sys::recv(fd, buf, libc::MSG_PEEK))
    }

    /// `TCP_NODELAY`: send small writes at once instead of batching them
    /// (Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        sys::set_flag(
            self.endpoint.fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            nodelay,
        )
    }

    pub fn nodelay(&self) -> io::Result<bool> {
        sys::flag(self.endpoint.fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY)
    }

    /// `SO_LINGER` (unstable in `std::net`): `Some(Duration::ZERO)` makes
    /// dropping the stream reset the connection instead of closing it.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        sys::set_linger(self.endpoint.fd(), linger)
    }

    pub fn linger(&self) -> io::Result<Option<Duration>> {
        sys::linger(self.endpoint.fd())
    }
}

/// Open a socket and connect it to `addr`, waiting at most `timeout`.
fn connect_addr(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let sock = Socket::new(domain(addr), libc::SOCK_STREAM)?;
    sock.connect(addr, timeout.and_then(|t| Instant::now().checked_add(t)))?;
    Ok(TcpStream::from_socket(sock))
}

// The work is in the impls for `&TcpStream`, which let two coroutines share
// one connection; the owned stream's impls hand over to them.

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.endpoint
            .read_stream(buf.len(), |fd| sys::recv(fd, buf, 0))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        // Only the buffers one `readv` takes: a read that fills them all is
        // not short (`read_stream`).
        let len = bufs.iter().take(sys::MAX_IOV).map(|b| b.len()).sum();
        self.endpoint.read_stream(len, |fd| sys::readv(fd, bufs))
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.endpoint.io(Direction::Write, |fd| sys::send(fd, buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.endpoint
            .io(Direction::Write, |fd| sys::send_vectored(fd, bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---- conversions: std::net, file descriptors (endpoint.rs), Debug ----

conversions!(TcpStream, std::net::TcpStream);
conversions!(TcpListener, std::net::TcpListener);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.endpoint.fmt_debug(f, "TcpStream", true)
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.endpoint.fmt_debug(f, "TcpListener", false)
    }
}
