//! `Socket`: a non-blocking fd whose blocking calls park the coroutine.
//!
//! The building block of `TcpListener`, `TcpStream` and `UdpSocket`
//! (`tcp.rs`, `udp.rs`). The fd is always `O_NONBLOCK`. [`Socket::io`] runs
//! an operation and, while it fails with `EAGAIN`, waits for readiness:
//!
//! * **in a coroutine** of the runtime the socket is registered with, it
//!   parks on the socket's [`Readiness`] (registering the socket with that
//!   runtime's poller the first time it must wait);
//! * **on a plain thread**, or in a coroutine being cancelled, it blocks in
//!   `poll(2)`: the socket behaves like a blocking `std::net` socket;
//! * **in a coroutine of another runtime** than the one it is registered
//!   with, it also blocks in `poll(2)`, and so blocks that worker thread
//!   (correct, but slow: keep a socket within one runtime). Parking there
//!   would depend on the first runtime's workers to deliver the edge, and
//!   they may be gone.
//!
//! Deregistration happens when the socket is dropped or turned back into an
//! `OwnedFd`, before the fd is closed (fd numbers are reused). The
//! registration holds the poller alive, so a socket may outlive its runtime.
//!
//! A stream read ([`Socket::read_stream`], TCP's `read`) that returned less
//! than it asked for marks the socket *drained*; the next one then parks
//! before its first try, which would have failed with `EAGAIN` (an echo
//! server's every other `read`). `readiness.rs` says why no edge is lost,
//! and when the skip is not made (a socket that is not TCP, urgent data, a
//! peer's shutdown, an error).
//!
//! For the API: `accept` is `io(Read, ..)` around `accept4(.., SOCK_NONBLOCK
//! | SOCK_CLOEXEC)` and [`Socket::from_nonblocking`]; `connect` is
//! [`Socket::connect`]; `read`/`recv`/`write`/`send` are `io` around the
//! system call (`send` with `MSG_NOSIGNAL`); a read or write timeout is a
//! deadline of now plus the timeout, per call; [`Socket::shutdown`] wakes
//! coroutines parked on the socket; `try_clone` is `dup` (`F_DUPFD_CLOEXEC`)
//! then [`Socket::from_owned`], which gets its own registration.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::poller::Poller;
use super::readiness::{Check, Readiness};
use super::sys::{self, cvt};
use crate::park::Caller;

/// Which readiness an operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `read`, `recv`, `accept`: wait for readable.
    Read = 0,
    /// `write`, `send`, `connect`: wait for writable.
    Write = 1,
}

/// [`Socket::drained_at`] when the last stream read was not short.
const NOT_DRAINED: u64 = u64::MAX;

/// A non-blocking socket (or pipe) fd and, once it had to wait inside a
/// coroutine, its registration with that runtime's poller.
pub(crate) struct Socket {
    /// Declared before `fd`: dropped first, so deregistration precedes close.
    reg: OnceLock<Registration>,
    /// The last stream read returned fewer bytes than it asked for, so the
    /// receive queue was empty then (`read_stream`): the registration's
    /// read-edge count noted before that read, or [`NOT_DRAINED`]. A hint:
    /// a stale one costs a park that a pending edge ends at once.
    drained_at: AtomicU64,
    fd: OwnedFd,
}

/// The socket's place in one runtime's poller.
struct Registration {
    poller: Arc<Poller>,
    fd: RawFd,
    index: u32,
    seq: u32,
    /// A TCP socket (`SO_PROTOCOL`): a short read proves its receive queue
    /// empty. Not a Unix stream socket (a read stops between two senders'
    /// credentials) nor SCTP (a read stops at a message's end).
    drains: bool,
}

impl Registration {
    fn readiness(&self) -> &Readiness {
        self.poller.table.get(self.index)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.poller.deregister(self.fd, self.index, self.seq);
    }
}

fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on an fd the caller owns, with integer arguments.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) })?;
    }
    Ok(())
}

/// The error a timed-out socket operation gives (`EAGAIN`, as `std::net`
/// gives for `SO_RCVTIMEO`/`SO_SNDTIMEO` on Linux).
fn timed_out() -> io::Error {
    io::Error::from_raw_os_error(libc::EAGAIN)
}

impl Socket {
    /// `socket(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC` added to `ty`.
    pub(crate) fn new(domain: libc::c_int, ty: libc::c_int) -> io::Result<Socket> {
        let ty = ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: plain system call; the fd is owned at once.
        let fd = unsafe { OwnedFd::from_raw_fd(cvt(libc::socket(domain, ty, 0))?) };
        Ok(Socket::from_nonblocking(fd))
    }

    /// Adopt `fd` (a socket, pipe or anything `poll(2)` and epoll accept),
    /// setting `O_NONBLOCK`.
    pub(crate) fn from_owned(fd: OwnedFd) -> io::Result<Socket> {
        set_nonblocking(fd.as_raw_fd(), true)?;
        Ok(Socket::from_nonblocking(fd))
    }

