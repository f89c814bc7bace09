//! What [`TcpListener`], [`TcpStream`] and [`UdpSocket`] share: an
//! [`Endpoint`] (one handle of a socket: the socket and this handle's way
//! of waiting), and the code that is the same for all three, written once
//! here.
//!
//! A `Endpoint` is a [`Socket`] (`socket.rs`: the non-blocking fd, parking on
//! `EAGAIN`) and a [`Blocking`] (`blocking.rs`: this handle's timeouts and
//! non-blocking flag). Every blocking call of the API is [`Endpoint::io`].
//! What differs between the three types (accept, connect, datagrams) is in
//! `tcp.rs` and `udp.rs`; what does not is here:
//!
//! * `try_clone` (a `dup` with a copy of the settings) and the conversions
//!   to and from `std::net`, which carry the timeouts and the non-blocking
//!   flag across ([`Endpoint::from_std`], [`Endpoint::into_std`], through the
//!   small [`StdSocket`] trait over the three `std::net` types);
//! * the `std::net` methods that read the same for every type, generated
//!   into each type's `impl` by [`common_methods!`] (`try_clone`,
//!   `local_addr`, `set_nonblocking`, `set_ttl`, `ttl`, `take_error`) and
//!   [`timeout_methods!`] (the four read/write timeout methods, which a
//!   listener has not); the fd conversions (`AsFd`, `FromRawFd`, `From` to
//!   and from `std::net` ...) by [`conversions!`].
//!
//! They are macros, not a trait, because `std::net` has them as inherent
//! methods: a caller of `stream.set_ttl(..)` needs no `use`.
//!
//! [`TcpListener`]: super::TcpListener
//! [`TcpStream`]: super::TcpStream
//! [`UdpSocket`]: super::UdpSocket

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::blocking::Blocking;
use super::socket::{Direction, Socket};
use super::sys;

/// One handle of a socket: the fd and how this handle waits on it.
pub(crate) struct Endpoint {
    sock: Socket,
    blocking: Blocking,
}

impl Endpoint {
    /// A new handle that blocks, with no timeouts.
    pub(crate) fn new(sock: Socket) -> Endpoint {
        Endpoint {
            sock,
            blocking: Blocking::new(),
        }
    }

    pub(crate) fn socket(&self) -> &Socket {
        &self.sock
    }

    pub(crate) fn blocking(&self) -> &Blocking {
        &self.blocking
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Run `op` on the fd the way this handle blocks ([`Blocking::io`]).
    pub(crate) fn io<T>(
        &self,
        dir: Direction,
        op: impl FnMut(RawFd) -> io::Result<T>,
    ) -> io::Result<T> {
        self.blocking.io(&self.sock, dir, op)
    }

    /// A stream read of `len` bytes the way this handle blocks
    /// ([`Blocking::read_stream`]).
    pub(crate) fn read_stream(
        &self,
        len: usize,
        op: impl FnMut(RawFd) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.blocking.read_stream(&self.sock, len, op)
    }

    /// A second handle to the same socket (a `dup`, which gets its own
    /// registration), with a copy of this one's settings.
    pub(crate) fn try_clone(&self) -> io::Result<Endpoint> {
        Ok(Endpoint {
            sock: Socket::from_owned(sys::duplicate(self.fd())?)?,
            blocking: self.blocking.copy(),
        })
    }

    /// Wrap a socket that `std::net` owned, keeping its timeouts and
    /// non-blocking mode.
    ///
    /// # Panics
    /// If the descriptor cannot be put in non-blocking mode (`fcntl` fails,
    /// which it does not for a valid socket).
    pub(crate) fn from_std<S: StdSocket>(s: S) -> Endpoint {
        let blocking = Blocking::new();
        let [read, write] = s.timeouts();
        // The kernel never reports a zero timeout, so these cannot fail.
        let _ = blocking.set_timeout(Direction::Read, read);
        let _ = blocking.set_timeout(Direction::Write, write);
        blocking.set_nonblocking(sys::is_nonblocking(s.as_raw_fd()).unwrap_or(false));
        let sock = Socket::from_owned(s.into()).unwrap_or_else(|e| {
            panic!(
                "spindle::net: cannot make a {} non-blocking: {e:?}",
                S::NAME
            )
        });
        Endpoint { sock, blocking }
    }

    /// Hand the socket to `std::net`, in blocking mode unless this handle
    /// was non-blocking, with this handle's timeouts.
    pub(crate) fn into_std<S: StdSocket>(self) -> S {
        let Endpoint { sock, blocking } = self;
        let std = S::from(sock.into_owned());
        std.set_timeouts([
            blocking.timeout(Direction::Read),
            blocking.timeout(Direction::Write),
        ]);
        if blocking.nonblocking() {
            // fcntl on a valid socket does not fail.
            let _ = std.set_nonblocking(true);
        }
        std
    }

    /// `Debug` as `std::net` writes it: the local address, the peer's if
    /// `peer`, and the fd.
    pub(crate) fn fmt_debug(
        &self,
        f: &mut fmt::Formatter<'_>,
        name: &str,
        peer: bool,
    ) -> fmt::Result {
        let mut d = f.debug_struct(name);
        if let Ok(addr) = sys::local_addr(self.fd()) {
            d.field("addr", &addr);
        }
        if peer {
            if let Ok(peer) = sys::peer_addr(self.fd()) {
                d.field("peer", &peer);
            }
        }
        d.field("fd", &self.fd()).finish()
    }
}

/// A `std::net` socket type, as [`Endpoint::from_std`] and
/// [`Endpoint::into_std`] need it: what it is called, and its settings that
/// a spindle handle keeps per handle.
pub(crate) trait StdSocket: AsRawFd + Into<OwnedFd> + From<OwnedFd> {
    /// Its name, for the panic message.
    const NAME: &'static str;

