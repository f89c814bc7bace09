//! 10^5 coroutines parked on one rendezvous channel, then released.
//!
//! This is the spec's "10^5 coroutines parked on one channel, then released by
//! close". It checks that a parked coroutine costs no worker thread (all of
//! them wait at once), that closing a channel wakes *every* parked receiver
//! with `RecvError` (none lost, none stuck), that a stream of sends hands
//! each value to exactly one parked receiver, and that the runtime's counters
//! agree afterwards (`live == 0`).
//!
//! In mprotect guard mode (2 VMAs per stack, ~32k stacks per process, shared
//! by the tests of this binary running in parallel) the count is scaled down.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use spindle::chan::{self, RecvError};
use spindle::sync::WaitGroup;
use spindle::Runtime;
use spindle_tests::{by_mode, watchdog};

fn count() -> usize {
    by_mode(100_000, 6_000)
}

/// On one worker the parking is deterministic: the closer yields until every
/// receiver has run up to its `recv`, and since nothing was sent they are all
/// parked in the channel's queue when the sender is dropped.
#[test]
fn close_wakes_every_parked_receiver_one_worker() {
    let n = count();
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (rt, errors) = watchdog("close on 1 worker", move |progress| {
        let errors = rt.block_on(move || {
            let (tx, rx) = chan::bounded::<u64>(0);
            let entered = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let rx = rx.clone();
                    let entered = entered.clone();
                    spindle::spawn(move || {
                        entered.fetch_add(1, Ordering::Relaxed);
                        rx.recv()
                    })
                })
                .collect();
            drop(rx);
            while entered.load(Ordering::Relaxed) < n {
                spindle::yield_now();
            }
            progress.tick();
            assert!(
                handles.iter().all(|h| !h.is_finished()),
                "a receiver returned before the channel was closed"
            );
            drop(tx); // close: every parked receiver must wake with RecvError
            let mut errors = 0;
            for h in handles {
                match h.join().expect("receiver panicked") {
                    Err(RecvError) => errors += 1,
                    Ok(v) => panic!("receiver got {v} from a channel nobody sent on"),
                }
                progress.tick();
            }
            errors
        });
        (rt, errors)
    });
    assert_eq!(errors, n);
    let stats = rt.stats();
    assert_eq!(stats.live, 0, "{stats:?}");
    assert_eq!(stats.spawned, n as u64 + 1, "{stats:?}");
}

/// Same on two workers, where receivers park and wake on both threads; the
/// release comes from a plain OS thread (wakes go through the injector).
#[test]
fn close_from_a_thread_wakes_every_parked_receiver_two_workers() {
    let n = count();
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (rt, errors) = watchdog("close on 2 workers", move |progress| {
        let (tx, rx) = chan::bounded::<u64>(0);
        let wg = WaitGroup::new();
        wg.add(n);
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let rx = rx.clone();
                let wg = wg.clone();
                rt.spawn(move || {
                    wg.done();
                    rx.recv()
                })
            })
            .collect();
        drop(rx);
        wg.wait(); // every receiver is at (or in) its recv
        progress.tick();
        drop(tx);
        let mut errors = 0;
        for h in handles {
            if let Err(RecvError) = h.join().expect("receiver panicked") {
                errors += 1;
            }
            progress.tick();
        }
        (rt, errors)
    });
    assert_eq!(errors, n, "every receiver must see the close");
    let stats = rt.stats();
    assert_eq!(stats.live, 0, "{stats:?}");
    assert_eq!(stats.spawned, n as u64, "{stats:?}");
    assert_eq!(stats.finished, n as u64, "{stats:?}");
    // A stack is taken by the worker that first runs a coroutine, from its
    // cache, which carves a batch ahead: at most one batch per worker unused,
    // plus the stock an idle worker carves ahead (`stack/carve.rs`), plus
    // one batch per worker that a refill may carve while the carver is still
    // preparing its own (the free list looked empty to both).
    let ahead = 2 * stats.workers * spindle::stack::budget::CACHE_BATCH
        + spindle::stack::budget::CARVE_AHEAD;
    assert!(stats.slots >= 1 && stats.slots <= n + ahead, "{stats:?}");
    // Nothing is live, so every stack ever carved is back in a pool.
    assert_eq!(stats.pooled_stacks, stats.slots, "{stats:?}");
}

