//! SCAFFOLD (replaced by the `netpoll` branch's socket.rs at merge): a
//! non-blocking socket and its wait for readiness. Inside a coroutine it polls
//! with a zero timeout and sleeps 1 ms between tries (no netpoller yet); on a
//! plain thread it blocks in poll(2).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Instant;

use crate::sched::context;

/// Which readiness an operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// A socket kept in non-blocking mode.
#[derive(Debug)]
pub(crate) struct Socket {
    fd: OwnedFd,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own; F_GETFL/F_SETFL take no pointers.
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

impl Socket {
    pub(crate) fn new(domain: libc::c_int, ty: libc::c_int) -> io::Result<Socket> {
        // SAFETY: socket(2) takes no pointers; a non-negative result is a new fd we own.
        let fd =
            cvt(unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: fd was just returned by socket(2) and nothing else owns it.
        Ok(Socket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub(crate) fn from_owned(fd: OwnedFd) -> io::Result<Socket> {
        set_nonblocking(fd.as_raw_fd(), true)?;
        Ok(Socket { fd })
    }

    pub(crate) fn into_owned(self) -> OwnedFd {
        let fd = self.fd;
        let _ = set_nonblocking(fd.as_raw_fd(), false);
        fd
    }

    pub(crate) fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn io<T>(
        &self,
        dir: Direction,
        deadline: Option<Instant>,
        mut op: impl FnMut(RawFd) -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            match op(self.as_raw_fd()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            let timeout_ms = match deadline {
                None => -1,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    (d - now).as_millis().clamp(1, i32::MAX as u128) as i32
                }
            };
            let events = match dir {
                Direction::Read => libc::POLLIN,
                Direction::Write => libc::POLLOUT,
            };
            let mut pfd = libc::pollfd {
                fd: self.as_raw_fd(),
                events,
                revents: 0,
            };
            let wait = if context::in_coroutine() {
                0
            } else {
                timeout_ms
            };
            // SAFETY: pfd is a valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, wait) };
            if n == 0 && context::in_coroutine() {
                crate::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

impl IntoRawFd for Socket {
    fn into_raw_fd(self) -> RawFd {
        self.fd.into_raw_fd()
    }
}
