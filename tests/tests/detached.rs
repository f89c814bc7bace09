//! Detached coroutines: the result of a coroutine whose `JoinHandle` was
//! dropped is dropped inside the coroutine's own context, not on the bare
//! worker thread (issue #9 §4).
//!
//! * A result whose `Drop` panics must not kill the worker: with one worker,
//!   a later `block_on` still runs, `stats().workers` is still 1, and the
//!   panic is reported on stderr.
//! * A result whose `Drop` blocks on a spindle channel must park the
//!   coroutine (not block the worker thread): with one worker, the parent's
//!   `recv` returns.
//!
//! On the old code the first hung (the only worker had died) and so did the
//! second (the worker itself blocked in `send`); the watchdog turns a hang
//! into a failure.

use std::time::Duration;

use spindle::{chan, Runtime};
use spindle_tests::{is_child, run_child, watchdog};

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("PanicOnDrop says no");
    }
}

/// Sends a "done" notice on a rendezvous channel when dropped: the send
/// blocks until someone receives.
struct Notify(chan::Sender<u32>);

impl Drop for Notify {
    fn drop(&mut self) {
        let _ = self.0.send(7);
    }
}

/// Wait until `h` finished, without joining it (that would not detach it).
fn wait_finished<T: Send + 'static>(h: &spindle::JoinHandle<T>) {
    while !h.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The repro, in a child (the panic message goes to its stderr):
/// a detached result panics in `Drop`; the one worker survives.
#[test]
fn a_panicking_drop_of_a_detached_result_keeps_the_worker() {
    const ROLE: &str = "detached-panic";
    if is_child(ROLE) {
        watchdog("detached panicking drop", |p| {
            let rt = Runtime::builder().workers(1).build().unwrap();
            // Detached before it runs (one worker, busy with nothing yet:
            // the drop happens here, long before the coroutine finishes).
            drop(rt.spawn(|| {
                spindle::sleep(Duration::from_millis(20));
                PanicOnDrop
            }));
            // Detached after it finished: the handle's side of the join
            // protocol drops it, here, and must not panic either.
            let h = rt.spawn(|| PanicOnDrop);
            wait_finished(&h);
            drop(h);
            std::thread::sleep(Duration::from_millis(100));
            p.tick();
            assert_eq!(rt.block_on(|| 1), 1, "the worker no longer runs");
            p.tick();
            assert_eq!(rt.stats().workers, 1);
            // Also a panic payload whose own drop panics, detached.
            drop(rt.spawn(|| -> u32 { std::panic::panic_any(PanicOnDrop) }));
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(rt.block_on(|| 2), 2, "the worker no longer runs");
        });
        return;
    }
    let run = run_child(
        "a_panicking_drop_of_a_detached_result_keeps_the_worker",
        ROLE,
        &[],
    );
    run.assert_passed();
    let reports: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("spindle: ") && l.contains("detached coroutine"))
        .collect();
    // Two results (one dropped by its coroutine, one by its handle) and one
    // panic payload panicked in `Drop`.
    assert_eq!(
        reports.len(),
        3,
        "one report line per panicking drop\n{run}"
    );
    assert!(
        reports.iter().all(|l| l.contains("PanicOnDrop says no")),
        "the report names the panic\n{run}"
    );
}

/// A detached result's `Drop` that sends on a channel parks its coroutine;
/// the parent (a coroutine on the only worker) receives the notice.
#[test]
fn a_blocking_drop_of_a_detached_result_parks_the_coroutine() {
    let got = watchdog("detached blocking drop", |p| {
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(move || {
            let (tx, rx) = chan::bounded::<u32>(0);
            drop(spindle::spawn(move || Notify(tx)));
            // Let the child run and finish while nobody receives.
            spindle::yield_now();
            p.tick();
            rx.recv().ok()
        })
    });
    assert_eq!(got, Some(7));
}

/// The same from a plain thread: the handle is dropped after the coroutine
/// finished, so the drop is decided on the handle's side (no worker
/// involved), and the parent thread's `recv` returns.
#[test]
fn a_blocking_drop_after_the_finish_runs_where_the_handle_is_dropped() {
    let got = watchdog("late detach of a blocking result", |_| {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let (tx, rx) = chan::bounded::<u32>(0);
        let h = rt.spawn(move || Notify(tx));
        wait_finished(&h);
        // The handle's owner drops the result: this thread blocks in `send`
        // until the receiver below takes the notice.
        let receiver = std::thread::spawn(move || rx.recv().ok());
        drop(h);
        receiver.join().unwrap()
    });
    assert_eq!(got, Some(7));
}