/// Parked receivers released by sends: each of the 10^5 values reaches
/// exactly one receiver, and every receiver gets exactly one value.
#[test]
fn sends_hand_each_value_to_exactly_one_parked_receiver() {
    let n = count();
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (rt, seen) = watchdog("release by sends", move |progress| {
        let seen = rt.block_on(move || {
            let (tx, rx) = chan::bounded::<usize>(0);
            let wg = WaitGroup::new();
            wg.add(n);
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let rx = rx.clone();
                    let wg = wg.clone();
                    spindle::spawn(move || {
                        wg.done();
                        rx.recv()
                    })
                })
                .collect();
            drop(rx);
            wg.wait();
            for v in 0..n {
                tx.send(v).expect("receivers are waiting");
                if v % 1024 == 0 {
                    progress.tick();
                }
            }
            // Every receiver has its value and none waits for another: a
            // stale waiter left in the channel's queue would take this one.
            assert!(
                tx.try_send(usize::MAX).is_err(),
                "a value was accepted after all receivers were served"
            );
            let mut seen = vec![0u32; n];
            for h in handles {
                let v = h.join().expect("receiver panicked").expect("got a value");
                seen[v] += 1;
            }
            seen
        });
        (rt, seen)
    });
    let wrong: Vec<_> = seen
        .iter()
        .enumerate()
        .filter(|(_, &c)| c != 1)
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "values not received exactly once: {wrong:?}"
    );
    let stats = rt.stats();
    assert_eq!(stats.live, 0, "{stats:?}");
}

/// A close from a coroutine, with receivers homed on both workers: the
/// closer's own worker queues its receivers in its inbox, the other's go
/// to that worker's, and each worker takes them a few at a time ahead of
/// their turn (`Worker::pop_inbox_entries`). Every receiver must wake
/// exactly once and run to the end, also when the woken ones yield (so
/// that entries taken ahead share the pinned queue with yielded tasks)
/// and park again on a second channel, closed once all of them got there.
#[test]
fn close_from_a_coroutine_wakes_receivers_on_both_workers_exactly_once() {
    let n = count();
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (rt, woken) = watchdog("close from a coroutine on 2 workers", move |progress| {
        let woken = rt.block_on(move || {
            let (tx1, rx1) = chan::bounded::<u64>(0);
            let (tx2, rx2) = chan::bounded::<u64>(0);
            let woken: Arc<Vec<AtomicUsize>> =
                Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
            let (parked, halfway, done) = (WaitGroup::new(), WaitGroup::new(), WaitGroup::new());
            parked.add(n);
            halfway.add(n);
            done.add(n);
            for i in 0..n {
                let (rx1, rx2, woken) = (rx1.clone(), rx2.clone(), woken.clone());
                let (parked, halfway, done) = (parked.clone(), halfway.clone(), done.clone());
                drop(spindle::Builder::new().spawn(move || {
                    parked.done();
                    assert_eq!(rx1.recv(), Err(RecvError));
                    woken[i].fetch_add(1, Ordering::Relaxed);
                    for _ in 0..i % 3 {
                        spindle::yield_now();
                    }
                    halfway.done();
                    assert_eq!(rx2.recv(), Err(RecvError));
                    woken[i].fetch_add(1, Ordering::Relaxed);
                    done.done();
                }));
            }
            drop((rx1, rx2));
            parked.wait();
            progress.tick();
            drop(tx1);
            halfway.wait();
            progress.tick();
            drop(tx2);
            done.wait();
            woken
        });
        (rt, woken)
    });
    for (i, w) in woken.iter().enumerate() {
        assert_eq!(
            w.load(Ordering::Relaxed),
            2,
            "receiver {i} woke a wrong number of times"
        );
    }
    // The last receivers may still be finishing after their `done()`
    // (they are detached): every one of them must, soon.
    let t0 = std::time::Instant::now();
    while rt.stats().live != 0 {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(60),
            "receivers never finished: {:?}",
            rt.stats()
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let stats = rt.stats();
    assert!(
        stats.steals > 0,
        "every receiver ran on one worker: {stats:?}"
    );
}
