//! Tasks: the heap-allocated control block of one coroutine.
//!
//! A task is one allocation, a [`TaskCell<T>`]: a type-erased [`Header`]
//! followed by the slot where the coroutine's result (`T`, or its panic) will
//! be stored. The header holds everything the scheduler needs:
//!
//! * the scheduling state (`state.rs`) and a reference count;
//! * the `corosensei` coroutine, which owns the [`Stack`](crate::stack::Stack)
//!   and the saved stack pointer while the task is parked;
//! * the task's [`WaitCell`]: the hand-off slot a channel uses to pass it a
//!   value while it sleeps;
//! * the join state and the waiter parked in `join`, if any.
//!
//! The closure itself is moved onto the coroutine's own stack by corosensei,
//! so it costs no heap. Invariant: no field points into the coroutine's
//! stack. [`TaskRef`] is a counted pointer to the header (like `Arc`, but
//! thin, so queues store one word per task).

pub(crate) mod join;
pub(crate) mod state;

use std::any::Any;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::park::{WaitCell, Waiter};
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

pub(crate) type Coroutine = corosensei::Coroutine<(), Suspend, (), Stack>;

/// The type-erased part of a task. `#[repr(C)]` and first in [`TaskCell`], so
/// a `*const TaskCell<T>` is also a `*const Header`.
#[repr(C)]
pub(crate) struct Header {
    pub state: SchedState,
    pub join: JoinState,
    refs: AtomicU32,
    vtable: &'static Vtable,
    /// The runtime this task belongs to. Valid while the task can be woken:
    /// a runtime with unfinished tasks is never freed (see `Runtime::drop`).
    shared: *const Shared,
    cell: WaitCell,
    /// `Some` until the coroutine returns. Touched only by the worker that
    /// holds the task in the `RUNNING` state.
    coroutine: UnsafeCell<Option<Coroutine>>,
    /// Who waits in `join`. Written by the joiner before it sets
    /// `JOIN_WAITER`, read by the finisher after it sees that bit.
    joiner: UnsafeCell<Option<Waiter>>,
}

/// What `TaskRef` needs to know about `T`.
struct Vtable {
    dealloc: unsafe fn(NonNull<Header>),
}

/// A task and the slot for its result.
#[repr(C)]
pub(crate) struct TaskCell<T> {
    header: Header,
    output: UnsafeCell<Option<std::thread::Result<T>>>,
}

/// A counted, thin pointer to a task.
pub(crate) struct TaskRef(NonNull<Header>);

// SAFETY: every field of Header is either atomic, or accessed under the
// protocol documented on it (coroutine: only by the RUNNING worker; cell:
// see park.rs; joiner: ordered by the JOIN_WAITER bit). Moving the coroutine
// between threads is the point of an M:N runtime; what that means for
// thread-locals is documented in the crate docs.
unsafe impl Send for TaskRef {}
unsafe impl Sync for TaskRef {}

impl TaskRef {
    pub fn header(&self) -> &Header {
        // SAFETY: a TaskRef holds a reference count, so the header is alive.
        unsafe { self.0.as_ref() }
    }

    pub fn cell(&self) -> &WaitCell {
        &self.header().cell
    }

    pub fn shared(&self) -> *const Shared {
        self.header().shared
    }

    pub fn as_ptr(&self) -> *const Header {
        self.0.as_ptr()
    }

    /// Take another counted reference from a raw header pointer.
    ///
    /// # Safety
    /// `ptr` must point to a live header that some other reference keeps alive.
    pub unsafe fn clone_from_raw(ptr: *const Header) -> TaskRef {
        // SAFETY: the caller guarantees the header is alive.
        let header = unsafe { &*ptr };
        header.refs.fetch_add(1, Ordering::Relaxed);
        TaskRef(NonNull::from(header))
    }

    /// Resume the coroutine until it suspends or returns.
    ///
    /// # Safety
    /// The caller is the worker that moved the task into `RUNNING`.
    pub unsafe fn resume(&self) -> corosensei::CoroutineResult<Suspend, ()> {
        // SAFETY: only the RUNNING worker touches the coroutine.
        let co = unsafe { &mut *self.header().coroutine.get() };
        co.as_mut().expect("resumed a finished task").resume(())
    }

    /// Take the stack back from a coroutine that has returned.
    ///
    /// # Safety
    /// As for [`resume`](Self::resume), and the coroutine has returned.
    pub unsafe fn take_stack(&self) -> Stack {
        // SAFETY: only the RUNNING worker touches the coroutine.
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
        // SAFETY: this was the last reference; vtable.dealloc matches the
        // TaskCell<T> this header was allocated as.
        unsafe { (self.header().vtable.dealloc)(self.0) };
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

/// Allocate a task that will run `f` on `stack`, with two references: one
/// for the run queue, one for the returned handle.
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
    unsafe fn dealloc<T>(ptr: NonNull<Header>) {
        // SAFETY: the header is the first field of a Box<TaskCell<T>>.
        drop(unsafe { Box::from_raw(ptr.as_ptr().cast::<TaskCell<T>>()) });
    }
    stack.set_label(id, name);
    let cell = Box::new(TaskCell::<T> {
        header: Header {
            state: SchedState::new_scheduled(),
            join: JoinState::new(),
            refs: AtomicU32::new(2),
            vtable: &Vtable {
                dealloc: dealloc::<T>,
            },
            shared,
            cell: WaitCell::new(),
            coroutine: UnsafeCell::new(None),
            joiner: UnsafeCell::new(None),
        },
        output: UnsafeCell::new(None),
    });
    let raw: *mut TaskCell<T> = Box::into_raw(cell);
    let output = OutputSlot::<T>(raw, PhantomData);
    let co = Coroutine::with_stack(stack, move |yielder, ()| {
        crate::sched::context::enter_coroutine(yielder);
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        // SAFETY: the task is alive (its worker holds a reference while it
        // runs) and nobody reads the output before COMPLETE is published.
        unsafe { output.store(result) };
    });
    // SAFETY: we own the fresh allocation exclusively.
    unsafe { *(*raw).header.coroutine.get() = Some(co) };
    let header = NonNull::from(unsafe { &(*raw).header });
    (TaskRef(header), TaskRef(header))
}

/// Where the coroutine body writes its result.
struct OutputSlot<T>(*mut TaskCell<T>, PhantomData<T>);

impl<T> OutputSlot<T> {
    /// # Safety
    /// The cell is alive and the output is not being read.
    unsafe fn store(self, result: std::thread::Result<T>) {
        // SAFETY: guaranteed by the caller.
        unsafe { *(*self.0).output.get() = Some(result) };
    }
}

/// Take the result of a finished task.
///
/// # Safety
/// `task` was created by `new_task::<_, T>`, has `COMPLETE` set, and the
/// output is taken at most once.
pub(crate) unsafe fn take_output<T>(task: &TaskRef) -> std::thread::Result<T> {
    let cell = task.as_ptr().cast::<TaskCell<T>>();
    // SAFETY: guaranteed by the caller.
    unsafe { (*(*cell).output.get()).take() }
        .unwrap_or_else(|| Err(Box::new("task output already taken") as Box<dyn Any + Send>))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn header_stays_small() {
        // The memory figure (bytes per parked coroutine) depends on this.
        assert!(
            std::mem::size_of::<Header>() <= 112,
            "{}",
            std::mem::size_of::<Header>()
        );
    }
}