    /// Adopt `fd`, which is already `O_NONBLOCK` (from `accept4` with
    /// `SOCK_NONBLOCK`, say).
    pub(crate) fn from_nonblocking(fd: OwnedFd) -> Socket {
        Socket {
            reg: OnceLock::new(),
            drained_at: AtomicU64::new(NOT_DRAINED),
            fd,
        }
    }

    /// Deregister, clear `O_NONBLOCK`, and give the fd back (for a
    /// `std::net` type, which expects a blocking fd).
    pub(crate) fn into_owned(self) -> OwnedFd {
        let Socket { reg, fd, .. } = self;
        drop(reg);
        // The fd stays valid either way; a failure leaves it non-blocking.
        let _ = set_nonblocking(fd.as_raw_fd(), false);
        fd
    }

    pub(crate) fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Run `op` on the fd until it returns something other than
    /// `WouldBlock`; between tries wait for readiness in `dir` (see the
    /// module docs for where the wait happens). `EINTR` is retried. At
    /// `deadline` return `Err` of kind `WouldBlock` (`EAGAIN`, what a
    /// `std::net` socket with a timeout gives on Linux); `op` is always
    /// tried at least once, even if the deadline has passed.
    ///
    /// Errors of the wait itself: registering with the poller can fail
    /// (`ENOMEM`, `ENOSPC`: `/proc/sys/fs/epoll/max_user_watches`), and is
    /// then returned; the next call tries again.
    pub(crate) fn io<T>(
        &self,
        dir: Direction,
        deadline: Option<Instant>,
        mut op: impl FnMut(RawFd) -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            match op(self.fd.as_raw_fd()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(timed_out());
            }
            self.wait(dir, deadline)?;
        }
    }

    /// [`io`](Self::io) for a read from a stream socket, `op` asking for
    /// `len` bytes: if the last such read came back short (the receive
    /// queue was empty), park first and try `op` after, saving a read that
    /// would fail with `EAGAIN`; only a coroutine of the runtime that the
    /// socket is registered with does, and only if the socket is TCP
    /// (`readiness.rs` says why no edge is lost). `op` is still tried at
    /// least once.
    pub(crate) fn read_stream(
        &self,
        len: usize,
        deadline: Option<Instant>,
        mut op: impl FnMut(RawFd) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mark = self.drained_at.swap(NOT_DRAINED, Relaxed);
        if mark != NOT_DRAINED && len > 0 {
            self.wait_drained(mark as u32, deadline)?;
        }
        self.io(Direction::Read, deadline, |fd| {
            // Noted before the read: an edge counted after it may be for
            // data this read already took, which costs a needless try, but
            // never a missed one.
            let edges = self.read_edges();
            let r = op(fd);
            if let (Some(edges), Ok(n)) = (edges, &r) {
                if *n > 0 && *n < len {
                    self.drained_at.store(u64::from(edges), Relaxed);
                }
            }
            r
        })
    }

    /// `connect(2)` to `addr`, waiting as [`io`](Self::io) does while the
    /// connection is in progress (`EINPROGRESS`). At `deadline` returns
    /// `Err` of kind `TimedOut`, "connection timed out", as
    /// `std::net::TcpStream::connect_timeout` does (the socket is then
    /// unusable: drop it). A refused or failed connection gives the error
    /// from `SO_ERROR`.
    pub(crate) fn connect(&self, addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<()> {
        match sys::connect(self.as_raw_fd(), addr) {
            Ok(()) => return Ok(()),
            // EINTR: the connection goes on in the background, as with EINPROGRESS.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
        match self.io(Direction::Write, deadline, connect_finished) {
            // Only the deadline makes `io` give up with `WouldBlock`.
            Err(e) if deadline.is_some() && e.kind() == io::ErrorKind::WouldBlock => Err(
                io::Error::new(io::ErrorKind::TimedOut, "connection timed out"),
            ),
            done => done,
        }
    }

    /// Wake every coroutine parked on this socket, in both directions, to
    /// retry its operation (call it after `shutdown(2)`, which the kernel
    /// may not report as an edge on every socket type). No-op if the
    /// socket never waited.
    pub(crate) fn wake_waiters(&self) {
        if let Some(reg) = self.reg.get() {
            // A final event: a read stopped short by the shutdown must
            // not be taken for a proof of an empty queue.
            reg.readiness().notify(reg.seq, true, true, true).wake();
        }
    }

    /// `shutdown(2)`, then [`wake_waiters`](Self::wake_waiters): a
    /// coroutine parked in `read` then reads end-of-file, one parked in
    /// `accept` gets the kernel's error.
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        let how = match how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: plain system call on our own fd.
        cvt(unsafe { libc::shutdown(self.fd.as_raw_fd(), how) })?;
        self.wake_waiters();
        Ok(())
    }

    /// Wait once for readiness in `dir` (may return early: the caller
    /// retries its operation either way).
    fn wait(&self, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
        // Our registration, if it is with the running coroutine's runtime.
        let mine = super::with_current_poller(|poller| -> io::Result<_> {
            Ok(self
                .registration(poller)?
                .filter(|reg| Arc::ptr_eq(&reg.poller, poller)))
        });
        match mine.transpose()?.flatten() {
            Some(reg) => park(reg, dir, deadline, None),
            None => self.poll_once(dir, deadline),
        }
    }

    /// In place of a read that a short read showed would fail: park until
    /// readable (or the deadline) if this is a coroutine of the runtime
    /// the socket is registered with and the socket is TCP; else return
    /// at once, and the caller reads.
    fn wait_drained(&self, mark: u32, deadline: Option<Instant>) -> io::Result<()> {
        let Some(reg) = self.reg.get().filter(|reg| reg.drains) else {
            return Ok(());
        };
        if super::with_current_poller(|poller| Arc::ptr_eq(&reg.poller, poller)) == Some(true) {
            park(reg, Direction::Read, deadline, Some(mark))?;
        }
        Ok(())
    }

    /// The registration's read-edge count, if this socket may skip reads
    /// (registered, TCP).
    fn read_edges(&self) -> Option<u32> {
        let reg = self.reg.get().filter(|reg| reg.drains)?;
        Some(reg.readiness().read_edges())
    }

    /// This socket's registration, made with `poller` if it has none yet.
    /// `None` if the fd is in the epoll set but not through this socket
    /// (only unsafe code sharing the fd can do that): then `poll(2)`.
    fn registration(&self, poller: &Arc<Poller>) -> io::Result<Option<&Registration>> {
        if let Some(reg) = self.reg.get() {
            return Ok(Some(reg));
        }
        let fd = self.fd.as_raw_fd();
        match poller.register(fd) {
            Ok((index, seq)) => {
                let drains = matches!(
                    sys::getsockopt::<libc::c_int>(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL),
                    Ok(libc::IPPROTO_TCP)
                );
                let mine = Registration {
                    poller: poller.clone(),
                    fd,
                    index,
                    seq,
                    drains,
                };
                // Another coroutine (of another runtime: within one epoll
                // the second `EPOLL_CTL_ADD` fails) may have won the race:
                // then ours is dropped, which deregisters it.
                let _ = self.reg.set(mine);
            }
            // A coroutine of this runtime registered it first and is about
            // to publish the registration; it does not suspend meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
        for _ in 0..1000 {
            if let Some(reg) = self.reg.get() {
                return Ok(Some(reg));
            }
            std::thread::yield_now();
        }
        Ok(None)
    }

    /// Block the thread in `poll(2)` until `dir` is ready, the deadline
    /// passes, or a signal arrives.
    fn poll_once(&self, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
        let events = match dir {
            Direction::Read => libc::POLLIN,
            Direction::Write => libc::POLLOUT,
        };
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events,
            revents: 0,
        };
        let ms = deadline.map_or(-1, |d| {
            let left = d.saturating_duration_since(Instant::now());
            left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int
        });
        // SAFETY: one valid pollfd.
        match cvt(unsafe { libc::poll(&mut pfd, 1, ms) }) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }
}

