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
//!   records), counted by the [`alloc`] wrapper.
//!
//! With `--reused`, the slots are not fresh: a warm-up round first runs N
//! coroutines that each touch 12 KiB of stack and end (spawn all, wait for
//! all), and only then are N parked. The baseline is taken before the
//! warm-up, so whatever the warm-up leaves resident (pooled stacks' pages,
//! cached task blocks) is part of the bill, as it is in a long-running
//! program. The Go reference does the same with goroutines.
//!
//! With `--breakdown`, snapshots of memory by kind (stack slots, labels,
//! heap, other mappings, page tables, malloc's figures) are taken at the
//! baseline, after the warm-up and with all parked (`measure/breakdown.rs`),
//! outside the headline readings.
//!
//! Preflight runs once per `mem` command, in the process that decides to
//! measure: a child started for a fresh heap (`--measuring-child`) trusts its
//! parent's check.
//!
//! The spawn loop is timed (until every coroutine has started), and so is
//! release-and-join: dropping the senders closes the channel(s), and a
//! `WaitGroup` counts the coroutines out. Join handles are dropped at spawn
//! (detached), so no `Vec` of handles pollutes the heap figure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use spindle::chan::{self, Sender};
use spindle::sync::WaitGroup;
use spindle::Runtime;

use super::{Global, Measurement};
use crate::cli::MemArgs;
use crate::measure::breakdown::{Phase, Snapshot};
use crate::measure::procfs::ProcMem;
use crate::measure::row::{Count, Row};
use crate::measure::{alloc, child, preflight, stats};
use crate::present::progress::Progress;
use crate::present::{progress, units};

/// Bytes of stack each coroutine of the `--reused` warm-up round touches.
pub const WARM_TOUCH: usize = 12 << 10;

#[derive(Clone, Debug)]
pub struct MemConfig {
    pub count: u64,
    pub workers: usize,
    pub stack_max: usize,
    pub per_coroutine_channel: bool,
    /// Park in slots reused after a warm-up round (see the module docs).
    pub reused: bool,
    /// `--breakdown`: memory by kind at each phase.
    pub breakdown: bool,
    /// R runs; above 1, each in a fresh child process.
    pub repeat: usize,
    /// This process is a child its parent started: preflight was done.
    pub measuring_child: bool,
    /// `--compact-after`: compaction on (see [`CompactFigures`]).
    pub compact_after: Option<Duration>,
}

/// With `--compact-after`: what compaction did, and what a wake costs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompactFigures {
    pub after_ns: u64,
    /// Stacks compacted when memory was measured.
    pub compacted: u64,
    /// Heap held by their buffers then (part of the heap figure).
    pub buffer_bytes: u64,
    /// Coroutines whose 256-byte local was wrong after waking (must be 0).
    pub local_check_failures: u64,
    /// If not every stack was compacted 1 s after the last park: RSS plus
    /// page tables per coroutine once all were (or after 60 s), and when.
    #[serde(default)]
    pub settled_total_bytes: Option<f64>,
    #[serde(default)]
    pub settled_after_ms: Option<f64>,
    /// Median wake latency (send to the woken coroutine running) of one
    /// compacted coroutine, and of one parked but not compacted.
    pub wake_compacted_ns: f64,
    pub wake_resident_ns: f64,
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
    /// 0: fresh slots; else every slot was first used by a coroutine that
    /// touched this many bytes of stack (`--reused`).
    #[serde(default)]
    pub warmup_touch_bytes: usize,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact: Option<CompactFigures>,
    /// With `--breakdown`: memory by kind at the baseline, after the
    /// warm-up (`--reused`) and with all parked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Vec<Phase>>,
}

/// One row of a `mem` table.
pub type MemRow = Row<MemResult>;

impl MemConfig {
    pub fn new(a: &MemArgs, g: &Global) -> MemConfig {
        MemConfig {
            count: a.count,
            workers: a.workers.unwrap_or(g.workers),
            stack_max: a.stack_max.unwrap_or(g.stack_max),
            per_coroutine_channel: a.per_coroutine_channel,
            reused: a.reused,
            breakdown: a.breakdown,
            repeat: g.repeat.unwrap_or(1),
            measuring_child: a.measuring_child,
            compact_after: a.compact_after,
        }
    }

