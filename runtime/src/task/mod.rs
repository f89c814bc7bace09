//! Tasks: the heap-allocated control block of one coroutine.
//!
//! A task is one small allocation, a [`Header`], holding everything the
//! scheduler needs while the coroutine is parked:
//!
//! * the scheduling state (`state.rs`), the join state (`join.rs`) and a
//!   reference count, packed into one word;
//! * the runtime it belongs to;
//! * its hand-off slot and outcome byte (the task's [`WaitCell`]): how a
//!   channel passes it a value while it sleeps, and, once it has returned,
//!   where its result waits for `join`;
//! * the `corosensei` coroutine, which owns the [`Stack`] and the saved stack
//!   pointer;
//! * the waiter parked in `join`, if any;
//! * a *spare reference* flag (see [`TaskRef::try_park`]).
//!
//! The closure itself is moved onto the coroutine's own stack by corosensei
//! and costs no heap. Invariant: no field points into the coroutine's stack.
//! [`TaskRef`] is a counted pointer to the header (like `Arc`, but one word,
//! so wait queues and run queues store one word per task).
//!
//! The header is not generic over the result type `T`: the result lives in
//! the hand-off slot (boxed if larger than two words), and the one piece of
//! code that must know `T` without a `JoinHandle` (dropping an unjoined
//! result) is handed to the worker as the coroutine's return value, an
//! [`OutputDropper`].

pub(crate) mod join;
pub(crate) mod state;

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::park::{new_hand_off, HandOff, Outcome, WaitCell, Waiter};
use crate::sched::Shared;
use crate::stack::Stack;
use join::JoinState;
use state::SchedState;

/// Why a coroutine switched back to its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Suspend {
    /// `yield_now`: requeue me.
    Yield,
    /// I am waiting for something; park me unless a wake already arrived.
    Park,
}

/// Drops a finished task's stored result; knows its type.
pub(crate) type OutputDropper = unsafe fn(&TaskRef);

pub(crate) type Coroutine = corosensei::Coroutine<(), Suspend, OutputDropper, Stack>;

pub(crate) struct Header {
    refs: AtomicU32,
    pub state: SchedState,
    pub join: JoinState,
    outcome: Outcome,
    /// Set while the task holds one reference to itself: the one its worker
    /// had when the task last parked, kept for the task's next wait to put in
    /// a wait queue ([`TaskRef::take_spare`]). Touched only by the task while
    /// it runs and by its worker between a switch-out and the park attempt,
    /// so plain (relaxed) loads and stores suffice: the run queues and the
    /// state word order those accesses.
    spare: AtomicBool,
    /// The runtime this task belongs to. Valid while the task can be woken:
    /// a runtime with unfinished tasks is never freed (see `Runtime::drop`).
    shared: *const Shared,
    hand_off: HandOff,
    /// `Some` until the coroutine returns. Touched only by the worker that
    /// holds the task (it took it from a run queue).
    coroutine: UnsafeCell<Option<Coroutine>>,
    /// Who waits in `join`. Written by the joiner before it sets
    /// `JOIN_WAITER`, read by the finisher after it sees that bit.
    joiner: UnsafeCell<Option<Waiter>>,
}

/// A counted, one-word pointer to a task.
#[repr(transparent)]
pub(crate) struct TaskRef(NonNull<Header>);

