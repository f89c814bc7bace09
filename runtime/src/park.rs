//! Parking: how a blocked party sleeps, is woken, and receives a value.
//!
//! Two kinds of party block in spindle: coroutines (a [`Task`](crate::task))
//! and plain OS threads (a [`ThreadParker`]). A [`Waiter`] is either; channels,
//! joins, timers and wait groups only ever see `Waiter`s.
//!
//! Every waiter owns one [`WaitCell`] in *heap* memory: the task header, or
//! the thread's parker. A waker that dequeues the waiter (holding the lock of
//! the structure it waited on) may write a value into the cell, then stores
//! the outcome in `state` with `Release`, and finally calls [`Waiter::wake`].
//! The waiter loops on `state` with `Acquire` and sleeps between checks, so a
//! spurious or late wake-up is harmless. Nothing ever points into the stack
//! of a parked coroutine: hand-off values travel through the cell.

use std::cell::UnsafeCell;
use std::mem::{align_of, size_of, MaybeUninit};

use crate::loom_shim::{lock, Arc, AtomicU8, Condvar, Mutex};
use crate::task::TaskRef;
use std::sync::atomic::Ordering;

/// Outcomes stored in [`WaitCell::state`].
pub(crate) mod outcome {
    /// The waiter is enqueued and has not been served yet.
    pub const WAITING: u8 = 1;
    /// A value was written into the cell for the waiter to take.
    pub const DELIVERED: u8 = 2;
    /// The waiter's own value was taken out of its cell.
    pub const TAKEN: u8 = 3;
    /// The structure closed; the waiter gets an error (and its value back).
    pub const CLOSED: u8 = 4;
    /// Woken with no value (timer fired, wait group reached zero).
    pub const DONE: u8 = 5;
}

/// Words of inline hand-off space; bigger values are boxed.
const INLINE_WORDS: usize = 2;

/// A hand-off slot plus the outcome of the wait.
pub(crate) struct WaitCell {
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<[usize; INLINE_WORDS]>>,
}

// SAFETY: `value` is written only by the party that owns the cell's current
// wait (the waiter before it enqueues, the waker while it holds the lock of the
// structure the waiter is enqueued on) and the `state` Release/Acquire pair
// orders those accesses. See the module docs.
unsafe impl Sync for WaitCell {}
unsafe impl Send for WaitCell {}

const fn is_inline<T>() -> bool {
    size_of::<T>() <= size_of::<[usize; INLINE_WORDS]>() && align_of::<T>() <= align_of::<usize>()
}

