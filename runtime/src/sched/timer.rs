//! Timers: how `spindle::sleep` parks a coroutine without a busy loop.
//!
//! One min-heap of deadlines per runtime, guarded by a mutex. A sleeping
//! coroutine enqueues a [`Waiter`] and parks. Workers fire due timers in their
//! scheduling loop, and an idle worker sleeps no longer than the earliest
//! deadline, so a timer fires on time even when nothing else happens.
//! `next_deadline` lets the hot loop check "anything due?" with one atomic
//! load instead of taking the lock.
//!
//! The heap is an ordered map keyed by (deadline, sequence number), so that a
//! timed channel wait can take its wake-up back in O(log n) once a channel
//! served it ([`Timers::cancel`]): a finished wait leaves no entry behind.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::loom_shim::lock_std as lock;
use crate::park::Waiter;
use crate::wait_cell::Outcome;

pub(crate) struct Timers {
    epoch: Instant,
    heap: Mutex<BTreeMap<TimerKey, Entry>>,
    /// Nanoseconds since `epoch` of the earliest deadline; `u64::MAX` if none.
    next_deadline: AtomicU64,
    seq: AtomicU64,
}

/// Where a timer sits in the heap: its deadline (ns since `epoch`) and a
/// sequence number that makes equal deadlines distinct.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct TimerKey(u64, u64);

struct Entry {
    waiter: Waiter,
    /// `sleep` timers publish `Outcome::Done` in the waiter's cell before waking it;
    /// wake-up timers ([`Timers::add_wake`]) only wake: the waiter decides.
    finish: bool,
}

impl Timers {
    pub fn new() -> Timers {
        Timers {
            epoch: Instant::now(),
            heap: Mutex::new(BTreeMap::new()),
            next_deadline: AtomicU64::new(u64::MAX),
            seq: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Wake `waiter` (whose cell is prepared) after `after`. Returns `true`
    /// if this is now the earliest deadline: the caller must then make sure
    /// an idle worker re-computes how long it may sleep.
    pub fn add(&self, after: Duration, waiter: Waiter) -> bool {
        let at = self
            .now()
            .saturating_add(after.as_nanos().min(u64::MAX as u128 / 2) as u64);
        self.insert(at, waiter, true).1
    }

    /// Wake `waiter` at `deadline` without touching its cell (a timed
    /// channel wait checks the clock itself when it wakes). Returns the key
    /// for [`cancel`](Self::cancel) and, as [`add`](Self::add), whether this
    /// is now the earliest deadline.
    pub fn add_wake(&self, deadline: Instant, waiter: Waiter) -> (TimerKey, bool) {
        let at = deadline.saturating_duration_since(self.epoch).as_nanos();
        self.insert(at.min(u64::MAX as u128 / 2) as u64, waiter, false)
    }

    fn insert(&self, at: u64, waiter: Waiter, finish: bool) -> (TimerKey, bool) {
        let key = TimerKey(at, self.seq.fetch_add(1, Ordering::Relaxed));
        let mut heap = lock(&self.heap);
        heap.insert(key, Entry { waiter, finish });
        (key, self.next_deadline.fetch_min(at, Ordering::SeqCst) > at)
    }

    /// Take back a timer that has not fired yet; a no-op if it has. The
    /// earliest-deadline hint may stay early: a worker then wakes once for
    /// nothing, which is harmless.
    pub fn cancel(&self, key: TimerKey) {
        let removed = lock(&self.heap).remove(&key);
        drop(removed);
    }

    /// Is a timer due now?
    pub fn any_due(&self) -> bool {
        let next = self.next_deadline.load(Ordering::SeqCst);
        next != u64::MAX && next <= self.now()
    }

    /// How long until the earliest deadline, if any.
    pub fn until_next(&self) -> Option<Duration> {
        let next = self.next_deadline.load(Ordering::SeqCst);
        (next != u64::MAX).then(|| Duration::from_nanos(next.saturating_sub(self.now())))
    }

    /// Fire every due timer. Returns how many fired.
    pub fn fire_due(&self) -> usize {
        if !self.any_due() {
            return 0;
        }
        let now = self.now();
        let mut due = Vec::new();
        {
            let mut heap = lock(&self.heap);
            while let Some(entry) = heap.first_entry().filter(|e| e.key().0 <= now) {
                due.push(entry.remove());
            }
            let next = heap.first_key_value().map_or(u64::MAX, |(k, _)| k.0);
            self.next_deadline.store(next, Ordering::SeqCst);
        }
        let n = due.len();
        for e in due {
            if e.finish {
                e.waiter.cell().finish(Outcome::Done);
            }
            e.waiter.wake();
        }
        n
    }

    /// Drop every pending timer (runtime shutdown).
    pub fn clear(&self) {
        let drained = std::mem::take(&mut *lock(&self.heap));
        self.next_deadline.store(u64::MAX, Ordering::SeqCst);
        drop(drained);
    }
}

/// A wake-up of the running coroutine at a deadline, taken back when
/// dropped (see [`Timers::add_wake`]).
pub(crate) struct WakeUp {
    timers: *const Timers,
    key: TimerKey,
}

/// Arrange for `task` (the running coroutine) to be woken at `deadline`.
pub(crate) fn wake_at(task: &crate::task::TaskRef, deadline: Instant) -> WakeUp {
    // SAFETY: the running task is alive while it runs, it has started so it
    // has a home, and its worker keeps the Scheduler (and so its timers)
    // alive; the WakeUp is dropped by that task, on that worker, before it
    // finishes (also when shutdown cancels it by unwinding).
    let scheduler = unsafe { &*(*super::home_of(task.task())).scheduler };
    // The timer wakes through `Waiter::wake`, that is `sched::wake`: fired on
    // another worker, it goes to the task's home inbox like any remote wake.
    let (key, earliest) = scheduler
        .timers
        .add_wake(deadline, Waiter::task(task.clone()));
    if earliest {
        // As in `sleep`: a worker asleep without a timeout must re-compute.
        scheduler.idle.notify_one();
    }
    WakeUp {
        timers: &scheduler.timers,
        key,
    }
}

impl Drop for WakeUp {
    fn drop(&mut self) {
        // SAFETY: as in `wake_at`: created and dropped by the running task.
        unsafe { &*self.timers }.cancel(self.key);
    }
}
