//! Timers: how `spindle::sleep` parks a coroutine without a busy loop.
//!
//! One min-heap of deadlines per runtime, guarded by a mutex. A sleeping
//! coroutine enqueues a [`Waiter`] and parks. Workers fire due timers in their
//! scheduling loop, and an idle worker sleeps no longer than the earliest
//! deadline, so a timer fires on time even when nothing else happens.
//! `next_deadline` lets the hot loop check "anything due?" with one atomic
//! load instead of taking the lock.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::loom_shim::lock_std as lock;
use crate::park::Waiter;
use crate::wait_cell::Outcome;

pub(crate) struct Timers {
    epoch: Instant,
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    /// Nanoseconds since `epoch` of the earliest deadline; `u64::MAX` if none.
    next_deadline: AtomicU64,
    seq: AtomicU64,
}

struct Entry {
    at: u64,
    seq: u64,
    waiter: Waiter,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Timers {
    pub fn new() -> Timers {
        Timers {
            epoch: Instant::now(),
            heap: Mutex::new(BinaryHeap::new()),
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
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut heap = lock(&self.heap);
        heap.push(Reverse(Entry { at, seq, waiter }));
        self.next_deadline.fetch_min(at, Ordering::SeqCst) > at
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
            while heap.peek().is_some_and(|e| e.0.at <= now) {
                due.push(heap.pop().expect("peeked").0.waiter);
            }
            let next = heap.peek().map_or(u64::MAX, |e| e.0.at);
            self.next_deadline.store(next, Ordering::SeqCst);
        }
        let n = due.len();
        for w in due {
            w.cell().finish(Outcome::Done);
            w.wake();
        }
        n
    }

    /// Drop every pending timer (runtime shutdown).
    pub fn clear(&self) {
        let drained: Vec<_> = lock(&self.heap).drain().collect();
        self.next_deadline.store(u64::MAX, Ordering::SeqCst);
        drop(drained);
    }
}
