//! The park/unpark state machine of one task.
//!
//! A task is in exactly one of these states:
//!
//! ```text
//!            wake()                         commit_park() == true
//!   PARKED ──────────▶ RUNNABLE ◀──────────────────────────────┐
//!     ▲                 │    ▲ │                               │
//!     │                 │    │ │ wake() while queued           │
//!     │                 │    │ ▼ or running                    │
//!     │                 │   NOTIFIED ──── start_running() ─────┘
//!     │                 │                 (consumes it)
//!     └─ commit_park() ─┘ (the worker parks it)       finish() ──▶ DONE
//! ```
//!
//! `RUNNABLE` means "in a run queue, or running": the worker does not write
//! the state to start a task, it only reads it. That keeps the hot path
//! (a yield, a channel hand-off) one read-modify-write lighter; the last
//! paragraph says why it is still safe.
//!
//! The two rules that make wake-ups impossible to lose *and* impossible to
//! double:
//!
//! 1. Only two things put a task in a run queue: a waker's `PARKED →
//!    RUNNABLE` transition, and its own worker requeueing it without it ever
//!    leaving `RUNNABLE`/`NOTIFIED` (after `yield_now`, or after a park that
//!    a wake overtook). The two exclude each other, so a task is in at most
//!    one run queue.
//! 2. A running task that decides to park does not change its state itself.
//!    It switches back to its worker first, and the *worker* tries
//!    `RUNNABLE → PARKED`. If a waker got in between (`NOTIFIED`), the worker
//!    requeues the task instead. No one can resume a coroutine whose stack is
//!    still in use, because until the switch completes nobody else can
//!    enqueue it.
//!
//! Every *decision* is a read-modify-write on one byte: the waker's (enqueue
//! or not) and the worker's (park or requeue). All RMWs on one atomic form a
//! single total order and each reads the latest value, so a waker's RMW is
//! either before the worker's park attempt (which then fails, and the
//! failed CAS acquires the waker's writes) or after it (the waker sees
//! `PARKED` and enqueues). The worker's plain load in `start_running` makes
//! no decision: if it reads a stale `RUNNABLE`, the task merely runs once
//! without seeing a wake that the later park attempt will catch. See
//! [`SchedState::wake`] for the race that a plain load on the *waker* side
//! would allow.
//!
//! This file is model-checked with loom (`cargo test --lib loom` under
//! `--cfg loom`).

use crate::loom_shim::AtomicU8;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

const PARKED: u8 = 0;
const RUNNABLE: u8 = 1;
const NOTIFIED: u8 = 2;
const DONE: u8 = 3;

pub(crate) struct SchedState(AtomicU8);

impl SchedState {
    /// A new task starts out runnable: its spawner enqueues it.
    pub fn new_runnable() -> SchedState {
        SchedState(AtomicU8::new(RUNNABLE))
    }

