//! Issue #9, sections 1 and 5: a started coroutine never changes OS thread
//! (so thread-locals and `!Send` values held across a switch stay on their
//! thread), and work that *can* run elsewhere does not wait behind a busy
//! worker.
//!
//! Every test asserts behaviour, not speed. Each failed on the runtime
//! before the pinned design (work stealing of started coroutines, wakes
//! into the waker's `runnext`): the thread-local tests saw the coroutine on
//! another worker after a yield, the liveness tests saw the receiver (or
//! the child) run only after the busy coroutine's loop had ended, and the
//! polling tests hung.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle::chan::{self, TryRecvError, TrySendError};
use spindle::Runtime;
use spindle_tests::watchdog;

thread_local!(static TL: Cell<u64> = const { Cell::new(0) });
thread_local!(static SLOTS: RefCell<HashMap<u64, Rc<u64>>> = RefCell::new(HashMap::new()));

/// The address of this thread's `TL`, computed afresh: out of line, and
/// with a `black_box` that makes the call look impure, so the compiler can
/// neither reuse an address computed before a switch nor merge two calls.
#[inline(never)]
fn tl_address_here() -> usize {
    std::hint::black_box(TL.with(|c| c as *const Cell<u64> as usize))
}

/// Park `rc` in this thread's slot for coroutine `key` (out of line and
/// impure, like [`tl_address_here`]).
#[inline(never)]
fn slot_put(key: u64, rc: Rc<u64>) {
    std::hint::black_box(SLOTS.with(|s| s.borrow_mut().insert(key, rc)));
}

#[inline(never)]
fn slot_take(key: u64) -> Option<Rc<u64>> {
    std::hint::black_box(SLOTS.with(|s| s.borrow_mut().remove(&key)))
}

