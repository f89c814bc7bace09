//! The park/unpark state machine of one task.
//!
//! A started task runs only on its *home* worker (`sched/worker.rs`), so
//! its state is kept in two words:
//!
//! * the **local** word, read and written only on the home worker's thread
//!   (by the worker, and by coroutines and timers of that worker that wake
//!   the task): plain loads and stores, no read-modify-write;
//! * the **remote** word, the only one another thread touches: a waker on
//!   another thread (or the netpoller) claims it `IDLE → QUEUED` and then
//!   puts the task in its home's inbox; the home worker, when it takes the
//!   task out of its inbox, sets it back to `IDLE` and applies the wake to
//!   the local word itself.
//!
//! The local word:
//!
//! ```text
//!            wake_local()                   commit_park() == true
//!   PARKED ──────────▶ RUNNABLE ◀──────────────────────────────┐
//!     ▲                 │    ▲ │                               │
//!     │                 │    │ │ wake_local() while queued     │
//!     │                 │    │ ▼ or running                    │
//!     │                 │   NOTIFIED ──── start_running() ─────┘
//!     │                 │                 (consumes it)
//!     └─ commit_park() ─┘ (the worker parks it)       finish() ──▶ DONE
//! ```
//!
//! `RUNNABLE` means "in a run queue, or running". The rules that make
//! wake-ups impossible to lose *and* impossible to double:
//!
//! 1. Only two things put a task in a *local* run queue: a local
//!    `PARKED → RUNNABLE` (a wake on the home thread, or an inbox entry
//!    taken there), and its own worker requeueing it without it ever
//!    leaving `RUNNABLE`/`NOTIFIED` (after `yield_now`, or after a park that
//!    a wake overtook). All of these run on the home thread, one at a time,
//!    so a task is in at most one local run queue: no atomic decision is
//!    needed. That is the point of the split: a hand-off between two
//!    coroutines of one worker costs no locked instruction here (it cost
//!    two, the waker's and the park's compare-and-swap, before).
//! 2. A running task that decides to park does not change its state itself.
//!    It switches back to its worker first, and the *worker* moves it
//!    `RUNNABLE → PARKED`, or requeues it if a wake came first (`NOTIFIED`).
//! 3. A wake from another thread never touches the local word. Its writes
//!    (the outcome it stored, the value it handed over) reach the home
//!    thread through the remote word: the claim `IDLE → QUEUED` and every
//!    later wake that finds `QUEUED` (and writes it back) are
//!    read-modify-writes, and the home's `QUEUED → IDLE` when it takes the
//!    inbox entry reads the latest of them, so it acquires every remote
//!    waker's writes before it applies the wake locally; a remote wake after
//!    that finds `IDLE` and queues the task again. The inbox entry is the
//!    wake: the home applies it as a local wake ([`take_inbox_entry`]), which
//!    notices a task that is already queued or running (`NOTIFIED`).
//!
//! A remote wake may queue a task that is running, or about to finish, so
//! a task can finish with an inbox entry still owed to its home: `finish`
//! reports that, and the worker counts it (`Worker::owed`) until the entry
//! arrives, because the waker still needs the scheduler then
//! (`sched::wake_remote`). `CLOSED` (set by `finish`, or by shutdown's
//! claim) makes every later remote wake a no-op.
//!
//! This file is model-checked with loom (`cargo test --lib loom` under
//! `--cfg loom`).
//!
//! [`take_inbox_entry`]: SchedState::take_inbox_entry

use crate::loom_shim::AtomicU8;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

// The local word.
const PARKED: u8 = 0;
const RUNNABLE: u8 = 1;
const NOTIFIED: u8 = 2;
const DONE: u8 = 3;

// The remote word.
const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const CLOSED: u8 = 2;

pub(crate) struct SchedState {
    /// Home thread only (see the module docs); an atomic only so that the
    /// task stays `Sync`, accessed with `Relaxed` loads and stores, which
    /// compile to plain moves. Before a task first runs it has no home, and
    /// whoever holds it (its spawner, then the worker that took it from a
    /// queue, which synchronises with the spawner) is its only user.
    local: AtomicU8,
    remote: AtomicU8,
}

/// What an inbox entry means, once the home worker has taken it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InboxEntry {
    /// The task was parked: it is `RUNNABLE` now, and this entry is its
    /// place in line.
    Run,
    /// The task is already queued here or running (now `NOTIFIED`): drop
    /// the entry.
    Queued,
    /// The task finished with this entry owed (see [`SchedState::finish`]):
    /// drop it, and count it as arrived.
    Finished,
}

