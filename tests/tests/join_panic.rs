//! `JoinHandle` and panics, as with `std::thread`.
//!
//! `join` must work from a plain thread (it blocks) and from a coroutine (it
//! parks), return the coroutine's value, and return a panic as `Err` carrying
//! the original payload. `block_on` resumes such a panic on the calling
//! thread. Dropping a handle detaches the coroutine, which still runs to the
//! end. A panicking coroutine must not take its worker down. Misuse gives a
//! clear panic: `block_on` inside a coroutine, `spawn` outside a runtime.
//! Every test runs under a watchdog: a join that misses its wake-up fails
//! instead of hanging.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use spindle::{chan, Builder, Runtime};
use spindle_tests::{panic_message, watchdog};

fn rt2() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

#[test]
fn join_from_a_thread_returns_the_value() {
    watchdog("join_from_a_thread_returns_the_value", move |_| {
        let rt = rt2();
        assert_eq!(rt.spawn(|| 6 * 7).join().unwrap(), 42);
        // A value bigger than a few words, and one with a destructor.
        let big = rt.spawn(|| [7u64; 64]).join().unwrap();
        assert_eq!(big, [7u64; 64]);
        let s = rt.spawn(|| "x".repeat(1000)).join().unwrap();
        assert_eq!(s.len(), 1000);
    });
}

#[test]
fn join_from_a_thread_waits_for_a_blocked_coroutine() {
    let rt = rt2();
    watchdog("thread join", move |_| {
        let (tx, rx) = chan::bounded::<u32>(0);
        let h = rt.spawn(move || rx.recv().unwrap() + 1);
        assert!(!h.is_finished(), "cannot finish before it receives");
        let joiner = std::thread::spawn(move || h.join().unwrap());
        tx.send(41).unwrap();
        assert_eq!(joiner.join().unwrap(), 42);
    });
}

#[test]
fn join_from_a_coroutine_parks_until_the_value_is_ready() {
    let rt = rt2();
    let v = watchdog("coroutine join", move |_| {
        rt.block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let inner = spindle::spawn(move || rx.recv().unwrap() * 2);
            // A second coroutine joins the first while it is still blocked.
            let joiner = spindle::spawn(move || inner.join().unwrap() + 1);
            tx.send(20).unwrap();
            joiner.join().unwrap()
        })
    });
    assert_eq!(v, 41);
}

#[test]
fn is_finished_turns_true_without_joining() {
    let rt = rt2();
    watchdog("is_finished", move |_| {
        let (tx, rx) = chan::bounded::<()>(0);
        let h = rt.spawn(move || rx.recv().is_ok());
        assert!(!h.is_finished());
        tx.send(()).unwrap();
        // No progress ticks here: if it never turns true, the watchdog fails.
        while !h.is_finished() {
            std::thread::yield_now();
        }
        assert!(h.join().unwrap());
    });
}

#[test]
fn panic_is_returned_by_join_with_its_payload() {
    watchdog("panic_is_returned_by_join_with_its_payload", move |_| {
        let rt = rt2();
        // A formatted message (String payload), joined from a thread.
        let err = rt
            .spawn(|| -> u32 { panic!("boom {}", 7) })
            .join()
            .unwrap_err();
        assert_eq!(panic_message(&*err), "boom 7");
        // A literal (&str payload), joined from a coroutine.
        let msg = rt.block_on(|| {
            let err = spindle::spawn(|| panic!("static boom")).join().unwrap_err();
            panic_message(&*err)
        });
        assert_eq!(msg, "static boom");
        // A non-string payload survives as is.
        let err = rt
            .spawn(|| std::panic::panic_any(0xDEAD_u32))
            .join()
            .unwrap_err();
        assert_eq!(err.downcast_ref::<u32>(), Some(&0xDEAD));
    });
}

#[test]
fn panics_do_not_take_workers_down() {
    watchdog("panics_do_not_take_workers_down", move |_| {
        let rt = rt2();
        let handles: Vec<_> = (0..200)
            .map(|i| rt.spawn(move || if i % 2 == 0 { panic!("even {i}") } else { i }))
            .collect();
        let mut ok = 0;
        let mut panicked = 0;
        for (i, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(v) => {
                    assert_eq!(v, i);
                    ok += 1;
                }
                Err(e) => {
                    assert_eq!(panic_message(&*e), format!("even {i}"));
                    panicked += 1;
                }
            }
        }
        assert_eq!((ok, panicked), (100, 100));
        // Both workers still run coroutines: two that must run at the same time
        // (each waits for the other) can only finish if nothing is stuck.
        let (a_tx, a_rx) = chan::bounded::<u8>(0);
        let (b_tx, b_rx) = chan::bounded::<u8>(0);
        let a = rt.spawn(move || {
            a_tx.send(1).unwrap();
            b_rx.recv().unwrap()
        });
        let b = rt.spawn(move || {
            let v = a_rx.recv().unwrap();
            b_tx.send(v + 1).unwrap();
        });
        b.join().unwrap();
        assert_eq!(a.join().unwrap(), 2);
        let stats = rt.stats();
        assert_eq!(stats.live, 0, "{stats:?}");
        assert_eq!(stats.workers, 2);
    });
}

