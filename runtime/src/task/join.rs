//! Joining: waiting for a coroutine to finish and taking its result.
//!
//! Two bits in the task header decide who talks to whom:
//!
//! * `COMPLETE`, set by the worker once the result is stored and the stack is
//!   back in the pool;
//! * `JOIN_WAITER`, set by the join handle once it has written its [`Waiter`]
//!   into the header.
//!
//! The joiner writes its waiter *before* setting `JOIN_WAITER`; the finisher
//! reads it only *after* its `fetch_or(COMPLETE)` saw `JOIN_WAITER`. Whichever
//! of the two read-modify-writes comes second sees the other's bit, so the
//! joiner is either woken or never needed to sleep. This is the same
//! protocol as tokio's `JoinHandle`.

use std::marker::PhantomData;
use std::sync::atomic::Ordering::{AcqRel, Acquire};

use super::{take_output, TaskRef};
use crate::loom_shim::AtomicU8;
use crate::park::Waiter;

const COMPLETE: u8 = 1;
const JOIN_WAITER: u8 = 2;

pub(crate) struct JoinState(AtomicU8);

impl JoinState {
    pub fn new() -> JoinState {
        JoinState(AtomicU8::new(0))
    }

    pub fn is_complete(&self) -> bool {
        self.0.load(Acquire) & COMPLETE != 0
    }

    /// Finisher side: publish completion and wake the joiner, if any.
    pub(crate) fn complete(task: &TaskRef) {
        let prev = task.header().join.0.fetch_or(COMPLETE, AcqRel);
        if prev & JOIN_WAITER != 0 {
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
    pub fn join(self) -> std::thread::Result<T> {
        let join = &self.task.header().join;
        if !join.is_complete() {
            let me = Waiter::current();
            // SAFETY: JOIN_WAITER is unset (we are the only handle and set it
            // at most once, below), so the finisher will not read the slot.
            unsafe { self.task.set_joiner(Some(me.clone())) };
            let prev = join.0.fetch_or(JOIN_WAITER, AcqRel);
            if prev & COMPLETE == 0 {
                while !join.is_complete() {
                    me.park();
                }
            } else {
                // COMPLETE won the race: the finisher never saw JOIN_WAITER,
                // so the slot is still ours to clear.
                // SAFETY: as above; the finisher will not read it.
                unsafe { self.task.set_joiner(None) };
            }
        }
        // SAFETY: COMPLETE is set and this handle is consumed: one take.
        unsafe { take_output::<T>(&self.task) }
    }

    /// Has the coroutine finished? Does not block.
    pub fn is_finished(&self) -> bool {
        self.task.header().join.is_complete()
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.task.header().join.is_complete())
            .finish()
    }
}
