//! `threads`: the OS-thread baseline for "N tasks parked on a channel".
//!
//! The same workload as `mem`, with a real thread per task: N std threads
//! each block in `recv` on a spindle channel (outside a runtime a channel
//! blocks its thread on a condition variable). A thread costs memory in two
//! places:
//!
//! * in the process: its stack pages (RSS; a 2 MiB stack reservation of
//!   which only the touched pages count) and page tables (VmPTE);
//! * in the kernel: a kernel stack per thread (`KernelStack` in
//!   /proc/meminfo, 16 KiB on x86_64) and its task struct and friends in
//!   unreclaimable slab (`SUnreclaim`). These are system-wide counters, so
//!   other processes' activity is noise in them; they are still the only
//!   place this cost can be seen.
//!
//! Preflight checks `vm.max_map_count` (a Rust std thread costs about 4
//! memory maps; at the stock limit the process aborts near 16.4k threads),
//! `kernel.pid_max`, `kernel.threads-max`, `RLIMIT_NPROC` and the cgroup's
//! `pids.max` before the first thread starts.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use spindle::sync::WaitGroup;

use super::{mem, Global, Measurement};
use crate::cli::ThreadsArgs;
use crate::measure::procfs::{self, ProcMem};
use crate::measure::row::{Count, Row};
use crate::measure::{preflight, stats};
use crate::present::progress::{self, Progress};
use crate::present::units;

/// std's default thread stack (when `RUST_MIN_STACK` is not set).
pub const STD_DEFAULT_STACK: usize = 2 << 20;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PerThread {
    pub rss_bytes: f64,
    pub pte_bytes: f64,
    pub kernel_stack_bytes: f64,
    pub slab_unreclaimable_bytes: f64,
    pub total_bytes: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThreadsResult {
    pub count: u64,
    /// `None`: std's default (2 MiB unless `RUST_MIN_STACK` says otherwise).
    pub stack_size: Option<usize>,
    pub rss_delta_bytes: i64,
    pub pte_delta_bytes: i64,
    pub kernel_stack_delta_bytes: i64,
    pub slab_unreclaimable_delta_bytes: i64,
    pub per_thread: PerThread,
    pub spawn_ns_per_thread: f64,
    pub release_join_ns_total: f64,
    pub fits: Vec<mem::Fit>,
}

#[derive(Clone, Debug)]
pub struct ThreadsConfig {
    pub count: u64,
    /// `None`: std's default.
    pub stack_size: Option<usize>,
    pub repeat: usize,
}

impl ThreadsConfig {
    pub fn new(a: &ThreadsArgs, g: &Global) -> ThreadsConfig {
        ThreadsConfig {
            count: a.count,
            stack_size: a.stack_size,
            repeat: g.repeat.unwrap_or(1),
        }
    }
}

impl Measurement for ThreadsConfig {
    type Data = Vec<ThreadsResult>;
    const KEY: &'static str = "threads";

    /// No runtime: the header shows the defaults.
    fn runtime(&self) -> (usize, usize) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores, spindle::DEFAULT_STACK_MAX)
    }

    fn run(&self) -> Result<Vec<ThreadsResult>, String> {
        stats::runs(self.repeat, || measure(self.count, self.stack_size))
    }
}

/// One row of the OS-thread baseline.
pub type ThreadsRow = Row<ThreadsResult>;

/// The baseline at each N (std's default stack); failures become skipped rows.
pub fn series(counts: &[u64]) -> Vec<ThreadsRow> {
    counts
        .iter()
        .map(|&n| {
            progress::phase(&format!("threads: starting {} threads", units::count(n)));
            let r = measure(n, None);
            progress::clear();
            Row::of(Count { count: n }, r)
        })
        .collect()
}

fn kernel() -> Result<(i64, i64), String> {
    let get = |k| {
        procfs::meminfo(k)
            .map(|v| v as i64)
            .map_err(|e| e.to_string())
    };
    Ok((get("KernelStack")?, get("SUnreclaim")?))
}

/// Start `count` threads parked in `recv`, measure, release, join.
pub fn measure(count_: u64, stack_size: Option<usize>) -> Result<ThreadsResult, String> {
    let reserve = stack_size.unwrap_or(STD_DEFAULT_STACK) as u64;
    preflight::threads(count_, reserve)?;
    let n = count_ as usize;
    let (tx, rx) = spindle::chan::bounded::<()>(0);
    let started = WaitGroup::new();
    let mut handles = Vec::with_capacity(n);
    let before = ProcMem::now().map_err(|e| e.to_string())?;
    let (ks0, slab0) = kernel()?;
    let mut progress = Progress::new("starting threads", count_);
    let t0 = Instant::now();
    let mut failure = None;
    for i in 0..n {
        let (rx, wg) = (rx.clone(), started.clone());
        started.add(1);
        let mut b = std::thread::Builder::new();
        if let Some(s) = stack_size {
            b = b.stack_size(s);
        }
        match b.spawn(move || {
            wg.done();
            let _ = rx.recv();
        }) {
            Ok(h) => handles.push(h),
            Err(e) => {
                started.done();
                failure = Some(format!("starting thread {} of {n} failed: {e}", i + 1));
                break;
            }
        }
        if i % 256 == 0 {
            progress.tick(i as u64);
        }
    }
    started.wait();
    let spawn = t0.elapsed();
    progress.finish();
    let measured = match failure {
        Some(e) => Err(e),
        None => {
            std::thread::sleep(Duration::from_millis(50));
            ProcMem::now()
                .map_err(|e| e.to_string())
                .and_then(|after| Ok((after, kernel()?)))
        }
    };
    let t1 = Instant::now();
    drop(tx);
    for h in handles {
        let _ = h.join();
    }
    let release = t1.elapsed().as_nanos() as f64;
    let (after, (ks1, slab1)) = measured?;

    let nf = n as f64;
    let rss = after.rss as i64 - before.rss as i64;
    let pte = after.pte as i64 - before.pte as i64;
    let (ks, slab) = (ks1 - ks0, slab1 - slab0);
    let total = (rss + pte + ks + slab) as f64 / nf;
    Ok(ThreadsResult {
        count: count_,
        stack_size,
        rss_delta_bytes: rss,
        pte_delta_bytes: pte,
        kernel_stack_delta_bytes: ks,
        slab_unreclaimable_delta_bytes: slab,
        per_thread: PerThread {
            rss_bytes: rss as f64 / nf,
            pte_bytes: pte as f64 / nf,
            kernel_stack_bytes: ks as f64 / nf,
            slab_unreclaimable_bytes: slab as f64 / nf,
            total_bytes: total,
        },
        spawn_ns_per_thread: spawn.as_nanos() as f64 / nf,
        release_join_ns_total: release,
        fits: mem::fits(total),
    })
}
