//! Fan-out: a coroutine spawns many short children without ever blocking,
//! then waits for all of them (issue #11).
//!
//! A default spawn takes no stack: the worker that first runs a child takes
//! one from its own cache (`runtime/src/task/start.rs`). So however far the
//! spawner runs ahead of the children, only coroutines that have *started*
//! hold stacks, and the pool carves slots only when a worker's cache and the
//! global free list are both empty. With trivial children at most one runs
//! per worker, so every slot ever carved sits in some worker's cache (at
//! most 64 clean plus 32 awaiting release), runs a child, or runs the
//! spawner, plus the one batch of 32 being carved: about 230 slots on two
//! workers. [`SLOT_BOUND`] leaves room on top of that; taking the stack at
//! spawn, as spindle did before, needed one slot per *queued* child (all
//! 10^5 of them on one worker, where the spawner runs first).

use spindle::sync::WaitGroup;
use spindle::Runtime;
use spindle_tests::watchdog;

const N: usize = 100_000;
/// Far below [`N`], well above what the design allows (module docs).
const SLOT_BOUND: usize = 1_000;

/// The loop, three rounds; returns the runtime's stats after each.
fn fan_out(workers: usize) -> Vec<spindle::Stats> {
    let rt = Runtime::builder().workers(workers).build().unwrap();
    let name = format!("fan-out on {workers} workers");
    let (_rt, stats) = watchdog(&name, move |progress| {
        let mut stats = Vec::new();
        for _ in 0..3 {
            rt.block_on(|| {
                let wg = WaitGroup::new();
                wg.add(N);
                for _ in 0..N {
                    let w = wg.clone();
                    drop(spindle::spawn(move || w.done()));
                }
                wg.wait();
            });
            progress.tick();
            stats.push(rt.stats());
        }
        (rt, stats)
    });
    stats
}

fn check(workers: usize) {
    for (round, s) in fan_out(workers).iter().enumerate() {
        // (block_on runs its closure as one more coroutine.)
        assert_eq!(s.spawned, (round as u64 + 1) * (N as u64 + 1), "{s:?}");
        assert!(
            s.slots <= SLOT_BOUND,
            "round {round}: {} slots carved for a fan-out of {N} on {workers} workers \
             (queued children must not hold stacks): {s:?}",
            s.slots
        );
    }
}

#[test]
fn queued_children_hold_no_stacks_on_one_worker() {
    // The spawner runs first and queues all N before any child runs.
    check(1);
}

#[test]
fn queued_children_hold_no_stacks_on_two_workers() {
    // One worker runs the spawner, the other steals and runs the children;
    // the spawner outruns it.
    check(2);
}

/// Children cancelled before they ever ran (the runtime shuts down with
/// them queued) drop their functions, once, and never run.
#[test]
fn unstarted_children_are_dropped_at_shutdown() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    let dropped = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let rt = Runtime::builder().workers(1).build().unwrap();
    let handles = {
        let (dropped, ran) = (dropped.clone(), ran.clone());
        rt.block_on(move || {
            // One worker, and the spawner never blocks: none of these has
            // started when block_on returns.
            (0..1000)
                .map(|_| {
                    let c = Counted(dropped.clone());
                    let ran = ran.clone();
                    spindle::spawn(move || {
                        let _c = c;
                        ran.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect::<Vec<_>>()
        })
    };
    drop(rt);
    let ran = ran.load(Ordering::SeqCst);
    let mut cancelled = 0;
    for h in handles {
        if h.join().is_err() {
            cancelled += 1;
        }
    }
    assert_eq!(ran + cancelled, 1000, "each child ran or was cancelled");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1000,
        "every function was dropped exactly once"
    );
}
