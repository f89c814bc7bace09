//! `net`: an echo server with one task per connection, spindle beside Go.
//!
//! The server runs in a child process (spindle: `spindle-bench net-server`,
//! see [`net_server`](super::net_server); Go: `goref net`, one goroutine per
//! connection; optionally an OS thread per connection), driven through
//! [`ServerProcess`], and this process is the client ([`loopback`]), the
//! same for every server. For each N, every
//! server in turn, with the same N, the same warm-up and the same worker
//! count (spindle workers = GOMAXPROCS):
//!
//! 1. **Baseline**: the server is listening and idle; its RSS + page tables
//!    (`/proc/<pid>`, after a GC on the Go side) and the kernel's socket
//!    figures are read.
//! 2. **Set-up**: N connections, each checked with one echo; the rate is N
//!    per second until the last echo came back. Accept-queue overflows and
//!    the listener's real backlog are read from `/proc/net`.
//! 3. **Idle memory**: after a short settle (and a GC on the Go side), the
//!    server's RSS + page tables again: (after - baseline) / N is the
//!    memory per idle connection. The kernel's share (socket slab caches,
//!    TCP buffer pages) is reported apart: RSS does not show it, it is
//!    system-wide, and it covers both ends of each connection.
//! 4. **Echo**: for each K, K of the N connections (the rest stay idle)
//!    each make R / K round trips of a 32-byte line, after a warm-up pass
//!    of a tenth of that; p50/p99 round-trip latency and requests per
//!    second, and the CPU seconds the server and the client spent in the
//!    measured pass (from `/proc/<pid>/stat`): if the client's share were
//!    the larger, the client would be the suspect bottleneck.
//!
//! Limits are checked first ([`sockets::raise_nofile`]): each side needs
//! N + 256 file descriptors, so the soft `RLIMIT_NOFILE` is raised to the
//! hard one (and the hard one, as root, up to `fs.nr_open`); the children
//! inherit it. Everything is on loopback, every loop is bounded in count
//! and by `--time-cap`, and the server dies with this process.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::net_server::BUFFER_BYTES;
use super::{Global, Measurement};
use crate::args::{parse_count, parse_workers};
use crate::measure::goref::{self, Goref};
use crate::measure::loopback::{self, MESSAGE_BYTES};
use crate::measure::row::Row;
use crate::measure::server::{Figures, ServerProcess};
use crate::measure::sockets::{self, KernelSockets, Limits, PidMem};
use crate::measure::{child, preflight};
use crate::present::{progress, units};

/// A server `net` can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    /// A spindle coroutine per connection, default runtime (it compacts
    /// coroutines idle on a socket: `compact_idle_sockets`).
    Spindle,
    /// The same, with `compact_after` (`--compact-after`, default 10ms).
    #[serde(rename = "spindle-compact")]
    SpindleCompact,
    /// A goroutine per connection.
    Go,
    /// An OS thread per connection (std::net).
    Threads,
}

impl Server {
    pub fn name(self) -> &'static str {
        match self {
            Server::Spindle => "spindle",
            Server::SpindleCompact => "spindle, compacted",
            Server::Go => "Go",
            Server::Threads => "threads",
        }
    }
}

/// `--time-cap`: 1 ..= 600 seconds.
pub fn parse_seconds(text: &str) -> Result<u64, String> {
    match parse_count(text) {
        Ok(n) if n <= 600 => Ok(n),
        Ok(_) => Err("must be between 1 and 600 seconds".into()),
        Err(e) => Err(e),
    }
}

