//! `spawn`: what a short-lived coroutine costs from birth to death.
//!
//! * **spawn+join, warm**: spawn a coroutine that does nothing and join it,
//!   N times in a row. After an untimed warm-up of 10^4 the stack pool holds
//!   stacks, so a spawn is: take a pooled stack, allocate the task block,
//!   queue it; the join parks us until it has run. No system call.
//! * **spawn batch, warm**: spawn all N, then wait for all (a `WaitGroup`,
//!   as Go's reference does): fan-out. The warm-up is one untimed batch of N,
//!   so the pool then holds enough stacks for every sample.
//! * **spawn batch, cold**: the same on a fresh runtime each sample: a
//!   coroutine gets a fresh slot (carved from a new slab, its guard page
//!   installed: a system call each) unless one that finished earlier in the
//!   batch has handed its stack back.
//!
//! Every row spawns with `spindle::spawn`, as a user writes it and as Go's
//! `go f()` does (neither can fail at the call); the batch rows are
//! [`fanout`](super::fanout)'s round at this N. `Builder::spawn` takes the
//! stack at the call instead, so that it can return the error
//! (`runtime/src/sched/spawn.rs`), and costs more per spawn.

use std::time::Instant;

use spindle::Runtime;

use super::{Global, Measurement};
use crate::cli::SpawnArgs;
use crate::measure::preflight;
use crate::measure::row::{Op, RowSet, Timed};
use crate::measure::stats::{measure, Summary};
use crate::present::{progress, units};

#[derive(Clone, Debug)]
pub struct SpawnConfig {
    pub count: u64,
    pub workers: usize,
    pub stack_max: usize,
    pub repeat: usize,
}

impl SpawnConfig {
    pub fn new(a: &SpawnArgs, g: &Global) -> SpawnConfig {
        SpawnConfig {
            count: a.count,
            workers: a.workers,
            stack_max: a.stack_max.unwrap_or(g.stack_max),
            repeat: g.repeat.unwrap_or(5),
        }
    }
}

impl Measurement for SpawnConfig {
    type Data = RowSet;
    const KEY: &'static str = "spawn";

    fn runtime(&self) -> (usize, usize) {
        (self.workers, self.stack_max)
    }

    fn run(&self) -> Result<RowSet, String> {
        run(self)
    }
}

fn runtime(cfg: &SpawnConfig) -> Result<Runtime, String> {
    Runtime::builder()
        .workers(cfg.workers)
        .stack_max(cfg.stack_max)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Run every row. The batch rows need N stacks at once; if preflight says
/// they do not fit, they are skipped with the reason.
pub fn run(cfg: &SpawnConfig) -> Result<RowSet, String> {
    let (n, r) = (cfg.count, cfg.repeat);
    let mut rows = Vec::new();
    let rt = runtime(cfg)?;

    progress::phase("spawn: spawn+join");
    let samples = rt.block_on(move || -> Result<Vec<f64>, String> {
        spawn_join(10_000)?;
        (0..r).map(|_| spawn_join(n)).collect()
    })?;
    let label = format!("spawn+join, warm ({} workers)", cfg.workers);
    rows.push(Timed::timed(
        Op::new("spawn_join_warm", &label, n),
        Ok(Summary::of(samples)),
    ));

    let batch = Op::new(
        "spawn_batch_warm",
        &format!("spawn batch, warm ({} workers)", cfg.workers),
        n,
    );
    let cold = Op::new(
        "spawn_batch_cold",
        &format!("spawn batch, cold: fresh runtime ({} workers)", cfg.workers),
        n,
    );
    let what = format!("spawn batch of {}", units::count(n));
    if let Err(why) = preflight::coroutines(&what, n, cfg.stack_max, cfg.workers) {
        rows.push(Timed::timed(batch, Err(why.clone())));
        rows.push(Timed::timed(cold, Err(why)));
    } else {
        progress::phase("spawn: batch, warm");
        let samples = rt.block_on(move || -> Result<Vec<f64>, String> {
            spawn_batch(n)?;
            (0..r).map(|_| spawn_batch(n)).collect()
        })?;
        rows.push(Timed::timed(batch, Ok(Summary::of(samples))));
        drop(rt);

        progress::phase("spawn: batch, cold");
        let s = measure(r, || {
            let fresh = runtime(cfg)?;
            fresh.block_on(move || spawn_batch(n))
        })?;
        rows.push(Timed::timed(cold, Ok(s)));
    }
    progress::clear();
    Ok(RowSet::new("spawn", "coroutine", r, rows))
}

/// ns per sequential spawn+join of an empty coroutine. The coroutine
/// cannot panic, so a join error means it never ran (no stack, or the
/// runtime shutting down; the runtime's message says why).
fn spawn_join(n: u64) -> Result<f64, String> {
    let t0 = Instant::now();
    for _ in 0..n {
        if spindle::spawn(|| ()).join().is_err() {
            return Err(
                "a coroutine could not start (no stack; the runtime's message says why)".into(),
            );
        }
    }
    Ok(t0.elapsed().as_nanos() as f64 / n as f64)
}

/// ns per coroutine when all n are spawned before any is waited for: the
/// fan-out's round.
use super::fanout::fan_out as spawn_batch;
