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
//! * its body: the `corosensei` coroutine, which owns the [`Stack`] and
//!   the saved stack pointer, or, before a deferred task first runs, the
//!   code that will build it (`start.rs`: a task takes its stack when it
//!   first runs), with a one-byte [`Kind`] that says which (or neither:
//!   finished);
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
//! and costs no heap. Until then, a deferred task keeps it in its
//! [`Slots`]: the hand-off slot and the body storage, 48 bytes kept
//! contiguous, are both free before the first run, so they hold the
//! function (up to five words without a box) and its [`StartFn`]
//! (`start.rs`). Once started, the coroutine lives in the body storage
//! only, never over the hand-off words, which the wait cell needs.
//! Invariant: no field points into the coroutine's stack.
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

use std::cell::{Cell, UnsafeCell};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use crate::coroutine::{Coroutine, Suspend};
use crate::stack::Stack;
use crate::wait_cell::{new_hand_off, HandOff, OutcomeByte, WaitCell};
use join_state::JoinState;
use start::Start;
use state::SchedState;

/// What the task's [`Slots`] hold. Read and written only by the worker
/// that holds the task (it took it from a run queue), or by the last
/// reference's drop; it lives in the padding beside the small fields.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Kind {
    /// The body storage holds the coroutine, until it returns and its
    /// stack is taken back. The hand-off slot is the wait cell's.
    Coroutine,
    /// Deferred, not started: the slots hold the function and its
    /// [`StartFn`], laid out as `start.rs` says.
    Deferred,
    /// Nothing: finished (or dropped unstarted), its stack given back, or
    /// between a start taking the function and the coroutine being stored.
    /// The hand-off slot is the wait cell's.
    Done,
}

/// The hand-off slot and the body storage, in this order and contiguous
/// (`repr(C)`, no padding: 16 + 32 bytes, more under AddressSanitizer,
/// whose coroutine is larger), so that a deferred task can use
/// them as one area (`start.rs`). Every byte is inside an `UnsafeCell`, so
/// a raw pointer from `&Slots` may write any of them ([`Task::slots`]).
#[repr(C)]
struct Slots {
    /// The wait cell's two words (`wait_cell.rs`), once started.
    hand_off: HandOff,
    /// The coroutine when [`Kind::Coroutine`], else no value of its own.
    coroutine: UnsafeCell<MaybeUninit<Coroutine>>,
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
    /// What [`slots`](Self::slots) hold.
    kind: Cell<Kind>,
    /// The hand-off slot and the coroutine (see [`Slots`], [`Kind`]).
    slots: Slots,
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

    /// Set the shrink word.
    ///
    /// # Safety
    /// On the home worker's thread, and the task is switched out: while it
    /// runs, the same field is its switch word, which `suspend_running`
    /// dereferences.
    #[inline(always)]
    pub unsafe fn set_shrink_word(&self, word: usize) {
        self.shrink.store(word, Ordering::Relaxed);
    }

    /// The switch word (`sched/context.rs`): the shrink word's field, read
    /// as the running coroutine's yielder. Home thread only, as the shrink
    /// word.
    #[inline(always)]
    pub fn switch_word(&self) -> usize {
        self.shrink.load(Ordering::Relaxed)
    }

    /// Set the switch word (`sched/context.rs`).
    ///
    /// # Safety
    /// Called by the task's own coroutine, on its home thread. While the
    /// coroutine runs, the word must be its live yielder's address, since
    /// `suspend_running` dereferences it: so the only other values stored
    /// are the shrink word at a switch out, and zero as its last act.
    #[inline(always)]
    pub unsafe fn set_switch_word(&self, word: usize) {
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

    /// The slots as one raw area. Writing through it is allowed (every
    /// byte is in an `UnsafeCell`); what may be written when is the
    /// [`Kind`] protocol's business.
    #[inline(always)]
    fn slots(&self) -> *mut Slots {
        std::ptr::from_ref(&self.slots).cast_mut()
    }

    /// The body storage: a coroutine when the kind is [`Kind::Coroutine`].
    #[inline(always)]
    fn coroutine(&self) -> *mut Coroutine {
        self.slots.coroutine.get().cast()
    }
}

/// A counted, one-word pointer to a task.
#[repr(transparent)]
pub(crate) struct TaskRef(NonNull<Task>);

// SAFETY: every field of Task is atomic, immutable, or accessed under the
// protocol documented on it (kind and body storage: only by the worker
// holding the task, which took it from a run queue, or by the last
// reference's drop; hand-off slot: see wait_cell.rs, and before the first
// run the deferred payload, which is `Send`, `start.rs`; joiner: ordered by
// the JOIN_WAITER bit). An unstarted task moves between threads (stolen);
// a started coroutine stays on its home worker (crate docs).
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
        WaitCell::new(&task.outcome, &task.slots.hand_off)
    }
}