#[test]
fn block_on_resumes_the_panic_on_the_caller() {
    watchdog("block_on_resumes_the_panic_on_the_caller", move |_| {
        let rt = rt2();
        let err = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(|| -> u32 { panic!("from inside block_on") })
        }))
        .unwrap_err();
        assert_eq!(panic_message(&*err), "from inside block_on");
        // The runtime is still usable afterwards.
        assert_eq!(rt.block_on(|| 5), 5);
    });
}

#[test]
fn dropping_the_handle_detaches() {
    let rt = rt2();
    watchdog("detach", move |_| {
        let (go_tx, go_rx) = chan::bounded::<u32>(0);
        let (done_tx, done_rx) = chan::bounded::<u32>(1);
        let ran_to_end = Arc::new(AtomicBool::new(false));
        let flag = ran_to_end.clone();
        let h = rt.spawn(move || {
            let v = go_rx.recv().unwrap();
            done_tx.send(v * 10).unwrap();
            flag.store(true, Ordering::SeqCst);
        });
        drop(h); // detach while it is parked
        go_tx.send(4).unwrap();
        assert_eq!(done_rx.recv().unwrap(), 40);
        // Its sender is dropped when the coroutine returns: recv then fails,
        // which proves the detached coroutine ran to its end.
        assert!(done_rx.recv().is_err());
        assert!(ran_to_end.load(Ordering::SeqCst));
        // Detached from inside a coroutine, and a detached panic stays
        // contained.
        rt.block_on(|| {
            let (tx, rx) = chan::bounded::<u8>(0);
            drop(spindle::spawn(move || tx.send(9).unwrap()));
            drop(spindle::spawn(|| panic!("detached panic")));
            assert_eq!(rx.recv().unwrap(), 9);
        });
        assert_eq!(rt.block_on(|| 1), 1);
    });
}

#[test]
fn block_on_inside_a_coroutine_panics_clearly() {
    watchdog("block_on_inside_a_coroutine_panics_clearly", move |_| {
        let rt = Arc::new(rt2());
        let inner = rt.clone();
        let msg = rt.block_on(move || {
            let err = catch_unwind(AssertUnwindSafe(|| inner.block_on(|| 1))).unwrap_err();
            panic_message(&*err)
        });
        assert!(msg.contains("block_on"), "unclear message: {msg:?}");
        // Also when the misuse is not caught: join reports it.
        let inner = rt.clone();
        let err = rt.spawn(move || inner.block_on(|| 2)).join().unwrap_err();
        assert!(panic_message(&*err).contains("block_on"));
    });
}

#[test]
fn spawn_outside_a_runtime_panics_clearly() {
    watchdog("spawn_outside_a_runtime_panics_clearly", move |_| {
        let err = catch_unwind(|| spindle::spawn(|| 1)).unwrap_err();
        let msg = panic_message(&*err);
        assert!(msg.contains("outside a spindle runtime"), "{msg:?}");
        let err = catch_unwind(|| Builder::new().name("x").spawn(|| 1)).unwrap_err();
        let msg = panic_message(&*err);
        assert!(msg.contains("outside a spindle runtime"), "{msg:?}");
        // Also from a thread while a runtime exists elsewhere in the process.
        let _rt = rt2();
        let err = std::thread::spawn(|| spindle::spawn(|| 1).join())
            .join()
            .unwrap_err();
        assert!(panic_message(&*err).contains("outside a spindle runtime"));
    });
}

#[test]
fn spawn_on_and_named_builder_work_from_threads_and_coroutines() {
    watchdog(
        "spawn_on_and_named_builder_work_from_threads_and_coroutines",
        move |_| {
            let rt = rt2();
            let h = Builder::new()
                .name("from-thread")
                .spawn_on(&rt, || 3)
                .unwrap();
            assert_eq!(h.join().unwrap(), 3);
            let v = rt.block_on(|| {
                Builder::new()
                    .name("from-coroutine")
                    .spawn(|| 4)
                    .unwrap()
                    .join()
                    .unwrap()
            });
            assert_eq!(v, 4);
        },
    );
}
