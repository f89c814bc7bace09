//! What the kernel says about sockets and about another process.
//!
//! `net` measures a server running in a child process, so the figures are
//! read from `/proc/<pid>` rather than `/proc/self`:
//!
//! * `/proc/<pid>/statm` and `status` (`VmPTE`): the server's RSS and page
//!   tables, as `mem` reads its own;
//! * `/proc/<pid>/stat` fields 14 and 15: user and system CPU time, in
//!   clock ticks (to show which side of a loopback benchmark is busy).
//!
//! A socket's memory is the kernel's, not the process's, so RSS never shows
//! it. Two places do, both system-wide (other processes add noise):
//!
//! * `/proc/net/sockstat`: TCP sockets in use and `mem`, the pages charged
//!   to TCP socket buffers (the `net.ipv4.tcp_mem` accounting);
//! * `/proc/slabinfo` (root only): the slab caches a connection allocates
//!   from (`TCP`, `sock_inode_cache`, `filp`, `dentry`, `eventpoll_epi`,
//!   ...), as whole slab pages.
//!
//! And the limits a run of 10^5 connections meets first: `RLIMIT_NOFILE`
//! (raised here: soft to hard, and the hard one too when root), `fs.nr_open`,
//! `fs.file-max`, `net.core.somaxconn` and the ephemeral port range. The
//! server's real listen backlog is read back with `ss` (Send-Q of a
//! listening socket), and accept-queue overflows from `/proc/net/netstat`
//! (`TcpExt: ListenOverflows`, `ListenDrops`).

use serde::{Deserialize, Serialize};

use super::{netsys, procfs};

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// RSS + page tables of process `pid`, in bytes.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct PidMem {
    pub rss_bytes: u64,
    pub pte_bytes: u64,
}

pub fn pid_mem(pid: u32) -> Result<PidMem, String> {
    let statm = read(&format!("/proc/{pid}/statm"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .ok_or("unexpected /proc/<pid>/statm format")?;
    let status = read(&format!("/proc/{pid}/status"))?;
    let pte = status
        .lines()
        .find_map(|l| l.strip_prefix("VmPTE:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .ok_or("no VmPTE line in /proc/<pid>/status")?;
    Ok(PidMem {
        rss_bytes: pages * spindle::stack::page::page_size() as u64,
        pte_bytes: pte * 1024,
    })
}

/// User + system CPU seconds of process `pid` so far.
pub fn pid_cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = read(&format!("/proc/{pid}/stat"))?;
    let after = stat
        .rsplit_once(')')
        .ok_or("unexpected /proc/<pid>/stat format")?
        .1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command name: field 3 (state) is f[0], utime (14) f[11].
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let (Some(u), Some(s)) = (tick(11), tick(12)) else {
        return Err("unexpected /proc/<pid>/stat format".into());
    };
    Ok((u + s) as f64 / netsys::clock_ticks() as f64)
}

/// The kernel's socket figures at one moment (system-wide).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KernelSockets {
    /// `TCP: inuse` of /proc/net/sockstat.
    pub tcp_inuse: i64,
    /// `TCP: mem`, in bytes (the kernel counts pages).
    pub tcp_mem_bytes: i64,
    /// Bytes of slab pages in the socket-related caches, if readable.
    pub slab_bytes: Option<i64>,
}

/// The slab caches one TCP connection allocates from (per socket: the
/// `tcp_sock`, its inode, file and dentry, an epoll item, skb heads).
pub const SLAB_CACHES: &[&str] = &[
    "TCP",
    "request_sock_TCP",
    "sock_inode_cache",
    "filp",
    "dentry",
    "eventpoll_epi",
    "eventpoll_pwq",
    "skbuff_head_cache",
    "skbuff_small_head",
];

impl KernelSockets {
    pub fn now() -> Result<KernelSockets, String> {
        let text = read("/proc/net/sockstat")?;
        let tcp = text
            .lines()
            .find_map(|l| l.strip_prefix("TCP:"))
            .ok_or("no TCP line in /proc/net/sockstat")?;
        let words: Vec<&str> = tcp.split_whitespace().collect();
        let field = |name: &str| {
            words
                .windows(2)
                .find(|w| w[0] == name)
                .and_then(|w| w[1].parse::<i64>().ok())
        };
        let page = spindle::stack::page::page_size() as i64;
        Ok(KernelSockets {
            tcp_inuse: field("inuse").ok_or("no TCP inuse in /proc/net/sockstat")?,
            tcp_mem_bytes: field("mem").unwrap_or(0) * page,
            slab_bytes: slab_bytes(),
        })
    }
}

/// Bytes of slab pages held by [`SLAB_CACHES`], or `None` if
/// /proc/slabinfo is not readable (it is root-only).
pub fn slab_bytes() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/slabinfo").ok()?;
    let page = spindle::stack::page::page_size() as i64;
    let mut total = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 16 || !SLAB_CACHES.contains(&f[0]) {
            continue;
        }
        // name active num objsize perslab pagesperslab : tunables l b s :
        // slabdata active_slabs num_slabs shared
        let pages_per_slab: i64 = f[5].parse().ok()?;
        let slabs: i64 = f[14].parse().ok()?;
        total += slabs * pages_per_slab * page;
    }
    Some(total)
}

