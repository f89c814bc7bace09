//! The wait cell: where a parked party receives the outcome of its wait and,
//! for channels, the value handed to it.
//!
//! Each party owns one cell in heap memory (in its [`Task`](crate::task), or
//! in its thread's parker): an [`Outcome`] byte and a *hand-off* slot of two
//! words. Values that fit go in inline; bigger ones are boxed and the box
//! pointer goes in. The protocol (see `park/mod.rs`): the waiter prepares its
//! cell ([`Outcome::Waiting`]) before it enqueues itself; only the waker that
//! dequeues it may write the slot, and it publishes the outcome last, with
//! `Release`; the waiter reads the outcome with `Acquire` before it touches
//! the slot.
//!
//! This module is a leaf: it knows nothing of tasks, threads or schedulers,
//! so that the task (below the scheduler) and the parking code (beside it)
//! can both store cells.

use std::cell::UnsafeCell;
use std::mem::{align_of, size_of, MaybeUninit};
use std::sync::atomic::Ordering;

use crate::loom_shim::AtomicU8;

/// How a wait ended, as stored in a cell's outcome byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Outcome {
    /// No wait has started in this cell yet.
    Idle = 0,
    /// The waiter is enqueued and has not been served yet.
    Waiting = 1,
    /// A value was written into the cell for the waiter to take.
    Delivered = 2,
    /// The waiter's own value was taken out of its cell.
    Taken = 3,
    /// The structure closed; the waiter gets an error (and its value back).
    Closed = 4,
    /// Woken with no value (timer fired, wait group reached zero).
    Done = 5,
    /// A selecting sender was chosen by a receiver of a rendezvous channel:
    /// the cell holds that receiver's `Waiter`, to hand the value to.
    Paired = 6,
    /// A selecting sender was chosen for a buffered channel: a slot is
    /// reserved for its value.
    Reserved = 7,
    /// The party that chose this waiter gave up before completing (a
    /// dropped `SelectedOperation`): the waiter starts its operation again.
    Retry = 8,
}

impl Outcome {
    #[inline]
    fn from_byte(b: u8) -> Outcome {
        debug_assert!(b <= Outcome::Retry as u8, "only Outcome values are stored");
        // SAFETY: the byte is only ever written by `prepare` and `finish`
        // (and initialised to `Idle`), each storing an `Outcome`, which is
        // `repr(u8)`: so it holds one of its discriminants.
        unsafe { std::mem::transmute::<u8, Outcome>(b) }
    }
}

/// Words of inline hand-off space; bigger values are boxed.
const INLINE_WORDS: usize = 2;

/// The storage behind a [`WaitCell`]: the outcome byte and the hand-off
/// slot. Kept as two fields (not one struct) in the task, so the outcome
/// byte packs next to the other small fields there.
pub(crate) struct OutcomeByte(AtomicU8);
pub(crate) type HandOff = UnsafeCell<MaybeUninit<[usize; INLINE_WORDS]>>;

impl OutcomeByte {
    pub fn new() -> OutcomeByte {
        OutcomeByte(AtomicU8::new(Outcome::Idle as u8))
    }
}

pub(crate) fn new_hand_off() -> HandOff {
    UnsafeCell::new(MaybeUninit::uninit())
}

/// A view of one party's outcome byte and hand-off slot.
#[derive(Clone, Copy)]
pub(crate) struct WaitCell<'a> {
    state: &'a OutcomeByte,
    value: &'a HandOff,
}

const fn is_inline<T>() -> bool {
    size_of::<T>() <= size_of::<[usize; INLINE_WORDS]>() && align_of::<T>() <= align_of::<usize>()
}

impl<'a> WaitCell<'a> {
    #[inline]
    pub fn new(state: &'a OutcomeByte, value: &'a HandOff) -> WaitCell<'a> {
        WaitCell { state, value }
    }

    /// The outcome byte and the hand-off slot this cell views.
    #[inline]
    pub fn parts(self) -> (&'a OutcomeByte, &'a HandOff) {
        (self.state, self.value)
    }

    /// Start a new wait. Called by the waiter before it enqueues itself.
    #[inline]
    pub fn prepare(self) {
        self.state
            .0
            .store(Outcome::Waiting as u8, Ordering::Relaxed);
    }

    /// Publish the outcome of the wait (waker side).
    #[inline]
    pub fn finish(self, outcome: Outcome) {
        self.state.0.store(outcome as u8, Ordering::Release);
    }

    #[inline]
    pub fn outcome(self) -> Outcome {
        Outcome::from_byte(self.state.0.load(Ordering::Acquire))
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cell_moves_small_and_large_values() {
        let (state, value) = (OutcomeByte::new(), new_hand_off());
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
        assert_eq!(cell.outcome(), Outcome::Waiting);
        cell.finish(Outcome::Done);
        assert_eq!(cell.outcome(), Outcome::Done);
    }
}