#[derive(Debug, clap::Args)]
pub struct NetArgs {
    /// Connections held open (comma-separated for several runs; default
    /// 10^4, --quick 10^3).
    #[arg(long, value_name = "N", value_delimiter = ',', allow_negative_numbers = true, value_parser = parse_count)]
    pub count: Vec<u64>,
    /// Active connections in the echo passes (comma-separated).
    #[arg(long, value_name = "K", value_delimiter = ',', allow_negative_numbers = true, value_parser = parse_count, default_value = "100,1000")]
    pub active: Vec<u64>,
    /// Round trips per measured echo pass, spread over the K connections.
    #[arg(long, value_name = "R", allow_negative_numbers = true, value_parser = parse_count, default_value = "20000")]
    pub round_trips: u64,
    /// Seconds after which set-up or an echo pass stops by itself.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = parse_seconds, default_value = "30")]
    pub time_cap: u64,
    /// Client threads (each with its own epoll instance).
    #[arg(long, value_name = "T", allow_negative_numbers = true, value_parser = parse_workers, default_value = "2")]
    pub client_threads: usize,
    /// spindle workers and GOMAXPROCS.
    #[arg(long, value_name = "W", allow_negative_numbers = true, value_parser = parse_workers, default_value = "2")]
    pub workers: usize,
    /// Servers to measure, in order (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "spindle,go")]
    pub servers: Vec<Server>,
    /// The `go` binary (default: `go` on PATH; Go rows are skipped if none).
    #[arg(long, value_name = "PATH")]
    pub go: Option<PathBuf>,
    /// Add the spindle server with `compact_after(DURATION)` (10ms, 1s)
    /// after the default one (its memory is read once compaction is done).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = crate::args::parse_duration)]
    pub compact_after: Option<Duration>,
    /// Stack slot per coroutine for the spindle servers, guard page
    /// included (default 256 KiB).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true, value_parser = crate::args::parse_stack_max)]
    pub stack_max: Option<usize>,
}

/// `compact_after` of the compacted spindle server unless `--compact-after`.
pub const DEFAULT_COMPACT_AFTER: Duration = Duration::from_millis(10);

#[derive(Clone, Debug)]
pub struct NetConfig {
    pub counts: Vec<u64>,
    pub active: Vec<u64>,
    pub round_trips: u64,
    pub time_cap: Duration,
    pub client_threads: usize,
    pub workers: usize,
    pub servers: Vec<Server>,
    pub go: Option<PathBuf>,
    pub compact_after: Duration,
    pub stack_max: Option<usize>,
}

/// N when none is given: 10^4, or 10^3 with `--quick`.
pub fn default_count(quick: bool) -> u64 {
    if quick {
        1_000
    } else {
        10_000
    }
}

/// `--count` / `--net-count` as given, or the default.
pub fn counts_or_default(given: &[u64], quick: bool) -> Vec<u64> {
    if given.is_empty() {
        vec![default_count(quick)]
    } else {
        given.to_vec()
    }
}

impl NetConfig {
    pub fn new(a: &NetArgs, g: &Global) -> NetConfig {
        let mut servers = a.servers.clone();
        if a.compact_after.is_some() && !servers.contains(&Server::SpindleCompact) {
            let at = servers.iter().position(|&s| s == Server::Spindle);
            servers.insert(at.map_or(0, |i| i + 1), Server::SpindleCompact);
        }
        NetConfig {
            counts: counts_or_default(&a.count, g.quick),
            active: a.active.clone(),
            round_trips: a.round_trips,
            time_cap: Duration::from_secs(a.time_cap),
            client_threads: a.client_threads,
            workers: a.workers,
            servers,
            go: a.go.clone(),
            compact_after: a.compact_after.unwrap_or(DEFAULT_COMPACT_AFTER),
            stack_max: a.stack_max,
        }
    }

    /// spindle (default and compacted) and Go at `counts`, with the
    /// defaults of `net`: for `compare` and `report`.
    pub fn at(counts: Vec<u64>, go: Option<PathBuf>, quick: bool) -> NetConfig {
        NetConfig {
            counts,
            active: vec![100, 1000],
            round_trips: if quick { 5_000 } else { 20_000 },
            time_cap: Duration::from_secs(30),
            client_threads: 2,
            workers: 2,
            servers: vec![Server::Spindle, Server::SpindleCompact, Server::Go],
            go,
            compact_after: DEFAULT_COMPACT_AFTER,
            stack_max: None,
        }
    }

