//! The channel lock: a test-and-test-and-set spin lock.
//!
//! Every channel operation takes one lock for a critical section of a few
//! dozen instructions that never blocks, never allocates more than a queue
//! slot, and never runs user code. For that, `std::sync::Mutex` does more
//! than we need, and the extra work is on the hot path of every hand-off:
//!
//! * its unlock is an atomic *swap*, because it must learn whether a thread
//!   sleeps on the futex; ours is a plain `Release` store, so a lock and
//!   unlock cost one locked instruction instead of two (figure:
//!   `docs/notes/runtime-figures.md`);
//! * it tracks poisoning, which reads the thread's panic count at unlock.
//!
//! A party that finds the lock taken spins with exponential backoff and then
//! yields its OS thread (`crossbeam_utils::Backoff`), so a holder that the
//! kernel preempted gets a CPU back. A coroutine never suspends while it
//! holds the lock (nothing inside the critical section can block), so it
//! cannot deadlock against another coroutine of its own worker.
//!
//! Under `--cfg loom` the spin loop yields to loom's scheduler on every
//! iteration, so the model checker explores the lock together with the
//! channel protocol built on it.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::loom_shim::AtomicBool;

pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one holder at a time
// (`locked` is set by a successful compare-exchange and cleared only by that
// holder's guard), so sharing the lock between threads is as safe as sending
// the `T` to each of them in turn.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: as above; the lock owns its `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    pub fn lock(&self) -> SpinGuard<'_, T> {
        if self
            .locked
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        SpinGuard {
            lock: self,
            _access: PhantomData,
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let backoff = crossbeam_utils::Backoff::new();
        loop {
            // Wait until it looks free (reads do not bounce the cache line),
            // then try to take it.
            while self.locked.load(Relaxed) {
                relax(&backoff);
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Acquire, Relaxed)
                .is_ok()
            {
                return;
            }
            relax(&backoff);
        }
    }
}

#[cfg(not(loom))]
fn relax(backoff: &crossbeam_utils::Backoff) {
    backoff.snooze();
}

#[cfg(loom)]
fn relax(_: &crossbeam_utils::Backoff) {
    loom::thread::yield_now();
}

/// Access to the locked value; unlocks when dropped.
///
/// The marker makes the guard `Send` only if `T: Send` and `Sync` only if
/// `T: Sync`, as for `std::sync::MutexGuard`'s access to the value (without
/// it, the guard would inherit `Sync` from `&SpinLock<T>`, which only needs
/// `T: Send`, and a shared guard could hand out `&T` on two threads).
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    _access: PhantomData<&'a mut T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this party holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` makes the access unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lock_excludes_other_threads() {
        // Non-atomic increments under the lock: any lost update shows up.
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        let mut g = lock.lock();
                        let v = *g;
                        std::hint::black_box(&mut *g);
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 400_000);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Two threads increment under the lock: no update is lost.
    #[test]
    fn loom_spin_lock_excludes() {
        loom::model(|| {
            let lock = Arc::new(SpinLock::new(0u32));
            let l2 = lock.clone();
            let t = loom::thread::spawn(move || *l2.lock() += 1);
            *lock.lock() += 1;
            t.join().unwrap();
            assert_eq!(*lock.lock(), 2);
        });
    }
}
