//! How a handle waits: its read and write timeouts and its non-blocking
//! flag, and the one place that turns them into a call of `Socket::io`.
//!
//! The socket underneath is always `O_NONBLOCK`; blocking is done by
//! `Socket::io` (a coroutine parks, a thread polls). So the `std::net`
//! options that the kernel would apply to a blocking socket are applied here
//! instead, per handle:
//!
//! * a read or write timeout becomes a deadline, `now + timeout`, taken when
//!   the call starts; at the deadline the call fails with `WouldBlock`, the
//!   error `std::net` gives for a socket timeout on Linux;
//! * `set_nonblocking(true)` makes every call try once and return
//!   `WouldBlock` instead of waiting.
//!
//! One difference from `std::net`: there these options live in the kernel's
//! open file, so a handle made by `try_clone` shares them with the original.
//! Here each handle has its own copy (`try_clone` copies the current values).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::socket::{Direction, Socket};

/// A handle's timeouts and non-blocking flag. Atomics, because `std::net`'s
/// setters take `&self` and the handles are `Sync`.
#[derive(Debug, Default)]
pub(crate) struct Blocking {
    /// Timeouts in nanoseconds, 0 for none (0 is not a valid timeout).
    read_ns: AtomicU64,
    write_ns: AtomicU64,
    nonblocking: AtomicBool,
}

impl Blocking {
    pub(crate) fn new() -> Blocking {
        Blocking::default()
    }

    /// A copy of the current settings, for `try_clone`.
    pub(crate) fn copy(&self) -> Blocking {
        let b = Blocking::new();
        b.read_ns
            .store(self.read_ns.load(Ordering::Relaxed), Ordering::Relaxed);
        b.write_ns
            .store(self.write_ns.load(Ordering::Relaxed), Ordering::Relaxed);
        b.nonblocking.store(self.nonblocking(), Ordering::Relaxed);
        b
    }

    fn slot(&self, dir: &Direction) -> &AtomicU64 {
        match dir {
            Direction::Read => &self.read_ns,
            Direction::Write => &self.write_ns,
        }
    }

    /// Set a timeout; `Some(0)` is refused with `std::net`'s error.
    pub(crate) fn set_timeout(&self, dir: Direction, timeout: Option<Duration>) -> io::Result<()> {
        let ns = match timeout {
            None => 0,
            Some(d) if d.is_zero() => return Err(zero_timeout()),
            // Saturates after 584 years; a 1 ns timeout stays non-zero.
            Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        };
        self.slot(&dir).store(ns, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn timeout(&self, dir: Direction) -> Option<Duration> {
        match self.slot(&dir).load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    pub(crate) fn nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    /// Run `op` on `sock` the way this handle blocks: once (retrying only
    /// `EINTR`) if non-blocking, else through `Socket::io` with the deadline
    /// that the timeout for `dir` gives.
    pub(crate) fn io<T>(
        &self,
        sock: &Socket,
        dir: Direction,
        op: impl FnMut(RawFd) -> io::Result<T>,
    ) -> io::Result<T> {
        if self.nonblocking() {
            return once(sock, op);
        }
        sock.io(dir, self.deadline(dir), op)
    }

    /// [`io`](Self::io) for a stream read of `len` bytes, through
    /// `Socket::read_stream` when blocking.
    pub(crate) fn read_stream(
        &self,
        sock: &Socket,
        len: usize,
        op: impl FnMut(RawFd) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.nonblocking() {
            return once(sock, op);
        }
        sock.read_stream(len, self.deadline(Direction::Read), op)
    }

    /// The deadline of an operation in `dir` starting now.
    fn deadline(&self, dir: Direction) -> Option<Instant> {
        // A timeout too far away to represent is no timeout.
        match self.slot(&dir).load(Ordering::Relaxed) {
            0 => None,
            ns => Instant::now().checked_add(Duration::from_nanos(ns)),
        }
    }
}

/// Run `op` once on `sock`'s fd, retrying only `EINTR`.
fn once<T>(sock: &Socket, mut op: impl FnMut(RawFd) -> io::Result<T>) -> io::Result<T> {
    loop {
        match op(sock.as_raw_fd()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// `std::net`'s answer to a zero timeout.
pub(crate) fn zero_timeout() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "cannot set a 0 duration timeout",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_trip_and_zero_is_refused() {
        let b = Blocking::new();
        assert_eq!(b.timeout(Direction::Read), None);
        b.set_timeout(Direction::Read, Some(Duration::from_millis(5)))
            .unwrap();
        assert_eq!(b.timeout(Direction::Read), Some(Duration::from_millis(5)));
        assert_eq!(b.timeout(Direction::Write), None);
        let e = b
            .set_timeout(Direction::Write, Some(Duration::ZERO))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(e.to_string(), "cannot set a 0 duration timeout");
        b.set_timeout(Direction::Write, Some(Duration::from_nanos(1)))
            .unwrap();
        assert_eq!(b.timeout(Direction::Write), Some(Duration::from_nanos(1)));
        b.set_timeout(Direction::Read, Some(Duration::MAX)).unwrap();
        assert!(b.timeout(Direction::Read).unwrap() > Duration::from_secs(500 * 365 * 86400));
        b.set_timeout(Direction::Read, None).unwrap();
        assert_eq!(b.timeout(Direction::Read), None);
        b.set_nonblocking(true);
        let c = b.copy();
        assert!(c.nonblocking());
        assert_eq!(c.timeout(Direction::Write), Some(Duration::from_nanos(1)));
    }
}