impl SchedState {
    /// A new task starts out runnable: its spawner enqueues it.
    pub fn new_runnable() -> SchedState {
        SchedState {
            local: AtomicU8::new(RUNNABLE),
            remote: AtomicU8::new(IDLE),
        }
    }

    /// Wake on the home worker's thread. Returns `true` if the caller must
    /// enqueue the task (in a run queue of this worker).
    #[inline]
    pub fn wake_local(&self) -> bool {
        // Ordering: only the home thread touches the local word,
        // so this load and store are in program order with every other
        // access to it; the waker's own writes are in program order too.
        match self.local.load(Relaxed) {
            PARKED => {
                self.local.store(RUNNABLE, Relaxed);
                true
            }
            RUNNABLE | NOTIFIED => {
                self.local.store(NOTIFIED, Relaxed);
                false
            }
            _ => false, // done
        }
    }

    /// Wake from another thread. Returns `true` if the caller must put the
    /// task in its home's inbox (and then no other remote waker does until
    /// the home took it out).
    ///
    /// Every outcome but `CLOSED` is a read-modify-write, even "already
    /// queued" (which writes `QUEUED` back): that is what carries this
    /// waker's writes to the home's [`take_inbox_entry`](Self::take_inbox_entry), which
    /// reads from it. A plain load would allow the race in which a second
    /// waker sees `QUEUED`, the home takes the first entry without seeing
    /// the second waker's outcome, the task parks again, and nobody wakes
    /// it. (Loom finds that race.)
    #[inline]
    pub fn wake_remote(&self) -> bool {
        let mut cur = self.remote.load(Relaxed);
        loop {
            let next = match cur {
                IDLE | QUEUED => QUEUED,
                _ => return false, // closed: finished or being cancelled
            };
            match self
                .remote
                .compare_exchange_weak(cur, next, AcqRel, Relaxed)
            {
                Ok(_) => return cur == IDLE,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Home thread, after taking the task out of its inbox: acquire the
    /// remote wakers' writes and apply their wake here.
    pub fn take_inbox_entry(&self) -> InboxEntry {
        // Only the home moves the word away from QUEUED (here, or to CLOSED
        // in `finish` and `claim_for_cancel`), so this fails only if it is
        // CLOSED; it acquires the latest remote waker's release.
        match self.remote.compare_exchange(QUEUED, IDLE, AcqRel, Acquire) {
            Ok(_) => {}
            Err(closed) => {
                debug_assert_eq!(closed, CLOSED);
                return if self.local.load(Relaxed) == DONE {
                    InboxEntry::Finished
                } else {
                    // Claimed for cancelling (shutdown): nothing to apply.
                    InboxEntry::Queued
                };
            }
        }
        if self.wake_local() {
            InboxEntry::Run
        } else {
            InboxEntry::Queued
        }
    }

    /// Worker side, after dequeuing the task and before resuming it: a
    /// pending `NOTIFIED` is consumed (the task is about to re-check its
    /// condition anyway).
    #[inline]
    pub fn start_running(&self) {
        debug_assert!(
            matches!(self.local.load(Relaxed), RUNNABLE | NOTIFIED),
            "cannot run a parked or finished task"
        );
        // Only the home thread writes the local word, and it is RUNNABLE
        // or NOTIFIED here: a plain store, without a look first.
        self.local.store(RUNNABLE, Relaxed);
    }

    /// Worker side, after the task switched out asking to park. Returns
    /// `true` if it is now parked; `false` if a wake arrived since it started
    /// running (`NOTIFIED`), in which case the worker must requeue it as it
    /// is (see [`start_running`](Self::start_running)). A remote wake in
    /// flight is not seen here: it arrives through the inbox.
    #[inline]
    pub fn commit_park(&self) -> bool {
        // Ordering: home thread only, like every local access.
        if self.local.load(Relaxed) == RUNNABLE {
            self.local.store(PARKED, Relaxed);
            return true;
        }
        debug_assert!(self.local.load(Relaxed) == NOTIFIED);
        false
    }

    /// Is the task parked right now? (Home thread; a hint for the
    /// compaction pass: a remote wake may be on its way through the inbox,
    /// and the worker restores a compacted stack before it runs a task.)
    pub fn is_parked(&self) -> bool {
        self.local.load(Relaxed) == PARKED
    }

    /// Has the task finished (or been cancelled)? Home thread (or, for a
    /// task that never started, whoever holds it).
    pub fn is_done(&self) -> bool {
        self.local.load(Relaxed) == DONE
    }

    /// Shutdown, on the home thread: take a parked task that no wake is
    /// queueing, for cancelling. `false` if it is not parked, or if a
    /// remote wake is on its way to the inbox (or in it) with it.
    pub fn claim_for_cancel(&self) -> bool {
        self.local.load(Relaxed) == PARKED
            && self
                .remote
                .compare_exchange(IDLE, CLOSED, AcqRel, Relaxed)
                .is_ok()
    }

    /// Worker side, after the task's function returned (or was cancelled).
    /// Returns `true` if a remote wake had queued it and its inbox entry has
    /// not been taken yet: the worker must wait for that entry before it
    /// lets the scheduler go (see the module docs).
    pub fn finish(&self) -> bool {
        self.local.store(DONE, Relaxed);
        self.remote.swap(CLOSED, AcqRel) == QUEUED
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::{AtomicBool, AtomicUsize};
    use loom::sync::{Arc, Mutex};
    use std::sync::atomic::Ordering::{Release, SeqCst};

    /// The home worker's side of the models: the task's run queue (a flag:
    /// at most one local queue entry), its inbox (a count under a mutex, as
    /// the real inbox's push and pop synchronise), and the count of inbox
    /// entries owed by finished tasks.
    struct Home {
        state: Arc<SchedState>,
        inbox: Arc<Mutex<usize>>,
        queued: bool,
        owed: usize,
        runs: usize,
        finished: bool,
    }

    impl Home {
        fn new(state: Arc<SchedState>, inbox: Arc<Mutex<usize>>) -> Home {
            Home {
                state,
                inbox,
                queued: true, // spawned: in the run queue
                owed: 0,
                runs: 0,
                finished: false,
            }
        }

        /// Run the task once if it is queued: it finishes if `done()`,
        /// otherwise it parks (or is requeued, if a wake overtook it).
        fn run(&mut self, done: impl Fn() -> bool) {
            if !self.queued {
                return;
            }
            self.queued = false;
            self.runs += 1;
            self.state.start_running();
            if done() {
                self.finished = true;
                if self.state.finish() {
                    self.owed += 1;
                }
            } else if !self.state.commit_park() {
                self.queued = true;
            }
        }

        /// Take one inbox entry, if there is one, as `Worker::pop_inbox`.
        fn pop(&mut self) -> bool {
            {
                let mut q = self.inbox.lock().unwrap();
                if *q == 0 {
                    return false;
                }
                *q -= 1;
            }
            match self.state.take_inbox_entry() {
                InboxEntry::Run => {
                    assert!(!self.queued, "a task in two run queues");
                    self.queued = true;
                }
                InboxEntry::Queued => {}
                InboxEntry::Finished => self.owed -= 1,
            }
            true
        }
    }

    /// A remote waker: publish, then wake as `sched::wake` does from
    /// another thread.
    fn remote_wake(state: &SchedState, inbox: &Mutex<usize>) {
        if state.wake_remote() {
            *inbox.lock().unwrap() += 1;
        }
    }

    /// A task waits for `ready`, which another thread sets before it wakes
    /// the task. The home runs the task and takes inbox entries while the
    /// waker runs; once the waker is done and the inbox is empty, the task
    /// must have finished: a wake was neither lost nor doubled (a task in
    /// two run queues fails in `pop`), and a requeued task saw the waker's
    /// write.
    #[test]
    fn loom_remote_wake_is_never_lost() {
        loom::model(|| {
            let state = Arc::new(SchedState::new_runnable());
            let inbox = Arc::new(Mutex::new(0));
            let ready = Arc::new(AtomicBool::new(false));
            let (s2, i2, r2) = (state.clone(), inbox.clone(), ready.clone());
            let waker = loom::thread::spawn(move || {
                r2.store(true, Release);
                remote_wake(&s2, &i2);
            });
            let mut home = Home::new(state, inbox);
            for _ in 0..2 {
                home.run(|| ready.load(Acquire));
                home.pop();
            }
            waker.join().unwrap();
            loop {
                home.run(|| ready.load(Acquire));
                if !home.pop() && !home.queued {
                    break;
                }
            }
            assert!(home.finished, "wake-up lost: parked, and nobody queues it");
            assert_eq!(home.owed, 0, "an owed inbox entry never arrived");
            assert!(
                home.runs <= 2,
                "requeued task did not see the waker's write"
            );
        });
    }

    /// Two remote wakers, each publishing its own data (`Release`) before it
    /// wakes, race a task that runs until it has seen both. This is the
    /// model that reaches `wake_remote` on an already `QUEUED` task with
    /// data still unseen: only its read-modify-write (writing `QUEUED` back)
    /// makes the home's `take_inbox_entry` acquire that waker's data. Mutating
    /// `wake_remote` to `return false` on `QUEUED` without the RMW makes this
    /// model fail.
    #[test]
    fn loom_two_remote_wakers_each_publish_their_own_data() {
        // Three threads: bound the preemptions (as tokio's models do).
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(2);
        model.check(|| {
            let state = Arc::new(SchedState::new_runnable());
            let inbox = Arc::new(Mutex::new(0));
            let data = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
            let wakers: Vec<_> = (0..2)
                .map(|i| {
                    let (s, q, d) = (state.clone(), inbox.clone(), data.clone());
                    loom::thread::spawn(move || {
                        d[i].store(true, Release);
                        remote_wake(&s, &q);
                    })
                })
                .collect();
            let seen = || data.iter().all(|d| d.load(Acquire));
            let mut home = Home::new(state, inbox);
            for _ in 0..2 {
                home.run(seen);
                home.pop();
            }
            for w in wakers {
                w.join().unwrap();
            }
            loop {
                home.run(seen);
                if !home.pop() && !home.queued {
                    break;
                }
            }
            assert!(home.finished, "wake-up lost: parked, and nobody queues it");
            assert_eq!(home.owed, 0);
        });
    }

    /// A local wake (on the home thread) and a remote one race for a parked
    /// task: it is queued once, and runs until it has seen both wakers'
    /// data.
    #[test]
    fn loom_local_and_remote_wake_queue_once() {
        loom::model(|| {
            let state = Arc::new(SchedState::new_runnable());
            let inbox = Arc::new(Mutex::new(0));
            let data = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
            let (s2, i2, d2) = (state.clone(), inbox.clone(), data.clone());
            let waker = loom::thread::spawn(move || {
                d2[1].store(true, Release);
                remote_wake(&s2, &i2);
            });
            let seen = || data.iter().all(|d| d.load(Acquire));
            let mut home = Home::new(state.clone(), inbox);
            home.run(seen);
            // Another coroutine of the home publishes and wakes locally.
            data[0].store(true, Release);
            if state.wake_local() {
                assert!(!home.queued, "a task in two run queues");
                home.queued = true;
            }
            home.run(seen);
            home.pop();
            waker.join().unwrap();
            loop {
                home.run(seen);
                if !home.pop() && !home.queued {
                    break;
                }
            }
            assert!(home.finished, "wake-up lost");
            assert_eq!(home.owed, 0);
        });
    }

    /// A remote wake that queues a task which then finishes (it was not
    /// parked: a stale waiter, or a wake that raced the task's own check)
    /// leaves an inbox entry owed. The home must not let the scheduler go
    /// until that entry arrived, because the waker needs it (`wake_remote`
    /// in `sched/mod.rs` takes a reference to it before it pushes). Also
    /// shutdown's claim (`claim_for_cancel`) against a remote wake in
    /// flight: the task is cancelled exactly once, and a waker never
    /// revives a freed scheduler. Mutating `finish` to report no owed entry
    /// makes this model fail (and the others, whose home counts entries).
    #[test]
    fn loom_shutdown_waits_for_a_wake_in_flight() {
        for parked in [false, true] {
            loom::model(move || {
                let state = Arc::new(SchedState::new_runnable());
                let inbox = Arc::new(Mutex::new(0));
                // The scheduler's reference count; the worker holds one.
                let refs = Arc::new(AtomicUsize::new(1));
                let mut home = Home::new(state.clone(), inbox.clone());
                if parked {
                    home.run(|| false);
                    assert!(state.is_parked());
                }
                let (s2, i2, refs2) = (state.clone(), inbox.clone(), refs.clone());
                let waker = loom::thread::spawn(move || {
                    if s2.wake_remote() {
                        let before = refs2.fetch_add(1, SeqCst);
                        assert_ne!(before, 0, "a waker revived a freed scheduler");
                        *i2.lock().unwrap() += 1;
                        // ... notify the worker, then let go.
                        refs2.fetch_sub(1, SeqCst);
                    }
                });
                // Not parked: the task runs and finishes.
                home.run(|| true);
                // The worker's shutdown loop (`sched/shutdown.rs`).
                let mut cancelled = 0;
                loop {
                    let held = home.pop();
                    if !home.finished && (held || state.claim_for_cancel()) {
                        cancelled += 1;
                        home.finished = true;
                        if state.finish() {
                            home.owed += 1;
                        }
                    }
                    if home.finished && home.owed == 0 {
                        break;
                    }
                    loom::thread::yield_now();
                }
                refs.fetch_sub(1, SeqCst);
                waker.join().unwrap();
                assert!(state.is_done());
                assert_eq!(cancelled, usize::from(parked));
            });
        }
    }
}
