//! The park/unpark state machine of one task.
//!
//! A task is in exactly one of these states:
//!
//! ```text
//!             wake()                  worker picks it
//!   PARKED ─────────────▶ SCHEDULED ─────────────────▶ RUNNING ──▶ DONE
//!     ▲                       ▲                          │  │
//!     │ after_park() == true  │ after_park() == false    │  │ wake() while running
//!     └───────────────────────┴──────────────────────────┘  ▼
//!                                                        NOTIFIED
//! ```
//!
//! The two rules that make wake-ups impossible to lose *and* impossible to
//! double:
//!
//! 1. Only the transition `PARKED → SCHEDULED` enqueues the task, so a task is
//!    in at most one run queue.
//! 2. A running task that decides to park does not change its state itself.
//!    It switches back to its worker first, and the *worker* tries
//!    `RUNNING → PARKED`. If a waker got in between (`NOTIFIED`), the worker
//!    requeues the task instead. No one can resume a coroutine whose stack is
//!    still in use, because until the switch completes nobody else can
//!    enqueue it.
//!
//! This file is model-checked with loom (`cargo test --lib loom` under
//! `--cfg loom`).

use crate::loom_shim::AtomicU8;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

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
    pub fn wake(&self) -> bool {
        let mut cur = self.0.load(Acquire);
        loop {
            let next = match cur {
                PARKED => SCHEDULED,
                RUNNING => NOTIFIED,
                _ => return false, // already queued, already notified, or done
            };
            match self.0.compare_exchange_weak(cur, next, AcqRel, Acquire) {
                Ok(_) => return next == SCHEDULED,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Worker side, after dequeuing the task and before resuming it.
    pub fn start_running(&self) {
        // A plain store is enough: in SCHEDULED nobody else writes the state
        // (wakers leave it alone), and the run queue that handed us the task
        // already synchronised us with whoever scheduled it.
        debug_assert_eq!(
            self.0.load(Relaxed),
            SCHEDULED,
            "only a scheduled task can run"
        );
        self.0.store(RUNNING, Relaxed);
    }

    /// Worker side, after the task switched out asking to park. Returns
    /// `true` if it is now parked; `false` if a wake arrived while it was
    /// running, in which case it is `SCHEDULED` again and the worker must
    /// requeue it.
    pub fn after_park(&self) -> bool {
        match self.0.compare_exchange(RUNNING, PARKED, AcqRel, Acquire) {
            Ok(_) => true,
            Err(actual) => {
                debug_assert_eq!(actual, NOTIFIED);
                self.0.store(SCHEDULED, Release);
                false
            }
        }
    }

    /// Worker side, after the task yielded: it goes straight back to a queue.
    pub fn after_yield(&self) {
        self.0.store(SCHEDULED, Release);
    }

    /// Worker side, after the task's function returned.
    pub fn finish(&self) {
        self.0.store(DONE, Release);
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
