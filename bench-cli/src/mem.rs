//! `mem`: what one parked coroutine costs the machine.
//!
//! The workload is Go's: start N coroutines that each block in `recv` on a
//! rendezvous channel (one shared channel, or one each), wait until all of
//! them are parked, and compare the process's memory before and after.
//!
//! * **RSS delta** (`/proc/self/statm`): every page the kernel really gave
//!   us — touched stack pages and heap alike;
//! * **VmPTE delta**: the page tables that map those pages. RSS leaves them
//!   out, but they are real memory: a stack slot lives in its own 256 KiB of
//!   address space, so page tables are a visible part of the bill;
//! * **total = RSS + page tables**, divided by N: the headline figure;
//! * inside RSS, two explanations: resident stack pages (by `mincore` over
//!   all slots) and runtime heap (task control blocks, channel waiter
//!   records), counted by the [`alloc`](crate::alloc) wrapper.
//!
//! The spawn loop is timed (until every coroutine has started), and so is
//! release-and-join: dropping the senders closes the channel(s), and a
//! `WaitGroup` counts the coroutines out. Join handles are dropped at spawn
//! (detached), so no `Vec` of handles pollutes the heap figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use spindle::chan::{self, Sender};
use spindle::sync::WaitGroup;
use spindle::Runtime;

use crate::procfs::ProcMem;
use crate::progress::Progress;
use crate::{alloc, preflight, units};

#[derive(Clone, Debug)]
pub struct MemConfig {
    pub count: u64,
    pub workers: usize,
    pub stack_max: usize,
    pub per_coroutine_channel: bool,
}

/// Bytes per coroutine, by source.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PerUnit {
    pub rss_bytes: f64,
    pub pte_bytes: f64,
    pub total_bytes: f64,
    pub stack_resident_bytes: f64,
    pub heap_bytes: f64,
    pub heap_blocks: f64,
}

/// How many parked tasks fit in `memory_gib` GiB at the measured total per
/// task. Shared by `mem` (coroutines) and `threads` (OS threads), hence the
/// neutral name; older result files called the field `coroutines`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fit {
    pub memory_gib: u64,
    #[serde(alias = "coroutines")]
    pub tasks: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemResult {
    pub count: u64,
    pub workers: usize,
    pub stack_max: usize,
    pub channel: String,
    pub guard_mode: String,
    pub rss_delta_bytes: i64,
    pub pte_delta_bytes: i64,
    pub heap_delta_bytes: i64,
    pub heap_blocks_delta: i64,
    pub resident_stack_delta_bytes: i64,
    pub slots: usize,
    pub reserved_bytes: usize,
    pub per_coroutine: PerUnit,
    pub spawn_ns_per_coroutine: f64,
    pub release_join_ns_total: f64,
    pub release_join_ns_per_coroutine: f64,
    pub fits: Vec<Fit>,
}

/// One row of a `mem` table: measured, or skipped with the reason.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MemRow {
    Measured(MemResult),
    Skipped { count: u64, skipped: String },
}