    /// `mem` at `count` for the default suite, `compare` and `report`.
    pub fn at(count: u64, reused: bool, workers: usize, stack_max: usize) -> MemConfig {
        MemConfig {
            count,
            workers,
            stack_max,
            per_coroutine_channel: false,
            reused,
            breakdown: false,
            repeat: 1,
            measuring_child: false,
            compact_after: None,
        }
    }

    /// What preflight calls this run in its messages.
    fn what(&self) -> String {
        format!("mem --count {}", units::count(self.count))
    }

    /// Memory the run needs: the parked coroutines, and with `--reused` the
    /// warm-up round's touched stacks (all N may be alive at once).
    pub fn preflight(&self) -> Result<(), String> {
        preflight::coroutines(&self.what(), self.count, self.stack_max, self.workers)?;
        if self.reused {
            let touched = self.count * (WARM_TOUCH as u64 + preflight::coroutine_estimate());
            preflight::memory(&self.what(), touched, "lower --count or drop --reused")?;
        }
        Ok(())
    }
}

impl Measurement for MemConfig {
    type Data = Vec<MemRow>;
    const KEY: &'static str = "mem";

    fn runtime(&self) -> (usize, usize) {
        (self.workers, self.stack_max)
    }

    /// Preflight once, then one run here, or R runs in fresh children.
    fn run(&self) -> Result<Vec<MemRow>, String> {
        if !self.measuring_child {
            self.preflight()?;
        }
        let one = || {
            if self.repeat == 1 {
                measure(self)
            } else {
                measure_isolated(self)
            }
        };
        Ok(stats::runs(self.repeat, one)?
            .into_iter()
            .map(Row::Measured)
            .collect())
    }
}

/// `mem` at one N in a fresh child, preflight first; a refusal or failure
/// becomes a skipped row (the default suite and `report` go on).
pub fn row(cfg: &MemConfig) -> MemRow {
    let label = if cfg.reused {
        "mem, reused slots"
    } else {
        "mem"
    };
    progress::phase(&format!(
        "{label}: parking {} coroutines",
        units::count(cfg.count)
    ));
    let measured = cfg.preflight().and_then(|()| measure_isolated(cfg));
    progress::clear();
    Row::of(Count { count: cfg.count }, measured)
}

