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
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;

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

/// The storage behind a [`WaitCell`]: the outcome byte and the hand-off
/// slot. Kept as two fields (not one struct) in the task header, so the
/// outcome byte packs next to the other small fields there.
pub(crate) type Outcome = AtomicU8;
pub(crate) type HandOff = UnsafeCell<MaybeUninit<[usize; INLINE_WORDS]>>;

pub(crate) fn new_hand_off() -> HandOff {
    UnsafeCell::new(MaybeUninit::uninit())
}

/// A view of one party's outcome byte and hand-off slot.
#[derive(Clone, Copy)]
pub(crate) struct WaitCell<'a> {
    state: &'a Outcome,
    value: &'a HandOff,
}

const fn is_inline<T>() -> bool {
    size_of::<T>() <= size_of::<[usize; INLINE_WORDS]>() && align_of::<T>() <= align_of::<usize>()
}

impl<'a> WaitCell<'a> {
    pub fn new(state: &'a Outcome, value: &'a HandOff) -> WaitCell<'a> {
        WaitCell { state, value }
    }

    /// Start a new wait. Called by the waiter before it enqueues itself.
    pub fn prepare(self) {
        self.state.store(outcome::WAITING, Ordering::Relaxed);
    }

    /// Publish the outcome of the wait (waker side).
    pub fn finish(self, outcome: u8) {
        self.state.store(outcome, Ordering::Release);
    }

    pub fn outcome(self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Move `v` into the slot.
    ///
    /// # Safety
    /// The caller owns the cell's current wait (see module docs) and the slot
    /// holds no value.
    pub unsafe fn put<T>(self, v: T) {
        let slot = self.value.get().cast::<T>();
        if is_inline::<T>() {
            // SAFETY: T fits the inline words and their alignment.
            unsafe { slot.write(v) };
        } else {
            // SAFETY: a pointer always fits the inline words.
            unsafe { slot.cast::<*mut T>().write(Box::into_raw(Box::new(v))) };
        }
    }

    /// Move the value out of the slot.
    ///
    /// # Safety
    /// The slot holds a `T` written by [`put`](Self::put), and the caller
    /// owns the cell's current wait.
    pub unsafe fn take<T>(self) -> T {
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
    outcome: Outcome,
    hand_off: HandOff,
}

// SAFETY: `hand_off` is accessed only under the wait-cell protocol (module docs).
unsafe impl Sync for ThreadParker {}
unsafe impl Send for ThreadParker {}

impl ThreadParker {
    pub fn new() -> ThreadParker {
        ThreadParker {
            notified: Mutex::new(false),
            cv: Condvar::new(),
            outcome: Outcome::new(0),
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

    pub fn unpark(&self) {
        *lock(&self.notified) = true;
        self.cv.notify_one();
    }
}

/// Someone who can block: a coroutine or an OS thread. Owns one reference.
///
/// One tagged word, so that wait queues and the join slot stay small: the
/// low bit says which kind it is (both pointees are at least 8-aligned).
pub(crate) struct Waiter(NonNull<u8>);

const THREAD_TAG: usize = 1;

// SAFETY: both variants (TaskRef, Arc<ThreadParker>) are Send and Sync.
unsafe impl Send for Waiter {}
unsafe impl Sync for Waiter {}

/// The two kinds a [`Waiter`] can be, borrowed.
enum Kind<'a> {
    Task(&'a TaskRef),
    Thread(&'a ThreadParker),
}

impl Waiter {
    pub fn task(task: TaskRef) -> Waiter {
        Waiter(task.into_raw().cast())
    }

    fn thread(parker: Arc<ThreadParker>) -> Waiter {
        let raw = Arc::into_raw(parker) as *mut u8;
        Waiter(NonNull::new(raw.wrapping_add(THREAD_TAG)).expect("non-null"))
    }

    fn kind(&self) -> Kind<'_> {
        let raw = self.0.as_ptr();
        if raw as usize & THREAD_TAG == 0 {
            // SAFETY: untagged words come from `TaskRef::into_raw`, and a
            // TaskRef is a #[repr(transparent)] pointer.
            Kind::Task(unsafe { &*(self as *const Waiter).cast::<TaskRef>() })
        } else {
            // SAFETY: tagged words come from `Arc::into_raw` plus the tag; we
            // hold that reference.
            Kind::Thread(unsafe { &*raw.wrapping_sub(THREAD_TAG).cast::<ThreadParker>() })
        }
    }

    pub fn cell(&self) -> WaitCell<'_> {
        match self.kind() {
            Kind::Task(t) => t.cell(),
            Kind::Thread(p) => p.cell(),
        }
    }

    /// Make the waiter runnable again (it re-checks its condition).
    pub fn wake(self) {
        let this = ManuallyDrop::new(self);
        let raw = this.0.as_ptr();
        if raw as usize & THREAD_TAG == 0 {
            // SAFETY: untagged: we own this TaskRef and pass it on.
            crate::sched::wake(unsafe { TaskRef::from_raw(this.0.cast()) });
        } else {
            // SAFETY: tagged: we own this Arc reference and release it here.
            let parker =
                unsafe { Arc::from_raw(raw.wrapping_sub(THREAD_TAG).cast::<ThreadParker>()) };
            parker.unpark();
        }
    }

    /// Sleep once; may return spuriously.
    pub fn park(&self) {
        match self.kind() {
            Kind::Task(_) => crate::sched::park_current(),
            Kind::Thread(p) => p.park(),
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
        match self.kind() {
            Kind::Task(t) => Waiter::task(t.clone()),
            Kind::Thread(_) => {
                let raw = self
                    .0
                    .as_ptr()
                    .wrapping_sub(THREAD_TAG)
                    .cast::<ThreadParker>();
                // SAFETY: we hold one reference, so the Arc is alive.
                unsafe { Arc::increment_strong_count(raw) };
                Waiter(self.0)
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let raw = self.0.as_ptr();
        if raw as usize & THREAD_TAG == 0 {
            // SAFETY: untagged: we own this TaskRef.
            drop(unsafe { TaskRef::from_raw(self.0.cast()) });
        } else {
            // SAFETY: tagged: we own this Arc reference.
            drop(unsafe { Arc::from_raw(raw.wrapping_sub(THREAD_TAG).cast::<ThreadParker>()) });
        }
    }
}

/// The calling party, borrowed for the length of one blocking operation:
/// the running coroutine (its worker holds a reference while it runs, on
/// whichever worker that is) or this thread's parker. Taking it costs no
/// reference-count traffic; [`to_waiter`](Self::to_waiter) makes an owned
/// [`Waiter`] for a wait queue.
pub(crate) struct Current(ManuallyDrop<Waiter>);

impl Current {
    pub fn get() -> Current {
        let w = match crate::sched::context::current_task_ptr() {
            // SAFETY: the running task is alive while it runs (see above),
            // and ManuallyDrop keeps us from releasing a reference we never took.
            Some(task) => Waiter(task.cast()),
            None => Waiter::thread(thread_parker()),
        };
        Current(ManuallyDrop::new(w))
    }

    /// An owned waiter for a queue (takes one reference).
    pub fn to_waiter(&self) -> Waiter {
        (*self.0).clone()
    }
}

impl std::ops::Deref for Current {
    type Target = Waiter;
    fn deref(&self) -> &Waiter {
        &self.0
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        // The thread variant did take a reference (thread_parker clones the
        // Arc); the task variant did not.
        if self.0 .0.as_ptr() as usize & THREAD_TAG != 0 {
            // SAFETY: dropped exactly once, here.
            unsafe { ManuallyDrop::drop(&mut self.0) };
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
        let (state, value) = (Outcome::new(0), new_hand_off());
        let cell = WaitCell::new(&state, &value);
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
