//! `WaitGroup`: wait until a counter of outstanding jobs reaches zero.
//!
//! Go's `sync.WaitGroup`: `add(n)` before starting jobs, `done()` as each one
//! ends, `wait()` to block until the count is zero. Clones share one group.
//!
//! The count is an atomic, so `add` and `done` take no lock unless they
//! bring it to zero. Waiters park on a list behind a mutex. The protocol:
//! a waiter checks the count *under the lock* before enqueueing; the `done`
//! that reaches zero takes the lock *after* its decrement and wakes the whole
//! list. If the waiter's check came first, it is on the list the `done`
//! takes; if the `done` came first, the waiter sees zero (the lock orders
//! the two) and does not sleep.

use std::sync::atomic::Ordering::{AcqRel, Acquire};

use crate::loom_shim::{lock, Arc, AtomicUsize, Mutex};
use crate::park::{Caller, Waiter};
use crate::wait_cell::Outcome;

/// A counter of outstanding jobs that coroutines and threads can wait on.
#[derive(Clone, Default)]
pub struct WaitGroup {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    count: AtomicUsize,
    waiters: Mutex<Vec<Waiter>>,
}

impl WaitGroup {
    pub fn new() -> WaitGroup {
        WaitGroup::default()
    }

    /// Add `n` outstanding jobs.
    ///
    /// # Panics
    /// If the count would overflow; the count is left as it was.
    pub fn add(&self, n: usize) {
        let added = self
            .inner
            .count
            .fetch_update(AcqRel, Acquire, |c| c.checked_add(n));
        assert!(added.is_ok(), "spindle: WaitGroup counter overflow");
    }

    /// Mark one job done.
    ///
    /// # Panics
    /// If the count is already zero (as Go's "negative WaitGroup counter");
    /// the count is put back to zero, so the group remains usable. (While
    /// such a misuse is being undone, a call racing it on another thread
    /// may see a huge count: an `add` then panics, a `done` does not.)
    #[inline]
    pub fn done(&self) {
        // One locked instruction and no retry loop: the count's line is
        // contended when jobs end on several workers at once, and a load
        // plus compare-and-swap fetched it twice (7-8 % of a worker in a
        // release of 10^6 coroutines: `docs/notes/cold-paths.md`).
        let prev = self.inner.count.fetch_sub(1, AcqRel);
        if prev > 1 {
            return;
        }
        self.reached_zero(prev);
    }

    /// [`done`](Self::done) that brought the count to zero (`prev == 1`),
    /// or below it (`prev == 0`: undo, then panic).
    #[cold]
    #[inline(never)]
    fn reached_zero(&self, prev: usize) {
        let zero = match prev {
            1 => true,
            // Back to zero. If this is what makes it zero again (a `wait`
            // may have gone to sleep on the wrapped count meanwhile), wake
            // the waiters before panicking.
            _ => self.inner.count.fetch_add(1, AcqRel) == usize::MAX,
        };
        if zero {
            let waiters = std::mem::take(&mut *lock(&self.inner.waiters));
            for w in waiters {
                w.cell().finish(Outcome::Done);
                w.wake();
            }
        }
        if prev == 0 {
            panic!("spindle: WaitGroup::done called more times than add");
        }
    }

    /// Block until the count is zero.
    pub fn wait(&self) {
        if self.count() == 0 {
            return;
        }
        let mut waiters = lock(&self.inner.waiters);
        if self.count() == 0 {
            return;
        }
        let me = Caller::get();
        me.cell().prepare();
        waiters.push(me.to_waiter());
        drop(waiters);
        me.wait();
    }

    /// The current count (for tests and diagnostics; racy by nature).
    pub fn count(&self) -> usize {
        self.inner.count.load(Acquire)
    }
}

impl std::fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn threads_wait_for_the_count_to_reach_zero() {
        let wg = WaitGroup::new();
        wg.add(3);
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let wg = wg.clone();
                std::thread::spawn(move || wg.done())
            })
            .collect();
        wg.wait();
        assert_eq!(wg.count(), 0);
        for h in handles {
            h.join().unwrap();
        }
    }

    #[test]
    #[should_panic(expected = "more times than add")]
    fn done_below_zero_panics() {
        WaitGroup::new().done();
    }

    #[test]
    fn misuse_leaves_the_count_intact() {
        let wg = WaitGroup::new();
        let extra_done = std::panic::catch_unwind(|| wg.done());
        assert!(extra_done.is_err());
        assert_eq!(wg.count(), 0, "done below zero must not wrap the count");
        wg.wait(); // returns at once: zero means nothing outstanding
        wg.add(usize::MAX);
        let overflow = std::panic::catch_unwind(|| wg.add(1));
        assert!(overflow.is_err());
        assert_eq!(wg.count(), usize::MAX, "an overflowing add must not wrap");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    /// The last `done` and a `wait` race: the waiter never sleeps forever.
    #[test]
    fn loom_last_done_wakes_waiter() {
        loom::model(|| {
            let wg = WaitGroup::new();
            wg.add(2);
            let a = wg.clone();
            let t = loom::thread::spawn(move || a.done());
            wg.done();
            wg.wait();
            t.join().unwrap();
            assert_eq!(wg.count(), 0);
        });
    }
}