// SAFETY: every field of Header is atomic, immutable, or accessed under the
// protocol documented on it (coroutine: only by the worker running it; hand-off
// slot: see park/cell.rs; joiner: ordered by the JOIN_WAITER bit). Moving the
// coroutine between threads is the point of an M:N runtime; what that means
// for thread-locals is documented in the crate docs.
unsafe impl Send for TaskRef {}
// SAFETY: as for Send: shared access to a Header goes through atomics or the
// protocols above, never through an unsynchronised `&mut`.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    pub fn header(&self) -> &Header {
        // SAFETY: a TaskRef holds a reference count, so the header is alive.
        unsafe { self.0.as_ref() }
    }

    pub fn cell(&self) -> WaitCell<'_> {
        let h = self.header();
        WaitCell::new(&h.outcome, &h.hand_off)
    }

    pub fn shared(&self) -> *const Shared {
        self.header().shared
    }

    /// Give up the reference as a raw pointer (see [`from_raw`](Self::from_raw)).
    pub fn into_raw(self) -> NonNull<Header> {
        let ptr = self.0;
        std::mem::forget(self);
        ptr
    }

    /// Take back a reference given up by [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    /// `ptr` came from `into_raw` and is used once.
    pub unsafe fn from_raw(ptr: NonNull<Header>) -> TaskRef {
        TaskRef(ptr)
    }

    /// Resume the coroutine until it suspends or returns.
    ///
    /// # Safety
    /// The caller is the worker that took the task from a run queue.
    pub unsafe fn resume(&self) -> corosensei::CoroutineResult<Suspend, OutputDropper> {
        // SAFETY: only the worker running the task touches the coroutine.
        let co = unsafe { &mut *self.header().coroutine.get() };
        co.as_mut().expect("resumed a finished task").resume(())
    }

    /// Worker side, after the task switched out asking to park: try to park
    /// it ([`state::SchedState::after_park`]). Returns the task if a wake
    /// overtook the park, for the worker to requeue.
    ///
    /// A parked task is woken through a wait queue's reference, so this one,
    /// the worker's, is not needed until the task waits again, and then a
    /// wait queue needs a new one. Instead of dropping it now and cloning
    /// one later (two locked instructions per park), the task keeps it as
    /// its *spare*, and its next wait takes it ([`take_spare`](Self::take_spare)).
    pub fn try_park(self) -> Option<TaskRef> {
        let h = self.header();
        if h.spare.load(Ordering::Relaxed) {
            // Already has a spare (it parked again without a new wait):
            // ours is dropped as usual.
            return if h.state.after_park() {
                None
            } else {
                Some(self)
            };
        }
        h.spare.store(true, Ordering::Relaxed);
        let raw = self.into_raw();
        // SAFETY: the reference just stashed keeps the header alive, and
        // only this worker can take it back before `after_park` publishes
        // PARKED (the task is switched out and in no run queue).
        let h = unsafe { raw.as_ref() };
        if h.state.after_park() {
            // Parked. From here on a waker may run the task anywhere: do not
            // touch it.
            return None;
        }
        // Overtaken by a wake: still ours. Take the stashed reference back.
        h.spare.store(false, Ordering::Relaxed);
        // SAFETY: it is the reference given up by `into_raw` above.
        Some(unsafe { TaskRef::from_raw(raw) })
    }

    /// Take the task's spare reference, if it has one. Called by the task
    /// itself while it runs (`Current::to_waiter`), or by its worker once it
    /// has returned.
    pub fn take_spare(&self) -> Option<TaskRef> {
        let h = self.header();
        if !h.spare.load(Ordering::Relaxed) {
            return None;
        }
        h.spare.store(false, Ordering::Relaxed);
        Some(TaskRef(self.0))
    }

    /// Take the stack back from a coroutine that has returned.
    ///
    /// # Safety
    /// As for [`resume`](Self::resume), and the coroutine has returned.
    pub unsafe fn take_stack(&self) -> Stack {
        // SAFETY: only the worker running the task touches the coroutine.
        let co = unsafe { &mut *self.header().coroutine.get() };
        co.take()
            .expect("finished task still has its coroutine")
            .into_stack()
    }

    /// Record the waiter parked in `join`.
    ///
    /// # Safety
    /// Only the join handle may call this, and only while `JOIN_WAITER` is unset.
    pub unsafe fn set_joiner(&self, waiter: Option<Waiter>) {
        // SAFETY: see `joiner` field docs.
        unsafe { *self.header().joiner.get() = waiter };
    }

    /// # Safety
    /// Only the finishing worker, after it saw `JOIN_WAITER` set.
    pub unsafe fn take_joiner(&self) -> Option<Waiter> {
        // SAFETY: see `joiner` field docs.
        unsafe { (*self.header().joiner.get()).take() }
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> Self {
        self.header().refs.fetch_add(1, Ordering::Relaxed);
        TaskRef(self.0)
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: this was the last reference to a header made by `new_task`.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        // A coroutine that never finished (its runtime shut down, or nobody
        // ever woke it) is forgotten, not dropped: dropping would unwind it on
        // this thread, running user code at an arbitrary point. Its stack slot
        // stays reserved, its captured values leak.
        if let Some(co) = self.coroutine.get_mut().take() {
            std::mem::forget(co);
        }
    }
}

/// A raw header pointer that may move into the coroutine closure.
struct HeaderPtr(*const Header);
// SAFETY: the header is Sync (see TaskRef) and outlives the coroutine.
unsafe impl Send for HeaderPtr {}

/// Allocate a task that will run `f` on `stack`, with two references: one
/// for the run queue, one for the join handle.
pub(crate) fn new_task<F, T>(
    shared: &Shared,
    mut stack: Stack,
    id: u64,
    name: Option<&str>,
    f: F,
) -> (TaskRef, TaskRef)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    unsafe fn drop_output<T>(task: &TaskRef) {
        // SAFETY: the caller saw COMPLETE and owns the stored result.
        drop(unsafe { task.cell().take::<std::thread::Result<T>>() });
    }
    stack.set_label(id, name);
    let raw = Box::into_raw(Box::new(Header {
        refs: AtomicU32::new(2),
        state: SchedState::new_runnable(),
        join: JoinState::new(),
        outcome: Outcome::new(0),
        spare: AtomicBool::new(false),
        shared,
        hand_off: new_hand_off(),
        coroutine: UnsafeCell::new(None),
        joiner: UnsafeCell::new(None),
    }));
    let me = HeaderPtr(raw);
    let co = Coroutine::with_stack(stack, move |yielder, ()| {
        let me = me;
        crate::sched::context::enter_coroutine(me.0, yielder);
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        crate::sched::context::leave_coroutine();
        // SAFETY: the task is alive (its worker holds a reference while it
        // runs), it is not waiting on anything, so its hand-off slot is free,
        // and nobody reads the result before COMPLETE is published.
        unsafe { WaitCell::new(&(*me.0).outcome, &(*me.0).hand_off).put(result) };
        drop_output::<T> as OutputDropper
    });
    // SAFETY: we own the fresh allocation exclusively.
    unsafe { *(*raw).coroutine.get() = Some(co) };
    // SAFETY: Box::into_raw never returns null.
    let header = unsafe { NonNull::new_unchecked(raw) };
    (TaskRef(header), TaskRef(header))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn header_stays_small() {
        // The memory figure (bytes per parked coroutine) depends on this:
        // 72 bytes is a 80-byte malloc chunk.
        assert!(
            std::mem::size_of::<Header>() <= 72,
            "{}",
            std::mem::size_of::<Header>()
        );
    }
}
