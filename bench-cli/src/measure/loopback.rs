//! The loopback client of `net`: open N connections, then echo on K of them.
//!
//! The client is the `net` command's own process, and the server under test
//! is always a child ([`command::net`](crate::command::net)), so the two
//! never share a process, and the same client drives every server. It is
//! written on plain OS threads and `epoll`, not on spindle: a client built
//! on the runtime under test would make the two sides' costs inseparable,
//! and one built on Go's would favour the other. Its cost is reported
//! beside the server's (CPU seconds of each process during the measured
//! pass), so a reader can see which side the machine was busy with.
//!
//! * **Set-up** ([`connect`]): T threads each open their share of the N
//!   connections with blocking `connect`s (each bound first to its own
//!   source address, 127.0.0.2 upwards, see [`netsys::connect_from`]) and
//!   send one line on each; then each thread reads every echo back. A
//!   connection counts as set up when its first echo has come back: the
//!   server has accepted it and started its task. The rate is N / the time
//!   until the last echo.
//! * **Echo** ([`echo`]): K of the N connections (spread evenly over them)
//!   are split over T threads; each thread keeps one request in flight on
//!   each of its connections (a closed loop: send a 32-byte line, wait for
//!   it to come back, send the next) with one level-triggered epoll
//!   instance. Each round trip's latency is recorded, and every byte of
//!   every echo is checked.
//!
//! Every loop is bounded twice: by its count (N connections, R round trips
//! per connection) and by a time cap, after which it stops by itself and
//! says so.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::netsys::{self, Epoll};
use super::sockets;

/// Bytes of one request (and of its echo): 15 digits of connection index,
/// a space, 15 digits of sequence number, a newline.
pub const MESSAGE_BYTES: usize = 32;

/// The request `seq` of connection `conn`.
fn message(conn: u64, seq: u64) -> [u8; MESSAGE_BYTES] {
    let mut m = [0u8; MESSAGE_BYTES];
    let text = format!("{:015} {:015}\n", conn % 1_000_000_000_000_000, seq);
    m.copy_from_slice(text.as_bytes());
    m
}

/// The source address of connection `i`: 127.0.0.2 for the first
/// `per_source`, then 127.0.0.3, ... (all in 127/8, so all loopback).
pub fn source(i: u64, per_source: u64) -> Ipv4Addr {
    let base = u32::from(Ipv4Addr::new(127, 0, 0, 2));
    let k = (i / per_source.max(1)).min(0x00ff_fff0) as u32;
    Ipv4Addr::from(base + k)
}

/// How long set-up took.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SetupTimes {
    /// Until the last `connect` returned.
    pub connect_seconds: f64,
    /// Until the last first echo came back.
    pub ready_seconds: f64,
    /// Source addresses used.
    pub sources: u64,
}

/// One set-up thread's connections (with their indices) and when its last
/// `connect` returned.
type ThreadShare = (Vec<(u64, TcpStream)>, Duration);

fn io_err(what: &str, i: u64, e: std::io::Error) -> String {
    format!("connection {i}: {what}: {e}")
}

/// Run `work(t)` on one thread each for `t` in `0..threads`, and return
/// their results in that order (a thread that panicked is an error).
fn on_threads<T: Send>(
    threads: usize,
    work: impl Fn(usize) -> Result<T, String> + Sync,
) -> Vec<Result<T, String>> {
    std::thread::scope(|s| {
        let work = &work;
        let handles: Vec<_> = (0..threads).map(|t| s.spawn(move || work(t))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a client thread panicked".into()))
            })
            .collect()
    })
}