    fn what(&self, n: u64) -> String {
        format!("net --count {}", units::count(n))
    }
}

/// The settings every row of one `net` run shares.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetSettings {
    pub workers: usize,
    pub client_threads: usize,
    pub round_trips: u64,
    pub time_cap_seconds: u64,
    pub message_bytes: usize,
    pub buffer_bytes: usize,
    pub limits: Limits,
    /// `compact_after` of the compacted spindle server, if it ran.
    #[serde(default)]
    pub compact_after_ns: Option<u64>,
    /// `--stack-max` of the spindle servers, if not the default.
    #[serde(default)]
    pub stack_max: Option<usize>,
}

/// Set-up of N connections.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Setup {
    #[serde(flatten)]
    pub times: loopback::SetupTimes,
    /// N / ready_seconds.
    pub connections_per_second: f64,
    /// The server's listen backlog as the kernel has it (/proc/net/tcp).
    pub listen_backlog: Option<u64>,
    /// `ListenOverflows + ListenDrops` during set-up (system-wide).
    pub listen_drops: Option<u64>,
}

/// The kernel's side of N idle connections (system-wide deltas; both ends
/// of each connection are sockets).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KernelDelta {
    pub tcp_sockets_delta: i64,
    pub tcp_mem_delta_bytes: i64,
    pub slab_delta_bytes: Option<i64>,
    /// (TCP buffer pages + slab) / N, both ends.
    pub per_connection_bytes: Option<f64>,
}

/// Memory with N idle connections.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Idle {
    pub baseline: PidMem,
    pub rss_delta_bytes: i64,
    pub pte_delta_bytes: i64,
    /// Server (RSS + page tables) delta / N.
    pub per_connection_bytes: f64,
    pub pte_per_connection_bytes: f64,
    /// The server's own account, per connection: spindle's resident stack
    /// pages (`mincore`), Go's `MemStats.StackInuse`.
    #[serde(default)]
    pub stack_per_connection_bytes: Option<f64>,
    /// spindle: heap growth (counting allocator); Go: `MemStats.HeapAlloc`.
    #[serde(default)]
    pub heap_per_connection_bytes: Option<f64>,
    /// Compacted spindle server: stacks compacted when memory was read,
    /// and how long after the set-up that was.
    #[serde(default)]
    pub compacted: Option<u64>,
    #[serde(default)]
    pub compact_wait_ms: Option<u64>,
    pub kernel: KernelDelta,
}

/// One measured echo pass with K active connections.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Echo {
    pub active: u64,
    pub rounds_per_connection: u64,
    pub warmup_rounds: u64,
    /// Round trips made in the measured pass.
    pub round_trips: u64,
    /// The time cap ended the pass early.
    pub capped: bool,
    pub wall_seconds: f64,
    pub requests_per_second: f64,
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub max_ns: f64,
    pub server_cpu_seconds: f64,
    pub client_cpu_seconds: f64,
}

/// One server at one N.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerRun {
    pub server: Server,
    pub count: u64,
    /// The Go version, for the Go server.
    pub version: Option<String>,
    pub setup: Setup,
    pub idle: Idle,
    pub echo: Vec<Echo>,
}

/// What a row measures: a server at N.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ServerAt {
    pub server: Server,
    pub count: u64,
}

impl std::fmt::Display for ServerAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, N = {}",
            self.server.name(),
            units::count(self.count)
        )
    }
}

pub type NetRow = Row<ServerRun, ServerAt>;

impl NetRow {
    pub fn at(&self) -> ServerAt {
        match self {
            Row::Measured(r) => ServerAt {
                server: r.server,
                count: r.count,
            },
            Row::Skipped { what, .. } => *what,
        }
    }
}

/// Everything one `net` run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetReport {
    pub settings: NetSettings,
    pub counts: Vec<u64>,
    pub servers: Vec<Server>,
    pub go_version: Option<String>,
    pub runs: Vec<NetRow>,
}

