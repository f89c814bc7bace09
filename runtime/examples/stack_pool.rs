//! What the stack pool costs in three situations a real program meets
//! (issue #11), measured from the outside with `/proc/self/statm` and
//! `/proc/self/status` (VmPTE):
//!
//! * `reuse N`: bytes per parked shallow coroutine in slots reused after a
//!   warm-up round of N coroutines that each touched 12 KiB of stack;
//! * `fanout N`: `wg.add(n); for _ in 0..n { spawn(|| wg.done()) }; wg.wait()`
//!   on 2 workers, three rounds: ns per coroutine and fresh slots carved;
//! * `burst N`: RSS before a burst of N parked coroutines, at its end, and
//!   every 250 ms after, while the runtime idles;
//! * `park N`: the cold rows of `spindle-bench mem` without its
//!   measurements, for a profiler: ns per coroutine to spawn N that park
//!   (until all started), and to release and join them, on fresh slots.
//!
//! `cargo run --release -p spindle --example stack_pool -- reuse 1000000`

use std::time::{Duration, Instant};

use spindle::sync::WaitGroup;
use spindle::{chan, Runtime};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: stack_pool (reuse|fanout|burst|park) N";
    let (Some(what), Some(n)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let Ok(n) = n.replace('_', "").parse::<usize>() else {
        eprintln!("{usage}: N must be a number, got {n:?}");
        std::process::exit(2);
    };
    let rt = Runtime::builder().workers(2).build().unwrap_or_else(|e| {
        eprintln!("cannot start the runtime: {e}");
        std::process::exit(1)
    });
    match what.as_str() {
        "reuse" => reuse(&rt, n),
        "fanout" => fanout(&rt, n),
        "burst" => burst(&rt, n),
        "park" => park(&rt, n),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}

/// Resident set plus page tables, in bytes.
fn memory() -> u64 {
    let (rss, pte) = rss_and_page_tables();
    rss + pte
}

/// Resident set and page tables, in bytes (`/proc/self/statm`, `VmPTE`).
fn rss_and_page_tables() -> (u64, u64) {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let pte_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmPTE:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (pages * page, pte_kib * 1024)
}

/// Park `n` coroutines on one channel; `touch` bytes of stack each first.
/// Returns the memory while they are all parked, then releases them.
fn park_all(rt: &Runtime, n: usize, touch: usize) -> u64 {
    rt.block_on(move || {
        let parked = WaitGroup::new();
        let done = WaitGroup::new();
        parked.add(n);
        done.add(n);
        let (tx, rx) = chan::bounded::<()>(0);
        for _ in 0..n {
            let (p, d, rx) = (parked.clone(), done.clone(), rx.clone());
            drop(spindle::spawn(move || {
                use_stack(touch);
                p.done();
                let _ = rx.recv();
                d.done();
            }));
        }
        parked.wait();
        spindle::sleep(Duration::from_millis(50));
        let m = memory();
        drop(tx);
        done.wait();
        m
    })
}

#[inline(never)]
fn use_stack(bytes: usize) {
    if bytes == 0 {
        return;
    }
    let mut buf = [0u8; 1024];
    std::hint::black_box(&mut buf);
    use_stack(bytes.saturating_sub(1024));
    std::hint::black_box(&buf);
}

fn reuse(rt: &Runtime, n: usize) {
    let before = memory();
    park_all(rt, n, 12 << 10);
    let slots = rt.stats().slots;
    let parked = park_all(rt, n, 0);
    let stats = rt.stats();
    println!(
        "reuse: {n} parked in reused slots: {:.0} B each (RSS + page tables over the \
         fresh process); slots {} -> {}",
        (parked - before) as f64 / n as f64,
        slots,
        stats.slots
    );
}

fn fanout(rt: &Runtime, n: usize) {
    for round in 0..3 {
        // Sample how many coroutines are spawned and not finished: each
        // holds a stack, so the peak is the fewest slots the round needs.
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (ns, peak) = std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut peak = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    peak = peak.max(rt.stats().live);
                    std::thread::sleep(Duration::from_millis(5));
                }
                peak
            });
            let ns = fanout_round(rt, n);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            (ns, sampler.join().unwrap())
        });
        let s = rt.stats();
        let per = |d: Duration| d.as_nanos() as f64 / n as f64;
        println!(
            "fanout round {round}: {:.0} ns/coroutine ({:.0} ns of it spawning); spawned {} \
             slots {} pooled {}; peak live (sampled) {peak}",
            per(ns.0),
            per(ns.1),
            s.spawned,
            s.slots,
            s.pooled_stacks
        );
    }
}

