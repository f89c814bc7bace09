//! Tasks: the heap-allocated control block of one coroutine.
//!
//! A task is one small allocation, a [`Task`] (a block from the task-block
//! cache, `cache.rs`, most often one a finished task gave back), holding
//! everything the scheduler needs while the coroutine is parked:
//!
//! * the scheduling state (`state.rs`), the join state (`join_state.rs`) and
//!   a reference count;
//! * its *home*, the worker that first ran it and the only one that will
//!   ever run it again, as an opaque pointer (this module never looks
//!   through it: `sched/` owns what it points to);
//! * its hand-off slot and outcome byte (the task's [`WaitCell`]): how a
//!   channel passes it a value while it sleeps, and, once it has returned,
//!   where its result waits for `join`;
//! * its [`Body`]: the `corosensei` coroutine, which owns the [`Stack`] and
//!   the saved stack pointer, or, before a deferred task first runs, the
//!   code that will build it (`start.rs`: a task takes its stack when it
//!   first runs);
//! * the waiter parked in `join`, if any, as an opaque word;
//! * a *spare reference* flag (`spare.rs`);
//! * the *shrink word*: where the coroutine's stack pointer was when it last
//!   switched out (`stack/shrink.rs`), so that its home worker can give back
//!   the dead pages below it, and the *compaction word*
//!   (`sched/compact.rs`). While the coroutine runs, the shrink word's field
//!   holds its yielder's address instead (`sched/context.rs`: the *switch
//!   word*), the one moment a field points into its stack.
//!
//! The closure itself is moved onto the coroutine's own stack by corosensei
//! and costs no heap (until then, a deferred task keeps it in its hand-off
//! slot). Invariant: no field points into the coroutine's stack.
//! [`TaskRef`] is a counted pointer to the task (like `Arc`, but one word,
//! so wait queues and run queues store one word per task).
//!
//! The task is not generic over the result type `T`: the result lives in the
//! hand-off slot (boxed if larger than two words), and the two pieces of code
//! that know `T` are the coroutine itself (which drops a result nobody will
//! join, `join_state.rs`) and the `JoinHandle`.
//!
//! This module is below the scheduler and the parking code: it holds the
//! state machines of one task, not the code that runs or wakes it.

pub(crate) mod cache;
pub(crate) mod join_state;
mod spare;
pub(crate) mod start;
pub(crate) mod state;

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use crate::coroutine::{Coroutine, Suspend};
use crate::stack::Stack;
use crate::wait_cell::{new_hand_off, HandOff, OutcomeByte, WaitCell};
use join_state::JoinState;
use start::{Start, StartFn};
use state::SchedState;

/// What the task runs. Touched only by the worker that holds the task (it
/// took it from a run queue).
///
/// Two variants, not three, so that the enum stays the coroutine's size:
/// the coroutine's fields have one spare (null) value to tell the variants
/// apart, not two.
enum Body {
    /// The coroutine, until it returns and its stack is taken back.
    Coroutine(Coroutine),
    /// No coroutine. `Some`: deferred, not started and no stack yet: the
    /// function waits in the hand-off slot, and this builds the coroutine
    /// from it (`start.rs`). `None`: finished (or dropped unstarted), its
    /// stack given back.
    NoCoroutine(Option<StartFn>),
}

impl Body {
    /// Finished, or dropped unstarted.
    const DONE: Body = Body::NoCoroutine(None);
}

pub(crate) struct Task {
    refs: AtomicU32,
    pub state: SchedState,
    pub join: JoinState,
    outcome: OutcomeByte,
    /// Set while the task holds one reference to itself (`spare.rs`).
    spare: AtomicBool,
    /// The home worker (opaque here; `sched/` casts it back): null until the
    /// task first runs. Written once, by that worker before the first
    /// resume; read by the task itself and by wakers, which got their
    /// waiter from the running task through the structure it waited on
    /// (its lock or queue), and so after the write.
    home: AtomicPtr<()>,
    hand_off: HandOff,
    /// See [`Body`].
    body: UnsafeCell<Body>,
    /// Who waits in `join`: a raw `Waiter` (`park::Waiter::into_raw`) owned
    /// by this slot. Written by the joiner before it sets `JOIN_WAITER`,
    /// taken by the finisher after it sees that bit.
    joiner: UnsafeCell<Option<NonNull<()>>>,
    /// The shrink word (`stack/shrink.rs`): written and read only on the
    /// home worker's thread (by the coroutine as it switches out, and by
    /// that worker's shrink pass), so `Relaxed` plain loads and stores.
    /// While the coroutine runs (when no shrink pass of its worker can), the
    /// same field is the switch word: its yielder's address
    /// (`sched/context.rs`).
    shrink: AtomicUsize,
    /// The compaction word (`sched/compact.rs`): home worker only, like
    /// the shrink word; zero unless compaction is on. (88 bytes are still a
    /// 96-byte malloc chunk.)
    compact: AtomicU32,
}

impl Task {
    /// The home worker, opaque (see the field); null if not started.
    #[inline]
    pub fn home(&self) -> *const () {
        self.home.load(Ordering::Relaxed)
    }