/// Open `count` connections to `server` from `threads` threads; each is
/// checked with one echo. Stops with an error after `cap`.
pub fn connect(
    server: SocketAddrV4,
    count: u64,
    threads: usize,
    cap: Duration,
) -> Result<(Vec<TcpStream>, SetupTimes), String> {
    let per_source = sockets::ports_per_source();
    let threads = (threads as u64).clamp(1, count.max(1));
    let t0 = Instant::now();
    let deadline = t0 + cap;
    let per_call = cap.min(Duration::from_secs(10));
    let parts: Vec<Result<ThreadShare, String>> = on_threads(threads as usize, |t| {
        let mut mine = Vec::new();
        let mut i = t as u64;
        while i < count {
            if Instant::now() > deadline {
                return Err(format!(
                    "set-up did not finish within {} s ({} of {count} \
                     connections open)",
                    cap.as_secs(),
                    mine.len() as u64 * threads
                ));
            }
            let c = netsys::connect_from(source(i, per_source), server, per_call)
                .map_err(|e| io_err("connect", i, e))?;
            (&c).write_all(&message(i, 0))
                .map_err(|e| io_err("write", i, e))?;
            mine.push((i, c));
            i += threads;
        }
        let connected = t0.elapsed();
        let mut got = [0u8; MESSAGE_BYTES];
        for (i, c) in &mine {
            let left = deadline.saturating_duration_since(Instant::now());
            c.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|e| io_err("set_read_timeout", *i, e))?;
            (&*c)
                .read_exact(&mut got)
                .map_err(|e| io_err("first echo", *i, e))?;
            if got != message(*i, 0) {
                return Err(format!("connection {i}: wrong first echo"));
            }
        }
        Ok((mine, connected))
    });
    let ready = t0.elapsed();
    let mut all = Vec::with_capacity(count as usize);
    let mut connected = Duration::ZERO;
    for p in parts {
        let (mine, c) = p?;
        connected = connected.max(c);
        all.extend(mine);
    }
    all.sort_by_key(|(i, _)| *i);
    let conns: Vec<TcpStream> = all.into_iter().map(|(_, c)| c).collect();
    for c in &conns {
        let _ = c.set_read_timeout(None);
        let _ = netsys::set_linger_zero(c);
    }
    Ok((
        conns,
        SetupTimes {
            connect_seconds: connected.as_secs_f64(),
            ready_seconds: ready.as_secs_f64(),
            sources: count.div_ceil(per_source),
        },
    ))
}

/// What one echo pass did.
#[derive(Clone, Debug)]
pub struct EchoPass {
    /// Round-trip times in ns, sorted.
    pub latencies_ns: Vec<u64>,
    pub wall: Duration,
    /// The time cap stopped the pass before every round trip was made.
    pub capped: bool,
}

/// One connection's closed loop.
struct Active<'a> {
    stream: &'a TcpStream,
    index: u64,
    seq: u64,
    got: usize,
    buf: [u8; MESSAGE_BYTES],
    sent_at: Instant,
}

impl Active<'_> {
    fn send(&mut self) -> Result<(), String> {
        self.got = 0;
        self.sent_at = Instant::now();
        // A 32-byte write into an idle socket's empty send buffer: all or
        // an error, even on a non-blocking socket.
        self.stream
            .write_all(&message(self.index, self.seq))
            .map_err(|e| io_err("write", self.index, e))
    }
}

/// `rounds` round trips on each of `active` connections spread over
/// `conns`, from `threads` threads; stops after `cap`.
pub fn echo(
    conns: &[TcpStream],
    active: usize,
    rounds: u64,
    threads: usize,
    cap: Duration,
) -> Result<EchoPass, String> {
    let n = conns.len();
    let active = active.clamp(1, n.max(1));
    let threads = threads.clamp(1, active);
    let picked: Vec<(u64, &TcpStream)> = (0..active)
        .map(|k| {
            let i = k * n / active;
            (i as u64, &conns[i])
        })
        .collect();
    let t0 = Instant::now();
    let deadline = t0 + cap;
    let parts: Vec<Result<(Vec<u64>, bool), String>> = on_threads(threads, |t| {
        let mine: Vec<(u64, &TcpStream)> =
            picked.iter().skip(t).step_by(threads).copied().collect();
        closed_loop(&mine, rounds, deadline)
    });
    let wall = t0.elapsed();
    let mut latencies = Vec::new();
    let mut capped = false;
    for p in parts {
        let (l, c) = p?;
        latencies.extend(l);
        capped |= c;
    }
    latencies.sort_unstable();
    Ok(EchoPass {
        latencies_ns: latencies,
        wall,
        capped,
    })
}

