//! Deferred start: a task takes its stack when it first runs, not when it
//! is spawned.
//!
//! A task spawned with the default options is created *without* a stack.
//! Until it first runs, its function waits in the task's [`Slots`] (the
//! hand-off slot and the body storage, both free until then) and a
//! [`StartFn`], the one piece of code that knows the function's type,
//! waits beside it. The worker that first runs the task takes a stack from
//! *its own* cache and calls [`TaskRef::start`], which moves the function
//! onto that stack as a new coroutine.
//!
//! **Layout while deferred** ([`Deferred`], over the 48 bytes of the
//! slots): words 0 to 4 hold the *payload*, the function (or, for
//! `Builder`, the stack and the function), inline if it fits five words
//! and word alignment, else boxed with the box pointer in word 0 (as the
//! wait cell boxes a large value); word 5 holds the [`StartFn`]. The
//! payload starts at the hand-off slot and runs into the body storage, so
//! a start must read it all out (function and stack) before the coroutine
//! is written into the body storage: [`TaskRef::start`] and
//! [`TaskRef::start_own`] take the `StartFn` and set the kind to `Done`,
//! the `StartFn` takes the payload, and only then is the coroutine stored.
//! Why five words inline: a box costs a `malloc` at spawn and a `free` at
//! first run, most often on another thread, and the allocator may keep the
//! holes while the spawner runs far ahead (issue #11;
//! `docs/notes/cold-paths.md` has what it measured).
//!
//! Why (issue #11, fan-out): a spawner that never blocks can queue
//! hundreds of thousands of children before the worker that runs them
//! catches up. If every queued child already held a stack, every one of
//! them needed a slot of its own (peak live coroutines = slots carved, and
//! each slot a cold page). Taken at first run, a stack is held only by
//! coroutines that have started: the runner reuses the stacks of the
//! children it just finished, LIFO from its own cache, still warm in its
//! cache and TLB, and an unstarted task costs only its small heap block,
//! as a queued goroutine does in Go.
//!
//! The hand-off slot is free before the first run: a task waits (and so
//! receives values) only while it runs, and stores its result only when it
//! returns; then the coroutine is in the body storage, clear of it. An
//! unstarted task may still move between workers (it is stolen before it
//! starts); once started it is pinned as before.
//!
//! If no stack can be had at first run, there is no caller to return the
//! error to: the task finishes at once, as if its function had panicked
//! with the error, so `join` returns `Err` with that message.
//! `Builder::spawn*`, which promise the error at spawn, keep taking the
//! stack at spawn (`sched/spawn.rs`), but they too are deferred: the stack
//! waits in the slots with the function ([`Start::Own`]), and the
//! coroutine is built on it at first run, so the first touch of its top
//! page (a page fault on a fresh slot) is paid by the worker that runs the
//! task, not by the spawner.

use std::io;
use std::mem::{align_of, size_of, MaybeUninit};
use std::ptr::addr_of_mut;

use super::{Kind, Slots, Task, TaskPtr, TaskRef};
use crate::coroutine::Coroutine;
use crate::stack::Stack;

/// Words of payload a deferred task keeps without a box.
const PAYLOAD_WORDS: usize = 5;

/// The task's [`Slots`] as a deferred task uses them (module docs).
#[repr(C)]
struct Deferred {
    payload: MaybeUninit<[usize; PAYLOAD_WORDS]>,
    start: StartFn,
}

// The deferred layout fits the slots. (Under AddressSanitizer the
// coroutine, and so the slots, are larger; the payload stays five words.)
const _: () = assert!(
    size_of::<Deferred>() <= size_of::<Slots>() && align_of::<Deferred>() <= align_of::<Slots>()
);

/// Does a payload `P` stay in the slots without a box?
pub(crate) const fn payload_inline<P>() -> bool {
    size_of::<P>() <= size_of::<[usize; PAYLOAD_WORDS]>() && align_of::<P>() <= align_of::<usize>()
}