impl NetReport {
    pub fn get(&self, server: Server, count: u64) -> Option<&ServerRun> {
        self.runs
            .iter()
            .filter_map(Row::measured)
            .find(|r| r.server == server && r.count == count)
    }
}

impl Measurement for NetConfig {
    type Data = NetReport;
    const KEY: &'static str = "net";

    fn runtime(&self) -> (usize, usize) {
        (self.workers, spindle::DEFAULT_STACK_MAX)
    }

    fn run(&self) -> Result<NetReport, String> {
        run(self, None)
    }

    /// Exit 0 only if every row was measured (Go rows may be skipped when
    /// Go is not installed).
    fn success(data: &NetReport) -> bool {
        data.runs.iter().all(|r| match r {
            Row::Measured(_) => true,
            Row::Skipped { what, skipped } => {
                what.server == Server::Go && skipped.contains(goref::INSTALL_HINT)
            }
        })
    }
}

/// What `compare` and `report` asked `net` for, when it could not run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetAsked {
    pub counts: Vec<u64>,
}

/// `net` as part of `compare` or `report`: measured, or why not.
pub type NetSection = Row<NetReport, NetAsked>;

/// `net` for `compare` and `report` (spindle and Go at `counts`); a run
/// that cannot start here (limits) becomes a skipped section.
pub fn section(counts: Vec<u64>, quick: bool, go: Result<&Goref, String>) -> NetSection {
    let asked = NetAsked {
        counts: counts.clone(),
    };
    Row::of(asked, run(&NetConfig::at(counts, None, quick), Some(go)))
}

/// Run `cfg`; `go` is a Go reference program already built or why there is
/// none (`compare`, `report`), else one is built here if a Go row is asked
/// for. An explicit `--go` that does not work is an error; no Go on PATH
/// only skips the Go rows.
pub fn run(cfg: &NetConfig, go: Option<Result<&Goref, String>>) -> Result<NetReport, String> {
    let largest = cfg.counts.iter().copied().max().unwrap_or(1);
    let limits = sockets::raise_nofile(&cfg.what(largest), largest)?;
    let built;
    let go: Result<&Goref, String> = match go {
        Some(g) => g,
        None if cfg.servers.contains(&Server::Go) => {
            progress::phase("net: building the Go reference program");
            built = goref::build(cfg.go.as_deref());
            if cfg.go.is_some() {
                if let Err(e) = &built {
                    return Err(e.clone());
                }
            }
            built.as_ref().map_err(Clone::clone)
        }
        None => Err("not asked for".into()),
    };
    let mut runs = Vec::new();
    for &n in &cfg.counts {
        for &server in &cfg.servers {
            let at = ServerAt { server, count: n };
            progress::phase(&format!("net: {at}"));
            let r = match (server, &go) {
                (Server::Go, Err(why)) => Err(why.clone()),
                _ => measure(cfg, at, go.as_ref().ok().copied()),
            };

            progress::clear();
            runs.push(Row::of(at, r));
        }
    }
    Ok(NetReport {
        settings: NetSettings {
            workers: cfg.workers,
            client_threads: cfg.client_threads,
            round_trips: cfg.round_trips,
            time_cap_seconds: cfg.time_cap.as_secs(),
            message_bytes: MESSAGE_BYTES,
            buffer_bytes: BUFFER_BYTES,
            limits,
            compact_after_ns: cfg
                .servers
                .contains(&Server::SpindleCompact)
                .then_some(cfg.compact_after.as_nanos() as u64),
            stack_max: cfg.stack_max,
        },
        counts: cfg.counts.clone(),
        servers: cfg.servers.clone(),
        go_version: go.ok().map(|g| g.version.clone()),
        runs,
    })
}