    /// The shrink word (`stack/shrink.rs`).
    #[inline(always)]
    pub fn shrink_word(&self) -> usize {
        self.shrink.load(Ordering::Relaxed)
    }

    /// Set the shrink word. Only on the home worker's thread (see the field).
    #[inline(always)]
    pub fn set_shrink_word(&self, word: usize) {
        self.shrink.store(word, Ordering::Relaxed);
    }

    /// The switch word (`sched/context.rs`): the shrink word's field, read
    /// as the running coroutine's yielder. Home thread only, as the shrink
    /// word.
    #[inline(always)]
    pub fn switch_word(&self) -> usize {
        self.shrink.load(Ordering::Relaxed)
    }

    /// Set the switch word (`sched/context.rs`). Home thread only.
    #[inline(always)]
    pub fn set_switch_word(&self, word: usize) {
        self.shrink.store(word, Ordering::Relaxed);
    }

    /// The compaction word (`sched/compact.rs`).
    #[inline(always)]
    pub fn compact_word(&self) -> u32 {
        self.compact.load(Ordering::Relaxed)
    }

    /// Set the compaction word. Only on the home worker's thread.
    pub fn set_compact_word(&self, word: u32) {
        self.compact.store(word, Ordering::Relaxed);
    }

    /// Record the home worker, once, before the first resume.
    pub fn set_home(&self, home: *const ()) {
        debug_assert!(self.home().is_null());
        self.home.store(home.cast_mut(), Ordering::Relaxed);
    }
}

/// A counted, one-word pointer to a task.
#[repr(transparent)]
pub(crate) struct TaskRef(NonNull<Task>);

// SAFETY: every field of Task is atomic, immutable, or accessed under the
// protocol documented on it (coroutine: only by the worker running it; hand-off
// slot: see wait_cell.rs; joiner: ordered by the JOIN_WAITER bit). Moving the
// coroutine between threads is the point of an M:N runtime; what that means
// for thread-locals is documented in the crate docs.
unsafe impl Send for TaskRef {}
// SAFETY: as for Send: shared access to a Task goes through atomics or the
// protocols above, never through an unsynchronised `&mut`.
unsafe impl Sync for TaskRef {}

/// A raw task pointer that may move into the coroutine's entry closure.
pub(crate) struct TaskPtr(*const Task);
// SAFETY: the task is Sync (see TaskRef) and outlives its coroutine.
unsafe impl Send for TaskPtr {}

impl TaskPtr {
    pub fn as_ptr(&self) -> *const Task {
        self.0
    }

    /// The task's wait cell.
    ///
    /// # Safety
    /// The task is alive: the caller is the task's own coroutine, which runs
    /// only while its worker holds a reference.
    pub unsafe fn cell(&self) -> WaitCell<'_> {
        // SAFETY: the caller promises the task is alive.
        let task = unsafe { &*self.0 };
        WaitCell::new(&task.outcome, &task.hand_off)
    }
}

impl TaskRef {
    /// Allocate a task with two references: one for the run queue, one for
    /// the join handle. `coroutine` builds its coroutine, given the task's
    /// address for the entry closure.
    pub fn new(coroutine: impl FnOnce(TaskPtr) -> Coroutine) -> (TaskRef, TaskRef) {
        let (run, handle) = TaskRef::alloc(Body::DONE);
        let co = coroutine(TaskPtr(run.task()));
        // SAFETY: the task is new and unshared: nobody else touches its body.
        unsafe { *run.task().body.get() = Body::Coroutine(co) };
        (run, handle)
    }

    /// A new task with `body`, as two references. The block comes from the
    /// task-block cache (`cache.rs`), most often one that a finished task
    /// gave back.
    #[inline]
    fn alloc(body: Body) -> (TaskRef, TaskRef) {
        let block = cache::alloc();
        // SAFETY: `cache::alloc` returns memory valid for a Task, which holds
        // no live value and is ours alone: write a whole new task over it.
        unsafe {
            block.as_ptr().write(Task {
                refs: AtomicU32::new(2),
                state: SchedState::new_runnable(),
                join: JoinState::new(),
                outcome: OutcomeByte::new(),
                spare: AtomicBool::new(false),
                home: AtomicPtr::new(std::ptr::null_mut()),
                hand_off: new_hand_off(),
                body: UnsafeCell::new(body),
                joiner: UnsafeCell::new(None),
                shrink: AtomicUsize::new(0),
                compact: AtomicU32::new(0),
            })
        };
        (TaskRef(block), TaskRef(block))
    }

    pub fn task(&self) -> &Task {
        // SAFETY: a TaskRef holds a reference count, so the task is alive.
        unsafe { self.0.as_ref() }
    }

