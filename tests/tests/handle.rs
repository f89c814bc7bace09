//! `spindle::Handle` (issue #13): spawn onto a runtime from where no
//! `&Runtime` is at hand, above all from a plain thread that a coroutine
//! started; and a clear error, never a run, once the runtime is gone.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use spindle::{chan, Builder, Handle, Runtime};
use spindle_tests::{panic_message, watchdog};

#[test]
fn handle_is_clone_send_sync() {
    fn check<H: Clone + Send + Sync + 'static>() {}
    check::<Handle>();
}

/// The case: a coroutine starts a plain thread, which spawns back
/// onto the runtime through the handle it was given, and joins.
#[test]
fn a_thread_started_by_a_coroutine_spawns_back_through_the_handle() {
    let sum = watchdog("handle from a thread", |_| {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| {
            let handle = Handle::current();
            let thread = std::thread::spawn(move || {
                assert!(
                    Handle::try_current().is_err(),
                    "a plain thread has no current runtime"
                );
                let (tx, rx) = chan::bounded::<u64>(0);
                let producer = handle.spawn(move || {
                    // Runs as a coroutine of the runtime: it has a current one.
                    assert!(Handle::try_current().is_ok());
                    for i in 1..=10 {
                        tx.send(i).unwrap();
                    }
                });
                let sum: u64 = rx.iter().sum();
                producer.join().unwrap();
                sum
            });
            // Do not block the worker while the thread runs: poll, yielding.
            while !thread.is_finished() {
                spindle::yield_now();
            }
            thread.join().unwrap()
        })
    });
    assert_eq!(sum, 55);
}

/// A named spawn through the handle, from a coroutine of the same runtime,
/// and `Runtime::handle` from outside.
#[test]
fn builder_spawns_on_a_handle_and_runtime_hands_one_out() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let handle = rt.handle();
    let h = Builder::new()
        .name("via-handle")
        .spawn_on_handle(&handle, || 6 * 7)
        .unwrap();
    assert_eq!(h.join().unwrap(), 42);
    let inner = rt.block_on(|| {
        let h = Handle::current().clone();
        h.spawn(|| "inner").join().unwrap()
    });
    assert_eq!(inner, "inner");
}

#[test]
fn current_outside_a_runtime_panics_and_try_current_errs() {
    let err = Handle::try_current().unwrap_err();
    assert!(
        err.to_string().contains("not inside a spindle runtime"),
        "{err}"
    );
    let payload = panic::catch_unwind(Handle::current).unwrap_err();
    let msg = panic_message(&*payload);
    assert!(msg.contains("not inside a spindle runtime"), "{msg}");
}

/// After its runtime was dropped, a handle refuses to spawn with a clear
/// error, and the function never runs.
#[test]
fn spawning_after_the_runtime_was_dropped_is_refused() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let handle = rt.handle();
    drop(rt);
    let ran = Arc::new(AtomicBool::new(false));

    let r = ran.clone();
    let err = Builder::new()
        .spawn_on_handle(&handle, move || r.store(true, Ordering::SeqCst))
        .unwrap_err();
    assert!(err.to_string().contains("runtime has shut down"), "{err}");

    let r = ran.clone();
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        handle.spawn(move || r.store(true, Ordering::SeqCst));
    }))
    .unwrap_err();
    let msg = panic_message(&*payload);
    assert!(msg.contains("runtime has shut down"), "{msg}");

    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(!ran.load(Ordering::SeqCst), "a refused coroutine ran");
}

/// Threads spawn through handles while the runtime is dropped: every spawn
/// either succeeds (admitted before the drop) or is refused with the
/// shutdown error, and none touches freed state (run it under ASan).
#[test]
fn spawns_racing_the_drop_are_admitted_or_refused() {
    for _round in 0..20 {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let refused = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let handle = rt.handle();
                let refused = refused.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        match Builder::new().spawn_on_handle(&handle, || ()) {
                            Ok(h) => drop(h),
                            Err(e) => {
                                assert!(e.to_string().contains("runtime has shut down"), "{e}");
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        std::thread::yield_now();
        drop(rt);
        for t in threads {
            t.join().unwrap();
        }
    }
}
