//! `switch`: what it costs to hand control from one task to another.
//!
//! Every row reports ns per *one-way* hand-off (A stops, B runs), so rows
//! are comparable; a round trip is two hand-offs. From cheapest to dearest:
//!
//! 1. **raw corosensei**: `resume` into a coroutine that immediately
//!    `suspend`s: the bare register save/restore, no scheduler. Every spindle
//!    switch costs at least this.
//! 2. **`yield_now` ping-pong**: two coroutines on a one-worker runtime take
//!    turns yielding: switch + run-queue push/pop.
//! 3. **rendezvous channel ping-pong, 1 worker**: A sends to B and waits
//!    for the echo. Each hand-off is a channel operation that parks one side
//!    and wakes the other (into `runnext`, so it runs next on this worker).
//! 4. **the same with 2 workers**: the pair may be split across workers,
//!    which adds cross-thread wake-ups.
//! 5. **OS threads over pipes** ([`pipes`]), pinned to one
//!    CPU, then across CPUs: the kernel's context switch, for comparison.
//!
//! Each row runs an untimed warm-up, then R timed samples of n hand-offs.
//!
//! These loops are compiled the way a crate that depends on `spindle` gets
//! them: the workspace's release profile is Cargo's default (no LTO, 16
//! codegen units), so no call into `spindle` is inlined that a user's
//! build could not inline too. `--row` runs one row alone, to count its
//! instructions under callgrind; `docs/tools/downstream/count.sh` compares
//! those counts with the same loops in a crate outside the workspace.

use std::time::Instant;

use corosensei::{Coroutine, Yielder};
use spindle::Runtime;

use super::{Global, Measurement};
use crate::cli::SwitchArgs;
use crate::measure::pipes;
use crate::measure::row::{Op, RowSet, Timed};
use crate::measure::stats::{measure, Summary};
use crate::present::progress;

/// The rows' names, in the order they run (`--row` takes one of them).
pub const ROWS: [&str; 7] = [
    "raw_resume_suspend",
    "yield_pingpong",
    "chan_pingpong_1worker",
    "chan_pingpong_2workers",
    "select_pingpong_1worker",
    "thread_pipe_same_cpu",
    "thread_pipe_cross_cpu",
];

#[derive(Clone, Debug)]
pub struct SwitchConfig {
    /// Hand-offs per sample for coroutine rows.
    pub n: u64,
    /// Hand-offs per sample for OS-thread rows (each costs microseconds).
    pub thread_n: u64,
    pub repeat: usize,
    /// Run only the row of this name (one of [`ROWS`]); all rows if `None`.
    pub row: Option<String>,
}

impl SwitchConfig {
    pub fn new(a: &SwitchArgs, g: &Global) -> SwitchConfig {
        SwitchConfig {
            n: a.n,
            thread_n: a.thread_n,
            repeat: g.repeat.unwrap_or(5),
            row: a.row.clone(),
        }
    }

    /// Is the row called `name` to run?
    fn wants(&self, name: &str) -> bool {
        self.row.as_deref().is_none_or(|r| r == name)
    }
}

impl Measurement for SwitchConfig {
    type Data = RowSet;
    const KEY: &'static str = "switch";

    /// Each row names its own worker count; the header shows the default.
    fn runtime(&self) -> (usize, usize) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores, spindle::DEFAULT_STACK_MAX)
    }

    fn run(&self) -> Result<RowSet, String> {
        run(self)
    }
}

fn warm(n: u64) -> u64 {
    n.min(10_000)
}

/// A row run on a runtime: name, label, workers, one sample.
type RuntimeRow = (&'static str, &'static str, usize, fn(u64) -> f64);

/// Run every row.
pub fn run(cfg: &SwitchConfig) -> Result<RowSet, String> {
    let mut set = run_coroutine_rows(cfg)?;
    set.rows.extend(thread_rows(cfg)?);
    progress::clear();
    Ok(set)
}

/// The four coroutine rows only (what `compare` puts next to Go).
pub fn run_coroutine_rows(cfg: &SwitchConfig) -> Result<RowSet, String> {
    let (n, r) = (cfg.n, cfg.repeat);
    let mut rows = Vec::new();

    if cfg.wants(ROWS[0]) {
        progress::phase("switch: raw corosensei");
        raw_resume_suspend(warm(n));
        let s = measure(r, || Ok::<_, String>(raw_resume_suspend(n)))?;
        rows.push(Timed::timed(
            Op::new(ROWS[0], "raw corosensei resume/suspend", n),
            Ok(s),
        ));
    }
    let runtime_rows: [RuntimeRow; 4] = [
        (ROWS[1], "yield_now ping-pong, 1 worker", 1, yield_pingpong),
        (
            ROWS[2],
            "rendezvous channel ping-pong, 1 worker",
            1,
            chan_pingpong,
        ),
        (
            ROWS[3],
            "rendezvous channel ping-pong, 2 workers",
            2,
            chan_pingpong,
        ),
        (
            ROWS[4],
            "the same, receiving with select! over 2 channels, 1 worker",
            1,
            select_pingpong,
        ),
    ];
    for (name, label, workers, sample) in runtime_rows {
        if !cfg.wants(name) {
            continue;
        }
        progress::phase(&format!("switch: {label}"));
        let s = on_runtime(workers, n, r, sample)?;
        rows.push(Timed::timed(Op::new(name, label, n), Ok(s)));
    }
    progress::clear();
    Ok(RowSet::new("switch", "one-way hand-off", r, rows))
}