/// Measure in this process (preflight is the caller's).
pub fn measure(cfg: &MemConfig) -> Result<MemResult, String> {
    let mut builder = Runtime::builder()
        .workers(cfg.workers)
        .stack_max(cfg.stack_max);
    if let Some(after) = cfg.compact_after {
        builder = builder.compact_after(after);
    }
    let rt = builder
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

/// Measure in a fresh child process (`mem ... --json --repeat 1`), which
/// skips preflight: the caller has done it.
pub fn measure_isolated(cfg: &MemConfig) -> Result<MemResult, String> {
    let mut extra = Vec::new();
    if cfg.per_coroutine_channel {
        extra.push("--per-coroutine-channel");
    }
    if cfg.reused {
        extra.push("--reused");
    }
    if cfg.breakdown {
        extra.push("--breakdown");
    }
    let after = cfg.compact_after.map(|d| format!("{}ns", d.as_nanos()));
    if let Some(after) = &after {
        extra.extend(["--compact-after", after.as_str()]);
    }
    let run = (cfg.count, cfg.workers, cfg.stack_max);
    let doc = child::one_sample("mem", run, &extra)?;
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
    let compacting = cfg.compact_after.is_some();
    let bad_locals = Arc::new(AtomicU64::new(0));
    let started = WaitGroup::new();
    let finished = WaitGroup::new();
    started.add(n);
    finished.add(n);
    let (shared_tx, shared_rx) = chan::bounded::<()>(0);
    // Allocated before the baseline, so it is not counted as runtime heap.
    let mut senders: Vec<Sender<()>> = Vec::with_capacity(if per { n } else { 0 });

    let mut phases = Vec::new();
    let snapshot = |phases: &mut Vec<Phase>, name: &str| -> Result<(), String> {
        if cfg.breakdown {
            let at = Snapshot::now().map_err(|e| format!("breakdown: {e}"))?;
            phases.push(Phase {
                name: name.into(),
                at,
            });
        }
        Ok(())
    };
    snapshot(&mut phases, "baseline")?;
    let stack_before = resident_stacks(rt)? as i64;
    let before = ProcMem::now().map_err(|e| e.to_string())?;
    alloc::start();
    if cfg.reused {
        if let Err(e) = warm_up(n).and_then(|()| snapshot(&mut phases, "after warm-up")) {
            alloc::stop();
            return Err(e);
        }
    }
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
        let spawned = if compacting {
            let bad = bad_locals.clone();
            spindle::Builder::new().spawn(move || {
                // The workload: a 256-byte local, checked after waking.
                let local = std::hint::black_box(local_pattern(i));
                s.done();
                let _ = rx.recv();
                if std::hint::black_box(&local) != &local_pattern(i) {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
                f.done();
            })
        } else {
            spindle::Builder::new().spawn(move || {
                s.done();
                let _ = rx.recv();
                f.done();
            })
        };
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
            // Let the last coroutines go from `done()` to parked in `recv`
            // (with compaction: measure 1 s after the last park).
            spindle::sleep(Duration::from_millis(50));
            if compacting {
                spindle::sleep(Duration::from_secs(1));
            }
            let heap = alloc::stop();
            let t_measure = Instant::now();
            ProcMem::now().map_err(|e| e.to_string()).and_then(|after| {
                let stats = rt.stats();
                let settled = if compacting && stats.compacted < cfg.count {
                    settle(rt, cfg.count).map(|mem| (mem, t_measure.elapsed()))
                } else {
                    None
                };
                let stack_after = resident_stacks(rt)?;
                snapshot(&mut phases, "parked")?;
                Ok((heap, after, stats, stack_after, settled))
            })
        }
    };
    alloc::stop();

    let t1 = Instant::now();
    drop(shared_tx);
    drop(senders);
    finished.wait();
    let release = t1.elapsed().as_nanos() as f64;

    let (heap, after, stats, stack_after, settled) = measured?;
    let bad = bad_locals.load(Ordering::Relaxed);
    if bad > 0 {
        return Err(format!(
            "{bad} of {n} coroutines found their 256-byte local changed after waking"
        ));
    }
    let compact = match cfg.compact_after {
        None => None,
        Some(after) => {
            let (wake_compacted_ns, wake_resident_ns) = wake_latencies(after)?;
            Some(CompactFigures {
                after_ns: after.as_nanos() as u64,
                compacted: stats.compacted,
                buffer_bytes: stats.compacted_bytes,
                local_check_failures: bad,
                settled_total_bytes: settled.as_ref().map(|(m, _)| {
                    (m.rss as f64 - before.rss as f64 + m.pte as f64 - before.pte as f64) / n as f64
                }),
                settled_after_ms: settled
                    .as_ref()
                    .map(|(_, t)| t.as_secs_f64() * 1e3 + 1000.0),
                wake_compacted_ns,
                wake_resident_ns,
            })
        }
    };
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
        warmup_touch_bytes: if cfg.reused { WARM_TOUCH } else { 0 },
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
        compact,
        breakdown: cfg.breakdown.then_some(phases),
    })
}

/// Wait (at most 60 s) until all `n` stacks are compacted; the process's
/// memory then.
fn settle(rt: &Runtime, n: u64) -> Option<ProcMem> {
    let t0 = Instant::now();
    while rt.stats().compacted < n && t0.elapsed() < Duration::from_secs(60) {
        spindle::sleep(Duration::from_millis(20));
    }
    ProcMem::now().ok()
}

/// The 256 bytes a `--compact-after` coroutine keeps and checks.
fn local_pattern(i: usize) -> [u8; 256] {
    std::array::from_fn(|k| (i as u8).wrapping_mul(31).wrapping_add(k as u8))
}

