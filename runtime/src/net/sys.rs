//! The thin `libc` wrappers that `tcp.rs`, `udp.rs` and `socket.rs` share.
//!
//! Each is one system call on a socket's file descriptor, with the C
//! convention (a negative return and `errno`) turned into an
//! [`io::Result`]. None of them waits: a call that would block returns
//! `WouldBlock`, and the caller hands it to `Socket::io`, which waits for
//! readiness and calls again. All the `unsafe` of the network types is here
//! and in `addr.rs`; each block passes the kernel pointers to memory that
//! lives across the call and lengths that match it.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::addr::RawAddr;

/// At most this many buffers go to one `readv`/`sendmsg` (Linux's
/// `UIO_MAXIOV`; more is `EINVAL`).
pub(crate) const MAX_IOV: usize = 1024;

/// A C return value: negative means `errno`.
pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A C byte count: negative means `errno`.
pub(crate) fn cvt_len(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

pub(crate) fn setsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: T,
) -> io::Result<()> {
    // SAFETY: the kernel reads size_of::<T>() bytes from &value, which lives
    // across the call.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Read an option whose value is a plain C type for which all zeroes is valid.
pub(crate) fn getsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    // SAFETY: T is one of the C option types (int, linger), plain old data
    // for which all zeroes is a valid value.
    let mut value: T = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes to &value and updates len;
    // both live across the call.
    cvt(unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) })?;
    Ok(value)
}

pub(crate) fn set_flag(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    on: bool,
) -> io::Result<()> {
    setsockopt(fd, level, name, libc::c_int::from(on))
}

pub(crate) fn flag(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<bool> {
    Ok(getsockopt::<libc::c_int>(fd, level, name)? != 0)
}

/// The pending error of the socket (`SO_ERROR`), which reading clears.
pub(crate) fn take_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let e: libc::c_int = getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR)?;
    Ok((e != 0).then(|| io::Error::from_raw_os_error(e)))
}

pub(crate) fn set_ttl(fd: RawFd, ttl: u32) -> io::Result<()> {
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_TTL, ttl as libc::c_int)
}

pub(crate) fn ttl(fd: RawFd) -> io::Result<u32> {
    Ok(getsockopt::<libc::c_int>(fd, libc::IPPROTO_IP, libc::IP_TTL)? as u32)
}

/// `SO_LINGER`: `Some(d)` makes `close` wait up to `d` for unsent data
/// (`Some(0)` resets the connection instead); `None` is the default.
pub(crate) fn set_linger(fd: RawFd, linger: Option<Duration>) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: libc::c_int::from(linger.is_some()),
        l_linger: linger.map_or(0, |d| {
            d.as_secs().min(libc::c_int::MAX as u64) as libc::c_int
        }),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, l)
}

pub(crate) fn linger(fd: RawFd) -> io::Result<Option<Duration>> {
    let l: libc::linger = getsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER)?;
    Ok((l.l_onoff != 0).then(|| Duration::from_secs(l.l_linger as u64)))
}

pub(crate) fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    let mut raw = RawAddr::empty();
    let (p, l) = raw.as_mut_ptrs();
    // SAFETY: p and l point into `raw`, which lives across the call, and l
    // holds the size of the storage behind p.
    cvt(unsafe { libc::getsockname(fd, p, l) })?;
    raw.to_socket_addr()
}

pub(crate) fn peer_addr(fd: RawFd) -> io::Result<SocketAddr> {
    let mut raw = RawAddr::empty();
    let (p, l) = raw.as_mut_ptrs();
    // SAFETY: as in local_addr.
    cvt(unsafe { libc::getpeername(fd, p, l) })?;
    raw.to_socket_addr()
}

pub(crate) fn bind(fd: RawFd, addr: &SocketAddr) -> io::Result<()> {
    let raw = RawAddr::new(addr);
    // SAFETY: raw holds an address of raw.len() bytes and lives across the call.
    cvt(unsafe { libc::bind(fd, raw.as_ptr(), raw.len()) })?;
    Ok(())
}

/// Start a connection; `EINPROGRESS` is the usual answer of a non-blocking socket.
pub(crate) fn connect(fd: RawFd, addr: &SocketAddr) -> io::Result<()> {
    let raw = RawAddr::new(addr);
    // SAFETY: as in bind.
    cvt(unsafe { libc::connect(fd, raw.as_ptr(), raw.len()) })?;
    Ok(())
}

pub(crate) fn listen(fd: RawFd, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: listen(2) takes no pointers.
    cvt(unsafe { libc::listen(fd, backlog) })?;
    Ok(())
}

/// Accept one connection: its new fd (non-blocking, close-on-exec) and the
/// peer's address.
pub(crate) fn accept(fd: RawFd) -> io::Result<(OwnedFd, SocketAddr)> {
    let mut raw = RawAddr::empty();
    let (p, l) = raw.as_mut_ptrs();
    // SAFETY: as in local_addr.
    let new = cvt(unsafe { libc::accept4(fd, p, l, libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) })?;
    // SAFETY: accept4 returned a new fd that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(new) };
    Ok((owned, raw.to_socket_addr()?))
}

/// A second descriptor for the same socket (close-on-exec).
pub(crate) fn duplicate(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int; the result is a new fd we own.
    let new = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: fcntl just returned it and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

pub(crate) fn recv(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    cvt_len(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) })
}

pub(crate) fn readv(fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
    let n = bufs.len().min(MAX_IOV);
    // SAFETY: IoSliceMut is guaranteed ABI-compatible with struct iovec on
    // Unix; the kernel writes within the n buffers it describes.
    cvt_len(unsafe { libc::readv(fd, bufs.as_mut_ptr().cast(), n as libc::c_int) })
}

/// Send without raising `SIGPIPE` on a closed connection (`EPIPE` instead),
/// as `std::net` does.
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the kernel reads at most buf.len() bytes from buf.
    cvt_len(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) })
}

/// `writev` cannot take `MSG_NOSIGNAL`; `sendmsg` can.
pub(crate) fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: msghdr is plain old data; all zeroes is "no name, no control".
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len().min(MAX_IOV) as _;
    // SAFETY: IoSlice is ABI-compatible with iovec on Unix; the kernel only
    // reads the buffers msg describes, which live across the call.
    cvt_len(unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) })
}

pub(crate) fn send_to(fd: RawFd, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
    let raw = RawAddr::new(addr);
    // SAFETY: buf and raw live across the call; the lengths match them.
    cvt_len(unsafe {
        libc::sendto(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
            raw.as_ptr(),
            raw.len(),
        )
    })
}

pub(crate) fn recv_from(
    fd: RawFd,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, SocketAddr)> {
    let mut raw = RawAddr::empty();
    let (p, l) = raw.as_mut_ptrs();
    // SAFETY: the kernel writes at most buf.len() bytes into buf and at most
    // *l bytes of address into raw; all live across the call.
    let n =
        cvt_len(unsafe { libc::recvfrom(fd, buf.as_mut_ptr().cast(), buf.len(), flags, p, l) })?;
    Ok((n, raw.to_socket_addr()?))
}

/// Is the descriptor in `O_NONBLOCK` mode? (To carry a `std::net` socket's
/// mode over to a spindle one.)
pub(crate) fn is_nonblocking(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFL takes no pointers.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    Ok(flags & libc::O_NONBLOCK != 0)
}
