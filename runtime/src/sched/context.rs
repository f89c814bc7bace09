//! Thread-local context: "which worker am I on, which task is running?"
//!
//! Each worker thread records two things in thread-locals: its [`Worker`],
//! and the coroutine it is running right now (its task header and its
//! corosensei `Yielder`, kept together in one cell so that a switch costs
//! one thread-local access on each side).
//!
//! The coroutine itself keeps the second one up to date: it publishes itself
//! when it starts and every time it is resumed ([`enter_coroutine`]), and
//! withdraws when it switches out ([`suspend`]) or returns
//! ([`leave_coroutine`]). So while a worker runs its own loop, no task is
//! "current" on that thread.
//!
//! **The migration hazard.** A coroutine can suspend on worker A and resume on
//! worker B. The compiler assumes the thread never changes inside a function,
//! so it may compute a thread-local's address once and reuse it after a call
//! that, for us, switched threads. Therefore every access in this file goes
//! through a small `#[inline(never)]` function that computes the address
//! afresh, and no caller holds what it got across a suspension point. In
//! particular [`suspend`] re-publishes the coroutine in the *new* worker's
//! thread-local after it is resumed.
//!
//! **The return-address predictor.** A CPU predicts where each `ret` jumps
//! from a small hardware stack of the addresses its `call`s pushed. A
//! coroutine switch changes stacks without returning, so afterwards that
//! predictor holds the *other* side's return addresses, and returning through
//! a frame that was live across the switch is mispredicted. It is not a
//! small effect: two corosensei coroutines taking turns through a scheduler
//! loop cost 9.7 ns per switch when `suspend` is inlined into the coroutine's
//! loop, and 32 ns when it sits one out-of-line function deeper (a scratch
//! benchmark on the machine of `docs/07-results.md`). So the whole switch
//! path is inlined into its caller: [`suspend`], `park_current`,
//! `Waiter::wait` and `Waiter::park`, and the public `yield_now`,
//! `Sender::send`, `Receiver::recv` and `JoinHandle::join`. The thread-local
//! accesses stay small out-of-line functions: they return *before* the
//! switch, so their call and return pair up and cost nothing of this kind.

use std::cell::Cell;
use std::ptr;

use super::worker::Worker;
use crate::task::{Header, Suspend, TaskRef};

type Yielder = corosensei::Yielder<(), Suspend>;

/// The coroutine running on this thread: its task and its yielder, or two
/// nulls.
#[derive(Clone, Copy)]
struct Running {
    task: *const Header,
    yielder: *const Yielder,
}

const NOBODY: Running = Running {
    task: ptr::null(),
    yielder: ptr::null(),
};

thread_local! {
    static WORKER: Cell<*const Worker> = const { Cell::new(ptr::null()) };
    static RUNNING: Cell<Running> = const { Cell::new(NOBODY) };
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

/// The running coroutine's task header, without taking a reference: valid
/// for as long as the caller (that coroutine) runs.
#[inline(never)]
pub(crate) fn current_task_ptr() -> Option<std::ptr::NonNull<Header>> {
    std::ptr::NonNull::new(RUNNING.with(|r| r.get().task) as *mut Header)
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
    !RUNNING.with(|r| r.get().task).is_null()
}

/// What a coroutine does first, and after every resume: tell the thread it
/// now runs on who is running and where its yielder is.
#[inline(never)]
pub(crate) fn enter_coroutine(task: *const Header, yielder: &Yielder) {
    RUNNING.with(|r| r.set(Running { task, yielder }));
}

/// What a coroutine does last, just before it returns to its worker.
#[inline(never)]
pub(crate) fn leave_coroutine() {
    RUNNING.with(|r| r.set(NOBODY));
}

#[inline(never)]
fn take_running() -> Running {
    RUNNING.with(|r| r.replace(NOBODY))
}

/// Switch from the running coroutine back to its worker, and return `true`
/// when some worker (maybe another one) resumes it. Returns `false` at once
/// if the caller is not a coroutine.
///
/// Always inlined, so that the switch happens in the caller's own frame (see
/// the module docs: *the return-address predictor*).
#[inline(always)]
pub(crate) fn suspend(reason: Suspend) -> bool {
    let me = take_running();
    if me.yielder.is_null() {
        return false;
    }
    // SAFETY: the yielder lives at the base of this coroutine's own stack,
    // which is the stack we are running on, so it is valid right now.
    unsafe { (*me.yielder).suspend(reason) };
    // We may be on another thread now: re-publish through a fresh access.
    enter_coroutine(
        me.task,
        // SAFETY: as above; the yielder does not move with the coroutine.
        unsafe { &*me.yielder },
    );
    true
}