    pub fn cell(&self) -> WaitCell<'_> {
        let t = self.task();
        WaitCell::new(&t.outcome, &t.hand_off)
    }

    /// Give up the reference as a raw pointer (see [`from_raw`](Self::from_raw)).
    pub fn into_raw(self) -> NonNull<Task> {
        let ptr = self.0;
        std::mem::forget(self);
        ptr
    }

    /// Take back a reference given up by [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    /// `ptr` came from `into_raw` and is used once.
    pub unsafe fn from_raw(ptr: NonNull<Task>) -> TaskRef {
        TaskRef(ptr)
    }

    /// Resume the coroutine until it suspends or returns.
    ///
    /// # Safety
    /// The caller is the worker that took the task from a run queue.
    #[inline]
    pub unsafe fn resume(&self) -> corosensei::CoroutineResult<Suspend, ()> {
        // SAFETY: only the worker running the task touches the coroutine.
        match unsafe { &mut *self.task().body.get() } {
            Body::Coroutine(co) => co.resume(()),
            _ => unreachable!("resumed a task with no coroutine"),
        }
    }

    /// Unwind the coroutine's stack (its locals are dropped, on this
    /// thread), or, if it never started, drop its function. Afterwards the
    /// coroutine has returned. A panic that is not the unwind itself (a
    /// destructor that panics) propagates to the caller.
    ///
    /// # Safety
    /// As for [`resume`](Self::resume).
    pub unsafe fn force_unwind(&self) {
        // SAFETY: only the worker running the task touches the coroutine.
        let body = unsafe { &mut *self.task().body.get() };
        match body {
            Body::Coroutine(co) => co.force_unwind(),
            Body::NoCoroutine(Some(start)) => {
                let start = *start;
                *body = Body::DONE;
                // SAFETY: the function is still in the slot (the body was
                // deferred), and it is taken once: the body is Done now.
                unsafe { start(TaskPtr(self.task()), Start::Drop) };
            }
            Body::NoCoroutine(None) => {}
        }
    }

    /// Take the stack back from a coroutine that has returned (`None`: a
    /// deferred task that finished without ever getting one).
    ///
    /// # Safety
    /// As for [`resume`](Self::resume), and the coroutine has returned.
    pub unsafe fn take_stack(&self) -> Option<Stack> {
        // SAFETY: only the worker running the task touches the coroutine.
        let body = unsafe { &mut *self.task().body.get() };
        match std::mem::replace(body, Body::DONE) {
            Body::Coroutine(co) => Some(co.into_stack()),
            Body::NoCoroutine(None) => None,
            Body::NoCoroutine(Some(_)) => {
                unreachable!("took the stack of a task that never started")
            }
        }
    }

    /// Record the (raw) waiter parked in `join`.
    ///
    /// # Safety
    /// Only the join handle may call this, and only while `JOIN_WAITER` is unset.
    pub unsafe fn set_joiner(&self, waiter: Option<NonNull<()>>) {
        // SAFETY: see `joiner` field docs.
        unsafe { *self.task().joiner.get() = waiter };
    }

    /// # Safety
    /// Only the finishing worker, after it saw `JOIN_WAITER` set.
    pub unsafe fn take_joiner(&self) -> Option<NonNull<()>> {
        // SAFETY: see `joiner` field docs.
        unsafe { (*self.task().joiner.get()).take() }
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> Self {
        self.task().refs.fetch_add(1, Ordering::Relaxed);
        TaskRef(self.0)
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        if self.task().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        std::sync::atomic::fence(Ordering::Acquire);
        /// Gives the block back to the cache after the task's destructor,
        /// even if that unwinds (a function dropped unstarted may panic), as
        /// a `Box` frees its memory.
        struct GiveBack(NonNull<Task>);
        impl Drop for GiveBack {
            fn drop(&mut self) {
                // SAFETY: the task in the block has been dropped (below) and
                // nobody holds a reference to it any more.
                unsafe { cache::free(self.0) };
            }
        }
        let block = GiveBack(self.0);
        // SAFETY: this was the last reference to a task written by
        // `TaskRef::alloc`; the fence orders every other thread's use of it
        // before this drop, which runs once. The block is freed after it.
        unsafe { std::ptr::drop_in_place(block.0.as_ptr()) };
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // A coroutine still here never ran to its end. If it never started
        // (a spawn that raced a shutdown), dropping it only drops its
        // function. A started one is forgotten, not dropped: dropping would
        // unwind it on this thread, at an arbitrary point; shutdown unwinds
        // every started coroutine on its home worker, so this does not happen.
        match self.body.get_mut() {
            // The common case: finished, stack given back.
            Body::NoCoroutine(None) => {}
            Body::Coroutine(co) if co.started() => {
                std::mem::forget(std::mem::replace(self.body.get_mut(), Body::DONE));
            }
            Body::Coroutine(_) => {}
            Body::NoCoroutine(Some(start)) => {
                let start = *start;
                // SAFETY: the last reference is gone, so nobody else holds
                // the task; its function is still in the slot, taken once.
                unsafe { start(TaskPtr(self), Start::Drop) };
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn task_stays_small() {
        // The memory figure (bytes per parked coroutine) depends on this:
        // 80 bytes is a 96-byte malloc chunk (72 were 80; the shrink word,
        // stack/shrink.rs, cost the step); so is 88, which the compaction
        // word (sched/compact.rs) takes to 84.
        assert!(
            std::mem::size_of::<Task>() <= 88,
            "{}",
            std::mem::size_of::<Task>()
        );
    }
}