/// Has the connection started by a non-blocking `connect` been made?
/// `Ok`, its error, or `WouldBlock` while it is still under way (and
/// `getpeername` tells a finished connection from a spurious wake-up, as
/// Go's `net` does).
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

/// Park the running coroutine until `reg` is ready in `dir` (or the
/// deadline passes, or a spurious wake-up): see `readiness.rs`. `skipped`:
/// in place of a read that a short read showed would fail, with the
/// read-edge count noted before that short read.
fn park(
    reg: &Registration,
    dir: Direction,
    deadline: Option<Instant>,
    skipped: Option<u32>,
) -> io::Result<()> {
    let readiness = reg.readiness();
    let me = Caller::get();
    match readiness.enqueue(reg.seq, dir as usize, skipped, || me.to_waiter()) {
        Check::Ready => return Ok(()),
        Check::Closed => {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "socket deregistered while waiting",
            ))
        }
        Check::Queued => reg.poller.add_waiter(),
    }
    // Withdraws the entry after the park, also when the park unwinds (the
    // coroutine cancelled at shutdown: `sched/shutdown.rs`).
    let _queued = Queued {
        reg,
        dir,
        me: me.addr(),
    };
    me.park_on_socket(deadline);
    Ok(())
}

struct Queued<'a> {
    reg: &'a Registration,
    dir: Direction,
    me: *const (),
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let entry = self.reg.readiness().withdraw(self.dir as usize, self.me);
        drop(entry);
        self.reg.poller.remove_waiter();
    }
}
