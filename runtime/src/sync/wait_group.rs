//! `WaitGroup`: wait until a counter of outstanding jobs reaches zero.
//!
//! Go's `sync.WaitGroup`: `add(n)` before starting jobs, `done()` as each one
//! ends, `wait()` to block until the count is zero. One mutex guards the count
//! and the list of parked waiters; the last `done` wakes them all (outside the
//! lock). Clones share the same group.

use crate::loom_shim::{lock, Arc, Mutex};
use crate::park::{outcome, Current, Waiter};

/// A counter of outstanding jobs that coroutines and threads can wait on.
#[derive(Clone, Default)]
pub struct WaitGroup {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    count: usize,
    waiters: Vec<Waiter>,
}

impl WaitGroup {
    pub fn new() -> WaitGroup {
        WaitGroup::default()
    }

    /// Add `n` outstanding jobs.
    pub fn add(&self, n: usize) {
        let mut inner = lock(&self.inner);
        inner.count = inner
            .count
            .checked_add(n)
            .expect("spindle: WaitGroup counter overflow");
    }

    /// Mark one job done.
    ///
    /// # Panics
    /// If the count is already zero (as Go's "negative WaitGroup counter").
    pub fn done(&self) {
        let mut inner = lock(&self.inner);
        assert!(
            inner.count > 0,
            "spindle: WaitGroup::done called more times than add"
        );
        inner.count -= 1;
        if inner.count > 0 {
            return;
        }
        let waiters = std::mem::take(&mut inner.waiters);
        drop(inner);
        for w in waiters {
            w.cell().finish(outcome::DONE);
            w.wake();
        }
    }

    /// Block until the count is zero.
    pub fn wait(&self) {
        let mut inner = lock(&self.inner);
        if inner.count == 0 {
            return;
        }
        let me = Current::get();
        me.cell().prepare();
        inner.waiters.push(me.to_waiter());
        drop(inner);
        me.wait();
    }

    /// The current count (for tests and diagnostics; racy by nature).
    pub fn count(&self) -> usize {
        lock(&self.inner).count
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
}
