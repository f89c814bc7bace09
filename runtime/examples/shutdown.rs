//! What dropping a runtime costs: N coroutines parked in `recv` on one
//! channel (as a server's idle handlers are), then `drop(rt)`, which
//! unwinds each of them on its own worker (`sched/shutdown.rs`) and
//! withdraws it from the channel's queue. Prints µs per coroutine for the
//! spawn (until all parked) and for the shutdown.
//!
//! `cargo run --release -p spindle --example shutdown -- 100000`

use std::time::Instant;

use spindle::sync::WaitGroup;
use spindle::{chan, Runtime};

fn main() {
    let usage = "usage: shutdown N (coroutines parked when the runtime is dropped)";
    let Some(Ok(n)) = std::env::args()
        .nth(1)
        .map(|n| n.replace('_', "").parse::<usize>())
    else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let rt = Runtime::builder().workers(2).build().unwrap_or_else(|e| {
        eprintln!("shutdown: cannot start a runtime: {e}");
        std::process::exit(1);
    });
    let (_tx, rx) = chan::bounded::<u64>(0);
    let wg = WaitGroup::new();
    wg.add(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let (rx, wg) = (rx.clone(), wg.clone());
        drop(rt.spawn(move || {
            wg.done();
            rx.recv().ok()
        }));
    }
    wg.wait();
    let parked = t0.elapsed();
    let t1 = Instant::now();
    drop(rt);
    let shutdown = t1.elapsed();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    println!(
        "{n} coroutines: spawn until parked {:.2} µs each; shutdown {:.2} µs each ({:.2} s in all)",
        per(parked),
        per(shutdown),
        shutdown.as_secs_f64()
    );
}