/// What the run needs before it starts, per server.
fn preflight(cfg: &NetConfig, at: ServerAt) -> Result<(), String> {
    let what = format!(
        "{} with {} connections",
        at.server.name(),
        units::count(at.count)
    );
    // Both ends' sockets in the kernel (about 4 KiB each), the client's
    // buffers, and the server's tasks.
    let kernel_and_client = 12 << 10;
    match at.server {
        Server::Spindle | Server::SpindleCompact => {
            let stack_max = cfg.stack_max.unwrap_or(spindle::DEFAULT_STACK_MAX);
            preflight::coroutines(&what, at.count, stack_max, cfg.workers)?;
            preflight::memory(
                &what,
                at.count * (kernel_and_client + preflight::coroutine_estimate() + 8192),
                "lower --count",
            )
        }
        Server::Go => preflight::memory(
            &what,
            at.count * (kernel_and_client + 16384),
            "lower --count",
        ),
        Server::Threads => {
            preflight::threads(at.count, crate::command::threads::STD_DEFAULT_STACK as u64)?;
            preflight::memory(
                &what,
                at.count * (kernel_and_client + preflight::thread_estimate()),
                "lower --count",
            )
        }
    }
}

/// One server at one N: start it, connect, measure, stop it.
fn measure(cfg: &NetConfig, at: ServerAt, go: Option<&Goref>) -> Result<ServerRun, String> {
    preflight(cfg, at)?;
    let workers = cfg.workers.to_string();
    let (cmd, version) = match at.server {
        Server::Spindle | Server::SpindleCompact => {
            let mut args = vec!["net-server", "--kind", "spindle", "--workers", &workers];
            let after = format!("{}ns", cfg.compact_after.as_nanos());
            if at.server == Server::SpindleCompact {
                args.extend(["--compact-after", after.as_str()]);
            }
            let stack = cfg.stack_max.map(|b| b.to_string());
            if let Some(b) = &stack {
                args.extend(["--stack-max", b.as_str()]);
            }
            (child::command(&args)?, None)
        }
        Server::Threads => (child::command(&["net-server", "--kind", "threads"])?, None),
        Server::Go => {
            let go = go.ok_or("the Go reference program is not built")?;
            (
                go.command(&["net", "-procs", &workers]),
                Some(go.version.clone()),
            )
        }
    };
    let mut server = ServerProcess::start(at.server.name(), cmd)?;
    let n = at.count;
    let nf = n as f64;

    let base_figures = server.ready()?;
    let base_mem = server.mem()?;
    let base_kernel = KernelSockets::now()?;

    let drops_before = sockets::listen_drops();
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, server.port);
    let (conns, times) = loopback::connect(addr, n, cfg.client_threads, cfg.time_cap)
        .map_err(|e| server.explain(e))?;
    let listen_drops = match (drops_before, sockets::listen_drops()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let listen_backlog = sockets::listen_backlog(server.port);

    // Let the last tasks park in their reads, then read the idle figures;
    // a spindle server's once its compaction is done (`compaction_done`):
    // the default runtime compacts coroutines idle on a socket for
    // `DEFAULT_SOCKET_COMPACT_AFTER`, as Go's GC (run before its figures
    // are read) shrinks idle goroutines' stacks.
    std::thread::sleep(Duration::from_millis(300));
    let (idle_figures, compact_wait) = match at.server {
        Server::SpindleCompact => compaction_done(&mut server, cfg.compact_after, n)?,
        Server::Spindle => compaction_done(&mut server, spindle::DEFAULT_SOCKET_COMPACT_AFTER, n)?,
        Server::Go | Server::Threads => (server.ready()?, None),
    };
    let idle_mem = server.mem()?;
    let idle_kernel = KernelSockets::now()?;
    let rss = idle_mem.rss_bytes as i64 - base_mem.rss_bytes as i64;
    let pte = idle_mem.pte_bytes as i64 - base_mem.pte_bytes as i64;
    let tcp_mem = idle_kernel.tcp_mem_bytes - base_kernel.tcp_mem_bytes;
    let slab = match (idle_kernel.slab_bytes, base_kernel.slab_bytes) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    let per = |a: Option<i64>, b: Option<i64>| Some((a? - b?) as f64 / nf);
    let idle = Idle {
        stack_per_connection_bytes: per(idle_figures.stack, base_figures.stack),
        heap_per_connection_bytes: per(idle_figures.heap, base_figures.heap),
        compacted: idle_figures.compacted.map(|c| c.max(0) as u64),
        compact_wait_ms: compact_wait.map(|d| d.as_millis() as u64),
        baseline: base_mem,
        rss_delta_bytes: rss,
        pte_delta_bytes: pte,
        per_connection_bytes: (rss + pte) as f64 / nf,
        pte_per_connection_bytes: pte as f64 / nf,
        kernel: KernelDelta {
            tcp_sockets_delta: idle_kernel.tcp_inuse - base_kernel.tcp_inuse,
            tcp_mem_delta_bytes: tcp_mem,
            slab_delta_bytes: slab,
            per_connection_bytes: slab.map(|s| (s + tcp_mem) as f64 / nf),
        },
    };

    let mut echo = Vec::new();
    for &k in &cfg.active {
        let k = k.min(n);
        let rounds = cfg.round_trips.div_ceil(k).max(1);
        let warmup = (rounds / 10).max(1);
        let pass = |r| {
            loopback::echo(&conns, k as usize, r, cfg.client_threads, cfg.time_cap)
                .map_err(|e| server.explain(e))
        };
        pass(warmup)?;
        let cpu0 = (server.cpu()?, sockets::pid_cpu_seconds(std::process::id())?);
        let p = pass(rounds)?;
        let cpu1 = (server.cpu()?, sockets::pid_cpu_seconds(std::process::id())?);
        let pct = |q| loopback::percentile(&p.latencies_ns, q).unwrap_or(0) as f64;
        let done = p.latencies_ns.len() as u64;
        echo.push(Echo {
            active: k,
            rounds_per_connection: rounds,
            warmup_rounds: warmup,
            round_trips: done,
            capped: p.capped,
            wall_seconds: p.wall.as_secs_f64(),
            requests_per_second: done as f64 / p.wall.as_secs_f64().max(1e-9),
            p50_ns: pct(50.0),
            p99_ns: pct(99.0),
            max_ns: p.latencies_ns.last().copied().unwrap_or(0) as f64,
            server_cpu_seconds: cpu1.0 - cpu0.0,
            client_cpu_seconds: cpu1.1 - cpu0.1,
        });
    }
    drop(conns);
    server.stop();
    Ok(ServerRun {
        server: at.server,
        count: n,
        version,
        setup: Setup {
            connections_per_second: nf / times.ready_seconds.max(1e-9),
            times,
            listen_backlog,
            listen_drops,
        },
        idle,
        echo,
    })
}

/// Wait until a spindle server's compaction is done: N stacks (the
/// connections) compacted, or the count unchanged for half a second, at
/// least `after` + 500 ms after the set-up's last echo and at most 20 s.
/// Returns the last figures and how long the wait was (the 300 ms settle
/// included).
fn compaction_done(
    server: &mut ServerProcess,
    after: Duration,
    n: u64,
) -> Result<(Figures, Option<Duration>), String> {
    let t0 = std::time::Instant::now();
    let settled = Duration::from_millis(300);
    std::thread::sleep(after + Duration::from_millis(200));
    let mut last = server.ready()?;
    let mut same = 0;
    while t0.elapsed() < Duration::from_secs(20) {
        if last.compacted.is_some_and(|c| c >= n as i64) || same >= 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let now = server.ready()?;
        same = if now.compacted == last.compacted {
            same + 1
        } else {
            0
        };
        last = now;
    }
    Ok((last, Some(t0.elapsed() + settled)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_cap_bounds() {
        assert_eq!(parse_seconds("30"), Ok(30));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("601").is_err());
    }
}