    /// The read and write timeouts; a listener has none.
    fn timeouts(&self) -> [Option<Duration>; 2] {
        [None, None]
    }

    /// Set the read and write timeouts (a listener has none to set).
    fn set_timeouts(&self, _timeouts: [Option<Duration>; 2]) {}

    fn set_nonblocking(&self, on: bool) -> io::Result<()>;
}

impl StdSocket for std::net::TcpListener {
    const NAME: &'static str = "std::net::TcpListener";

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        std::net::TcpListener::set_nonblocking(self, on)
    }
}

/// `StdSocket` for the two `std::net` types with timeouts.
macro_rules! std_socket_with_timeouts {
    ($($std:ty),*) => {$(
        impl StdSocket for $std {
            const NAME: &'static str = stringify!($std);

            fn timeouts(&self) -> [Option<Duration>; 2] {
                [
                    self.read_timeout().ok().flatten(),
                    self.write_timeout().ok().flatten(),
                ]
            }

            fn set_timeouts(&self, [read, write]: [Option<Duration>; 2]) {
                // setsockopt on a valid socket with valid values does not
                // fail (and a handle never holds a zero timeout).
                let _ = self.set_read_timeout(read);
                let _ = self.set_write_timeout(write);
            }

            fn set_nonblocking(&self, on: bool) -> io::Result<()> {
                <$std>::set_nonblocking(self, on)
            }
        }
    )*};
}

std_socket_with_timeouts!(std::net::TcpStream, std::net::UdpSocket);

/// The `std::net` methods every socket type has, the same for each: expands
/// inside `impl $t`, for a `$t` whose field `endpoint` is its [`Endpoint`].
macro_rules! common_methods {
    ($t:ident) => {
        pub fn local_addr(&self) -> io::Result<SocketAddr> {
            sys::local_addr(self.endpoint.fd())
        }

        /// A second handle to the same socket (a `dup`), with a copy of
        /// this one's non-blocking flag (and timeouts, where the type has
        /// them).
        pub fn try_clone(&self) -> io::Result<$t> {
            Ok($t {
                endpoint: self.endpoint.try_clone()?,
            })
        }

        /// In non-blocking mode a call that would wait (to accept, read,
        /// write, send or receive) returns `WouldBlock` at once instead.
        /// Unlike `std::net`, the flag belongs to this handle only, not to
        /// handles made by [`try_clone`](Self::try_clone).
        pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
            self.endpoint.blocking().set_nonblocking(nonblocking);
            Ok(())
        }

        pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
            sys::set_ttl(self.endpoint.fd(), ttl)
        }

        pub fn ttl(&self) -> io::Result<u32> {
            sys::ttl(self.endpoint.fd())
        }

        /// The socket's pending error (`SO_ERROR`), which this clears.
        pub fn take_error(&self) -> io::Result<Option<io::Error>> {
            sys::take_error(self.endpoint.fd())
        }
    };
}
pub(super) use common_methods;

/// The read and write timeouts of `TcpStream` and `UdpSocket`: expands
/// inside their `impl`, as [`common_methods!`] does.
macro_rules! timeout_methods {
    () => {
        /// After `timeout`, a read or receive (or `peek`) that got no data
        /// fails with `WouldBlock`, as `std::net` does on Linux. `None`
        /// waits for ever; `Some(Duration::ZERO)` is an `InvalidInput`
        /// error. The timeout belongs to this handle, not to handles made
        /// by `try_clone` later.
        pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
            self.endpoint
                .blocking()
                .set_timeout(Direction::Read, timeout)
        }

        /// Like [`set_read_timeout`](Self::set_read_timeout), for writes
        /// and sends.
        pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
            self.endpoint
                .blocking()
                .set_timeout(Direction::Write, timeout)
        }

        pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
            Ok(self.endpoint.blocking().timeout(Direction::Read))
        }

        pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
            Ok(self.endpoint.blocking().timeout(Direction::Write))
        }
    };
}
pub(super) use timeout_methods;

/// The conversions of `$t` (with its field `endpoint`) to and from the
/// `std::net` type `$std` and file descriptors, as `std::net` has them.
macro_rules! conversions {
    ($t:ident, $std:ty) => {
        /// Wrap a socket that `std::net` owned, keeping its timeouts and
        /// non-blocking mode.
        ///
        /// # Panics
        /// If the descriptor cannot be put in non-blocking mode (`fcntl`
        /// fails, which it does not for a valid socket).
        impl From<$std> for $t {
            fn from(s: $std) -> $t {
                $t {
                    endpoint: Endpoint::from_std(s),
                }
            }
        }

        /// Hand the socket to `std::net`, in blocking mode unless this
        /// handle was non-blocking, with this handle's timeouts.
        impl From<$t> for $std {
            fn from(s: $t) -> $std {
                s.endpoint.into_std()
            }
        }

        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.endpoint.fd()
            }
        }

        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                // SAFETY: the descriptor is owned by self.endpoint and stays
                // open for as long as self is borrowed.
                unsafe { BorrowedFd::borrow_raw(self.endpoint.fd()) }
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
pub(super) use conversions;