impl TaskRef {
    /// Allocate a task with two references: one for the run queue, one for
    /// the join handle. `coroutine` builds its coroutine, given the task's
    /// address for the entry closure.
    pub fn new(coroutine: impl FnOnce(TaskPtr) -> Coroutine) -> (TaskRef, TaskRef) {
        let (run, handle) = TaskRef::alloc(Kind::Done);
        let co = coroutine(TaskPtr(run.task()));
        // SAFETY: the task is new and unshared: nobody else touches its
        // body storage, which holds no value (the kind is Done).
        unsafe { run.task().coroutine().write(co) };
        run.task().kind.set(Kind::Coroutine);
        (run, handle)
    }

    /// A new task of `kind`, as two references, its slots uninitialised
    /// (the caller fills them as `kind` says). The block comes from the
    /// task-block cache (`cache.rs`), most often one that a finished task
    /// gave back.
    #[inline]
    fn alloc(kind: Kind) -> (TaskRef, TaskRef) {
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
                kind: Cell::new(kind),
                slots: Slots {
                    hand_off: new_hand_off(),
                    coroutine: UnsafeCell::new(MaybeUninit::uninit()),
                },
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
        WaitCell::new(&t.outcome, &t.slots.hand_off)
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
        let task = self.task();
        if task.kind.get() != Kind::Coroutine {
            unreachable!("resumed a task with no coroutine")
        }
        // SAFETY: the kind says the body storage holds the coroutine, and
        // only the worker running the task touches it.
        unsafe { (*task.coroutine()).resume(()) }
    }

    /// Unwind the coroutine's stack (its locals are dropped, on this
    /// thread), or, if it never started, drop its function. Afterwards the
    /// coroutine has returned. A panic that is not the unwind itself (a
    /// destructor that panics) propagates to the caller.
    ///
    /// # Safety
    /// As for [`resume`](Self::resume).
    pub unsafe fn force_unwind(&self) {
        let task = self.task();
        match task.kind.get() {
            // SAFETY: the kind says the body storage holds the coroutine,
            // and only the worker running the task touches it.
            Kind::Coroutine => unsafe { (*task.coroutine()).force_unwind() },
            Kind::Deferred => {
                // SAFETY: deferred: the function is still in the slots, and
                // it is taken once (`take_start` leaves the kind Done); the
                // caller holds the task, as a StartFn requires.
                unsafe { task.take_start()(TaskPtr(task), Start::Drop) };
            }
            Kind::Done => {}
        }
    }

    /// Take the stack back from a coroutine that has returned (`None`: a
    /// deferred task that finished without ever getting one).
    ///
    /// # Safety
    /// As for [`resume`](Self::resume), and the coroutine has returned.
    pub unsafe fn take_stack(&self) -> Option<Stack> {
        let task = self.task();
        match task.kind.get() {
            Kind::Coroutine => {
                task.kind.set(Kind::Done);
                // SAFETY: the kind said the body storage holds the
                // coroutine; it is moved out once (the kind is Done now),
                // by the only worker that touches it.
                let co = unsafe { task.coroutine().read() };
                Some(co.into_stack())
            }
            Kind::Done => None,
            Kind::Deferred => unreachable!("took the stack of a task that never started"),
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
        match self.kind.get() {
            // The common case: finished, stack given back.
            Kind::Done => {}
            Kind::Coroutine => {
                self.kind.set(Kind::Done);
                let co = self.coroutine();
                // SAFETY: the kind said the body storage holds the
                // coroutine, and the last reference is gone: it is ours,
                // dropped (if unstarted) or forgotten (if started) once.
                unsafe {
                    if !(*co).started() {
                        std::ptr::drop_in_place(co);
                    }
                }
            }
            Kind::Deferred => {
                // SAFETY: the last reference is gone, so nobody else holds
                // the task; its function is still in the slots, taken once
                // (`take_start` leaves the kind Done).
                unsafe { self.take_start()(TaskPtr(self), Start::Drop) };
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

    #[test]
    fn slots_are_the_hand_off_then_the_coroutine() {
        // The deferred layout (start.rs) relies on this order and on
        // there being no gap.
        assert_eq!(std::mem::offset_of!(Slots, hand_off), 0);
        assert_eq!(
            std::mem::offset_of!(Slots, coroutine),
            std::mem::size_of::<HandOff>()
        );
        assert_eq!(
            std::mem::size_of::<Slots>(),
            std::mem::size_of::<HandOff>() + std::mem::size_of::<Coroutine>()
        );
    }
}