/// OS threads ping-ponging over pipes: same CPU, then across two CPUs.
fn thread_rows(cfg: &SwitchConfig) -> Result<Vec<Timed>, String> {
    let same = (ROWS[5], "OS threads, pipe, same CPU");
    let cross = (ROWS[6], "OS threads, pipe, across CPUs");
    let mut rows = Vec::new();
    if !cfg.wants(same.0) && !cfg.wants(cross.0) {
        return Ok(rows);
    }
    progress::phase("switch: OS threads over pipes");
    let (tn, r) = (cfg.thread_n, cfg.repeat);
    let cpus = pipes::allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
    let c0 = cpus
        .first()
        .copied()
        .ok_or("no CPU in this process's affinity mask")?;
    if cfg.wants(same.0) {
        pipes::pingpong(warm(tn), (c0, c0))?;
        let s = measure(r, || pipes::pingpong(tn, (c0, c0)))?;
        let label = format!("{} (cpu {c0})", same.1);
        rows.push(Timed::timed(Op::new(same.0, &label, tn), Ok(s)));
    }
    if !cfg.wants(cross.0) {
        return Ok(rows);
    }
    match cpus.get(1) {
        Some(&c1) => {
            pipes::pingpong(warm(tn), (c0, c1))?;
            let s = measure(r, || pipes::pingpong(tn, (c0, c1)))?;
            let label = format!("{} (cpu {c0} and {c1})", cross.1);
            rows.push(Timed::timed(Op::new(cross.0, &label, tn), Ok(s)));
        }
        None => rows.push(Timed::timed(
            Op::new(cross.0, cross.1, tn),
            Err("only one CPU is available to this process (see taskset/cgroup cpuset)".into()),
        )),
    }
    Ok(rows)
}

/// ns per one-way switch: one resume+suspend pair is two switches.
fn raw_resume_suspend(n: u64) -> f64 {
    let pairs = (n / 2).max(1);
    let mut co = Coroutine::new(move |y: &Yielder<(), ()>, ()| {
        for _ in 0..pairs {
            y.suspend(());
        }
    });
    let t0 = Instant::now();
    for _ in 0..pairs {
        std::hint::black_box(co.resume(()));
    }
    let elapsed = t0.elapsed();
    std::hint::black_box(co.resume(())); // let it return
    elapsed.as_nanos() as f64 / (2 * pairs) as f64
}

/// Build a `workers`-worker runtime and, inside one `block_on`, run `sample`
/// once untimed as a warm-up and then `repeat` times.
fn on_runtime(
    workers: usize,
    n: u64,
    repeat: usize,
    sample: fn(u64) -> f64,
) -> Result<Summary, String> {
    let rt = Runtime::builder()
        .workers(workers)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let samples = rt.block_on(move || {
        sample(warm(n));
        (0..repeat).map(|_| sample(n)).collect::<Vec<f64>>()
    });
    Ok(Summary::of(samples))
}

/// Two coroutines yield to each other; ns per yield.
fn yield_pingpong(n: u64) -> f64 {
    let each = (n / 2).max(1);
    let body = move || {
        for _ in 0..each {
            spindle::yield_now();
        }
    };
    let t0 = Instant::now();
    let a = spindle::spawn(body);
    let b = spindle::spawn(body);
    let _ = a.join();
    let _ = b.join();
    t0.elapsed().as_nanos() as f64 / (2 * each) as f64
}

/// This coroutine sends, an echo coroutine sends back; ns per one-way.
fn chan_pingpong(n: u64) -> f64 {
    let rounds = (n / 2).max(1);
    let (ping_tx, ping_rx) = spindle::chan::bounded::<u64>(0);
    let (pong_tx, pong_rx) = spindle::chan::bounded::<u64>(0);
    let echo = spindle::spawn(move || {
        while let Ok(v) = ping_rx.recv() {
            if pong_tx.send(v).is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    for i in 0..rounds {
        if ping_tx.send(i).is_err() || pong_rx.recv().is_err() {
            break;
        }
    }
    let elapsed = t0.elapsed();
    drop(ping_tx);
    let _ = echo.join();
    elapsed.as_nanos() as f64 / (2 * rounds) as f64
}

/// `chan_pingpong` with every receive a `select!` over the ping (or pong)
/// channel and a second channel nobody sends on: what a select costs over a
/// plain receive when it has to park on two queues; ns per one-way.
fn select_pingpong(n: u64) -> f64 {
    let rounds = (n / 2).max(1);
    let (ping_tx, ping_rx) = spindle::chan::bounded::<u64>(0);
    let (pong_tx, pong_rx) = spindle::chan::bounded::<u64>(0);
    let (_idle_tx, idle_rx) = spindle::chan::bounded::<u64>(0);
    let idle = idle_rx.clone();
    let echo = spindle::spawn(move || loop {
        let v = spindle::select! {
            recv(ping_rx) -> v => v,
            recv(idle) -> v => v,
        };
        if v.map(|v| pong_tx.send(v)).is_err() {
            break;
        }
    });
    let t0 = Instant::now();
    for i in 0..rounds {
        if ping_tx.send(i).is_err() {
            break;
        }
        let back = spindle::select! {
            recv(pong_rx) -> v => v,
            recv(idle_rx) -> v => v,
        };
        if back.is_err() {
            break;
        }
    }
    let elapsed = t0.elapsed();
    drop(ping_tx);
    let _ = echo.join();
    elapsed.as_nanos() as f64 / (2 * rounds) as f64
}