/// `TcpExt: ListenOverflows` + `ListenDrops` (system-wide counters).
pub fn listen_drops() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let sum = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter(|(n, _)| *n == "ListenOverflows" || *n == "ListenDrops")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    Some(sum)
}

/// The backlog of the socket listening on 127.0.0.1:`port`, as the kernel
/// has it (after clamping to `net.core.somaxconn`). /proc/net/tcp does not
/// show it; the socket-diag netlink interface does, and `ss -lnt` prints it
/// as Send-Q, so this asks `ss` (iproute2), if installed.
pub fn listen_backlog(port: u16) -> Option<u64> {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{port}")))?;
    // State Recv-Q Send-Q Local Peer
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Connections per source address towards one server port: an eighth of
/// the ephemeral range. The kernel finds a free port for `connect` by
/// probing the range from a hashed offset, so the fuller the range, the
/// longer each `connect` searches (at 19,744 connections from one address,
/// 70% of 28k ports, set-up ran 4.7× slower than at 10^4 with two
/// addresses); at an eighth it stays fast, and more source addresses cost
/// nothing on loopback.
pub fn ports_per_source() -> u64 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut w = t.split_whitespace().map(|v| v.parse::<u64>().ok());
            Some((w.next()??, w.next()??))
        });
    let (lo, hi) = range.unwrap_or((32768, 60999));
    ((hi.saturating_sub(lo) + 1) / 8).max(1)
}

/// The limits of this machine that a run meets, for the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Limits {
    /// RLIMIT_NOFILE (soft, hard) after [`raise_nofile`].
    pub nofile_soft: u64,
    pub nofile_hard: u64,
    pub somaxconn: Option<u64>,
    pub ports_per_source: u64,
}

/// File descriptors one side needs for `count` connections: one per
/// connection plus the process's own (listener, epoll, pipes, std streams).
pub fn fds_needed(count: u64) -> u64 {
    count + 256
}

/// Make room for `count` connections in this process and the children it
/// starts next: soft RLIMIT_NOFILE up to the hard limit, and as root the
/// hard limit up to `fs.nr_open` if needed; else one line naming the limit.
pub fn raise_nofile(what: &str, count: u64) -> Result<Limits, String> {
    let need = fds_needed(count);
    let (soft, hard) = netsys::nofile().map_err(|e| format!("getrlimit(RLIMIT_NOFILE): {e}"))?;
    let nr_open = procfs::sysctl("fs/nr_open").unwrap_or(1 << 20);
    let (soft, hard) = if need <= hard {
        if soft < hard {
            netsys::set_nofile(hard, hard)
                .map_err(|e| format!("{what}: cannot raise RLIMIT_NOFILE to {hard}: {e}"))?;
        }
        (hard, hard)
    } else if need > nr_open {
        return Err(format!(
            "{what} needs {need} file descriptors per process but fs.nr_open is {nr_open}; \
             raise it with `sysctl -w fs.nr_open={}` (as root) or lower --count",
            need.next_power_of_two()
        ));
    } else if netsys::is_root() && netsys::set_nofile(need, need).is_ok() {
        (need, need)
    } else {
        // Not root, or root without CAP_SYS_RESOURCE (as in many containers).
        let who = if netsys::is_root() {
            "even root may not raise it here (no CAP_SYS_RESOURCE); start spindle-bench \
             where the hard limit is higher (`docker run --ulimit nofile=...`, LimitNOFILE= \
             for a service)"
        } else {
            "raise it as root (`ulimit -Hn`, or a nofile line in /etc/security/limits.conf)"
        };
        return Err(format!(
            "{what} needs {need} file descriptors per process but the hard RLIMIT_NOFILE is \
             {hard}; {who}, or lower --count to at most {}",
            hard.saturating_sub(need - count)
        ));
    };
    // System-wide: both ends' sockets, against fs.file-max.
    if let (Some(max), Ok(nr)) = (
        procfs::sysctl("fs/file-max"),
        std::fs::read_to_string("/proc/sys/fs/file-nr"),
    ) {
        let open: u64 = nr
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if open + 2 * need > max {
            return Err(format!(
                "{what} needs about {} more open files system-wide but fs.file-max is {max} \
                 ({open} open); raise it with `sysctl -w fs.file-max={}` or lower --count",
                2 * need,
                (open + 2 * need) * 2
            ));
        }
    }
    Ok(Limits {
        nofile_soft: soft,
        nofile_hard: hard,
        somaxconn: procfs::sysctl("net/core/somaxconn"),
        ports_per_source: ports_per_source(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_the_kernel() {
        let me = std::process::id();
        let m = pid_mem(me).unwrap();
        assert!(m.rss_bytes > 0);
        assert!(pid_cpu_seconds(me).unwrap() >= 0.0);
        let k = KernelSockets::now().unwrap();
        assert!(k.tcp_inuse >= 0 && k.tcp_mem_bytes >= 0);
        assert!(ports_per_source() > 100);
    }

    #[test]
    fn reads_a_listeners_backlog() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // std asks for 128 (`ss` may not be installed).
        if let Some(b) = listen_backlog(port) {
            assert!(b >= 1, "{b}");
        }
        let l = crate::measure::netsys::listen_loopback().unwrap();
        let port = l.local_addr().unwrap().port();
        if let (Some(b), Some(max)) = (listen_backlog(port), procfs::sysctl("net/core/somaxconn")) {
            assert_eq!(b, max.min(i32::MAX as u64));
        }
    }
}