/// Run `per` coroutines on 2 workers, each calling `body(i)`; return how
/// many reported a problem (`body` returns `false`). They are spawned from
/// one coroutine, so that one worker starts with all the work and the other
/// has every reason to steal.
fn count_failures(per: u64, body: fn(u64) -> bool) -> usize {
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.block_on(move || {
        let failures = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..per)
            .map(|i| {
                let failures = failures.clone();
                spindle::spawn(move || {
                    if !body(i) {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        failures.load(Ordering::SeqCst)
    })
}

/// The repro of the issue: after every yield, the thread-local that a
/// `with` in the coroutine sees is the current thread's.
#[test]
fn a_thread_local_is_the_current_threads_after_every_switch() {
    let failures = count_failures(200, |i| {
        let mut ok = true;
        for _ in 0..200 {
            TL.with(|c| c.set(i));
            spindle::yield_now();
            let after = TL.with(|c| c as *const Cell<u64> as usize);
            ok &= after == tl_address_here();
        }
        ok
    });
    assert_eq!(failures, 0, "coroutines that saw another thread's variable");
}

/// An `Rc` parked in a thread-local map across yields comes back: the map
/// is the same thread's, and nobody else touched the `Rc` meanwhile (on
/// another thread, the map's clone and ours would share a count unlocked).
#[test]
fn an_rc_round_trips_through_a_thread_local_across_yields() {
    let failures = count_failures(200, |i| {
        let mut ok = true;
        for round in 0..50 {
            let rc = Rc::new(i * 1000 + round);
            slot_put(i, rc.clone());
            spindle::yield_now();
            let back = slot_take(i);
            ok &= back.is_some_and(|b| Rc::ptr_eq(&b, &rc)) && Rc::strong_count(&rc) == 1;
        }
        ok
    });
    assert_eq!(failures, 0, "coroutines whose Rc was not in their slot");
}

/// std's stdout lock is reentrant per OS thread: held across a yield, it
/// must be released on the thread that took it (a coroutine of the same
/// thread may take it meanwhile, reentrantly: that is the lock's contract).
/// One coroutine in ten holds it; the others only yield, so that a worker
/// blocked on the lock does not keep the other from stealing.
#[test]
fn stdout_locked_across_a_yield_is_released_on_its_thread() {
    let failures = count_failures(200, |i| {
        let mut ok = true;
        for _ in 0..500 {
            if i % 10 != 0 {
                spindle::yield_now();
                continue;
            }
            let mut lock = std::io::stdout().lock();
            let before = tl_address_here();
            spindle::yield_now();
            ok &= lock.write_all(b"").is_ok() && tl_address_here() == before;
            drop(lock);
        }
        ok
    });
    assert_eq!(failures, 0, "stdout locks released on another thread");
}

/// Spin until `flag` is set, failing after a generous deadline instead of
/// hanging (the watchdog would catch a hang too, much later).
fn spin_until(flag: &AtomicBool, what: &str) {
    let t0 = Instant::now();
    while !flag.load(Ordering::SeqCst) {
        assert!(t0.elapsed() < Duration::from_secs(30), "{what} never came");
        std::hint::spin_loop();
    }
}

/// Busy-loop for `d` (no blocking call), returning early with `true` once
/// `flag` is set.
fn compute_until(d: Duration, flag: &AtomicBool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        if flag.load(Ordering::SeqCst) {
            return true;
        }
        std::hint::spin_loop();
    }
    flag.load(Ordering::SeqCst)
}

/// A receiver parked on an idle worker runs as soon as it is sent to, not
/// after the sender's 200 ms of computing (it used to be woken into the
/// sender's worker and wait there).
#[test]
fn a_woken_receiver_does_not_wait_behind_its_busy_sender() {
    for workers in [2, 4] {
        watchdog("receiver behind a busy sender", move |_| {
            let rt = Runtime::builder().workers(workers).build().unwrap();
            let (tx, rx) = chan::bounded::<u64>(0);
            let (r_up, s_up, got) = (
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
            );
            let (r_up2, s_up2, got2) = (r_up.clone(), s_up.clone(), got.clone());
            let receiver = rt.spawn(move || {
                // Both coroutines running at once: they are on two workers.
                r_up2.store(true, Ordering::SeqCst);
                spin_until(&s_up2, "the sender");
                let v = rx.recv();
                got2.store(true, Ordering::SeqCst);
                v
            });
            let sender = rt.spawn(move || {
                s_up.store(true, Ordering::SeqCst);
                spin_until(&r_up, "the receiver");
                // Give the receiver time to park.
                std::thread::sleep(Duration::from_millis(20));
                tx.send(42).unwrap();
                compute_until(Duration::from_millis(200), &got)
            });
            assert!(
                sender.join().unwrap(),
                "{workers} workers: the receiver ran only after the sender's loop"
            );
            assert_eq!(receiver.join().unwrap(), Ok(42));
        });
    }
}

/// A child that has not started yet runs on an idle worker while its parent
/// computes (it used to sit in the parent's `runnext`).
#[test]
fn an_unstarted_child_runs_while_its_parent_computes() {
    for workers in [2, 4] {
        watchdog("child behind a busy parent", move |_| {
            let rt = Runtime::builder().workers(workers).build().unwrap();
            let ran = rt.block_on(|| {
                let started = Arc::new(AtomicBool::new(false));
                let s = started.clone();
                let child = spindle::spawn(move || s.store(true, Ordering::SeqCst));
                let ran = compute_until(Duration::from_millis(200), &started);
                child.join().unwrap();
                ran
            });
            assert!(ran, "{workers} workers: the child waited for its parent");
        });
    }
}

/// crossbeam's `zero.rs` `stress_iter` pattern: one side polls `try_recv`
/// in a loop without blocking, the other blocks in `send`.
#[test]
fn a_try_recv_poller_and_a_blocking_sender_finish() {
    for workers in [1, 2, 4] {
        watchdog("try_recv poller", move |progress| {
            let rt = Runtime::builder().workers(workers).build().unwrap();
            let n = rt.block_on(move || {
                let (tx, rx) = chan::bounded::<u64>(0);
                let sender = spindle::spawn(move || {
                    for i in 0..1000 {
                        tx.send(i).unwrap();
                    }
                });
                let mut n = 0;
                loop {
                    match rx.try_recv() {
                        Ok(_) => {
                            n += 1;
                            progress.tick();
                        }
                        Err(TryRecvError::Empty) => {}
                        Err(TryRecvError::Disconnected) => break,
                    }
                }
                sender.join().unwrap();
                n
            });
            assert_eq!(n, 1000, "{workers} workers");
        });
    }
}

/// The mirror image: one side polls `try_send`, the other blocks in `recv`.
#[test]
fn a_try_send_poller_and_a_blocking_receiver_finish() {
    for workers in [1, 2, 4] {
        watchdog("try_send poller", move |progress| {
            let rt = Runtime::builder().workers(workers).build().unwrap();
            let sum = rt.block_on(move || {
                let (tx, rx) = chan::bounded::<u64>(0);
                let receiver =
                    spindle::spawn(move || std::iter::from_fn(|| rx.recv().ok()).sum::<u64>());
                for i in 0..1000u64 {
                    let mut v = i;
                    loop {
                        match tx.try_send(v) {
                            Ok(()) => break,
                            Err(TrySendError::Full(back)) => v = back,
                            Err(TrySendError::Disconnected(_)) => panic!("receiver gone"),
                        }
                    }
                    progress.tick();
                }
                drop(tx);
                receiver.join().unwrap()
            });
            assert_eq!(sum, 999 * 1000 / 2, "{workers} workers");
        });
    }
}
