//! Thread-local context: "which worker am I on, which coroutine is current?"
//!
//! Each worker thread records two things in thread-locals: its [`Worker`],
//! and the *current* coroutine, the one it is running right now (its task
//! and its corosensei `Yielder`, kept together in one cell so that a switch
//! costs one thread-local access on each side). "Current" means only this,
//! everywhere in the runtime.
//!
//! The coroutine itself keeps the second one up to date: it publishes itself
//! when it starts and every time it is resumed ([`enter`]), and withdraws
//! when it switches out ([`suspend`]) or returns ([`leave`]). So while a
//! worker runs its own loop, no coroutine is current on that thread.
//!
//! **Thread-locals and switches.** A started coroutine never changes thread
//! (`worker.rs`: it is pinned to its home worker), so the compiler's
//! assumption that a thread-local's address is constant within a function
//! holds inside coroutines. The accesses here are still small
//! `#[inline(never)]` functions that no caller holds across a suspension
//! point: the switch path stays small and inlined (below), and the state
//! they read is the *worker's*, which changes while a coroutine is switched
//! out. (The runtime's other thread-locals, `park/thread_parker.rs` and
//! `stack/overflow.rs`, follow the same rule.) Why the runtime does not let
//! started coroutines migrate: `docs/notes/soundness.md`.
//!
//! **The return-address predictor.** A CPU predicts where each `ret` jumps
//! from a small hardware stack of the addresses its `call`s pushed. A
//! coroutine switch changes stacks without returning, so afterwards that
//! predictor holds the *other* side's return addresses, and returning through
//! a frame that was live across the switch is mispredicted, at a cost of
//! several times the switch itself (figures: `docs/notes/runtime-figures.md`).
//! So the whole switch path is inlined into its caller: [`suspend`], `park`,
//! `Waiter::wait` and `Waiter::park`, and the public `yield_now`,
//! `Sender::send`, `Receiver::recv` and `JoinHandle::join`. The thread-local
//! accesses stay small out-of-line functions: they return *before* the
//! switch, so their call and return pair up and cost nothing of this kind.

use std::cell::Cell;
use std::ptr;

use std::ptr::NonNull;

use super::worker::Worker;
use crate::coroutine::{Suspend, Yielder};
use crate::stack::shrink;
use crate::task::Task;

/// The current coroutine of this thread: its task and its yielder, or two
/// nulls.
#[derive(Clone, Copy)]
struct Current {
    task: *const Task,
    yielder: *const Yielder,
}

const NOBODY: Current = Current {
    task: ptr::null(),
    yielder: ptr::null(),
};

thread_local! {
    static WORKER: Cell<*const Worker> = const { Cell::new(ptr::null()) };
    static CURRENT: Cell<Current> = const { Cell::new(NOBODY) };
    static CANCELLING: Cell<bool> = const { Cell::new(false) };
}

/// Mark this worker thread as unwinding a cancelled coroutine (or not).
#[inline(never)]
pub(crate) fn set_cancelling(on: bool) {
    CANCELLING.with(|c| c.set(on));
}

/// Is this thread unwinding a cancelled coroutine right now?
#[inline(never)]
pub(crate) fn cancelling() -> bool {
    CANCELLING.with(|c| c.get())
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

/// The current coroutine's task, without taking a reference: valid for as
/// long as the caller (that coroutine) runs, since its worker holds one.
#[inline(never)]
pub(crate) fn current() -> Option<NonNull<Task>> {
    NonNull::new(CURRENT.with(|c| c.get().task) as *mut Task)
}

/// Is the caller running inside a coroutine?
#[inline(never)]
pub(crate) fn in_coroutine() -> bool {
    !CURRENT.with(|c| c.get().task).is_null()
}

/// What a coroutine does first, and after every resume: tell the thread it
/// now runs on that it is current, and where its yielder is.
#[inline(never)]
pub(crate) fn enter(task: *const Task, yielder: &Yielder) {
    CURRENT.with(|c| c.set(Current { task, yielder }));
}

/// What a coroutine does last, just before it returns to its worker.
#[inline(never)]
pub(crate) fn leave() {
    CURRENT.with(|c| c.set(NOBODY));
}

#[inline(never)]
fn take_current() -> Current {
    CURRENT.with(|c| c.replace(NOBODY))
}

/// Switch from the running coroutine back to its worker, and return `true`
/// when some worker (maybe another one) resumes it. Returns `false` at once
/// if the caller is not a coroutine.
///
/// Always inlined, so that the switch happens in the caller's own frame (see
/// the module docs: *the return-address predictor*).
#[inline(always)]
pub(crate) fn suspend(reason: Suspend) -> bool {
    let me = take_current();
    if me.yielder.is_null() {
        return false;
    }
    // Where our frames end, for the shrink pass (stack/shrink.rs): a
    // register read and a plain store.
    // SAFETY: a current coroutine's task is alive while it runs.
    unsafe { (*me.task).set_shrink_word(shrink::word_for(shrink::stack_pointer())) };
    // SAFETY: the yielder lives at the base of this coroutine's own stack,
    // which is the stack we are running on, so it is valid right now.
    unsafe { (*me.yielder).suspend(reason) };
    // We may be on another thread now: re-publish through a fresh access.
    enter(
        me.task,
        // SAFETY: as above; the yielder does not move with the coroutine.
        unsafe { &*me.yielder },
    );
    true
}