/// Measure in this process.
pub fn measure(cfg: &MemConfig) -> Result<MemResult, String> {
    let what = format!("mem --count {}", units::count(cfg.count));
    preflight::coroutines(&what, cfg.count, cfg.stack_max, cfg.workers)?;
    let rt = Runtime::builder()
        .workers(cfg.workers)
        .stack_max(cfg.stack_max)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let rt = Arc::new(rt);
    let (inner_rt, inner_cfg) = (rt.clone(), cfg.clone());
    // The driver (spawn loop, measurements, tables) gets a stack of its own
    // size: --stack-max is for the parked coroutines, and may be too small
    // for the driver's frames.
    let driver = spindle::Builder::new()
        .name("mem-driver")
        .stack_max(spindle::DEFAULT_STACK_MAX.max(cfg.stack_max))
        .spawn_on(&rt, move || park_all(&inner_rt, &inner_cfg))
        .map_err(|e| format!("cannot spawn the driver coroutine: {e}"))?;
    match driver.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Measure in a fresh child process (`mem ... --json --repeat 1`).
pub fn measure_isolated(cfg: &MemConfig) -> Result<MemResult, String> {
    let mut args = vec![
        "mem".to_string(),
        "--count".into(),
        cfg.count.to_string(),
        "--workers".into(),
        cfg.workers.to_string(),
        "--stack-max".into(),
        cfg.stack_max.to_string(),
        "--json".into(),
        "--repeat".into(),
        "1".into(),
    ];
    if cfg.per_coroutine_channel {
        args.push("--per-coroutine-channel".into());
    }
    let doc: serde_json::Value = crate::child::run_json(&args)?;
    let row = doc
        .get("mem")
        .and_then(|m| m.get(0))
        .cloned()
        .ok_or("the child printed no mem row")?;
    serde_json::from_value(row).map_err(|e| format!("unexpected mem row from the child: {e}"))
}

/// Runs inside `block_on`: spawn, measure, release.
fn park_all(rt: &Runtime, cfg: &MemConfig) -> Result<MemResult, String> {
    let n = cfg.count as usize;
    let per = cfg.per_coroutine_channel;
    let started = WaitGroup::new();
    let finished = WaitGroup::new();
    started.add(n);
    finished.add(n);
    let (shared_tx, shared_rx) = chan::bounded::<()>(0);
    // Allocated before the baseline, so it is not counted as runtime heap.
    let mut senders: Vec<Sender<()>> = Vec::with_capacity(if per { n } else { 0 });

    let stack_before = resident_stacks(rt)? as i64;
    let before = ProcMem::now().map_err(|e| e.to_string())?;
    alloc::start();
    let mut progress = Progress::new("spawning", cfg.count);
    let t0 = Instant::now();
    let mut failure = None;
    for i in 0..n {
        let rx = if per {
            let (tx, rx) = chan::bounded::<()>(0);
            senders.push(tx);
            rx
        } else {
            shared_rx.clone()
        };
        let (s, f) = (started.clone(), finished.clone());
        let spawned = spindle::Builder::new().spawn(move || {
            s.done();
            let _ = rx.recv();
            f.done();
        });
        if let Err(e) = spawned {
            failure = Some(format!("spawning coroutine {} of {n} failed: {e}", i + 1));
            for _ in i..n {
                started.done();
                finished.done();
            }
            break;
        }
        if i % 4096 == 0 {
            progress.tick(i as u64);
        }
    }
    started.wait();
    let spawn_elapsed = t0.elapsed();
    progress.finish();

    let measured = match failure {
        Some(e) => Err(e),
        None => {
            // Let the last coroutines go from `done()` to parked in `recv`.
            spindle::sleep(Duration::from_millis(50));
            let heap = alloc::stop();
            ProcMem::now()
                .map_err(|e| e.to_string())
                .and_then(|after| Ok((heap, after, rt.stats(), resident_stacks(rt)?)))
        }
    };
    alloc::stop();

    let t1 = Instant::now();
    drop(shared_tx);
    drop(senders);
    finished.wait();
    let release = t1.elapsed().as_nanos() as f64;

    let (heap, after, stats, stack_after) = measured?;
    let nf = n as f64;
    let rss = after.rss as i64 - before.rss as i64;
    let pte = after.pte as i64 - before.pte as i64;
    let stack = stack_after as i64 - stack_before;
    let total = (rss + pte) as f64 / nf;
    Ok(MemResult {
        count: cfg.count,
        workers: stats.workers,
        stack_max: stats.stack_max,
        channel: if per { "per-coroutine" } else { "shared" }.into(),
        guard_mode: stats.guard_mode.name().into(),
        rss_delta_bytes: rss,
        pte_delta_bytes: pte,
        heap_delta_bytes: heap.bytes,
        heap_blocks_delta: heap.blocks,
        resident_stack_delta_bytes: stack,
        slots: stats.slots,
        reserved_bytes: stats.reserved_bytes,
        per_coroutine: PerUnit {
            rss_bytes: rss as f64 / nf,
            pte_bytes: pte as f64 / nf,
            total_bytes: total,
            stack_resident_bytes: stack as f64 / nf,
            heap_bytes: heap.bytes as f64 / nf,
            heap_blocks: heap.blocks as f64 / nf,
        },
        spawn_ns_per_coroutine: spawn_elapsed.as_nanos() as f64 / nf,
        release_join_ns_total: release,
        release_join_ns_per_coroutine: release / nf,
        fits: fits(total),
    })
}

/// The seeds' table: how many fit in 1, 8 and 128 GiB at `per_unit` bytes.
pub fn fits(per_unit: f64) -> Vec<Fit> {
    [1u64, 8, 128]
        .into_iter()
        .map(|gib| Fit {
            memory_gib: gib,
            tasks: if per_unit > 0.0 {
                ((gib << 30) as f64 / per_unit) as u64
            } else {
                0
            },
        })
        .collect()
}

/// Resident stack bytes by `mincore`, or the reason it cannot be measured.
fn resident_stacks(rt: &spindle::Runtime) -> Result<usize, String> {
    rt.resident_stack_bytes()
        .map_err(|e| format!("cannot measure resident stack pages (mincore): {e}"))
}
