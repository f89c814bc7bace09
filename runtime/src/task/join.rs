//! Joining: waiting for a coroutine to finish and taking its result.
//!
//! Three bits in the task header decide who does what:
//!
//! * `COMPLETE`: set by the worker once the result is stored and the stack is
//!   back in the pool;
//! * `JOIN_WAITER`: set by the join handle once it has written its [`Waiter`]
//!   into the header;
//! * `JOIN_INTEREST`: set while a `JoinHandle` exists.
//!
//! The joiner writes its waiter *before* setting `JOIN_WAITER`; the finisher
//! reads it only *after* its `fetch_or(COMPLETE)` saw `JOIN_WAITER`. Whichever
//! of the two read-modify-writes comes second sees the other's bit, so the
//! joiner is either woken or never needed to sleep. The result is dropped by
//! exactly one side: by the finisher if the handle was already gone when it
//! set `COMPLETE`, otherwise by the handle. This is the protocol of tokio's
//! `JoinHandle`.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::atomic::Ordering::{AcqRel, Acquire};

use super::{OutputDropper, TaskRef};
use crate::loom_shim::AtomicU8;
use crate::park::Current;

const COMPLETE: u8 = 1;
const JOIN_WAITER: u8 = 2;
const JOIN_INTEREST: u8 = 4;

pub(crate) struct JoinState(AtomicU8);

impl JoinState {
    pub fn new() -> JoinState {
        JoinState(AtomicU8::new(JOIN_INTEREST))
    }

    pub fn is_complete(&self) -> bool {
        self.0.load(Acquire) & COMPLETE != 0
    }

    /// Finisher side: publish completion, then wake the joiner or, if the
    /// handle is gone, drop the result with `dropper`.
    pub(crate) fn complete(task: &TaskRef, dropper: OutputDropper) {
        let prev = task.header().join.0.fetch_or(COMPLETE, AcqRel);
        if prev & JOIN_INTEREST == 0 {
            // SAFETY: the handle is gone and saw no COMPLETE: the result is ours.
            unsafe { dropper(task) };
        } else if prev & JOIN_WAITER != 0 {
            // SAFETY: we saw JOIN_WAITER, so the joiner's write is visible and
            // it will not touch the slot again.
            if let Some(w) = unsafe { task.take_joiner() } {
                w.wake();
            }
        }
    }
}

/// An owned permission to join a coroutine (wait for it to finish).
///
/// Like `std::thread::JoinHandle`: dropping it detaches the coroutine.
pub struct JoinHandle<T> {
    task: TaskRef,
    _output: PhantomData<T>,
}

impl<T: Send + 'static> JoinHandle<T> {
    pub(crate) fn new(task: TaskRef) -> JoinHandle<T> {
        JoinHandle {
            task,
            _output: PhantomData,
        }
    }

    /// Wait for the coroutine to finish and return its result. A panic inside
    /// the coroutine is caught and returned as `Err`, as with threads.
    ///
    /// From a coroutine this parks only the coroutine; from a plain thread it
    /// blocks the thread.
    #[inline]
    pub fn join(self) -> std::thread::Result<T> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; we own its reference.
        let task = unsafe { std::ptr::read(&this.task) };
        let join = &task.header().join;
        if !join.is_complete() {
            let me = Current::get();
            // SAFETY: JOIN_WAITER is unset (we are the only handle and set it
            // at most once, below), so the finisher will not read the slot.
            unsafe { task.set_joiner(Some(me.to_waiter())) };
            let prev = join.0.fetch_or(JOIN_WAITER, AcqRel);
            if prev & COMPLETE == 0 {
                while !join.is_complete() {
                    me.park();
                }
            } else {
                // COMPLETE won the race: the finisher never saw JOIN_WAITER,
                // so the slot is still ours to clear.
                // SAFETY: as above; the finisher will not read it.
                unsafe { task.set_joiner(None) };
            }
        }
        // SAFETY: COMPLETE is set and JOIN_INTEREST was never cleared, so the
        // result is stored and ours to take, once.
        unsafe { task.cell().take::<std::thread::Result<T>>() }
    }

    /// Has the coroutine finished? Does not block.
    pub fn is_finished(&self) -> bool {
        self.task.header().join.is_complete()
    }
}

impl<T> Drop for JoinHandle<T> {
    /// Detach: the coroutine runs on; its result is dropped by whoever is last.
    fn drop(&mut self) {
        let prev = self.task.header().join.0.fetch_and(!JOIN_INTEREST, AcqRel);
        if prev & COMPLETE != 0 {
            // SAFETY: the finisher saw JOIN_INTEREST and left the result to us.
            drop(unsafe { self.task.cell().take::<std::thread::Result<T>>() });
        }
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.task.header().join.is_complete())
            .finish()
    }
}