/// One fan-out round: total time, and time spent in the spawn loop.
fn fanout_round(rt: &Runtime, n: usize) -> (Duration, Duration) {
    rt.block_on(move || {
        let wg = WaitGroup::new();
        let t = Instant::now();
        wg.add(n);
        for _ in 0..n {
            let w = wg.clone();
            drop(spindle::spawn(move || w.done()));
        }
        let spawned = t.elapsed();
        wg.wait();
        (t.elapsed(), spawned)
    })
}

fn burst(rt: &Runtime, n: usize) {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let (before, _) = rss_and_page_tables();
    park_all(rt, n, 0);
    let end = Instant::now();
    let (after, pte) = rss_and_page_tables();
    println!(
        "burst of {n}: RSS before {:.1} MiB, right after {:.1} MiB (page tables {:.1} MiB)",
        mib(before),
        mib(after),
        mib(pte)
    );
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(250));
        let (now, pte) = rss_and_page_tables();
        println!(
            "  +{:.2} s: RSS {:.1} MiB ({:+.1} MiB over before), page tables {:.1} MiB",
            end.elapsed().as_secs_f64(),
            mib(now),
            mib(now) - mib(before),
            mib(pte)
        );
    }
    println!("  largest resident mappings now:");
    for (rss, what) in largest_mappings(4) {
        println!("    {:.1} MiB  {what}", mib(rss));
    }
}

/// The `n` mappings with the most resident memory (`/proc/self/smaps`).
fn largest_mappings(n: usize) -> Vec<(u64, String)> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut all = Vec::new();
    let mut current = String::new();
    for line in smaps.lines() {
        if let Some(kib) = line.strip_prefix("Rss:") {
            let kib: u64 = kib
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            all.push((kib * 1024, current.clone()));
        } else if line
            .split_whitespace()
            .next()
            .is_some_and(|w| w.contains('-'))
        {
            current = line.to_string();
        }
    }
    all.sort_by_key(|m| std::cmp::Reverse(m.0));
    all.truncate(n);
    all
}

/// `spindle-bench mem`'s timed phases: spawn `n` coroutines that park on
/// one channel (until all have started), then close it and wait for all.
fn park(rt: &Runtime, n: usize) {
    let (spawn, release, cpu_spawn, cpu_release) = rt.block_on(move || {
        let started = WaitGroup::new();
        let done = WaitGroup::new();
        started.add(n);
        done.add(n);
        let (tx, rx) = chan::bounded::<()>(0);
        let c0 = cpu_time();
        let t0 = Instant::now();
        for _ in 0..n {
            let (s, d, rx) = (started.clone(), done.clone(), rx.clone());
            drop(spindle::spawn(move || {
                s.done();
                let _ = rx.recv();
                d.done();
            }));
        }
        started.wait();
        let spawn = t0.elapsed();
        let c1 = cpu_time();
        spindle::sleep(Duration::from_millis(50));
        let c2 = cpu_time();
        let t1 = Instant::now();
        drop(tx);
        done.wait();
        (spawn, t1.elapsed(), c1 - c0, cpu_time() - c2)
    });
    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    println!(
        "park {n}: spawn while parking {:.0} ns/coroutine ({:.0} ns of CPU); \
         release and join {:.0} ns/coroutine ({:.0} ns of CPU)",
        per(spawn),
        per(cpu_spawn),
        per(release),
        per(cpu_release)
    );
    println!("  {:?}", rt.stats());
}

/// CPU time of the whole process so far (every thread, user and system).
fn cpu_time() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills the one we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
