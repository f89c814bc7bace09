//! 10^6 parked coroutines at the stock `vm.max_map_count` (release builds).
//!
//! The point of guard regions (`MADV_GUARD_INSTALL`): a guard page per stack
//! without a VMA per stack, so a million guarded stacks fit in a process whose
//! `vm.max_map_count` is 65530, where mprotect guards would stop near 32.7k.
//! A million coroutines park on one rendezvous channel, are all released by
//! closing it, and the runtime then reports no live coroutines and no more
//! slots than coroutines.
//!
//! Runs only in release builds (`cargo test --release -p spindle-tests --test
//! million`): in debug it is slow and proves nothing more. Skipped in
//! mprotect mode, where 10^6 stacks cannot fit by design (see
//! `mprotect_fallback.rs` for that mode's limit).

use std::time::Instant;

use spindle::chan::{self, RecvError};
use spindle::stack::budget::{current_map_count, max_map_count};
use spindle::sync::WaitGroup;
use spindle::{GuardMode, Runtime};
use spindle_tests::{guard_mode, watchdog};

const N: usize = 1_000_000;

#[test]
fn a_million_parked_coroutines_released_by_close() {
    if cfg!(debug_assertions) {
        eprintln!("skipped: release only (cargo test --release -p spindle-tests --test million)");
        return;
    }
    if guard_mode() != GuardMode::Regions {
        eprintln!(
            "skipped: 10^6 stacks need guard regions; mprotect guards cap a process near 32k"
        );
        return;
    }
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (rt, errors) = watchdog("a million parked", move |progress| {
        let start = Instant::now();
        // A coroutine spawns the million (warm, per-worker stack batches),
        // reports when all are at their recv, and closes the channel when
        // told to.
        let (parked_tx, parked_rx) = std::sync::mpsc::channel::<()>();
        let (close_tx, close_rx) = chan::bounded::<()>(0);
        let p = progress.clone();
        let main = rt.spawn(move || {
            let (tx, rx) = chan::bounded::<u64>(0);
            let wg = WaitGroup::new();
            wg.add(N);
            let handles: Vec<_> = (0..N)
                .map(|i| {
                    let (rx, wg) = (rx.clone(), wg.clone());
                    if i % 4096 == 0 {
                        p.tick();
                    }
                    spindle::spawn(move || {
                        wg.done();
                        rx.recv()
                    })
                })
                .collect();
            drop(rx);
            wg.wait();
            parked_tx.send(()).unwrap();
            close_rx.recv().unwrap();
            drop(tx);
            let mut errors = 0;
            for (i, h) in handles.into_iter().enumerate() {
                if let Err(RecvError) = h.join().expect("parked coroutine panicked") {
                    errors += 1;
                }
                if i % 4096 == 0 {
                    p.tick();
                }
            }
            errors
        });
        parked_rx.recv().unwrap();
        let stats = rt.stats();
        eprintln!(
            "{N} coroutines at their recv after {:?}: {} slots, {} MiB stacks resident, \
             {} maps (limit {})",
            start.elapsed(),
            stats.slots,
            stats.resident_stack_bytes >> 20,
            current_map_count(),
            max_map_count()
        );
        // The million plus the spawning coroutine.
        assert_eq!(stats.live, N as u64 + 1, "{stats:?}");
        assert!(stats.slots > N, "{stats:?}");
        assert!(
            current_map_count() < max_map_count(),
            "guard regions must not cost a VMA per stack"
        );
        close_tx.send(()).unwrap();
        let errors = main.join().expect("spawning coroutine panicked");
        eprintln!("released and joined after {:?}", start.elapsed());
        (rt, errors)
    });
    assert_eq!(errors, N, "every parked coroutine must see the close");
    let stats = rt.stats();
    assert_eq!(stats.live, 0, "{stats:?}");
    assert_eq!(stats.spawned, N as u64 + 1, "{stats:?}");
    // Stacks are reused, never carved twice: at most one slot per coroutine
    // that was ever alive at once (the million and their spawner), plus the
    // unused rest of the last batch of each of the 2 workers (64 each) and
    // the stock an idle worker carves ahead (`stack/carve.rs`).
    // (And a batch per worker that a refill may carve while the carver
    // prepares its own.)
    let ahead = 4 * spindle::stack::budget::CACHE_BATCH + spindle::stack::budget::CARVE_AHEAD;
    assert!(stats.slots <= N + 1 + ahead, "{stats:?}");
}
