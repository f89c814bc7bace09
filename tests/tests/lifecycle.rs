//! Runtime start-up and shutdown with work still in flight.
//!
//! Dropping a `Runtime` stops its workers after their current task and
//! cancels every coroutine that has not finished: it is unwound (its
//! captured values dropped) and its join handle reports `Cancelled`. These
//! tests check that the drop returns whatever the coroutines are doing
//! (parked, yielding in a loop, sleeping for an hour), that channels whose
//! other ends were in cancelled coroutines are closed, that runtimes can be
//! started and dropped many times, and that a runtime needs a worker.
//! (`shutdown.rs` tests the rest of cancellation.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spindle::chan;
use spindle::sync::WaitGroup;
use spindle::Runtime;
use spindle_tests::watchdog;

#[test]
fn dropping_a_runtime_with_parked_coroutines_returns_and_late_wakes_are_safe() {
    watchdog("drop with parked coroutines", |progress| {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let (tx, rx) = chan::bounded::<u64>(0);
        let wg = WaitGroup::new();
        let resumed = Arc::new(AtomicUsize::new(0));
        wg.add(100);
        let handles: Vec<_> = (0..100)
            .map(|_| {
                let (rx, wg, resumed) = (rx.clone(), wg.clone(), resumed.clone());
                rt.spawn(move || {
                    wg.done();
                    let r = rx.recv();
                    resumed.fetch_add(1, Ordering::SeqCst);
                    r
                })
            })
            .collect();
        drop(rx);
        wg.wait();
        drop(rt); // must return although 100 coroutines are parked
        progress.tick();
        // The receivers were cancelled, so the channel is closed: the value
        // comes back instead of vanishing into a dead runtime.
        assert_eq!(
            tx.send(7).unwrap_err().0,
            7,
            "cancelled receivers closed it"
        );
        drop(tx);
        assert_eq!(
            resumed.load(Ordering::SeqCst),
            0,
            "a coroutine ran on after its runtime was dropped"
        );
        for h in handles {
            assert!(h.is_finished());
            assert!(h.join().unwrap_err().is::<spindle::Cancelled>());
        }
    });
}

#[test]
fn dropping_a_runtime_with_a_yielding_loop_returns() {
    watchdog("drop with a busy coroutine", |_| {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let h = rt.spawn(move || loop {
            s.store(true, Ordering::SeqCst);
            spindle::yield_now();
        });
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        drop(rt); // the loop never ends: the workers must stop anyway
        assert!(h.join().unwrap_err().is::<spindle::Cancelled>());
    });
}

#[test]
fn dropping_a_runtime_with_sleeping_coroutines_returns() {
    watchdog("drop with sleepers", |_| {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let wg = WaitGroup::new();
        wg.add(10);
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let wg = wg.clone();
                rt.spawn(move || {
                    wg.done();
                    spindle::sleep(Duration::from_secs(3600));
                })
            })
            .collect();
        wg.wait();
        drop(rt); // must not wait for the hour
        for h in handles {
            assert!(h.join().unwrap_err().is::<spindle::Cancelled>());
        }
    });
}

#[test]
fn runtimes_start_and_stop_many_times() {
    watchdog("start/stop", |progress| {
        for i in 0..100u64 {
            let rt = Runtime::builder()
                .workers(1 + (i as usize % 3))
                .build()
                .unwrap();
            let v = rt.block_on(move || {
                let hs: Vec<_> = (0..10).map(|j| spindle::spawn(move || i + j)).collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            });
            assert_eq!(v, 10 * i + 45);
            let stats = rt.stats();
            assert_eq!(stats.live, 0, "{stats:?}");
            drop(rt);
            progress.tick();
        }
    });
}

#[test]
fn a_runtime_needs_at_least_one_worker() {
    let err = Runtime::builder().workers(0).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let rt = Runtime::builder().workers(3).build().unwrap();
    assert_eq!(rt.stats().workers, 3);
}
