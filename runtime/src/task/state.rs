//! The park/unpark state machine of one task.
//!
//! A task is in exactly one of these states:
//!
//! ```text
//!             wake()                  worker picks it
//!   PARKED ─────────────▶ SCHEDULED ─────────────────▶ RUNNING ──▶ DONE
//!     ▲                                                 │   ▲ │
//!     │ after_park() == true                            │   │ │ wake() while
//!     └─────────────────────────────────────────────────┘   │ ▼ running
//!                          requeued by its worker (yield,    NOTIFIED
//!                          or a park overtaken by a wake)
//! ```
//!
//! The two rules that make wake-ups impossible to lose *and* impossible to
//! double:
//!
//! 1. Only two things put a task in a run queue: a waker's `PARKED →
//!    SCHEDULED` transition, and its own worker requeueing it without it ever
//!    leaving the running states (after `yield_now`, or after a park that a
//!    wake overtook). The two exclude each other, so a task is in at most one
//!    run queue.
//! 2. A running task that decides to park does not change its state itself.
//!    It switches back to its worker first, and the *worker* tries
//!    `RUNNING → PARKED`. If a waker got in between (`NOTIFIED`), the worker
//!    requeues the task instead. No one can resume a coroutine whose stack is
//!    still in use, because until the switch completes nobody else can
//!    enqueue it.
//!
//! All transitions are read-modify-writes on one byte, so they form a single
//! chain that carries each waker's writes to the next run of the task (see
//! [`SchedState::wake`]).
//!
//! This file is model-checked with loom (`cargo test --lib loom` under
//! `--cfg loom`).

use crate::loom_shim::AtomicU8;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

const PARKED: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

pub(crate) struct SchedState(AtomicU8);

impl SchedState {
    /// A new task starts out scheduled: its spawner enqueues it.
    pub fn new_scheduled() -> SchedState {
        SchedState(AtomicU8::new(SCHEDULED))
    }

    /// Waker side. Returns `true` if the caller must enqueue the task.
    ///
    /// Every outcome is a read-modify-write, even "already scheduled" (which
    /// writes the same value back). That is what carries the waker's writes
    /// (the value it handed over, the outcome it stored) to the task: the
    /// worker's next RMW on this word reads from ours and synchronises with
    /// it. A plain load here would allow the store-buffering race in which
    /// the waker sees `SCHEDULED`, and the task then runs without seeing the
    /// outcome, parks again, and is never woken. (Loom finds that race.)
    pub fn wake(&self) -> bool {
        let mut cur = self.0.load(Relaxed);
        loop {
            let next = match cur {
                PARKED => SCHEDULED,
                RUNNING => NOTIFIED,
                SCHEDULED | NOTIFIED => cur,
                _ => return false, // done
            };
            match self.0.compare_exchange_weak(cur, next, AcqRel, Relaxed) {
                Ok(_) => return cur == PARKED,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Worker side, after dequeuing the task and before resuming it.
    ///
    /// The task comes out of a run queue as `SCHEDULED` (spawned or woken),
    /// or still `RUNNING`/`NOTIFIED` if it requeued itself (yield, or a park
    /// that a wake overtook): those never left the running state, and a
    /// pending `NOTIFIED` is consumed here because the task is about to
    /// re-check its condition anyway.
    pub fn start_running(&self) {
        let prev = self.0.swap(RUNNING, AcqRel);
        debug_assert!(
            prev != PARKED && prev != DONE,
            "cannot run a parked or finished task"
        );
    }

    /// Worker side, after the task switched out asking to park. Returns
    /// `true` if it is now parked; `false` if a wake arrived while it was
    /// running (`NOTIFIED`), in which case the worker must requeue it as it
    /// is (see [`start_running`](Self::start_running)).
    pub fn after_park(&self) -> bool {
        let parked = self
            .0
            .compare_exchange(RUNNING, PARKED, AcqRel, Acquire)
            .is_ok();
        debug_assert!(parked || self.0.load(Relaxed) == NOTIFIED);
        parked
    }

    /// Worker side, after the task's function returned.
    pub fn finish(&self) {
        self.0.swap(DONE, AcqRel);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use std::sync::atomic::Ordering::SeqCst;

    /// A task parks waiting for `ready`; another thread sets `ready` and wakes
    /// it. In every interleaving the task must end up enqueued exactly once
    /// (never lost, never twice), unless it saw `ready` before parking.
    #[test]
    fn loom_no_lost_or_double_wakeup() {
        loom::model(|| {
            let state = Arc::new(SchedState::new_scheduled());
            let ready = Arc::new(AtomicBool::new(false));

            let (s2, r2) = (state.clone(), ready.clone());
            let waker = loom::thread::spawn(move || {
                r2.store(true, SeqCst);
                s2.wake() as u32
            });

            // The task runs once, checks its condition, and parks unless
            // the condition already holds (then it runs on and finishes).
            state.start_running();
            let saw_ready = ready.load(SeqCst);
            let requeued_by_worker = if saw_ready {
                state.finish();
                0
            } else if state.after_park() {
                0
            } else {
                1
            };
            let enqueued_by_waker = waker.join().unwrap();
            let total = requeued_by_worker + enqueued_by_waker;
            if saw_ready {
                assert_eq!(total, 0, "a finished task must not be enqueued");
            } else {
                assert_eq!(total, 1, "wake-up lost or doubled");
            }
        });
    }

    /// Two wakers race to wake one parked task: exactly one enqueues it.
    #[test]
    fn loom_concurrent_wakers_enqueue_once() {
        loom::model(|| {
            let state = Arc::new(SchedState::new_scheduled());
            state.start_running();
            assert!(state.after_park());
            let s2 = state.clone();
            let t = loom::thread::spawn(move || s2.wake() as u32);
            let mine = state.wake() as u32;
            assert_eq!(mine + t.join().unwrap(), 1);
        });
    }
}