/// Wake latency of one parked coroutine, compacted and not: median over
/// [`WAKE_SAMPLES`] wakes, each from a sender on a thread outside the
/// runtime to the woken coroutine's first instruction after `recv`. Each
/// figure has a runtime of its own with one worker: "compacted" has
/// compaction after `after` and waits until the coroutine is compacted;
/// "not compacted" has compaction off and wakes it once it is parked.
fn wake_latencies(after: Duration) -> Result<(f64, f64), String> {
    let start = |compact: bool| {
        let b = Runtime::builder().workers(1);
        let b = if compact { b.compact_after(after) } else { b };
        b.build()
            .map_err(|e| format!("cannot start the wake-latency runtime: {e}"))
    };
    let compacted = one_wake_series(&start(true)?, true, after)?;
    let resident = one_wake_series(&start(false)?, false, after)?;
    Ok((stats::median_of(&compacted), stats::median_of(&resident)))
}

fn one_wake_series(rt: &Runtime, compacted: bool, after: Duration) -> Result<Vec<f64>, String> {
    let mut samples = Vec::with_capacity(WAKE_SAMPLES);
    for _ in 0..WAKE_SAMPLES {
        let (tx, rx) = chan::bounded::<Instant>(0);
        let before = rt.stats();
        let h = spindle::Builder::new()
            .spawn_on(rt, move || {
                let local = std::hint::black_box([7u8; 256]);
                let sent = rx.recv().unwrap();
                let dt = sent.elapsed();
                std::hint::black_box(&local);
                dt
            })
            .map_err(|e| format!("cannot spawn the wake-latency coroutine: {e}"))?;
        // Parked first (a send to a coroutine not yet in recv would time a
        // hand-off, not a wake); compacted too, for the compacted figure.
        let t0 = Instant::now();
        loop {
            let s = rt.stats();
            let ready =
                s.parks > before.parks && (!compacted || s.compactions > before.compactions);
            if ready {
                break;
            }
            if t0.elapsed() > after * 100 + Duration::from_secs(10) {
                return Err(
                    "wake latency: the coroutine never parked (or was never compacted)".into(),
                );
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        tx.send(Instant::now()).map_err(|e| e.to_string())?;
        let dt = h
            .join()
            .map_err(|_| "the wake-latency coroutine panicked")?;
        samples.push(dt.as_nanos() as f64);
    }
    Ok(samples)
}

/// Wakes per latency figure.
const WAKE_SAMPLES: usize = 21;

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

/// The `--reused` warm-up round: `n` coroutines touch [`WARM_TOUCH`] bytes
/// of stack and end, all spawned before any is waited for; then a pause in
/// which idle workers release what they release between bursts.
fn warm_up(n: usize) -> Result<(), String> {
    let done = WaitGroup::new();
    done.add(n);
    let mut progress = Progress::new("warm-up round", n as u64);
    for i in 0..n {
        let d = done.clone();
        let spawned = spindle::Builder::new().spawn(move || {
            touch_stack();
            d.done();
        });
        if let Err(e) = spawned {
            for _ in i..n {
                done.done();
            }
            done.wait();
            return Err(format!(
                "warm-up: spawning coroutine {} of {n} failed: {e}",
                i + 1
            ));
        }
        if i % 4096 == 0 {
            progress.tick(i as u64);
        }
    }
    done.wait();
    progress.finish();
    spindle::sleep(Duration::from_millis(50));
    Ok(())
}

/// Write [`WARM_TOUCH`] bytes of this coroutine's stack.
#[inline(never)]
fn touch_stack() {
    let frame = std::hint::black_box([1u8; WARM_TOUCH]);
    std::hint::black_box(&frame);
}

/// Resident stack bytes by `mincore`, or the reason it cannot be measured.
fn resident_stacks(rt: &spindle::Runtime) -> Result<usize, String> {
    rt.resident_stack_bytes()
        .map_err(|e| format!("cannot measure resident stack pages (mincore): {e}"))
}