#[cfg(test)]
thread_local! {
    /// Deferred tasks made on this thread, and the boxes made for their
    /// functions: lets a test check which path a spawn took
    /// (`sched/spawn.rs`).
    pub(crate) static DEFERRED_MADE: std::cell::Cell<(usize, usize)> =
        const { std::cell::Cell::new((0, 0)) };
}

/// Count a deferred task made here, and whether its function needed a box
/// (test builds only).
#[inline(always)]
pub(crate) fn note_deferred(_boxed: bool) {
    #[cfg(test)]
    DEFERRED_MADE.with(|n| {
        let (tasks, boxes) = n.get();
        n.set((tasks + 1, boxes + usize::from(_boxed)));
    });
}

/// What a first run asks of a task's [`StartFn`].
pub(crate) enum Start {
    /// Build the coroutine on this stack.
    Run(Stack),
    /// No stack could be had: drop the function and store this error as
    /// the task's (panic) result.
    Fail(io::Error),
    /// Drop the function without running it (a cancelled or dropped task).
    Drop,
    /// Build the coroutine on the stack the task took at spawn, if it took
    /// one: `None` (and the function left in the slots) if it did not.
    Own,
}

/// The type-aware half of a deferred task (written by the scheduler, which
/// knows the function's type): takes the payload out of the slots
/// ([`TaskPtr::take_payload`]) and acts on [`Start`]. Returns the
/// coroutine for [`Start::Run`], and for [`Start::Own`] if the task took
/// its stack at spawn (else it returns `None` and leaves the slots as they
/// were).
///
/// # Safety
/// The task's slots hold the payload put there at spawn (the kind is no
/// longer `Deferred`, so that nothing else takes it), and the caller holds
/// the task the way [`TaskRef::resume`] requires; the payload is taken
/// once.
pub(crate) type StartFn = unsafe fn(TaskPtr, Start) -> Option<Coroutine>;

impl Task {
    /// The slots as the deferred layout.
    #[inline(always)]
    fn deferred(&self) -> *mut Deferred {
        self.slots().cast()
    }

    /// Take the [`StartFn`] of a deferred task, leaving its kind `Done`:
    /// the caller calls it once, and nothing else will.
    ///
    /// # Safety
    /// The caller holds the task (as [`TaskRef::resume`] requires, or as
    /// its last reference).
    #[inline]
    pub(super) unsafe fn take_start(&self) -> StartFn {
        assert_eq!(self.kind.get(), Kind::Deferred, "the task is not deferred");
        self.kind.set(Kind::Done);
        // SAFETY: a deferred task's slots hold its StartFn at `start`,
        // written by `new_deferred`; only the holder reads it.
        unsafe { addr_of_mut!((*self.deferred()).start).read() }
    }
}

impl TaskPtr {
    /// Move the payload out of the task's slots (inline or from its box,
    /// as [`payload_inline`] says).
    ///
    /// # Safety
    /// The slots hold a `P` put by [`TaskRef::new_deferred`], taken once
    /// (the caller is the task's [`StartFn`]).
    pub unsafe fn take_payload<P>(&self) -> P {
        // SAFETY: the task is alive while its StartFn runs (its holder has
        // a reference); `deferred` is a raw pointer into its slots.
        let at = unsafe { addr_of_mut!((*(*self.as_ptr()).deferred()).payload) }.cast::<P>();
        if payload_inline::<P>() {
            // SAFETY: a P was written there, and fits its alignment.
            unsafe { at.read() }
        } else {
            // SAFETY: `new_deferred` stored a Box<P> pointer there; we
            // reclaim it once.
            unsafe { *Box::from_raw(at.cast::<*mut P>().read()) }
        }
    }
}

