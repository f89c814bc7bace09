//! `balance`: how well CPU-bound coroutines spread over the workers once
//! they have started.
//!
//! spindle pins a coroutine to the worker that first ran it (sound
//! thread-locals, see `docs/notes/soundness.md`); only coroutines that have
//! not started are stolen. This measures what that costs when the load is
//! lopsided: on 2 workers, `heavy` coroutines start on one worker and
//! `light` on the other (each side keeps its worker busy until every
//! coroutine has started and parked at a gate, so the other cannot steal
//! them first). Then the gate opens and every coroutine burns the same fixed
//! amount of CPU work in 200 slices (about 100 µs each on an idle core) with
//! a `yield_now` between slices. The row is the wall time from the gate to
//! the last finish. With 8 and 2, a runtime that migrates started
//! coroutines approaches 5 coroutines' worth of work (10 over 2 workers); a
//! pinned one takes 8 (the busier worker's share). The even row (5 and 5)
//! is the control: both designs should take about 5.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle::sync::WaitGroup;
use spindle::Runtime;

use super::{Global, Measurement};
use crate::measure::row::{Op, RowSet, Timed};
use crate::measure::stats::measure;

/// `spindle-bench balance`: always 2 workers (the pattern is about two).
#[derive(Clone, Debug)]
pub struct BalanceConfig {
    pub repeat: usize,
    pub stack_max: usize,
}

impl BalanceConfig {
    pub fn new(g: &Global) -> BalanceConfig {
        BalanceConfig {
            repeat: g.repeat.unwrap_or(5),
            stack_max: g.stack_max,
        }
    }
}

impl Measurement for BalanceConfig {
    type Data = RowSet;
    const KEY: &'static str = "balance";

    fn runtime(&self) -> (usize, usize) {
        (2, self.stack_max)
    }

    fn run(&self) -> Result<RowSet, String> {
        run(self.repeat)
    }
}

/// Work between two `yield_now`s: steps of a multiply-add chain, about
/// 100 µs of one core (a fixed amount of work, not of time, so that a
/// worker preempted by another process is not credited for it).
const SLICE_STEPS: u64 = 300_000;
/// Slices each coroutine burns once the gate opens.
const SLICES: u32 = 200;

pub fn run(repeat: usize) -> Result<RowSet, String> {
    let mut rows = Vec::new();
    for (name, label, heavy, light) in [
        (
            "balance_4to1",
            "8 + 2 CPU-bound coroutines, started 8:2 (2 workers)",
            8,
            2,
        ),
        (
            "balance_even",
            "5 + 5 CPU-bound coroutines, started 5:5 (2 workers)",
            5,
            5,
        ),
    ] {
        let s = measure(repeat, || lopsided(heavy, light))?;
        rows.push(Timed::timed(Op::new(name, label, 1), Ok(s)));
    }
    Ok(RowSet::new(
        "balance",
        &format!("run (wall time, gate to last finish; {SLICES} slices per coroutine)"),
        repeat,
        rows,
    ))
}

/// Burn one slice of CPU (no yield, no blocking).
fn burn() {
    let mut x = std::hint::black_box(1u64);
    for _ in 0..SLICE_STEPS {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    std::hint::black_box(x);
}

/// Spin until `flag` is set; `Err` after a long while (a broken runtime).
fn spin_until(what: &str, ok: impl Fn() -> bool) -> Result<(), String> {
    let t0 = Instant::now();
    while !ok() {
        if t0.elapsed() > Duration::from_secs(30) {
            return Err(format!("balance: {what} did not happen in 30 s"));
        }
        std::hint::spin_loop();
    }
    Ok(())
}

/// One run: ns from the gate opening to the last coroutine finishing.
fn lopsided(heavy: usize, light: usize) -> Result<f64, String> {
    let rt = Runtime::builder()
        .workers(2)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(move || {
        let gate = WaitGroup::new();
        gate.add(1);
        let started = Arc::new(AtomicUsize::new(0));
        let up = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        // One side: wait until the other side runs too (so the two sides
        // are on different workers), start `n` children here, and keep
        // this worker busy until every child of both sides has started.
        let all = heavy + light;
        let side = |me: usize, n: usize| {
            let (gate, started, up) = (gate.clone(), started.clone(), up.clone());
            let mine = Arc::new(AtomicUsize::new(0));
            spindle::spawn(move || -> Result<Vec<_>, String> {
                up[me].store(true, Ordering::SeqCst);
                spin_until("both sides running", || up[1 - me].load(Ordering::SeqCst))?;
                let children: Vec<_> = (0..n)
                    .map(|_| {
                        let (gate, started, mine) = (gate.clone(), started.clone(), mine.clone());
                        spindle::spawn(move || {
                            mine.fetch_add(1, Ordering::SeqCst);
                            started.fetch_add(1, Ordering::SeqCst);
                            gate.wait();
                            for _ in 0..SLICES {
                                burn();
                                spindle::yield_now();
                            }
                        })
                    })
                    .collect();
                // Let our children start here (they park at the gate).
                while mine.load(Ordering::SeqCst) < n || started.load(Ordering::SeqCst) < all {
                    spindle::yield_now();
                }
                Ok(children)
            })
        };
        let first = side(0, heavy);
        let second = side(1, light);
        let mut children = first.join().map_err(|_| "balance: a side panicked")??;
        children.extend(second.join().map_err(|_| "balance: a side panicked")??);
        let t0 = Instant::now();
        gate.done();
        for c in children {
            c.join().map_err(|_| "balance: a coroutine panicked")?;
        }
        Ok(t0.elapsed().as_nanos() as f64)
    })
}