impl WaitCell {
    pub fn new() -> WaitCell {
        WaitCell {
            state: AtomicU8::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Start a new wait. Called by the waiter before it enqueues itself.
    pub fn prepare(&self) {
        self.state.store(outcome::WAITING, Ordering::Relaxed);
    }

    /// Publish the outcome of the wait (waker side).
    pub fn finish(&self, outcome: u8) {
        self.state.store(outcome, Ordering::Release);
    }

    pub fn outcome(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Move `v` into the cell.
    ///
    /// # Safety
    /// The caller owns the cell's current wait (see module docs) and the cell
    /// holds no value.
    pub unsafe fn put<T>(&self, v: T) {
        let slot = self.value.get().cast::<T>();
        if is_inline::<T>() {
            // SAFETY: T fits the inline words and their alignment.
            unsafe { slot.write(v) };
        } else {
            // SAFETY: a pointer always fits the inline words.
            unsafe { slot.cast::<*mut T>().write(Box::into_raw(Box::new(v))) };
        }
    }

    /// Move the value out of the cell.
    ///
    /// # Safety
    /// The cell holds a `T` written by [`put`](Self::put), and the caller
    /// owns the cell's current wait.
    pub unsafe fn take<T>(&self) -> T {
        let slot = self.value.get().cast::<T>();
        if is_inline::<T>() {
            // SAFETY: a T was written inline by `put`.
            unsafe { slot.read() }
        } else {
            // SAFETY: `put` stored a Box<T> pointer; we reclaim it once.
            unsafe { *Box::from_raw(slot.cast::<*mut T>().read()) }
        }
    }
}

/// An OS thread's parker: a permit flag, a condition variable and a cell.
pub(crate) struct ThreadParker {
    notified: Mutex<bool>,
    cv: Condvar,
    pub cell: WaitCell,
}

impl ThreadParker {
    pub fn new() -> ThreadParker {
        ThreadParker {
            notified: Mutex::new(false),
            cv: Condvar::new(),
            cell: WaitCell::new(),
        }
    }

    /// Sleep until [`unpark`](Self::unpark) has been called since the last park.
    pub fn park(&self) {
        let mut notified = lock(&self.notified);
        while !*notified {
            notified = self.cv.wait(notified).unwrap_or_else(|e| e.into_inner());
        }
        *notified = false;
    }

    pub fn unpark(&self) {
        *lock(&self.notified) = true;
        self.cv.notify_one();
    }
}

/// Someone who can block: a coroutine or an OS thread.
pub(crate) enum Waiter {
    Task(TaskRef),
    Thread(Arc<ThreadParker>),
}

impl Waiter {
    /// The calling coroutine, or else the calling thread.
    pub fn current() -> Waiter {
        match crate::sched::context::current_task() {
            Some(task) => Waiter::Task(task),
            None => Waiter::Thread(thread_parker()),
        }
    }

    pub fn cell(&self) -> &WaitCell {
        match self {
            Waiter::Task(t) => t.cell(),
            Waiter::Thread(p) => &p.cell,
        }
    }

    /// Make the waiter runnable again (it re-checks its condition).
    pub fn wake(self) {
        match self {
            Waiter::Task(t) => crate::sched::wake(t),
            Waiter::Thread(p) => p.unpark(),
        }
    }

    /// Sleep once; may return spuriously.
    pub fn park(&self) {
        match self {
            Waiter::Task(_) => crate::sched::park_current(),
            Waiter::Thread(p) => p.park(),
        }
    }

    /// Park until the cell's wait has an outcome, and return it.
    pub fn wait(&self) -> u8 {
        loop {
            let outcome = self.cell().outcome();
            if outcome != outcome::WAITING {
                return outcome;
            }
            self.park();
        }
    }
}

impl Clone for Waiter {
    fn clone(&self) -> Self {
        match self {
            Waiter::Task(t) => Waiter::Task(t.clone()),
            Waiter::Thread(p) => Waiter::Thread(p.clone()),
        }
    }
}

#[cfg(not(loom))]
fn thread_parker() -> Arc<ThreadParker> {
    thread_local! {
        static PARKER: Arc<ThreadParker> = Arc::new(ThreadParker::new());
    }
    PARKER.with(|p| p.clone())
}

#[cfg(loom)]
fn thread_parker() -> Arc<ThreadParker> {
    loom::thread_local! {
        static PARKER: Arc<ThreadParker> = Arc::new(ThreadParker::new());
    }
    PARKER.with(|p| p.clone())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cell_moves_small_and_large_values() {
        let cell = WaitCell::new();
        cell.prepare();
        // SAFETY: single-threaded test owns the cell.
        unsafe {
            cell.put(7u64);
            assert_eq!(cell.take::<u64>(), 7);
            cell.put(String::from("boxed: 24 bytes do not fit inline"));
            assert_eq!(cell.take::<String>(), "boxed: 24 bytes do not fit inline");
            cell.put([1u64; 8]);
            assert_eq!(cell.take::<[u64; 8]>(), [1; 8]);
        }
        assert_eq!(cell.outcome(), outcome::WAITING);
        cell.finish(outcome::DONE);
        assert_eq!(cell.outcome(), outcome::DONE);
    }

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
