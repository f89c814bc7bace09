//! Thread-local context: "which worker am I on, which task is running?"
//!
//! Each worker thread records three things in thread-locals: its [`Worker`],
//! the task it is running, and that task's corosensei `Yielder`.
//!
//! **The migration hazard.** A coroutine can suspend on worker A and resume on
//! worker B. The compiler assumes the thread never changes inside a function,
//! so it may compute a thread-local's address once and reuse it after a call
//! that, for us, switched threads. Therefore every access in this file goes
//! through a small `#[inline(never)]` function that computes the address
//! afresh, and no caller holds what it got across a suspension point. In
//! particular [`suspend`] re-reads the yielder from the *new* worker's
//! thread-local after it is resumed.

use std::cell::Cell;
use std::ptr;

use super::worker::Worker;
use crate::task::{Header, Suspend, TaskRef};

type Yielder = corosensei::Yielder<(), Suspend>;

thread_local! {
    static WORKER: Cell<*const Worker> = const { Cell::new(ptr::null()) };
    static TASK: Cell<*const Header> = const { Cell::new(ptr::null()) };
    static YIELDER: Cell<*const Yielder> = const { Cell::new(ptr::null()) };
}

/// Mark the calling thread as `worker` (or as no worker, with null).
#[inline(never)]
pub(crate) fn set_worker(worker: *const Worker) {
    WORKER.with(|w| w.set(worker));
}

/// Run `f` with this thread's worker, if it is one. `f` must not suspend.
#[inline(never)]
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&Worker>) -> R) -> R {
    let w = WORKER.with(|w| w.get());
    // SAFETY: the pointer is set by the worker thread to its own Worker, which
    // outlives every call made on that thread while it is set, and `f` runs
    // to completion on this thread (it must not suspend).
    f(unsafe { w.as_ref() })
}

/// Record the task this worker is about to resume (null when none).
#[inline(never)]
pub(crate) fn set_current_task(task: *const Header) {
    TASK.with(|t| t.set(task));
}

/// The running coroutine's task header, without taking a reference: valid
/// for as long as the caller (that coroutine) runs.
#[inline(never)]
pub(crate) fn current_task_ptr() -> Option<std::ptr::NonNull<Header>> {
    std::ptr::NonNull::new(TASK.with(|t| t.get()) as *mut Header)
}

/// The running coroutine's task (a new reference), if the caller is one.
pub(crate) fn current_task() -> Option<TaskRef> {
    current_task_ptr().map(|ptr| {
        // SAFETY: the worker holds a reference to the running task, so we may
        // borrow it; ManuallyDrop keeps us from releasing that reference.
        let borrowed = std::mem::ManuallyDrop::new(unsafe { TaskRef::from_raw(ptr) });
        (*borrowed).clone()
    })
}

/// Is the caller running inside a coroutine?
#[inline(never)]
pub(crate) fn in_coroutine() -> bool {
    !TASK.with(|t| t.get()).is_null()
}

/// First thing a coroutine does: tell its worker where its yielder is.
#[inline(never)]
pub(crate) fn enter_coroutine(yielder: &Yielder) {
    YIELDER.with(|y| y.set(yielder));
}

#[inline(never)]
fn take_yielder() -> *const Yielder {
    YIELDER.with(|y| y.replace(ptr::null()))
}

/// Switch from the running coroutine back to its worker, and return `true`
/// when some worker (maybe another one) resumes it. Returns `false` at once
/// if the caller is not a coroutine.
#[inline(never)]
pub(crate) fn suspend(reason: Suspend) -> bool {
    let y = take_yielder();
    if y.is_null() {
        return false;
    }
    // SAFETY: the yielder lives at the base of this coroutine's own stack,
    // which is the stack we are running on, so it is valid right now.
    unsafe { (*y).suspend(reason) };
    // We may be on another thread now: re-publish through a fresh access.
    enter_coroutine(
        // SAFETY: as above; the yielder does not move with the coroutine.
        unsafe { &*y },
    );
    true
}
