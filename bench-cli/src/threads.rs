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

use crate::procfs::{self, ProcMem};
use crate::progress::Progress;
use crate::table::Table;
use crate::units::{bytes, bytes_kb, count, ns};
use crate::{mem, preflight};

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

/// What the columns mean.
pub fn caption(results: &[ThreadsResult]) -> String {
    let stack = match results.first().and_then(|r| r.stack_size) {
        Some(s) => crate::units::binary(s as u64),
        None => "std default, 2 MiB".into(),
    };
    format!(
        "threads: N OS threads parked in recv on one channel (stack {stack}); bytes per \
         thread. KernelStack and SUnreclaim are system-wide deltas\n"
    )
}

pub fn table(results: &[ThreadsResult]) -> Table {
    let mut t = Table::new(&[
        "N",
        "TOTAL/thread",
        "RSS",
        "page tables",
        "kernel stack",
        "unreclaimable slab",
        "start",
        "release+join",
    ]);
    for r in results {
        let p = &r.per_thread;
        t.row(vec![
            count(r.count),
            bytes_kb(p.total_bytes),
            bytes(p.rss_bytes),
            bytes(p.pte_bytes),
            bytes(p.kernel_stack_bytes),
            bytes(p.slab_unreclaimable_bytes),
            ns(r.spawn_ns_per_thread),
            ns(r.release_join_ns_total),
        ]);
    }
    t
}

/// The human table for one or more runs.
pub fn render(results: &[ThreadsResult]) -> String {
    caption(results) + &table(results).render()
}
