//! The few system calls the loopback client needs that `std::net` lacks.
//!
//! A load generator holding 10^5 connections to one server port runs out of
//! ephemeral ports: the kernel hands out at most one port from
//! `net.ipv4.ip_local_port_range` (28k here) per (source address,
//! destination address, destination port). So every client socket is bound
//! to a source address of its own choosing (127.0.0.2, 127.0.0.3, ...;
//! [`ports_per_source`](super::sockets::ports_per_source) connections each)
//! before it connects; `IP_BIND_ADDRESS_NO_PORT` lets the kernel pick the
//! port at `connect`, per 4-tuple. `std::net::TcpStream::connect` cannot
//! bind first, so [`connect_from`] makes the socket with `libc` and hands it
//! to std, which does all reading and writing.
//!
//! Also here: an edge of `epoll` for the echo phase ([`Epoll`]: one instance
//! per client thread, level-triggered, tokens are connection indices), the
//! open-file limit ([`nofile`], [`set_nofile`]), `SO_LINGER` zero (close
//! with a reset, so 10^5 closed connections leave no `TIME_WAIT` behind)
//! and the clock tick of `/proc/<pid>/stat`. Every `unsafe` block is one
//! system call on memory this module owns.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn set_opt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size we pass; the kernel
    // only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    check(rc).map(drop)
}

/// A new blocking IPv4 TCP socket (close-on-exec).
fn tcp_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers; a non-negative result is a new fd
    // that nothing else owns, so OwnedFd may close it.
    Ok(unsafe {
        OwnedFd::from_raw_fd(check(libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
        ))?)
    })
}

fn bind(fd: RawFd, addr: SocketAddrV4) -> io::Result<()> {
    let addr = sockaddr(addr);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_in of `len` bytes.
    check(unsafe { libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), len) }).map(drop)
}

/// A blocking TCP connection from `src` (port chosen at connect time) to
/// `dst`; `timeout` bounds the connect (SO_SNDTIMEO), so a dropped SYN
/// cannot hold the client for the kernel's two minutes of retries.
pub fn connect_from(src: Ipv4Addr, dst: SocketAddrV4, timeout: Duration) -> io::Result<TcpStream> {
    let fd = tcp_socket()?;
    let raw = fd.as_raw_fd();
    // Without the option (qemu-user does not translate it: ENOPROTOOPT)
    // the kernel picks the port at `bind` instead, so fewer connections fit
    // per source address; the small runs made under qemu fit easily.
    match set_opt(raw, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, &1i32) {
        Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {}
        r => r?,
    }
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    set_opt(raw, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv)?;
    bind(raw, SocketAddrV4::new(src, 0))?;
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let to = sockaddr(dst);
    // SAFETY: `to` is a valid sockaddr_in of `len` bytes.
    check(unsafe { libc::connect(raw, (&to as *const libc::sockaddr_in).cast(), len) })?;
    let stream = TcpStream::from(fd);
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// A listener on 127.0.0.1, port chosen by the kernel, with the largest
/// backlog the kernel allows (`listen(fd, -1)` is clamped to
/// `net.core.somaxconn`), as Go's `net.Listen` asks for. std's
/// `TcpListener::bind` asks for 128, which a client opening thousands of
/// connections at once overflows: the kernel then drops SYNs, and each
/// dropped one costs the client a one-second retransmission.
pub fn listen_loopback() -> io::Result<std::net::TcpListener> {
    let fd = tcp_socket()?;
    let raw = fd.as_raw_fd();
    set_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32)?;
    bind(raw, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    // SAFETY: listen takes no pointers.
    check(unsafe { libc::listen(raw, -1) })?;
    Ok(std::net::TcpListener::from(fd))
}

/// Close with a reset instead of a FIN: no `TIME_WAIT` left behind.
pub fn set_linger_zero(s: &TcpStream) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_opt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, &l)
}

/// One epoll instance, level-triggered for reading; closed on drop.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(check(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        Ok(Epoll {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.clamp(1, 1024)],
        })
    }

    /// Watch `fd` for input; `token` comes back from [`Epoll::wait`].
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event the kernel reads.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
            .map(drop)
    }

    /// Wait up to `timeout` and return the tokens of ready sockets.
    pub fn wait(&mut self, timeout: Duration, ready: &mut Vec<u64>) -> io::Result<()> {
        ready.clear();
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `events` has room for `len` entries, which the kernel fills.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        ready.extend(self.events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}

/// `RLIMIT_NOFILE` as (soft, hard).
pub fn nofile() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Set `RLIMIT_NOFILE` (children started afterwards inherit it).
pub fn set_nofile(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit from the struct we pass.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }).map(drop)
}

/// Whether this process runs as root (may raise hard limits).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Clock ticks per second of the CPU times in `/proc/<pid>/stat`.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}
