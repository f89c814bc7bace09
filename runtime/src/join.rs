//! Joining: waiting for a coroutine to finish and taking its result.
//!
//! A [`JoinHandle`] owns one reference to the task. Who drops the result and
//! who wakes the joiner is decided by the task's join state
//! (`task/join_state.rs`); this file acts on it from the handle's side, the
//! worker's `finish` (`sched/worker.rs`) from the finisher's side.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};

use crate::park::{Caller, Waiter};
use crate::task::TaskRef;

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
    /// the coroutine is caught and returned as `Err`, as with threads. A
    /// coroutine cancelled because its runtime shut down returns `Err` with a
    /// [`Cancelled`] payload.
    ///
    /// From a coroutine this parks only the coroutine; from a plain thread it
    /// blocks the thread.
    #[inline]
    pub fn join(self) -> std::thread::Result<T> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; we own its reference.
        let task = unsafe { std::ptr::read(&this.task) };
        let join = &task.task().join;
        if !join.is_complete() {
            let me = Caller::get();
            // SAFETY: JOIN_WAITER is unset (we are the only handle and set it
            // at most once, below), so the finisher will not read the slot.
            unsafe { task.set_joiner(Some(me.to_waiter().into_raw())) };
            if join.announce_waiter() {
                while !join.is_complete() {
                    me.park();
                }
            } else {
                // COMPLETE won the race: the finisher never saw JOIN_WAITER,
                // so the slot is still ours to clear.
                // SAFETY: as above; the finisher will not read it, and the
                // word came from `into_raw` just above.
                drop(unsafe { task.take_joiner().map(|w| Waiter::from_raw(w)) });
            }
        }
        if join.is_cancelled() {
            return Err(Box::new(Cancelled));
        }
        // SAFETY: COMPLETE is set without CANCELLED (so STORED is set too)
        // and JOIN_INTEREST was
        // never cleared, so the result is stored and ours to take, once.
        unsafe { task.cell().take::<std::thread::Result<T>>() }
    }

    /// Has the coroutine finished? Does not block.
    pub fn is_finished(&self) -> bool {
        self.task.task().join.is_complete()
    }
}

impl<T> Drop for JoinHandle<T> {
    /// Detach: the coroutine runs on; its result is dropped by its own
    /// coroutine, or here if it is already stored (task/join_state.rs).
    fn drop(&mut self) {
        if self.task.task().join.detach() {
            // SAFETY: the coroutine saw JOIN_INTEREST when it stored its
            // result, so the result is ours.
            drop_detached(unsafe { self.task.cell().take::<std::thread::Result<T>>() });
        }
    }
}

/// Drop the result of a coroutine that nobody will join. A destructor that
/// panics is caught and reported as one line on stderr: a detached result
/// has nobody to hand the panic to, and it must not unwind through the
/// runtime's frames. (A payload whose own destructor panics as well is
/// leaked rather than dropped.)
pub(crate) fn drop_detached<T>(result: std::thread::Result<T>) {
    let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(result))) else {
        return;
    };
    if crate::sched::context::cancelling() {
        // The runtime shut down while the destructor was parked: this is the
        // forced unwind of the coroutine (sched/shutdown.rs), not a panic of
        // the destructor. It must reach the coroutine's root.
        panic::resume_unwind(payload);
    }
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic payload");
    eprintln!("spindle: dropping the result of a detached coroutine panicked: {what}");
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.task.task().join.is_complete())
            .finish()
    }
}

/// The `Err` payload of [`JoinHandle::join`] for a coroutine that never
/// finished because its runtime was dropped: it was cancelled (unwound, or
/// dropped unstarted). Test for it with `payload.is::<spindle::Cancelled>()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("spindle: coroutine cancelled: its runtime shut down before it finished")
    }
}