    /// Waker side. Returns `true` if the caller must enqueue the task.
    ///
    /// Every outcome is a read-modify-write, even "already notified" (which
    /// writes the same value back). That is what carries the waker's writes
    /// (the value it handed over, the outcome it stored) to the task: the
    /// worker's next RMW on this word reads from ours and synchronises with
    /// it. A plain load here would allow the store-buffering race in which
    /// the waker sees `NOTIFIED`, and the task then runs without seeing the
    /// outcome, parks again, and is never woken. (Loom finds that race.)
    pub fn wake(&self) -> bool {
        let mut cur = self.0.load(Relaxed);
        loop {
            let next = match cur {
                PARKED => RUNNABLE,
                RUNNABLE | NOTIFIED => NOTIFIED,
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
    /// Usually the task is `RUNNABLE` and nothing is written. A pending
    /// `NOTIFIED` is consumed here, with an RMW that acquires the wakers'
    /// writes, because the task is about to re-check its condition anyway.
    pub fn start_running(&self) {
        let cur = self.0.load(Acquire);
        debug_assert!(
            cur == RUNNABLE || cur == NOTIFIED,
            "cannot run a parked or finished task"
        );
        if cur == NOTIFIED {
            self.0.swap(RUNNABLE, AcqRel);
        }
    }

    /// Worker side, after the task switched out asking to park. Returns
    /// `true` if it is now parked; `false` if a wake arrived since it started
    /// running (`NOTIFIED`), in which case the worker must requeue it as it
    /// is (see [`start_running`](Self::start_running)).
    pub fn commit_park(&self) -> bool {
        let parked = self
            .0
            .compare_exchange(RUNNABLE, PARKED, AcqRel, Acquire)
            .is_ok();
        debug_assert!(parked || self.0.load(Relaxed) == NOTIFIED);
        parked
    }

    /// Is the task parked right now? (A hint for the compaction pass: a
    /// wake may follow at once, which the worker then handles as usual.)
    pub fn is_parked(&self) -> bool {
        self.0.load(Relaxed) == PARKED
    }

    /// Has the task finished (or been cancelled)?
    pub fn is_done(&self) -> bool {
        self.0.load(Acquire) == DONE
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
            let state = Arc::new(SchedState::new_runnable());
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
            } else if state.commit_park() {
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

    /// The same race with the orderings the runtime really uses (a `Release`
    /// store of the outcome, an `Acquire` load of it): if a wake overtakes
    /// the park, the requeued task must see the waker's write on its next
    /// run, and a task that did park must have been enqueued by the waker.
    #[test]
    fn loom_requeued_task_sees_the_wakers_write() {
        use std::sync::atomic::Ordering::{Acquire, Release};
        loom::model(|| {
            let state = Arc::new(SchedState::new_runnable());
            let ready = Arc::new(AtomicBool::new(false));
            let (s2, r2) = (state.clone(), ready.clone());
            let waker = loom::thread::spawn(move || {
                r2.store(true, Release);
                s2.wake()
            });
            // The worker runs the task until it sees `ready` or parks.
            let mut runs = 0;
            let parked = loop {
                runs += 1;
                state.start_running();
                if ready.load(Acquire) {
                    state.finish();
                    break false;
                }
                if state.commit_park() {
                    break true;
                }
                // Overtaken by the wake: requeued as it is, runs again, and
                // must now see `ready` (so a second requeue is a bug).
                assert!(runs < 2, "requeued task did not see the waker's write");
            };
            let enqueued = waker.join().unwrap();
            if parked {
                assert!(enqueued, "wake-up lost: parked, and nobody enqueues it");
            } else {
                assert!(!enqueued, "a finished or running task was enqueued");
            }
        });
    }

    /// Two wakers, each publishing its own data (`Release`) before it wakes,
    /// race a running task that checks both and parks until it has seen
    /// both. This is the one model that reaches the already-`NOTIFIED` path
    /// of `wake` with data still unseen: the second waker finds `NOTIFIED`,
    /// and only its read-modify-write (writing `NOTIFIED` back) makes the
    /// worker's next RMW on the state acquire that waker's data. Mutating
    /// `wake` to `return false` on `NOTIFIED` without the RMW makes this
    /// model fail (the task consumes the first wake, misses the second
    /// waker's data, parks, and nobody enqueues it); every other model here
    /// passes that mutation.
    ///
    /// The run queue is a count of enqueues. Once the task has parked, the
    /// model waits for both wakers (a parked task cannot run until one of
    /// them enqueues it) and fails if neither did.
    #[test]
    fn loom_two_wakers_each_publish_their_own_data() {
        use loom::sync::atomic::AtomicUsize;
        use std::sync::atomic::Ordering::{Acquire, Release};
        // Three threads: bound the preemptions (as tokio's models do). With
        // the bound this runs in a fraction of a second instead of about five
        // minutes, and still fails on the mutation (the race needs two).
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(2);
        model.check(|| {
            let state = Arc::new(SchedState::new_runnable());
            let data = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
            let enqueued = Arc::new(AtomicUsize::new(0));
            let wakers: Vec<_> = (0..2)
                .map(|i| {
                    let (s, d, q) = (state.clone(), data.clone(), enqueued.clone());
                    loom::thread::spawn(move || {
                        d[i].store(true, Release);
                        if s.wake() {
                            q.fetch_add(1, Relaxed);
                        }
                    })
                })
                .collect();
            // The worker runs the task until it has seen both wakers' data
            // or parks. A requeue (a wake overtook the park) runs it again.
            let parked = loop {
                state.start_running();
                if data.iter().all(|d| d.load(Acquire)) {
                    state.finish();
                    break false;
                }
                if state.commit_park() {
                    break true;
                }
            };
            for w in wakers {
                w.join().unwrap();
            }
            let enqueued = enqueued.load(Relaxed);
            if parked {
                assert_eq!(enqueued, 1, "wake-up lost (or doubled) after a park");
            } else {
                assert_eq!(enqueued, 0, "a running or finished task was enqueued");
            }
        });
    }

    /// Two wakers race to wake one parked task: exactly one enqueues it.
    #[test]
    fn loom_concurrent_wakers_enqueue_once() {
        loom::model(|| {
            let state = Arc::new(SchedState::new_runnable());
            state.start_running();
            assert!(state.commit_park());
            let s2 = state.clone();
            let t = loom::thread::spawn(move || s2.wake() as u32);
            let mine = state.wake() as u32;
            assert_eq!(mine + t.join().unwrap(), 1);
        });
    }

    /// Shutdown against a wake in flight (`sched/shutdown.rs`): a waker on
    /// another thread wins `PARKED → RUNNABLE`, takes a reference to the
    /// scheduler, pushes the task into its home's inbox and notifies; the
    /// home worker, shutting down, cancels the task only once it holds it
    /// (claimed by its own `wake`, or seen in the inbox), then drops its
    /// own reference. The waker must never take a reference to a scheduler
    /// that is already freed, and the task is cancelled exactly once.
    #[test]
    fn loom_shutdown_waits_for_a_wake_in_flight() {
        use loom::sync::atomic::AtomicUsize;
        loom::model(|| {
            let state = Arc::new(SchedState::new_runnable());
            state.start_running();
            assert!(state.commit_park());
            let inbox = Arc::new(AtomicBool::new(false));
            // The scheduler's reference count; the worker holds one.
            let refs = Arc::new(AtomicUsize::new(1));
            let (s2, inbox2, refs2) = (state.clone(), inbox.clone(), refs.clone());
            let waker = loom::thread::spawn(move || {
                if s2.wake() {
                    let before = refs2.fetch_add(1, SeqCst);
                    assert_ne!(before, 0, "a waker revived a freed scheduler");
                    inbox2.store(true, SeqCst);
                    // ... notify the worker, then let go.
                    refs2.fetch_sub(1, SeqCst);
                }
            });
            // The worker's shutdown loop.
            loop {
                if inbox.load(SeqCst) || state.wake() {
                    state.finish();
                    break;
                }
                loom::thread::yield_now();
            }
            refs.fetch_sub(1, SeqCst);
            waker.join().unwrap();
            assert!(state.is_done());
        });
    }
}
