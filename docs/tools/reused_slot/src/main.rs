//! What a parked coroutine costs in a slot that was used before.
//!
//! `spindle-bench mem` parks coroutines in fresh slots. A long-running
//! program reuses slots, after coroutines that may have used more stack.
//! This program runs a warm-up round of N coroutines that each touch
//! `DEPTH_KIB` KiB of stack and finish, then parks N coroutines on a
//! channel and prints (RSS + page tables) per parked coroutine, counted from
//! before the warm-up round: what the process holds per parked coroutine in
//! that steady state. Run it from the repository root:
//!
//!     cargo run --release --manifest-path docs/tools/reused_slot/Cargo.toml
//!
//! (Its own target directory is docs/tools/reused_slot/target.)

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const N: usize = 100_000;
const DEPTH_KIB: usize = 12;

/// Resident bytes plus page-table bytes of this process, from /proc.
fn rss_plus_pte() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/self/status"))
    };
    (kib("VmRSS:") + kib("VmPTE:")) * 1024
}

/// Touch about `kib` KiB of stack, one KiB-sized frame per call.
#[inline(never)]
fn touch(kib: usize) -> u8 {
    let mut buf = [0u8; 1024];
    buf[kib % 1024] = kib as u8;
    black_box(&mut buf);
    if kib <= 1 {
        buf[0]
    } else {
        touch(kib - 1).wrapping_add(buf[7])
    }
}

fn main() {
    let rt = spindle::Runtime::builder()
        .workers(2)
        .build()
        .expect("building the runtime");
    let before = rt.block_on(|| {
        let before = rss_plus_pte();
        // Warm-up round: every coroutine touches DEPTH_KIB KiB and finishes.
        let handles: Vec<_> = (0..N)
            .map(|_| spindle::spawn(|| touch(DEPTH_KIB)))
            .collect();
        for h in handles {
            h.join().expect("warm-up coroutine panicked");
        }
        before
    });
    // Let the workers go idle, so that they release the deep pages.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (tx, rx) = spindle::chan::bounded::<()>(0);
    let ready = Arc::new(AtomicUsize::new(0));
    let parked: Vec<_> = (0..N)
        .map(|_| {
            let (rx, ready) = (rx.clone(), ready.clone());
            rt.spawn(move || {
                ready.fetch_add(1, Ordering::Relaxed);
                rx.recv().ok()
            })
        })
        .collect();
    while ready.load(Ordering::Relaxed) < N {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The last few are between the count and the park: give them time.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let per = (rss_plus_pte() - before) as f64 / N as f64;
    drop(tx);
    for h in parked {
        let _ = h.join();
    }
    println!(
        "{N} coroutines parked in slots reused after {N} that touched {DEPTH_KIB} KiB each: \
         {per:.0} B of RSS + page tables per parked coroutine"
    );
}
