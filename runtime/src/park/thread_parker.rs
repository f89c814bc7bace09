//! The thread parker: how a plain OS thread blocks on a spindle channel,
//! join or wait group.
//!
//! A permit flag behind a mutex and a condition variable (so that loom can
//! model it), plus the thread's wait cell. `unpark` before `park` is not lost:
//! the permit stays set and the next `park` returns at once. Each thread gets
//! one parker, created on first use and shared by all its waits.

use crate::loom_shim::{lock, Arc, Condvar, Mutex};
use crate::wait_cell::{new_hand_off, HandOff, OutcomeByte, WaitCell};

/// An OS thread's parker: a permit flag, a condition variable and a cell.
pub(crate) struct ThreadParker {
    notified: Mutex<bool>,
    cv: Condvar,
    outcome: OutcomeByte,
    hand_off: HandOff,
}

// SAFETY: `hand_off` is accessed only under the wait-cell protocol (module docs).
unsafe impl Sync for ThreadParker {}
// SAFETY: every other field is Send; `hand_off` holds a value only while a
// waker owns the wait, and that value is Send (channels require `T: Send`).
unsafe impl Send for ThreadParker {}

impl ThreadParker {
    pub fn new() -> ThreadParker {
        ThreadParker {
            notified: Mutex::new(false),
            cv: Condvar::new(),
            outcome: OutcomeByte::new(),
            hand_off: new_hand_off(),
        }
    }

    pub fn cell(&self) -> WaitCell<'_> {
        WaitCell::new(&self.outcome, &self.hand_off)
    }

    /// Sleep until [`unpark`](Self::unpark) has been called since the last park.
    pub fn park(&self) {
        let mut notified = lock(&self.notified);
        while !*notified {
            notified = self.cv.wait(notified).unwrap_or_else(|e| e.into_inner());
        }
        *notified = false;
    }

    /// [`park`](Self::park), but return at `deadline` at the latest.
    #[cfg(not(loom))]
    pub fn park_until(&self, deadline: std::time::Instant) {
        let mut notified = lock(&self.notified);
        while !*notified {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            notified = match self.cv.wait_timeout(notified, left) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
        *notified = false;
    }

    /// Loom has no clock: its models give timed waits a deadline that has
    /// passed, so they never sleep on it.
    #[cfg(loom)]
    pub fn park_until(&self, _deadline: std::time::Instant) {
        self.park();
    }

    pub fn unpark(&self) {
        *lock(&self.notified) = true;
        self.cv.notify_one();
    }
}

/// This thread's parker.
///
/// Out of line, like every thread-local access of the runtime (see
/// `sched/context.rs`, *thread-locals and switches*).
#[cfg(not(loom))]
#[inline(never)]
pub(crate) fn thread_parker() -> Arc<ThreadParker> {
    thread_local! {
        static PARKER: Arc<ThreadParker> = Arc::new(ThreadParker::new());
    }
    PARKER.with(|p| p.clone())
}

#[cfg(loom)]
pub(crate) fn thread_parker() -> Arc<ThreadParker> {
    loom::thread_local! {
        static PARKER: Arc<ThreadParker> = Arc::new(ThreadParker::new());
    }
    PARKER.with(|p| p.clone())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn thread_parker_keeps_a_permit() {
        let p = ThreadParker::new();
        p.unpark();
        p.park(); // returns at once: the permit was stored
        let p = Arc::new(p);
        let q = p.clone();
        let t = std::thread::spawn(move || q.park());
        p.unpark();
        t.join().unwrap();
    }
}
