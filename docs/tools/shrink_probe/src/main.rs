//! The probe of `docs/notes/shrink.md`, on the public API only:
//!
//! * `shrink_probe yield N` / `chan N`: one worker, N `yield_now` rounds of
//!   two coroutines, or N round trips through two rendezvous channels (run
//!   under `valgrind --tool=callgrind` for instruction counts);
//! * `shrink_probe deep N` / `shallow N [workers]`: N coroutines (each
//!   touching 200 KiB of stack first, or not) park on one channel; the
//!   resident stack memory every 250 ms, the process's CPU time since they
//!   parked, and the time to release and join them all.
use std::hint::black_box;
use std::time::{Duration, Instant};

fn cpu_ms() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    let (u, k): (f64, f64) = (f[11].parse().unwrap(), f[12].parse().unwrap());
    (u + k) * 1000.0 / 100.0
}

#[inline(never)]
fn touch_200_kib() -> usize {
    let mut a = [0u8; 200 << 10];
    let a = black_box(&mut a);
    for i in (0..a.len()).step_by(512) { a[i] = 1; }
    black_box(a).as_ptr() as usize
}

fn main() {
    let mode = std::env::args().nth(1).unwrap();
    let n: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let workers: usize = std::env::args().nth(3).map(|w| w.parse().unwrap()).unwrap_or(1);
    let rt = spindle::Runtime::builder().workers(workers).stack_max(512 << 10).build().unwrap();
    let rt2 = std::sync::Arc::new(rt);
    let r = rt2.clone();
    rt2.block_on(move || match mode.as_str() {
        "yield" => {
            let other = spindle::spawn(move || for _ in 0..n { spindle::yield_now() });
            for _ in 0..n { spindle::yield_now() }
            other.join().unwrap();
        }
        "chan" => {
            let (tx, rx) = spindle::chan::bounded::<usize>(0);
            let (tx2, rx2) = spindle::chan::bounded::<usize>(0);
            let echo = spindle::spawn(move || for _ in 0..n { let v = rx.recv().unwrap(); tx2.send(v).unwrap(); });
            for i in 0..n { tx.send(i).unwrap(); rx2.recv().unwrap(); }
            echo.join().unwrap();
        }
        deep_or_shallow => {
            let deep = deep_or_shallow == "deep";
            let wg = spindle::sync::WaitGroup::new();
            wg.add(n);
            let (tx, rx) = spindle::chan::bounded::<()>(0);
            let hs: Vec<_> = (0..n).map(|_| {
                let (wg, rx) = (wg.clone(), rx.clone());
                spindle::spawn(move || { if deep { touch_200_kib(); } wg.done(); let _ = rx.recv(); })
            }).collect();
            wg.wait();
            spindle::sleep(Duration::from_millis(5));
            let t0 = Instant::now();
            let c0 = cpu_ms();
            let mib = |r: &spindle::Runtime| r.stats().resident_stack_bytes as f64 / (1 << 20) as f64;
            println!("{n} {deep_or_shallow} parked: resident stacks {:.1} MiB", mib(&r));
            for step in 1..=6 {
                spindle::sleep(Duration::from_millis(250));
                println!("  +{} ms: {:.1} MiB, cpu since parked {:.0} ms", step * 250, mib(&r), cpu_ms() - c0);
            }
            let _ = t0;
            let t1 = Instant::now();
            drop(tx);
            for h in hs { h.join().unwrap(); }
            println!("  release and join: {:.1} ms", t1.elapsed().as_secs_f64() * 1e3);
        }
    });
}