/// One client thread's share: returns its latencies and whether the
/// deadline stopped it before all `rounds`.
fn closed_loop(
    mine: &[(u64, &TcpStream)],
    rounds: u64,
    deadline: Instant,
) -> Result<(Vec<u64>, bool), String> {
    let mut poll = Epoll::new(mine.len()).map_err(|e| format!("epoll_create1: {e}"))?;
    let mut conns = Vec::with_capacity(mine.len());
    for (token, &(index, stream)) in mine.iter().enumerate() {
        stream
            .set_nonblocking(true)
            .map_err(|e| io_err("set_nonblocking", index, e))?;
        poll.add(stream.as_raw_fd(), token as u64)
            .map_err(|e| io_err("epoll_ctl", index, e))?;
        conns.push(Active {
            stream,
            index,
            seq: 0,
            got: 0,
            buf: [0; MESSAGE_BYTES],
            sent_at: Instant::now(),
        });
    }
    let mut latencies = Vec::with_capacity(mine.len() * rounds as usize);
    for c in &mut conns {
        c.send()?;
    }
    // After the deadline no new request is sent, but the ones in flight are
    // still read (for up to DRAIN), so no stale echo is left for the next
    // pass to trip over.
    let mut outstanding = conns.len();
    let mut capped = false;
    let mut ready = Vec::new();
    while outstanding > 0 {
        let now = Instant::now();
        if now >= deadline + DRAIN {
            return Err(format!(
                "{outstanding} echoes did not come back within {} s of the time cap",
                DRAIN.as_secs()
            ));
        }
        capped |= now >= deadline;
        poll.wait(Duration::from_millis(100), &mut ready)
            .map_err(|e| format!("epoll_wait: {e}"))?;
        for &token in &ready {
            let c = &mut conns[token as usize];
            match c.stream.read(&mut c.buf[c.got..]) {
                Ok(0) => return Err(format!("connection {}: closed by the server", c.index)),
                Ok(k) => c.got += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(io_err("read", c.index, e)),
            }
            if c.got < MESSAGE_BYTES {
                continue;
            }
            latencies.push(c.sent_at.elapsed().as_nanos() as u64);
            if c.buf != message(c.index, c.seq) {
                return Err(format!(
                    "connection {}: echo {} differs from what was sent",
                    c.index, c.seq
                ));
            }
            c.seq += 1;
            if c.seq < rounds && !capped {
                c.send()?;
            } else {
                outstanding -= 1;
            }
        }
    }
    let all = latencies.len() as u64 == mine.len() as u64 * rounds;
    Ok((latencies, !all))
}

/// How long a capped pass waits for the echoes still in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_sources() {
        assert_eq!(message(7, 3).len(), MESSAGE_BYTES);
        assert_eq!(&message(7, 3)[..], b"000000000000007 000000000000003\n");
        assert_eq!(source(0, 100), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source(100, 100), Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(source(300 * 100, 100), Ipv4Addr::new(127, 0, 1, 46));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 99.0), Some(4));
        assert_eq!(percentile(&[], 50.0), None);
    }

    /// The client against a thread-per-connection echo server in this
    /// process: every byte comes back.
    #[test]
    fn echoes_through_a_plain_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for _ in 0..8 {
                let (mut s, _) = l.accept().unwrap();
                std::thread::spawn(move || {
                    let mut b = [0u8; 64];
                    loop {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => s.write_all(&b[..k]).unwrap(),
                        }
                    }
                });
            }
        });
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        let (conns, t) = connect(addr, 8, 2, Duration::from_secs(30)).unwrap();
        assert_eq!(conns.len(), 8);
        assert!(t.ready_seconds >= t.connect_seconds);
        let pass = echo(&conns, 4, 10, 2, Duration::from_secs(30)).unwrap();
        assert!(!pass.capped);
        assert_eq!(pass.latencies_ns.len(), 40);
        // A pass stopped by its cap reads the echoes in flight, so the
        // next pass finds no stale bytes.
        let capped = echo(&conns, 8, 1000, 2, Duration::ZERO).unwrap();
        assert!(capped.capped && capped.latencies_ns.len() == 8);
        let again = echo(&conns, 8, 5, 1, Duration::from_secs(30)).unwrap();
        assert_eq!(again.latencies_ns.len(), 40);
        server.join().unwrap();
    }
}