impl TaskRef {
    /// Allocate a deferred task with two references (run queue and join
    /// handle), its payload `p` (the function, and for `Builder` its stack)
    /// in the slots, boxed if it does not fit five words, and `start`, which
    /// knows `P`, beside it.
    #[inline]
    pub fn new_deferred<P: Send + 'static>(start: StartFn, p: P) -> (TaskRef, TaskRef) {
        let (run, handle) = TaskRef::alloc(Kind::Deferred);
        let d = run.task().deferred();
        let at = d.cast::<P>();
        // SAFETY: the task is new and unshared, its slots hold nothing
        // yet, and `Deferred` fits them: write the payload at word 0 (it
        // fits five words and word alignment, or a box pointer goes
        // there), and the StartFn at word 5.
        unsafe {
            if payload_inline::<P>() {
                at.write(p);
            } else {
                at.cast::<*mut P>().write(Box::into_raw(Box::new(p)));
            }
            addr_of_mut!((*d).start).write(start);
        }
        (run, handle)
    }

    /// Does the task still wait for a stack?
    #[inline]
    pub fn is_deferred(&self) -> bool {
        self.task().kind.get() == Kind::Deferred
    }

    /// First run of a deferred task: build its coroutine on `stack`.
    ///
    /// # Safety
    /// As for [`resume`](Self::resume), and the task is deferred.
    #[inline]
    pub unsafe fn start(&self, stack: Stack) {
        // SAFETY: as stated, passed on.
        let co = unsafe { self.run_start(Start::Run(stack)) };
        // SAFETY: as stated, passed on.
        unsafe { self.store(co.expect("a start with a stack builds the coroutine")) };
    }

    /// First run of a deferred task that took its stack at spawn: build
    /// its coroutine on it. False if the task has no stack of its own: it
    /// is still deferred, to be started with [`start`](Self::start).
    ///
    /// # Safety
    /// As for [`start`](Self::start).
    #[inline]
    pub unsafe fn start_own(&self) -> bool {
        // SAFETY: as stated: the task is deferred, and we hold it.
        let start = unsafe { self.task().take_start() };
        // Not deferred while the start runs (`take_start` left it Done): if
        // it took the payload and then unwound, nothing may take it again.
        // SAFETY: the slots held the payload, and the caller holds the
        // task; with `Own`, a start either takes it (and returns the
        // coroutine) or leaves the slots untouched.
        match unsafe { start(TaskPtr(self.task()), Start::Own) } {
            // SAFETY: as stated, passed on; the payload is out.
            Some(co) => unsafe { self.store(co) },
            None => {
                // The payload and the StartFn are where they were.
                self.task().kind.set(Kind::Deferred);
                return false;
            }
        }
        true
    }

    /// First run of a deferred task that could get no stack: it finishes
    /// at once with the error as its (panic) result.
    ///
    /// # Safety
    /// As for [`start`](Self::start).
    #[cold]
    pub unsafe fn fail_start(&self, error: io::Error) {
        // SAFETY: as stated, passed on; the kind is left Done.
        unsafe { self.run_start(Start::Fail(error)) };
    }

    /// Call the task's [`StartFn`], leaving the kind `Done` (the caller
    /// stores the coroutine, if there is one).
    ///
    /// # Safety
    /// As for [`start`](Self::start).
    #[inline]
    unsafe fn run_start(&self, how: Start) -> Option<Coroutine> {
        // SAFETY: as stated: the task is deferred, and we hold it.
        let start = unsafe { self.task().take_start() };
        // SAFETY: the slots hold the payload, and the caller holds the
        // task; it is taken once (the kind is no longer Deferred).
        unsafe { start(TaskPtr(self.task()), how) }
    }

    /// Store the coroutine a start built into the body storage.
    ///
    /// # Safety
    /// As for [`start`](Self::start), and the payload has been taken out
    /// (the kind is `Done`): the coroutine overwrites its last words.
    #[inline]
    unsafe fn store(&self, co: Coroutine) {
        let task = self.task();
        debug_assert_eq!(task.kind.get(), Kind::Done);
        // SAFETY: as stated: the body storage holds nothing we need, and
        // only the holder of the task writes it.
        unsafe { task.coroutine().write(co) };
        task.kind.set(Kind::Coroutine);
    }
}
