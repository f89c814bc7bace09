//! `fanout`: spawn N coroutines, then wait for all of them, as a user
//! writes it.
//!
//! ```text
//! wg.add(n); for _ in 0..n { spawn(move || wg.done()) }; wg.wait()
//! ```
//!
//! A server fanning out a burst of requests does this, and so does a
//! parallel loop. Unlike `spawn`'s rows, which measure a pool warmed on
//! purpose, each sample here starts a *fresh* runtime and times two rounds
//! of N = 10^6 on it:
//!
//! * **first round**: every stack comes from a fresh slot unless an
//!   earlier coroutine of the same round has already finished and handed
//!   its stack back: what a program's first burst costs;
//! * **warm round**: the second round on the same runtime, with the pool
//!   holding whatever the first round left there.
//!
//! The children are spawned with `spindle::spawn`, as the loop above is
//! written (not `Builder::spawn`, which takes each child's stack at spawn so
//! that it can return the error: `runtime/src/sched/spawn.rs`). A child
//! that cannot get a stack when it first runs never runs; its share of the
//! wait group is given back when the runtime drops its function
//! ([`Share`]), so the round ends and reports the failure instead of
//! hanging.
//!
//! Each sample runs in a fresh child process (this binary with
//! `--measuring-child`), so no earlier runtime of this process has warmed
//! the allocator for it. The Go reference does the same (`go f();
//! wg.Wait()`, a fresh process per sample, GOMAXPROCS = workers), so the
//! two are compared like for like.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use spindle::sync::WaitGroup;
use spindle::Runtime;

use super::{Global, Measurement};
use crate::cli::FanoutArgs;
use crate::measure::row::{Op, Row, RowSet, Timed};
use crate::measure::stats::{runs, Summary};
use crate::measure::{child, preflight};
use crate::present::{progress, units};

#[derive(Clone, Debug)]
pub struct FanoutConfig {
    pub count: u64,
    pub workers: usize,
    pub stack_max: usize,
    pub repeat: usize,
    /// This process is a child: take one sample here, no preflight.
    pub measuring_child: bool,
}

impl FanoutConfig {
    pub fn new(a: &FanoutArgs, g: &Global) -> FanoutConfig {
        FanoutConfig {
            count: a.count,
            workers: a.workers,
            stack_max: a.stack_max.unwrap_or(g.stack_max),
            repeat: g.repeat.unwrap_or(3),
            measuring_child: a.measuring_child,
        }
    }

    /// `fanout` for the default suite, `compare` and `report`.
    pub fn at(count: u64, workers: usize, stack_max: usize, repeat: usize) -> FanoutConfig {
        FanoutConfig {
            count,
            workers,
            stack_max,
            repeat,
            measuring_child: false,
        }
    }

    /// The two rows, as `compare` names them for Go too.
    fn ops(&self) -> (Op, Op) {
        let w = self.workers;
        (
            Op::new(
                "fanout_fresh",
                &format!("fan-out, first round on a fresh runtime ({w} workers)"),
                self.count,
            ),
            Op::new(
                "fanout_warm",
                &format!("fan-out, second round, pool warm ({w} workers)"),
                self.count,
            ),
        )
    }
}

impl Measurement for FanoutConfig {
    type Data = RowSet;
    const KEY: &'static str = "fanout";

    fn runtime(&self) -> (usize, usize) {
        (self.workers, self.stack_max)
    }

    /// R fresh runtimes, two rounds each. If N stacks at once do not fit,
    /// both rows are skipped with the reason.
    fn run(&self) -> Result<RowSet, String> {
        let n = self.count;
        let (fresh, warm) = self.ops();
        let what = format!("fan-out of {}", units::count(n));
        let samples = if self.measuring_child {
            two_rounds(self).map(|pair| vec![pair])
        } else {
            preflight::coroutines(&what, n, self.stack_max, self.workers).and_then(|()| {
                progress::phase(&format!(
                    "fanout: {} coroutines, two rounds",
                    units::count(n)
                ));
                runs(self.repeat, || two_rounds_in_child(self))
            })
        };
        progress::clear();
        let rows = match samples {
            Ok(pairs) => {
                let (a, b): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
                vec![
                    Timed::timed(fresh, Ok(Summary::of(a))),
                    Timed::timed(warm, Ok(Summary::of(b))),
                ]
            }
            Err(why) => vec![
                Timed::timed(fresh, Err(why.clone())),
                Timed::timed(warm, Err(why)),
            ],
        };
        Ok(RowSet::new("fanout", "coroutine", self.repeat, rows))
    }
}

/// [`two_rounds`] in a fresh child process.
fn two_rounds_in_child(cfg: &FanoutConfig) -> Result<(f64, f64), String> {
    let doc = child::one_sample("fanout", (cfg.count, cfg.workers, cfg.stack_max), &[])?;
    let set: RowSet = serde_json::from_value(doc["fanout"].clone())
        .map_err(|e| format!("unexpected fanout rows from the child: {e}"))?;
    match (set.median("fanout_fresh"), set.median("fanout_warm")) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(match set.rows.first() {
            Some(Row::Skipped { skipped, .. }) => skipped.clone(),
            _ => "the child measured no fan-out".into(),
        }),
    }
}

/// One fresh runtime: ns per coroutine of its first and second round.
fn two_rounds(cfg: &FanoutConfig) -> Result<(f64, f64), String> {
    let rt = Runtime::builder()
        .workers(cfg.workers)
        .stack_max(cfg.stack_max)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let n = cfg.count;
    rt.block_on(move || Ok((fan_out(n)?, fan_out(n)?)))
}

/// Children whose function was dropped without running (this round).
static NOT_RUN: AtomicU64 = AtomicU64::new(0);

/// One child's part of the wait group: `done` when dropped, whether the
/// child ran (its function drops it on return) or never could start (the
/// runtime drops its function). Either way exactly one `done`, as in
/// `spawn(move || wg.done())`.
struct Share {
    wg: WaitGroup,
    ran: bool,
}

impl Drop for Share {
    fn drop(&mut self) {
        if !self.ran {
            NOT_RUN.fetch_add(1, Ordering::Relaxed);
        }
        self.wg.done();
    }
}

/// ns per coroutine of one round: `wg.add(n); for _ in 0..n { spawn(move
/// || wg.done()) }; wg.wait()` (also `spawn`'s batch rows).
pub fn fan_out(n: u64) -> Result<f64, String> {
    NOT_RUN.store(0, Ordering::Relaxed);
    let wg = WaitGroup::new();
    wg.add(n as usize);
    let t0 = Instant::now();
    for _ in 0..n {
        let share = Share {
            wg: wg.clone(),
            ran: false,
        };
        drop(spindle::spawn(move || {
            // Binding the whole `share` moves all of it into the closure.
            let mut share = share;
            share.ran = true;
        }));
    }
    wg.wait();
    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
    match NOT_RUN.load(Ordering::Relaxed) {
        0 => Ok(ns),
        k => Err(format!(
            "{} of {} coroutines could not start (no stack; the runtime's message says why)",
            units::count(k),
            units::count(n)
        )),
    }
}
